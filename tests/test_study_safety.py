"""A study is as safe as a stack: outputs own what they write (manifests), ``--overwrite``
never deletes inputs or the user's files, and "done" means done with the same settings."""

import csv
import hashlib
import json
import os
from pathlib import Path

import pytest

from napari_yolosam.cli import main
from napari_yolosam.io.manifest import MANIFEST_NAME, Provenance, foreign_files, read_manifest


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


@pytest.fixture()
def study(tmp_path) -> Path:
    root = tmp_path / "study"
    for k, name in enumerate(("P1", "P2", "P3")):
        args = ["phantom", "--out", str(root / name), "--cases", "1", "--slices", "3"]
        assert main([*args, "--size", "64", "--seed", str(k)]) == 0
    return root


def _semiauto(study: Path, out: Path, *more: str) -> list[str]:
    return ["semiauto", "--images", str(study), "--method", "nsd", "--out", str(out), *more]


@pytest.mark.parametrize("where", ["study", "inside", "patient", "parent"])
def test_overwrite_never_deletes_a_study_it_reads(study, where, capsys):
    out = {
        "study": study,
        "inside": study / "results",
        "patient": study / "P1" / "out",
        "parent": study.parent,
    }[where]
    before = _digest(study)
    assert main(_semiauto(study, out, "--overwrite")) == 2
    assert "error:" in capsys.readouterr().err
    assert _digest(study) == before, "every image and mask is still there, byte for byte"


def test_a_symbolic_link_to_a_patient_or_another_data_set_is_never_replaced(
    study, tmp_path, capsys
):
    out = tmp_path / "scar"
    assert main(_semiauto(study, out)) == 0
    other = tmp_path / "other"
    assert (
        main(["phantom", "--out", str(other), "--cases", "1", "--slices", "2", "--size", "64"])
        == 0
    )
    for name, link in (("P1", study / "P1"), ("P2", other)):
        target = out / name
        for p in sorted(target.rglob("*"), reverse=True):
            p.unlink() if p.is_file() else p.rmdir()
        target.rmdir()
        target.symlink_to(link, target_is_directory=True)
    before, other_before = _digest(study), _digest(other)
    assert main(_semiauto(study, out, "--method", "fwhm", "--overwrite")) == 2
    error = capsys.readouterr().err
    assert "P1" in error and "P2" in error and "nothing was run" in error
    assert _digest(study) == before and _digest(other) == other_before


def test_a_folder_with_the_users_files_is_not_done_and_never_replaced(study, tmp_path, capsys):
    out = tmp_path / "scar"
    (out / "P2").mkdir(parents=True)
    (out / "P2" / "notes.txt").write_text("the reader's notes")
    for extra in ([], ["--overwrite"]):
        assert main(_semiauto(study, out, *extra)) == 2
        assert "did not write" in capsys.readouterr().err
    assert (out / "P2" / "notes.txt").read_text() == "the reader's notes"
    assert not (out / "P1").exists(), "refused before any patient ran"


def test_done_means_finished_with_the_same_inputs_and_settings(study, tmp_path, capsys):
    out = tmp_path / "scar"
    assert main(_semiauto(study, out)) == 0
    assert "3 patient(s) done, 0 already done" in capsys.readouterr().out
    record = read_manifest(out / "P1")
    assert record["finished"] and record["command"] == "yolosam semiauto"
    assert sorted(record["files"]) == sorted(
        p.name for p in (out / "P1").iterdir() if p.name != MANIFEST_NAME
    )
    assert main(_semiauto(study, out)) == 0
    assert "0 patient(s) done, 3 already done" in capsys.readouterr().out
    first = _digest(out / "P1")
    assert main(_semiauto(study, out, "--n", "3")) == 2, "other settings need --overwrite"
    assert "other settings" in capsys.readouterr().err and _digest(out / "P1") == first
    label = next((study / "P3" / "masks").iterdir())  # a label edited since the run
    os.utime(label, ns=(label.stat().st_atime_ns, label.stat().st_mtime_ns + 10**9))
    assert main(_semiauto(study, out)) == 2, "an input changed: P3 is not done any more"
    assert "P3" in capsys.readouterr().err
    assert main(_semiauto(study, out, "--n", "3", "--overwrite")) == 0
    assert "3 patient(s) done, 0 already done" in capsys.readouterr().out


def _rows(path: Path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_shards_share_one_report_of_one_run(study, tmp_path, capsys):
    report = tmp_path / "q" / "cases.csv"
    base = ["quantify", "--images", str(study), "--out", str(report)]
    assert main([*base, "--shard", "0/2"]) == 0
    assert sorted({r["patient"] for r in _rows(report)}) == ["P1", "P3"]
    assert main([*base, "--shard", "1/2"]) == 0
    assert sorted({r["patient"] for r in _rows(report)}) == ["P1", "P2", "P3"]
    gathered = report.read_bytes()
    assert main([*base, "--sectors", "4"]) == 2, "a run with other settings needs --overwrite"
    assert report.read_bytes() == gathered
    capsys.readouterr()
    assert main([*base, "--sectors", "4", "--shard", "0/2", "--overwrite"]) == 0
    assert sorted({r["patient"] for r in _rows(report)}) == ["P1", "P3"], (
        "the report never mixes two runs' settings"
    )


def test_foreign_files_and_provenance(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / "a.txt").write_text("x")
    assert foreign_files(folder) == ["a.txt"], "no manifest: nothing is this project's"
    from napari_yolosam.io.manifest import write_manifest

    write_manifest(folder, Provenance("test", (str(tmp_path),), {"n": 1}))
    assert foreign_files(folder) == []
    (folder / "sub").mkdir()
    (folder / "sub" / "b.txt").write_text("y")
    assert foreign_files(folder) == ["sub/b.txt"]
    (folder / MANIFEST_NAME).write_text(json.dumps({"tool": "someone else"}))
    assert read_manifest(folder) is None and len(foreign_files(folder)) == 2
