"""SAM and YOLO training: learning, checkpoints, stop, resume, DDP, CLI."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from napari_yolosam.models.checkpoints import read_payload
from napari_yolosam.models.segmenter import Segmenter
from napari_yolosam.phantom.make import make_phantom
from napari_yolosam.progress import Stopped, drive
from napari_yolosam.regions import scar_regions
from napari_yolosam.training.data import (
    Augmentation,
    build_items,
    by_slice,
    item_masks,
    make_samples,
    split_cases,
)
from napari_yolosam.training.paired import paired_predict_masks
from napari_yolosam.training.sam import LAST_NAME, SamTrainConfig, train_segmenter, validate


@pytest.fixture(scope="module")
def train_phantom():
    return make_phantom(n_slices=4, n_cases=4, shape=(96, 96), seed=12)


def _params(segmenter):
    return torch.cat([p.detach().flatten() for p in segmenter.model.parameters()]).clone()


def test_split_is_by_case(train_phantom):
    cases = train_phantom.stack.cases
    train, val = split_cases(cases, 0.25, seed=0)
    assert len(val) == 1 and not set(train) & set(val) and set(train) | set(val) == set(cases)
    assert split_cases(cases, 0.25, seed=0) == (train, val)
    assert split_cases(cases, val_cases=["Phantom_C02"])[1] == ["Phantom_C02"]
    with pytest.raises(ValueError, match="not in the data"):
        split_cases(cases, val_cases=["nobody"])


def test_scar_regions_join_fragments_and_drop_specks():
    scar = np.zeros((256, 256), bool)
    scar[50:56, 50:56] = True  # a fragment of 36 px ...
    scar[50:56, 59:65] = True  # ... and one 3 px away: one region
    scar[150:160, 150:160] = True  # far away: its own region
    scar[10:12, 200:202] = True  # a 4 px speck: no region
    regions, count = scar_regions(scar)
    assert count == 2
    assert set(np.unique(regions[50:56, 50:65][scar[50:56, 50:65]])) == {1}
    assert (regions[56:58, 56:59] == 0).all() and regions[10, 200] == 0, "the mask's own pixels"
    assert (regions > 0).sum() == 36 + 36 + 100
    from napari_yolosam.stack import Stack
    from napari_yolosam.training.yolo import detector_classes, slice_boxes

    labels = scar[None].astype(np.uint8) * 3  # EMIDEC's scar value
    stack = Stack(np.zeros((1, 256, 256), np.float32), labels, ["a.png"])
    classes, boxes = slice_boxes(stack, 0, detector_classes(stack))
    assert classes == [0, 0, 1], "two scar regions and the LV"
    np.testing.assert_array_equal(boxes[:2], [[50, 50, 65, 56], [150, 150, 160, 160]])
    items = build_items(stack, [0], negative_fraction=0.0)
    scar_items = [i.component for i in items if i.kind == "positive" and i.target == "scar"]
    assert scar_items == [1, 2], "SAM: the same regions"


def test_items_and_samples(train_phantom):
    stack = train_phantom.stack
    items = build_items(
        stack, list(range(len(stack))), myocardium=True, negative_fraction=0.5, seed=0
    )
    kinds = {(i.target, i.kind) for i in items}
    assert {
        ("scar", "positive"),
        ("myocardium", "positive"),
        ("scar", "negative"),
        ("scar", "lv"),
    } <= kinds
    lv_item = next(i for i in items if i.kind == "lv")
    target, region = item_masks(stack, lv_item, np.random.default_rng(0))
    labels = stack.crop(lv_item.slice, stack.labels[lv_item.slice])
    np.testing.assert_array_equal(target, stack.spec.scar_mask(labels))
    assert (region >= stack.spec.myocardium_mask(labels)).all(), "the box covers the whole LV"
    assert not any(i.kind == "lv" for i in build_items(stack, [0, 1, 2], lv_prompts=False))
    rng = np.random.default_rng(0)
    seg = Segmenter.build("tiny")
    groups = by_slice(sorted(items, key=lambda it: it.slice))
    assert all(len({it.slice for it in group}) == 1 for group in groups)
    pairs = []
    for group in groups[:6]:
        samples = make_samples(stack, group, rng, Augmentation(), 256, 256, True, seg.preprocess)
        assert len({id(s.image) for s in samples}) == 1, "one augmented image per slice"
        pairs += zip(group, samples, strict=True)
    for item, sample in pairs:
        assert sample.image.shape == (3, 256, 256) and sample.target.shape == (256, 256)
        assert (sample.box[2:] > sample.box[:2]).all()
        if item.kind == "negative":
            assert sample.target.max() == 0, "negative prompts have an empty target"
        elif item.kind == "positive":
            assert sample.target.max() > 0


def test_paired_decoder_matches_stock(tiny_segmenter, phantom):
    sam = tiny_segmenter.model
    with torch.inference_mode():
        emb = tiny_segmenter.encode(phantom.stack.images[0])
        boxes = torch.tensor([[40.0, 50, 120, 140]])
        sparse, dense = sam.prompt_encoder(points=None, boxes=boxes, masks=None)
        pe = sam.prompt_encoder.get_dense_pe()
        stock = sam.mask_decoder.predict_masks(emb, pe, sparse, dense)
        paired = paired_predict_masks(sam.mask_decoder, emb, pe, sparse, dense)
    torch.testing.assert_close(paired[0], stock[0], atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(paired[1], stock[1], atol=1e-5, rtol=1e-4)


def test_tiny_sam_learns_on_phantom(tmp_path):
    """The pipeline learns, not only runs: held-out Dice with true boxes far above the untrained model's."""
    phantom = make_phantom(n_slices=6, n_cases=5, shape=(128, 128), seed=21)
    scar_slices = {c: 0 for c in phantom.stack.cases}
    for c, has in zip(phantom.stack.cases, phantom.stack.scar().any(axis=(1, 2)), strict=True):
        scar_slices[c] += int(has)
    val_cases = [max(scar_slices, key=scar_slices.get)]  # validate on the case with most scar
    val_idx = [i for i, c in enumerate(phantom.stack.cases) if c in val_cases]
    seg = Segmenter.build("tiny", seed=0)
    before = validate(seg, phantom.stack, val_idx)
    config = SamTrainConfig(  # boxes alone (clicks: test_points_and_devices)
        epochs=14,
        batch_size=8,
        lr=1e-3,
        val_cases=tuple(val_cases),
        seed=0,
        click_share=0.0,
        heart_steps=20,
        look_closer=False,  # from scratch, full mode: whole slices learn in these 14 epochs
    )
    result = drive(train_segmenter(phantom.stack, seg, config, tmp_path))
    last = result.history[-1]
    print(
        f"held-out Dice with true boxes: scar {before['val_dice']:.3f} -> {result.best_dice:.3f}, "
        f"myocardium {before['val_myo_dice']:.3f} -> {last['val_myo_dice']:.3f}"
    )
    assert result.best_dice > max(0.15, before["val_dice"] + 0.1)
    assert last["val_myo_dice"] > max(0.4, before["val_myo_dice"] + 0.3)
    best = Segmenter.load(result.best_path)
    assert validate(best, phantom.stack, val_idx)["val_dice"] == pytest.approx(
        result.best_dice, abs=1e-6
    )


def test_decoder_mode_freezes_encoder_and_uses_cache(train_phantom, tmp_path):
    from napari_yolosam.models.embeddings import EmbeddingCache

    seg = Segmenter.build("tiny", seed=1)
    with pytest.raises(ValueError, match="random encoder"):
        SamTrainConfig(mode="decoder").resolved_mode(seg)  # never freeze random weights
    assert SamTrainConfig(mode="auto").resolved_mode(Segmenter.build("mobile_sam")) == "full"
    seg.random_encoder = False  # stands for a pretrained encoder (LiteMedSAM is 2 s per slice)
    encoder_before = torch.cat(
        [p.detach().flatten() for p in seg.model.image_encoder.parameters()]
    ).clone()
    decoder_before = torch.cat(
        [p.detach().flatten() for p in seg.model.mask_decoder.parameters()]
    ).clone()
    cache = EmbeddingCache()
    config = SamTrainConfig(
        epochs=2,
        batch_size=4,
        mode="decoder",
        val_fraction=0.25,
        max_steps_per_epoch=3,
        heart_steps=20,
    )
    drive(train_segmenter(train_phantom.stack, seg, config, tmp_path, cache=cache))
    encoder_after = torch.cat([p.detach().flatten() for p in seg.model.image_encoder.parameters()])
    decoder_after = torch.cat([p.detach().flatten() for p in seg.model.mask_decoder.parameters()])
    assert torch.equal(encoder_before, encoder_after) and not torch.equal(
        decoder_before, decoder_after
    )
    assert cache.stats.memory_hits > 0, "embeddings come from the cache"


def test_cached_modes_augment_before_caching(train_phantom, tmp_path):
    """A fixed augmented version of a slice: the same pixels every time (so it is encoded
    once), other pixels than the slice's, its targets moved with it; decoder training
    with two versions encodes each slice at most twice."""
    from napari_yolosam.models.embeddings import EmbeddingCache

    stack = train_phantom.stack
    items = [i for i in build_items(stack, [2], negative_fraction=0.0) if i.kind == "positive"]
    seg = Segmenter.build("tiny", seed=1)

    def prepare(variant):
        rng = np.random.default_rng(5)
        args = (Augmentation(), 256, 256, False, seg.preprocess)
        return make_samples(stack, items, rng, *args, variant=variant)

    plain, first, again, other = prepare(None), prepare((0, 1)), prepare((0, 1)), prepare((0, 2))
    image = stack.crop(2, stack.images[2])
    np.testing.assert_array_equal(plain[0].raw, image)
    np.testing.assert_array_equal(first[0].raw, again[0].raw)
    assert not np.array_equal(first[0].raw, image) and not np.array_equal(
        first[0].raw, other[0].raw
    )
    assert all(s.image is None for s in first), "cached modes encode through the cache"
    moved = [a.target for a in first]
    assert any(not torch.equal(m, b.target) for m, b in zip(moved, plain, strict=True))
    seg.random_encoder = False
    cache = EmbeddingCache()
    config = SamTrainConfig(
        epochs=3,
        batch_size=4,
        mode="decoder",
        val_fraction=0.25,
        cached_variants=2,
        heart_steps=0,  # the heads add windows: test_embeddings counts them
    )
    result = drive(train_segmenter(stack, seg, config, tmp_path, cache=cache))
    seen = {i for i, c in enumerate(stack.cases) if c in result.train_cases}
    slices = len(seen | {i for i, c in enumerate(stack.cases) if c in result.val_cases})
    assert slices < cache.stats.encoded <= slices + len(seen), "at most one more version each"
    with pytest.raises(ValueError, match="cached_variants"):
        SamTrainConfig(cached_variants=0)


def test_stop_mid_epoch_keeps_last_checkpoint_and_resume_continues(train_phantom, tmp_path):
    seg = Segmenter.build("tiny", seed=2)
    config = SamTrainConfig(
        epochs=3, batch_size=4, val_fraction=0.25, max_steps_per_epoch=3, heart_steps=20
    )
    work = train_segmenter(train_phantom.stack, seg, config, tmp_path)
    seen = []
    with pytest.raises(Stopped):
        drive(
            work, seen.append, should_stop=lambda: len(seen) >= 5
        )  # epoch 1 done (3 steps + epoch), stop in epoch 2
    assert [e.stage for e in seen].count("segmenter-epoch") == 1
    files = sorted(p.name for p in tmp_path.iterdir())
    # no partial file; the windows record of a run looking closer (the default)
    assert files == ["segmenter.pth", "segmenter_last.pth", "segmenter_windows.json"], files
    state = read_payload(tmp_path / LAST_NAME)["extra"]["training"]
    assert state["epoch"] == 1
    resumed = Segmenter.load(tmp_path / LAST_NAME)
    events = []
    result = drive(
        train_segmenter(
            train_phantom.stack, resumed, config, tmp_path, resume=tmp_path / LAST_NAME
        ),
        events.append,
    )
    epochs = [e.values["epoch"] for e in events if e.stage == "segmenter-epoch"]
    assert epochs == [2, 3] and result.epochs_done == 3
    assert read_payload(tmp_path / LAST_NAME)["extra"]["training"]["epoch"] == 3


def test_yolo_training_writes_loadable_detector(train_phantom, tmp_path):
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.training.yolo import detector_classes, train_detector

    stack = train_phantom.stack
    det = Detector.build(names=detector_classes(stack), imgsz=96)
    before = {k: v.clone() for k, v in det.yolo.model.state_dict().items()}
    events = []
    result = drive(
        train_detector(
            stack, det, list(range(12)), list(range(12, 16)), tmp_path, epochs=2, batch=8
        ),
        events.append,
    )
    assert [e.values["epoch"] for e in events if e.stage == "detector-epoch"] == [1, 2]
    assert {"box_loss", "precision", "recall", "mAP50", "scar_AP50", "lv_AP50"} <= set(
        result.history[-1]
    )
    ap = [result.history[-1]["scar_AP50"], result.history[-1]["lv_AP50"]]
    assert all(0 <= v <= 1 for v in ap), ap  # measured on the validation slices
    payload = read_payload(result.path)["extra"]
    assert payload["best_by"] == "scar_AP50"
    best = max(result.history, key=lambda h: (h["scar_AP50"], h["lv_AP50"], h["epoch"]))
    assert payload["epoch"] == best["epoch"]  # the saved epoch is the best scar epoch
    thresholds = read_payload(result.path)["config"]["thresholds"]
    assert set(thresholds) <= {"scar", "lv"} and all(0 <= t <= 1 for t in thresholds.values())
    loaded = Detector.load(result.path)
    assert loaded.names == ["scar", "lv"]
    after = loaded.yolo.model.state_dict()
    assert any(
        not torch.equal(before[k], after[k]) for k in before if before[k].dtype.is_floating_point
    )
    labels = (tmp_path / "yolo_data/labels/train").glob("*.txt")
    assert any(line.startswith("1 ") for f in labels for line in f.read_text().splitlines()), (
        "LV boxes exported"
    )


def test_detector_epoch_selection():
    from napari_yolosam.training.yolo import epoch_score

    scar_good = {"scar_AP50": 0.21, "lv_AP50": 0.80, "mAP50": 0.505, "mAP50-95": 0.30}
    lv_good = {"scar_AP50": 0.13, "lv_AP50": 0.93, "mAP50": 0.530, "mAP50-95": 0.45}
    by = {
        name: max([scar_good, lv_good], key=lambda r: epoch_score(r, None, name))
        for name in ("scar_AP50", "mAP50")
    }
    assert by == {"scar_AP50": scar_good, "mAP50": lv_good}
    assert epoch_score(scar_good, 0.7, "fitness") > epoch_score(lv_good, 0.6, "fitness")
    nan_scar = {**scar_good, "scar_AP50": float("nan")}  # no scar in the validation slices
    assert epoch_score(nan_scar, None, "scar_AP50") < epoch_score(lv_good, None, "scar_AP50")
    with pytest.raises(ValueError, match="unknown detector selection"):
        epoch_score(scar_good, None, "recall")


def test_yolo_training_stops_when_asked(train_phantom, tmp_path):
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.training.yolo import train_detector

    det = Detector.build(names=("scar", "lv"), imgsz=96)
    seen = []
    with pytest.raises(Stopped):
        drive(
            train_detector(
                train_phantom.stack, det, list(range(12)), [], tmp_path, epochs=50, batch=4
            ),
            seen.append,
            should_stop=lambda: len(seen) >= 2,
        )
    assert not (tmp_path / "detector.pt").exists() or read_payload(tmp_path / "detector.pt")


def test_a_detector_stopped_after_an_epoch_keeps_that_epoch(train_phantom, tmp_path):
    """#31 point 4: a cancelled run keeps the best finished epoch, and says which."""
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.training.run import kept_models, saved_models
    from napari_yolosam.training.yolo import train_detector

    det = Detector.build(names=("scar", "lv"), imgsz=96)
    seen = []
    work = train_detector(
        train_phantom.stack,
        det,
        list(range(12)),
        list(range(12, 16)),
        tmp_path,
        epochs=50,
        batch=4,
    )
    with pytest.raises(Stopped):
        drive(
            work, seen.append, should_stop=lambda: any(e.stage == "detector-epoch" for e in seen)
        )
    Detector.load(tmp_path / "detector.pt")  # a whole, loadable checkpoint
    assert read_payload(tmp_path / "detector.pt")["extra"]["epoch"] >= 1, "a finished epoch"
    history = [
        {"model": "detector", "epoch": e.values["epoch"]}
        for e in seen
        if e.stage == "detector-epoch"
    ]
    result = saved_models(tmp_path)
    result.history = history
    assert result.detector == tmp_path / "detector.pt"
    assert kept_models(result).startswith("the detector (1 finished epoch(s), the best kept")


@pytest.mark.slow
def test_ddp_two_cpu_processes(train_phantom, tmp_path):
    from napari_yolosam.phantom.io import save_phantom

    data = save_phantom(train_phantom, tmp_path / "data")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        "2",
        "-m",
        "napari_yolosam.cli.ddp",
        "--images",
        str(data),
        "--out",
        str(tmp_path / "run"),
        "--epochs",
        "2",
        "--batch",
        "2",
        "--max-steps-per-epoch",
        "2",
        "--heart-steps",
        "20",
        "--report-dir",
        str(tmp_path / "ranks"),
    ]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    ranks = [json.loads((tmp_path / "ranks" / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["world"] == 2
    assert ranks[0]["checksum"] == pytest.approx(ranks[1]["checksum"], rel=1e-9), (
        "ranks hold the same weights"
    )
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == [
        "metrics.csv",
        "segmenter.pth",
        "segmenter_last.pth",
        "segmenter_windows.json",  # rank 0 records the windows (looking closer, the default)
    ]
    Segmenter.load(tmp_path / "run" / "segmenter.pth")


def test_train_then_propose_cli(tmp_path, capsys):
    from napari_yolosam.cli import main

    assert (
        main(
            [
                "phantom",
                "--out",
                str(tmp_path / "data"),
                "--cases",
                "3",
                "--slices",
                "3",
                "--size",
                "96",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "train",
                "--images",
                str(tmp_path / "data"),
                "--out",
                str(tmp_path / "run"),
                "--epochs",
                "1",
                "--batch",
                "4",
                "--imgsz",
                "96",
                "--val-fraction",
                "0.34",
            ]
        )
        == 0
    )
    run = tmp_path / "run"
    assert (run / "detector.pt").exists() and (run / "segmenter.pth").exists()
    from napari_yolosam.defaults import default_segmenter

    tuned = Segmenter.load(run / "segmenter.pth")  # the default: pretrained, decoder fine-tuned
    assert tuned.name == default_segmenter() and not tuned.random_encoder
    rows = (run / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("model,epoch") and any(r.startswith("detector,1") for r in rows)
    assert any(r.startswith("segmenter,1") for r in rows)
    assert (
        main(
            [
                "propose",
                "--images",
                str(tmp_path / "data"),
                "--detector",
                str(run / "detector.pt"),
                "--segmenter",
                str(run / "segmenter.pth"),
                "--out",
                str(tmp_path / "props"),
            ]
        )
        == 0
    )
    assert len(list((tmp_path / "props" / "masks").iterdir())) == 9


def test_demo_quick(tmp_path):
    from napari_yolosam.audit.metrics import dice
    from napari_yolosam.demo import QUICK, run_demo, summary_lines
    from napari_yolosam.io import read_stack

    report = run_demo(tmp_path / "demo", QUICK, segmenter="tiny")  # tiny: seconds
    demo = tmp_path / "demo"
    assert (demo / "report.json").exists() and (demo / "proposals/summary.csv").exists()
    truth = read_stack(demo / "data", labels=demo / "data/truth").scar()
    noisy = read_stack(demo / "data").scar()
    cleaned = read_stack(demo / "data", labels=demo / "cleaned/masks").scar()
    scar = [i for i in range(len(truth)) if truth[i].any()]
    # the figures are the files' own: the noisy labels, then the cleaned set, against the truth
    for labels, key in ((noisy, "before"), (cleaned, "after")):
        expected = np.mean([dice(labels[i], truth[i]) for i in scar])
        assert report[key]["labels_dice_vs_truth"] == pytest.approx(expected, abs=1e-3)
    changed = sum(not np.array_equal(noisy[i], cleaned[i]) for i in range(len(noisy)))
    assert changed <= report["review"]["accepted"], "the review changed only what it accepted"
    assert (demo / "cleaned/decisions.jsonl").read_text().count("\n") == report["review"][
        "accepted"
    ]
    from PIL import Image

    for name in ("overview.png", "before_after.png", "training.png"):  # #30 point 5
        picture = np.asarray(Image.open(demo / name).convert("L"))
        assert picture.shape[0] > 150 and picture.std() > 10, f"{name} shows something"
    assert report["figures"]["before_after"] == str(demo / "before_after.png")
    assert report["models"]["segmenter"] == "tiny" and report["models"]["segmenter_fingerprint"]
    summary = json.loads((demo / "cleaned/summary.json").read_text())
    assert summary["models"]["segmenter"] == "tiny", "the provenance names the models"
    lines = summary_lines(report)
    assert any(line.startswith("audit AUROC") for line in lines)
    assert all("(" in line for line in lines[1:-1]), "each figure comes with its meaning"


def test_points_and_devices(train_phantom, tmp_path):
    from napari_yolosam.training.run import torch_device

    assert (
        torch_device("0,1") == "cuda:0"
        and torch_device("cpu") == "cpu"
        and torch_device("cuda:1") == "cuda:1"
    )
    stack = train_phantom.stack
    rng = np.random.default_rng(0)
    seg = Segmenter.build("tiny")
    items = build_items(stack, list(range(len(stack))), negative_fraction=0.5)
    for item in items[:10]:
        (sample,) = make_samples(
            stack, [item], rng, Augmentation(), 256, 256, True, seg.preprocess, points=True
        )
        assert sample.points.shape == (2, 2) and sample.point_labels.shape == (2,)
        if item.kind == "negative":
            assert sample.point_labels[0] == -1
        else:
            assert sample.point_labels[0] == 1
    # the +/- click embeddings learn only when clicks are trained (click_share of the steps)
    for share, learns in ((0.0, False), (1.0, True)):
        seg = Segmenter.build("tiny")
        clicks = seg.model.prompt_encoder.point_embeddings
        before = [clicks[k].weight.detach().clone() for k in (0, 1)]
        config = SamTrainConfig(
            epochs=1,
            batch_size=4,
            click_share=share,
            val_fraction=0.25,
            max_steps_per_epoch=2,
            heart_steps=20,
        )
        drive(train_segmenter(stack, seg, config, tmp_path / str(share)))
        changed = [
            not torch.equal(b, clicks[k].weight) for k, b in zip((0, 1), before, strict=True)
        ]
        assert changed == [learns, learns]


def test_scar_free_share_sets_the_slices_per_epoch(train_phantom, tmp_path):
    stack = train_phantom.stack
    items = build_items(stack, list(range(len(stack))))
    groups = by_slice(sorted(items, key=lambda it: it.slice))
    with_scar = sum(any(i.target == "scar" and i.kind == "positive" for i in g) for g in groups)
    assert 0 < with_scar < len(groups), "the phantom has slices with and without scar"
    steps = {}
    for share in (0.0, 1.0):
        config = SamTrainConfig(
            epochs=1, batch_size=2, val_fraction=0.0, scar_free_share=share, heart_steps=20
        )
        seg = Segmenter.build("tiny")
        events = list(train_segmenter(stack, seg, config, None))
        steps[share] = sum(e.stage == "segmenter" for e in events)
    assert steps[0.0] == -(-with_scar // 2)
    assert steps[1.0] == -(-len(groups) // 2)


def test_train_reads_the_embeddings_the_viewer_and_embed_wrote(train_phantom, tmp_path):
    """train() (the fine-tuning widget's path) takes embeddings from the shared disk cache:
    slices embedded before are never encoded again (no embedding file is rewritten)."""
    from napari_yolosam.models.embeddings import EmbeddingCache, embed_stack
    from napari_yolosam.paths import cache_dir
    from napari_yolosam.training.run import train

    seg = Segmenter.build("tiny", seed=2)
    seg.random_encoder = False  # stands for a pretrained encoder
    checkpoint = seg.save(tmp_path / "pretrained.pth")
    stack = train_phantom.stack
    shared = EmbeddingCache(disk_dir=cache_dir("embeddings"))
    loaded = Segmenter.load(checkpoint)
    assert drive(embed_stack(loaded, list(stack.images), shared)) == len(stack)
    files = {p: p.stat().st_ino for p in shared.disk_dir.glob("*/*.npy")}
    written = {p: p.stat().st_mtime_ns for p in files}
    mine = [p for p in files if p.parent.name == loaded.fingerprint[:24]]
    assert len(mine) == len(stack)
    config = SamTrainConfig(
        epochs=1,
        batch_size=4,
        mode="decoder",
        val_fraction=0.25,
        max_steps_per_epoch=2,
        heart_steps=0,  # the heads add windows: test_embeddings counts them
        look_closer=False,  # whole slices, as embedded; training windows are jittered
    )
    drive(
        train(stack, tmp_path / "run", detector=None, segmenter=str(checkpoint), sam_config=config)
    )
    after = {p: p.stat().st_ino for p in shared.disk_dir.glob("*/*.npy")}
    assert all(after[p] == files[p] for p in mine), "no slice encoded again"
    read = [p for p in mine if p.stat().st_mtime_ns > written[p]]  # a read touches the file
    assert read, "the training slices' embeddings came from the shared cache"
    assert set(after) == set(files), "and nothing else encoded"
