"""Checkpoints and result files are untrusted input: nothing runs, damage is a one-line error."""

import json
import shutil
from pathlib import Path

import pytest
import torch

from napari_yolosam.cli import main


class _RunsCode:
    """A pickle that creates a file when it is loaded (what a crafted checkpoint could do)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_resume_never_unpickles_a_crafted_detector_checkpoint(phantom_folder, tmp_path, capsys):
    run, marker = tmp_path / "run", tmp_path / "code-ran"
    last = run / "yolo" / "train" / "weights" / "last.pt"
    last.parent.mkdir(parents=True)
    torch.save({"model": _RunsCode(marker)}, last)
    from napari_yolosam.io.manifest import Provenance, write_manifest

    write_manifest(run, Provenance("train"), finished=False)  # a manifest is easily forged
    argv = ["train", "--images", str(phantom_folder), "--out", str(run), "--resume"]
    assert main([*argv, "--epochs", "1", "--segmenter", "none", "--imgsz", "64"]) == 2
    error = capsys.readouterr().err
    assert "last.pt" in error and "--trust-detector" in error and "\n" == error[-1]
    assert not marker.exists(), "the crafted file was never unpickled"


@pytest.fixture
def saved_proposals(phantom_folder, tiny_segmenter, tmp_path):
    from napari_yolosam.io import read_stack
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.proposals.io import save_proposals

    stack = read_stack(phantom_folder)
    save_proposals(drive(propose(stack, tiny_segmenter)), stack, tmp_path / "props")
    return stack, tmp_path / "props"


@pytest.mark.parametrize(
    "damage",
    [
        ("probabilities.npz", b""),
        ("probabilities.npz", b"PK\x03\x04 truncated"),
        ("prompts.json", b'{"settings": {}, "slices": [{"image": 3}]}'),
        ("prompts.json", b'{"settings": [], "slices": {}}'),
        ("prompts.json", b'{"settings": {}, "slices": [{"image": "x", "boxes": [1, 2, 3]}]}'),
        ("prompts.json", b'{"settings": {}, "sli'),
    ],
)
def test_damaged_proposal_files_name_the_file(saved_proposals, damage):
    from napari_yolosam.io import StackError
    from napari_yolosam.proposals.io import load_proposals

    stack, folder = saved_proposals
    name, data = damage
    if name == "prompts.json" and b'"x"' in data:  # a real slice name with a 3-number box
        data = data.replace(b'"x"', json.dumps(stack.names[0]).encode())
    (folder / name).write_bytes(data)
    with pytest.raises(StackError) as caught:
        load_proposals(folder, stack)
    assert name in str(caught.value) and "\n" not in str(caught.value)


@pytest.mark.parametrize("size", [0, 100, -200])
def test_truncated_checkpoints_are_one_line_errors(tiny_segmenter, tmp_path, size, capsys):
    from napari_yolosam.models.checkpoints import CheckpointError
    from napari_yolosam.models.segmenter import Segmenter

    whole = tiny_segmenter.save(tmp_path / "whole.pth").read_bytes()
    broken = tmp_path / "broken.pth"
    broken.write_bytes(whole[:size] if size else b"")
    with pytest.raises(CheckpointError, match="broken.pth"):
        Segmenter.load(broken)
    shutil.copy(broken, tmp_path / "segmenter_last.pth")
    torch.save(torch.zeros(3), tmp_path / "tensor.pth")  # loads, but is no checkpoint
    with pytest.raises(CheckpointError, match="tensor.pth"):
        Segmenter.load(tmp_path / "tensor.pth")
