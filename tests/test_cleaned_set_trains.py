"""The cleaned set is a data set (#30 point 1): saved, it trains, proposes and audits as it
is, from the command line as from Python, for a folder of slices and for a NIfTI volume."""

import numpy as np

from napari_yolosam.cli import main
from napari_yolosam.io import read_stack, read_study
from napari_yolosam.review import ReviewSession


def test_save_train_propose_audit_from_the_cleaned_set(phantom_folder, tmp_path, capsys):
    props, cleaned = tmp_path / "props", tmp_path / "cleaned"
    models = ["--segmenter", "tiny", "--detector", "none"]
    assert main(["propose", "--images", str(phantom_folder), *models, "--out", str(props)]) == 0
    review = ["review", "--images", str(phantom_folder), "--proposals", str(props)]
    # the untrained tiny agrees with too few labels for the rule's gain test: forced here
    assert main([*review, "--accept-below", "0.99", "--force", "--out", str(cleaned)]) == 0
    stack = read_stack(cleaned)  # the images beside the cleaned masks: a stack as it is
    original = read_stack(phantom_folder)
    np.testing.assert_array_equal(stack.images, original.images)
    assert stack.names == original.names and stack.labels.shape == original.labels.shape
    run = tmp_path / "run"
    train = ["train", "--images", str(cleaned), "--out", str(run), "--epochs", "1"]
    train += ["--heart-steps", "20"]  # the heads: a few steps (test_heart_finder.py: learning)
    assert main([*train, "--segmenter", "tiny", "--detector", "none"]) == 0
    props2, audit2 = tmp_path / "props2", tmp_path / "audit2"
    seg = ["--segmenter", str(run / "segmenter.pth"), "--detector", "none"]
    assert main(["propose", "--images", str(cleaned), *seg, "--out", str(props2)]) == 0
    assert (
        main(["audit", "--images", str(cleaned), "--proposals", str(props2), "--out", str(audit2)])
        == 0
    )
    assert (audit2 / "report.csv").read_text().count("\n") == len(stack) + 1
    for p in (phantom_folder / "images").iterdir():  # the originals are never written
        assert (cleaned / "images" / p.name).read_bytes() == p.read_bytes()


def test_a_nifti_cleaned_set_reads_back_as_a_study(tmp_path):
    import nibabel as nib

    rng = np.random.default_rng(0)
    volume = rng.random((40, 32, 3)).astype(np.float32)
    labels = np.zeros((40, 32, 3), np.uint8)
    labels[5:30, 5:25] = 2
    labels[10:15, 10:15] = 3
    nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "case.nii.gz")
    nib.save(nib.Nifti1Image(labels, np.eye(4)), tmp_path / "case_labels.nii.gz")
    stack = read_stack(tmp_path / "case.nii.gz", labels=tmp_path / "case_labels.nii.gz")
    proposals = np.zeros(stack.shape, bool)
    proposals[:, 8:16, 8:16] = True
    rows = [{"image": n, "flag": True, "quality": 0.1} for n in stack.names]
    session = ReviewSession(stack, proposals, rows)
    session.decide(1, "accept")
    session.save_cleaned(tmp_path / "cleaned")
    back = read_study(tmp_path / "cleaned")
    np.testing.assert_array_equal(back.labels, session.labels)
    np.testing.assert_allclose(back.images, stack.images)
