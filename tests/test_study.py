"""Studies of many patients: per-patient folders, NIfTI files, a DICOM tree; commands over all."""

import csv

import numpy as np
import pytest

from _dicom import write_series
from napari_yolosam.cli import main
from napari_yolosam.io import StackError, read_stack, read_study
from napari_yolosam.io.study import find_patients


def _phantom(seed: int, slices: int = 3):
    from napari_yolosam.phantom.make import make_phantom

    return make_phantom(n_slices=slices, n_cases=1, shape=(64, 64), corrupt=0.3, seed=seed)


@pytest.fixture
def folders_study(tmp_path):
    """Three patients, each a folder of images/ + masks/; one nested a level deeper."""
    from napari_yolosam.phantom.io import save_phantom

    root = tmp_path / "study"
    for k, name in enumerate(["P01", "P02", "site_b/P03"]):
        save_phantom(_phantom(k), root / name)
    return root


def _rows(path):
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def test_patients_are_found_in_folders_nifti_files_and_dicom_trees(
    folders_study, tmp_path, capsys
):
    import nibabel as nib

    assert [p.name for p in find_patients(folders_study)] == ["P01", "P02", "site_b/P03"]
    assert find_patients(folders_study / "P01") == []  # one stack, not a study
    nifti = tmp_path / "nifti"
    nifti.mkdir()
    for name in ("A", "B"):
        volume = np.zeros((32, 32, 3), np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), str(nifti / f"{name}.nii.gz"))
    nib.save(
        nib.Nifti1Image(np.zeros((32, 32, 3), np.uint8), np.eye(4)), str(nifti / "A_labels.nii.gz")
    )
    found = find_patients(nifti)
    assert [p.name for p in found] == ["A", "B"]
    assert found[0].labels == nifti / "A_labels.nii.gz" and found[1].labels is None
    tree = tmp_path / "dicom_tree"
    write_series(tree / "site1" / "mixed", np.ones((3, 16, 16)), patient="X")
    write_series(tree / "site1" / "mixed", np.ones((2, 16, 16)), patient="Y", prefix="Y")
    write_series(tree / "site2" / "Z", np.ones((4, 16, 16)), patient="Z")
    names = [p.name for p in find_patients(tree)]
    assert names == ["site1/mixed/X_5", "site1/mixed/Y_5", "site2/Z"]
    assert [len(read_stack(p.images, series=p.series)) for p in find_patients(tree)] == [3, 2, 4]
    empty = tmp_path / "empty"
    (empty / "nothing").mkdir(parents=True)
    assert main(["info", "--images", str(empty)]) == 2
    assert "no stack and no patients" in capsys.readouterr().err
    with pytest.raises(StackError, match="no stack and no patients"):
        read_study(empty)


def test_read_study_puts_every_patient_in_one_stack(folders_study):
    stack = read_study(folders_study)
    assert len(stack) == 9 and stack.cases[::3] == ["P01", "P02", "site_b/P03"]
    assert stack.names[0].startswith("P01/") and stack.labels is not None
    single = read_stack(folders_study / "P02")
    assert np.array_equal(stack.labels[3:6], single.labels)


def test_quantify_over_a_study_mirrors_reports_and_resumes(folders_study, tmp_path, capsys):
    out = tmp_path / "q" / "cases.csv"
    assert main(["quantify", "--images", str(folders_study), "--out", str(out)]) == 0
    for name in ("P01", "P02", "site_b/P03"):
        (row,) = _rows(tmp_path / "q" / name / "cases.csv")
        single = read_stack(folders_study / name)
        assert row["case"] == single.cases[0]
    rows = _rows(out)  # one report across the patients
    assert [r["patient"] for r in rows] == ["P01", "P02", "site_b/P03"]
    assert "3 patient(s) done, 0 already done" in capsys.readouterr().out
    import shutil

    shutil.rmtree(tmp_path / "q" / "P02")  # as if stopped before P02 finished
    assert main(["quantify", "--images", str(folders_study), "--out", str(out)]) == 0
    assert "1 patient(s) done, 2 already done before" in capsys.readouterr().out
    assert len(_rows(out)) == 3


def test_shards_split_the_patients_between_processes(folders_study, tmp_path, capsys):
    out = tmp_path / "q" / "cases.csv"
    base = ["quantify", "--images", str(folders_study), "--out", str(out)]
    assert main([*base, "--shard", "0/2"]) == 0
    assert {p.name for p in (tmp_path / "q").iterdir() if p.is_dir()} == {"P01", "site_b"}
    assert main([*base, "--shard", "1/2"]) == 0
    assert [r["patient"] for r in _rows(out)] == ["P01", "P02", "site_b/P03"]
    with pytest.raises(SystemExit):
        main([*base, "--shard", "2/2"])


def test_propose_then_audit_over_a_study(folders_study, tmp_path, capsys):
    props, audit = tmp_path / "props", tmp_path / "audit"
    common = ["--images", str(folders_study), "--detector", "none", "--segmenter", "tiny"]
    assert main(["propose", *common, "--out", str(props)]) == 0
    assert (props / "site_b" / "P03" / "masks").is_dir()
    assert len(_rows(props / "summary.csv")) == 9
    assert (
        main(
            [
                "audit",
                "--images",
                str(folders_study),
                "--proposals",
                str(props),
                "--out",
                str(audit),
            ]
        )
        == 0
    )
    report = _rows(audit / "report.csv")
    assert len(report) == 9 and {r["patient"] for r in report} == {"P01", "P02", "site_b/P03"}
    assert (audit / "P01" / "report.json").is_file()
    _review_over_the_study(folders_study, props, tmp_path, capsys)


def _review_over_the_study(study, props, tmp_path, capsys):
    """One decisions file for the whole study, named as ``review --list`` names slices."""
    base = ["review", "--images", str(study), "--proposals", str(props)]
    capsys.readouterr()
    assert main([*base, "--list"]) == 0
    listed = [
        line.split()[1] for line in capsys.readouterr().out.splitlines() if "quality" in line
    ]
    first = {name.rpartition("/")[0]: name for name in reversed(listed)}
    assert set(first) <= {"P01", "P02", "site_b/P03"} and len(first) >= 2
    chosen = [first[p] for p in sorted(first)][:2]
    rows = "".join(f"{name},accept\n" for name in chosen)
    (tmp_path / "d.csv").write_text("image,action\n" + rows)
    out = tmp_path / "clean"
    assert main([*base, "--decisions", str(tmp_path / "d.csv"), "--out", str(out)]) == 0
    logs = {p: (out / p / "decisions.jsonl") for p in ("P01", "P02", "site_b/P03")}
    accepted = {p: f.read_text().count('"accept"') if f.is_file() else 0 for p, f in logs.items()}
    assert sum(accepted.values()) == 2, accepted
    for name in chosen:
        patient, _, image = name.rpartition("/")
        assert image in logs[patient].read_text()
    (tmp_path / "bad.csv").write_text("image,action\nP09/x.png,accept\n")
    bad = ["--decisions", str(tmp_path / "bad.csv"), "--out", str(tmp_path / "c2")]
    assert main([*base, *bad]) == 2
    assert "patients not in the study: P09" in capsys.readouterr().err


def test_a_bad_patient_is_reported_and_the_others_go_on(folders_study, tmp_path, capsys):
    (folders_study / "P02" / "images" / "broken.png").write_bytes(b"\x89PNG broken")
    out = tmp_path / "q" / "cases.csv"
    assert main(["quantify", "--images", str(folders_study), "--out", str(out)]) == 2
    printed = capsys.readouterr()
    assert "P02: error" in printed.err and "broken.png" in printed.err
    assert "2 patient(s) done" in printed.out and "1 failed: P02" in printed.out
    assert [r["patient"] for r in _rows(out)] == ["P01", "site_b/P03"]


def test_sunnybrook_series_are_patients_of_a_study(shared_data, tmp_path, capsys):
    """A study folder holding the Sunnybrook DICOM folder (two patients' series in one
    dicom/, masks beside): each series is a patient, with its own masks."""
    study = tmp_path / "study"
    study.mkdir()
    (study / "sunnybrook").symlink_to(shared_data / "sunnybrook_cine_dev")
    patients = find_patients(study)
    assert [p.name for p in patients] == [
        "sunnybrook/SCD0000101_300",
        "sunnybrook/SCD0000201_300",
    ]
    out = tmp_path / "q" / "cases.csv"
    assert main(["quantify", "--images", str(study), "--out", str(out)]) == 0
    rows = _rows(out)
    assert [r["patient"] for r in rows] == [p.name for p in patients]
    for patient in patients:
        alone = read_stack(patient.images, series=patient.series)
        assert len(alone) == 9 and alone.myocardium().any()
        assert (tmp_path / "q" / patient.name / "cases.csv").is_file()
    assert all(float(r["myocardium_volume"]) > 0 and r["units"] == "mm2|mL" for r in rows)
