"""Nothing the user had is written over: the one output guard, and results built aside."""

import hashlib
from pathlib import Path

import pytest

from napari_yolosam.cli import main
from napari_yolosam.io.manifest import MANIFEST_NAME
from napari_yolosam.io.outputs import OutputError, check_output, staged_folder


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != MANIFEST_NAME  # the manifest says when it was written
    }


@pytest.mark.parametrize(
    "argv",
    [
        [
            "propose",
            "--images",
            "{S}",
            "--out",
            "{S}",
            "--segmenter",
            "tiny",
            "--detector",
            "none",
        ],
        ["propose", "--images", "{S}", "--out", "{S}/masks", "--segmenter", "tiny"],
        ["quantify", "--labels", "{S}/masks", "--out", "{S}/masks/x.png"],
        ["audit", "--images", "{S}", "--out", "{S}/masks", "--segmenter", "tiny"],
        ["audit", "--images", "{S}", "--proposals", "{O}/props", "--out", "{O}/props/audit"],
        ["semiauto", "--images", "{S}", "--out", "{S}/images", "--method", "otsu"],
        ["boxes", "--images", "{S}", "--out", "{S}/masks"],
        ["convert", "--images", "{S}", "--out", "{S}"],
        [
            "convert",
            "--images",
            "{O}/other",
            "--out",
            "{S}/masks/copy",
        ],  # another data set's masks/
        ["phantom", "--out", "{S}"],
        ["train", "--images", "{S}", "--out", "{S}/images/run", "--epochs", "1"],
    ],
)
def test_commands_never_write_into_inputs_or_data_sets(argv, phantom_folder, tmp_path, capsys):
    other = tmp_path / "other"
    if "{O}/other" in argv:
        main(["phantom", "--out", str(other), "--cases", "1", "--slices", "2", "--size", "64"])
    before = _digest(phantom_folder)
    argv = [a.replace("{S}", str(phantom_folder)).replace("{O}", str(tmp_path)) for a in argv]
    assert main(argv) == 2
    error = capsys.readouterr().err
    assert "error:" in error and ("input" in error or "data set" in error), error
    assert _digest(phantom_folder) == before, "the data set is byte for byte unchanged"


def test_existing_outputs_need_overwrite_and_are_replaced_whole(phantom_folder, tmp_path, capsys):
    out = tmp_path / "scar"
    args = ["semiauto", "--images", str(phantom_folder), "--method", "otsu", "--out", str(out)]
    assert main(args) == 0
    first = _digest(out)
    (out / "mine.txt").write_text("a file of the user's")
    assert main(args) == 2 and "--overwrite" in capsys.readouterr().err
    assert (out / "mine.txt").exists() and len(_digest(out)) == len(first) + 1
    assert main([*args, "--overwrite"]) == 2, "the user's file is never deleted"
    assert "mine.txt" in capsys.readouterr().err and (out / "mine.txt").exists()
    (out / "mine.txt").unlink()
    assert main([*args, "--overwrite"]) == 0
    assert _digest(out) == first, "replaced whole: nothing of the old folder mixes in"
    report = tmp_path / "cases.csv"
    report.write_text("keep me")
    quantify = ["quantify", "--labels", str(phantom_folder / "masks"), "--out", str(report)]
    assert main(quantify) == 2 and report.read_text() == "keep me"
    assert main([*quantify, "--overwrite"]) == 0 and report.read_text().startswith("case")


def test_an_earlier_run_needs_resume_or_overwrite(phantom_folder, tmp_path, capsys):
    run = tmp_path / "run"
    run.mkdir()
    (run / "segmenter.pth").write_bytes(b"an earlier run's checkpoint")
    argv = ["train", "--images", str(phantom_folder), "--out", str(run), "--epochs", "1"]
    assert main(argv) == 2
    assert "--resume or --overwrite" in capsys.readouterr().err
    assert (run / "segmenter.pth").read_bytes() == b"an earlier run's checkpoint"
    with pytest.raises(OutputError, match="did not write"):  # not this project's run
        check_output(run, (), overwrite=True)
    with pytest.raises(OutputError, match="not empty"):
        check_output(run, ())


def test_a_killed_result_leaves_the_old_folder_and_is_cleaned_next_time(tmp_path):
    out = tmp_path / "proposals"
    with staged_folder(out) as folder:
        (folder / "summary.csv").write_text("old")
    with pytest.raises(KeyboardInterrupt), staged_folder(out) as folder:
        (folder / "summary.csv").write_text("new, half")
        raise KeyboardInterrupt  # a kill half-way
    assert (out / "summary.csv").read_text() == "old"
    assert not list(tmp_path.glob(".proposals.partial-*")), "an interrupted stage is removed"
    stale = tmp_path / ".proposals.partial-dead"  # left by a SIGKILL (no cleanup ran)
    stale.mkdir()
    (stale / "probabilities.npz.part").write_bytes(b"\0" * 1000)
    with staged_folder(out) as folder:
        (folder / "summary.csv").write_text("new")
    assert (out / "summary.csv").read_text() == "new" and not stale.exists()


def test_half_written_files_of_a_killed_run_are_removed_next_time(tmp_path):
    from napari_yolosam.io.atomic import remove_partials
    from napari_yolosam.models.embeddings import EmbeddingCache

    run = tmp_path / "run"
    run.mkdir()
    stale = run / ".segmenter_last.k3j2.part.pth"
    stale.write_bytes(b"\0" * 4096)  # a SIGKILL during torch.save leaves this
    (run / "segmenter_last.pth").write_bytes(b"kept")
    assert remove_partials(run) == [stale] and not stale.exists()
    assert (run / "segmenter_last.pth").read_bytes() == b"kept"
    cache = tmp_path / "cache" / "abc"
    cache.mkdir(parents=True)
    (cache / ".x.1234.part.npy").write_bytes(b"\0" * 10)
    (cache / "x.npy").write_bytes(b"\0" * 10)
    EmbeddingCache(disk_dir=tmp_path / "cache")
    assert sorted(p.name for p in cache.iterdir()) == ["x.npy"]
