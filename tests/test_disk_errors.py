"""The disk is part of the input: a full or read-only disk gives one line naming the path,
found before the expensive work where it can be, and leaves the previous output whole with
no partial file behind; a review decision that cannot be saved is not applied either."""

import errno
import hashlib
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from napari_yolosam.cli import main


def _mount(folder: Path, options: str) -> Path:
    folder.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(folder)], capture_output=True
    )
    if done.returncode:
        pytest.skip("a small disk cannot be mounted here (needs root and mount rights)")
    return folder


@pytest.fixture
def small_disk(tmp_path):
    """A real 256 KiB file system."""
    disk = _mount(tmp_path / "disk", "size=256k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.fixture
def read_only_disk(tmp_path):
    disk = _mount(tmp_path / "ro", "ro,size=64k")
    yield disk
    subprocess.run(["umount", "-l", str(disk)], check=False)


def _fill(disk: Path) -> None:
    """Fill ``disk`` to the last block."""
    fd = os.open(disk / "filler", os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    try:
        while True:
            os.write(fd, b"\0" * 4096)
    except OSError as exc:
        assert exc.errno == errno.ENOSPC
    finally:
        os.close(fd)


def _digest(folder: Path) -> dict:
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def _one_line_error(text: str, *words: str) -> None:
    lines = [line for line in text.splitlines() if "error" in line]
    assert len(lines) == 1 and "Traceback" not in text, text
    assert all(w in lines[0] for w in words), lines[0]


def test_a_full_disk_keeps_the_old_output_and_leaves_no_partial(
    phantom_folder, small_disk, capsys
):
    out = small_disk / "scar"
    args = ["semiauto", "--images", str(phantom_folder), "--out", str(out)]
    assert main([*args, "--method", "otsu"]) == 0
    before = _digest(out)
    _fill(small_disk)
    assert main([*args, "--method", "nsd", "--overwrite"]) == 2
    _one_line_error(capsys.readouterr().err, "No space left on device")
    assert _digest(out) == before, "the previous output is whole"
    names = {p.name for p in small_disk.iterdir()}
    assert names == {"scar", "filler"}, f"no partial folder or file left: {names}"


def test_a_read_only_output_is_refused_before_any_model_loads(
    phantom_folder, read_only_disk, monkeypatch, capsys
):
    import napari_yolosam.cli.commands as commands

    def never(*args, **kwargs):
        raise AssertionError("the models were loaded before the output was checked")

    monkeypatch.setattr(commands, "load_models", never)
    argv = ["propose", "--images", str(phantom_folder), "--segmenter", "tiny"]
    assert main([*argv, "--detector", "none", "--out", str(read_only_disk / "props")]) == 2
    _one_line_error(capsys.readouterr().err, "Read-only file system", str(read_only_disk))


def test_too_little_space_is_refused_before_the_work(
    phantom_folder, small_disk, monkeypatch, capsys
):
    import napari_yolosam.cli.commands as commands

    monkeypatch.setattr(commands, "load_models", lambda *a: pytest.fail("models loaded"))
    argv = ["propose", "--images", str(phantom_folder), "--segmenter", "tiny", "--detector"]
    _fill(small_disk)
    assert main([*argv, "none", "--out", str(small_disk / "props")]) == 2
    _one_line_error(capsys.readouterr().err, str(small_disk))


def test_training_on_a_full_disk_ends_in_one_line_without_partial_checkpoints(
    phantom_folder, small_disk, capsys
):
    _fill(small_disk)
    os.truncate(small_disk / "filler", (small_disk / "filler").stat().st_size - 16384)
    out = small_disk / "run"
    argv = ["train", "--images", str(phantom_folder), "--out", str(out), "--detector", "none"]
    assert main([*argv, "--segmenter", "tiny", "--epochs", "1"]) == 2
    _one_line_error(capsys.readouterr().err, "No space left on device")
    assert not list(out.rglob("*.part*")), "no half-written checkpoint"


def _session(phantom_folder, autosave):
    from napari_yolosam.io import read_stack
    from napari_yolosam.review import ReviewSession

    stack = read_stack(phantom_folder)
    rows = [{"image": n, "flag": True, "quality": 0.1 * i} for i, n in enumerate(stack.names)]
    return ReviewSession(stack, np.zeros(stack.shape, bool), rows, autosave)


@pytest.mark.parametrize("code", [errno.ENOSPC, errno.EROFS])
def test_a_decision_that_cannot_be_saved_is_not_applied(
    phantom_folder, tmp_path, monkeypatch, code
):
    from napari_yolosam import review_store
    from napari_yolosam.review import ReviewSaveError, ReviewSession

    session = _session(phantom_folder, tmp_path / "autosave")
    session.decide(0, "keep")
    labels, queue = session.labels.copy(), session.queue()
    real = review_store.atomic_write

    def failing(path, write):
        raise OSError(code, "the disk says no", str(path))

    monkeypatch.setattr(review_store, "atomic_write", failing)
    for attempt in (lambda: session.decide(1, "accept"), session.undo):
        with pytest.raises(ReviewSaveError, match="not applied") as info:
            attempt()
        assert str(tmp_path / "autosave") in str(info.value)
        assert np.array_equal(session.labels, labels), "the accept erased nothing"
        assert session.queue() == queue and len(session.decisions) == 1
    monkeypatch.setattr(review_store, "atomic_write", real)
    session.decide(1, "accept")  # the disk has room again
    restored = ReviewSession.restore(
        session.stack, session.proposals, list(session.rows.values()), tmp_path / "autosave"
    )
    assert [d["image"] for d in restored_decisions(restored)] == [
        session.stack.names[0],
        session.stack.names[1],
    ]
    assert np.array_equal(restored.labels, session.labels)


def restored_decisions(session) -> list[dict]:
    return [d.__dict__ for d in session.decisions]


def test_the_review_autosave_on_a_real_full_disk(phantom_folder, small_disk):
    from napari_yolosam.review import ReviewSaveError

    session = _session(phantom_folder, small_disk / "autosave")
    session.decide(0, "keep")
    before = session.labels.copy()
    _fill(small_disk)
    with pytest.raises(ReviewSaveError, match="No space left"):
        session.decide(1, "accept")
    assert np.array_equal(session.labels, before) and len(session.decisions) == 1
    assert not list((small_disk / "autosave").rglob("*.part*"))
