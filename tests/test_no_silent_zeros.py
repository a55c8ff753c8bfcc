"""No number the inputs do not support: missing, mismatched or non-finite inputs are errors
naming the file (or warnings with a report column), never zeros or ones."""

import csv
import json
import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from napari_yolosam.cli import main
from napari_yolosam.io import StackError, read_stack
from napari_yolosam.models.checkpoints import CheckpointError


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_label_maps_with_a_stray_255_are_not_read_as_binary(phantom_folder):
    for mask in sorted((phantom_folder / "masks").iterdir()):
        labels = np.array(Image.open(mask))
        labels[0, :3] = 255  # a stray value next to EMIDEC's 0..4
        Image.fromarray(labels).save(mask)
    with pytest.raises(StackError, match=r"255") as info:
        read_stack(phantom_folder)
    assert "masks" in str(info.value), "the error names a mask file"


def test_a_slice_without_a_mask_is_reported_not_zero(phantom_folder, tmp_path, capsys):
    missing = sorted((phantom_folder / "masks").iterdir())[2]
    missing.unlink()
    out = tmp_path / "cases.csv"
    assert main(["quantify", "--images", str(phantom_folder), "--out", str(out)]) == 0
    err = capsys.readouterr().err
    assert "no mask" in err and missing.stem in err and "left out of the volumes" in err
    slices = {r["image"]: r for r in _rows(tmp_path / "cases_slices.csv")}
    row = next(r for name, r in slices.items() if Path(name).stem == missing.stem)
    assert row["labelled"] == "False" and row["scar_area"] in ("", "nan")
    assert sum(int(r["unlabelled_slices"]) for r in _rows(out)) == 1


def test_an_empty_mask_folder_or_names_matching_nothing_are_errors(phantom_folder, tmp_path):
    from napari_yolosam.io.folder import read_masks_for
    from napari_yolosam.labelspec import LabelSpec

    stack = read_stack(phantom_folder)
    other = tmp_path / "other_masks"
    other.mkdir()
    for k, mask in enumerate(sorted((phantom_folder / "masks").iterdir())):
        (other / f"unrelated_{k}.png").write_bytes(mask.read_bytes())
    with pytest.raises(StackError, match="matches a slice") as info:
        read_masks_for(
            stack.names, stack.original_shapes, other, LabelSpec(), stack.shape[1:], True
        )
    assert str(other) in str(info.value)
    for mask in (phantom_folder / "masks").iterdir():
        mask.unlink()
    with pytest.raises(StackError, match="no mask files") as info:
        read_stack(phantom_folder)
    assert str(phantom_folder / "masks") in str(info.value)


def test_label_values_that_mean_nothing_are_refused_or_warned(phantom_folder, tmp_path, capsys):
    base = ["quantify", "--images", str(phantom_folder), "--out", str(tmp_path / "q.csv")]
    for bad in ("", "3,abc", "0", "70000"):
        with pytest.raises(SystemExit) as exit_info:
            main([*base, "--scar-values", bad])
        assert exit_info.value.code == 2
        assert "--scar-values" in capsys.readouterr().err
    assert main([*base, "--scar-values", "7"]) == 0
    err = capsys.readouterr().err
    assert "--scar-values 7: no label holds these values" in err


@pytest.mark.parametrize(
    "option", [["--accept-below", "nan"], ["--accept-below", "0.5", "--min-confidence", "nan"]]
)
def test_non_finite_options_are_refused(phantom_folder, tmp_path, option, capsys):
    argv = ["review", "--images", str(phantom_folder), "--proposals", str(tmp_path), *option]
    with pytest.raises(SystemExit) as info:
        main([*argv, "--out", str(tmp_path / "clean")])
    assert info.value.code == 2 and "finite" in capsys.readouterr().err


def test_embed_refuses_a_first_slice_outside_the_stack_and_a_cache_file(
    phantom_folder, tmp_path, capsys
):
    base = ["embed", "--images", str(phantom_folder), "--segmenter", "tiny"]
    assert main([*base, "--first", "99", "--cache", str(tmp_path / "cache")]) == 2
    assert "--first 99" in capsys.readouterr().err
    not_a_folder = tmp_path / "cache.txt"
    not_a_folder.write_text("mine")
    assert main([*base, "--cache", str(not_a_folder)]) == 2
    err = capsys.readouterr().err
    assert str(not_a_folder) in err and "not a folder" in err and "Traceback" not in err
    assert not_a_folder.read_text() == "mine"


def test_a_checkpoint_with_non_finite_weights_is_refused(tiny_segmenter, tmp_path):
    import torch

    from napari_yolosam.models.segmenter import Segmenter

    path = tiny_segmenter.save(tmp_path / "seg.pth")
    payload = torch.load(path, weights_only=True)
    name = next(k for k, v in payload["state_dict"].items() if v.is_floating_point())
    payload["state_dict"][name] = payload["state_dict"][name].clone().fill_(float("nan"))
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="non-finite weights") as info:
        Segmenter.load(path)
    assert str(path) in str(info.value) and name in str(info.value)


@pytest.mark.parametrize(
    "change, problem",
    [
        ({"config": {"patch_size": 0}}, "patch_size"),
        ({"preprocess": {"mean": 0.5}}, "mean must be 3 numbers"),
        ({"config": {"embed_dim": 65536, "num_heads": 16, "depth": 64}}, "GiB of weights"),
        ({"config": {"img_size": 1 << 20}}, "img_size"),
    ],
)
def test_a_checkpoint_with_a_degenerate_config_is_refused_before_building(
    tiny_segmenter, tmp_path, change, problem
):
    import torch

    from napari_yolosam.models.segmenter import Segmenter

    path = tiny_segmenter.save(tmp_path / "seg.pth")
    payload = torch.load(path, weights_only=True)
    for section, values in change.items():
        payload[section] = {**payload[section], **values}
    torch.save(payload, path)
    with pytest.raises(CheckpointError, match="invalid configuration") as info:
        Segmenter.load(path)
    assert problem in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize("damage", ["nan", "shape", "type"])
def test_a_damaged_cache_entry_is_encoded_again_never_used(
    tiny_segmenter, tmp_path, damage, caplog
):
    from napari_yolosam.models.embeddings import EmbeddingCache

    image = np.random.default_rng(0).random((64, 64)).astype(np.float32)
    cache = EmbeddingCache(disk_dir=tmp_path / "cache")
    good = cache.get(tiny_segmenter, image).numpy()
    (entry,) = (tmp_path / "cache").rglob("*.npy")
    array = np.load(entry)
    bad = {
        "nan": np.full_like(array, np.nan),
        "shape": array[..., :-1],
        "type": array.astype(np.float32),
    }[damage]
    np.save(entry, bad)
    fresh = EmbeddingCache(disk_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING, logger="napari_yolosam"):
        again = fresh.get(tiny_segmenter, image).numpy()
    assert np.isfinite(again).all() and again.shape == good.shape
    assert np.allclose(again, good, atol=1e-2) and fresh.stats.encoded == 1
    assert str(entry) in caplog.text and "damaged" in caplog.text


def _decisions_session(phantom_folder):
    from napari_yolosam.review import ReviewSession

    stack = read_stack(phantom_folder)
    rows = [{"image": n, "flag": True, "quality": 0.5} for n in stack.names]
    return ReviewSession(stack, stack.scar(), rows)


@pytest.mark.parametrize(
    "text",
    [
        "\ufeffimage,action\r\n{0},keep\r\n",  # a byte-order mark and Windows line ends
        "image;action\n{0};keep\n",  # a European spreadsheet's CSV
        "Image\tAction\n{0}\tkeep\n",  # tabs, capitalised header
    ],
)
def test_decisions_files_from_spreadsheets_are_read(phantom_folder, tmp_path, text):
    from napari_yolosam.review_batch import read_decisions

    session = _decisions_session(phantom_folder)
    path = tmp_path / "decisions.csv"
    path.write_text(text.format(session.stack.names[1]), encoding="utf-8", newline="")
    (planned,) = read_decisions(path, session)
    assert planned.index == 1 and planned.action == "keep"


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xfe", "not a text file"),
        ("image,action,patient\n{0},keep,P07\n", "names patient 'P07'"),
        ("slice,what\n{0},keep\n", "lacks the columns image and action"),
    ],
)
def test_bad_decisions_files_name_the_file_and_the_problem(
    phantom_folder, tmp_path, content, problem
):
    from napari_yolosam.review_batch import read_decisions

    session = _decisions_session(phantom_folder)
    path = tmp_path / "decisions.csv"
    if isinstance(content, str):
        content = content.format(session.stack.names[1]).encode()
    path.write_bytes(content)
    with pytest.raises(StackError, match=problem) as info:
        read_decisions(path, session)
    assert str(path) in str(info.value)
    assert session.decisions == [], "nothing was applied"


@pytest.mark.parametrize("content", [b"", b"PK\x03\x04 truncated"])
def test_a_damaged_review_state_names_the_file(phantom_folder, tmp_path, content):
    from napari_yolosam import review_store
    from napari_yolosam.review import ReviewSession

    session = _decisions_session(phantom_folder)
    autosave = ReviewSession.autosave_for(session.stack, tmp_path)
    saved = ReviewSession(session.stack, session.proposals, list(session.rows.values()), autosave)
    saved.decide(0, "accept")
    (autosave / review_store.STATE).write_bytes(content)
    with pytest.raises(StackError, match="damaged") as info:
        ReviewSession.restore(
            session.stack, session.proposals, list(session.rows.values()), autosave
        )
    assert str(autosave / review_store.STATE) in str(info.value)


def test_nifti_images_with_tiff_labels_are_refused_by_name(tmp_path):
    import nibabel as nib
    import tifffile

    images = tmp_path / "case.nii.gz"
    nib.save(
        nib.Nifti1Image(
            np.random.default_rng(0).random((32, 32, 3)).astype(np.float32), np.eye(4)
        ),
        images,
    )
    labels = tmp_path / "case_labels.tif"
    tifffile.imwrite(labels, np.zeros((3, 32, 32), np.uint8))
    with pytest.raises(StackError, match="is a TIFF file but the images") as info:
        read_stack(images, labels=labels)
    assert str(labels) in str(info.value)


def test_the_audit_figure_draws_one_pixel_slices(tmp_path):
    from napari_yolosam.audit import audit
    from napari_yolosam.audit.report import save_audit
    from napari_yolosam.proposals.types import Proposals
    from napari_yolosam.stack import Stack
    from test_audit import proposal

    labels = np.zeros((3, 1, 1), np.uint8)
    labels[0] = 3
    stack = Stack(
        images=np.random.default_rng(0).random((3, 1, 1)).astype(np.float32), labels=labels
    )
    props = Proposals(stack.names, [proposal(np.zeros((1, 1), bool)) for _ in range(3)])
    save_audit(audit(stack, props), stack, props.masks(), tmp_path / "audit")
    overview = Image.open(tmp_path / "audit" / "overview.png")
    assert overview.size[0] > 100
    assert json.loads((tmp_path / "audit" / "report.json").read_text())


def test_rules_refuse_non_finite_thresholds_from_python_too(phantom_folder):
    from napari_yolosam.proposals.types import Proposals
    from napari_yolosam.review_batch import rule_decisions

    session = _decisions_session(phantom_folder)
    props = Proposals(session.stack.names, [])
    for below, confidence in ((float("nan"), 0.0), (0.5, float("nan")), (float("inf"), 0.0)):
        with pytest.raises(ValueError, match="finite"):
            rule_decisions(session, props, below, confidence)
