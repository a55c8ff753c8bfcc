import importlib
import subprocess
import sys
from pathlib import Path

import yaml

import napari_yolosam

MANIFEST = Path(napari_yolosam.__file__).parent / "napari.yaml"


def test_manifest_validates():
    result = subprocess.run(
        [sys.executable, "-m", "npe2", "validate", str(MANIFEST)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_python_name_imports():
    manifest = yaml.safe_load(MANIFEST.read_text())
    names = [c["python_name"] for c in manifest["contributions"]["commands"]]
    assert names
    for python_name in names:
        module, attr = python_name.split(":")
        assert callable(getattr(importlib.import_module(module), attr)), python_name


def test_registered_entry_point():
    from importlib.metadata import entry_points

    eps = [ep for ep in entry_points(group="napari.manifest") if ep.name == "napari-yolosam"]
    assert eps and eps[0].value == "napari_yolosam:napari.yaml"


def test_core_imports_without_qt_or_napari():
    code = (
        "import sys; import napari_yolosam, napari_yolosam.io, napari_yolosam.phantom.make, "
        "napari_yolosam.cli, napari_yolosam.napari_hooks.reader; "
        "bad = [m for m in ('napari', 'qtpy', 'PyQt5', 'PyQt6', 'magicgui') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_reader_and_sample_layer_data(phantom_folder):
    from napari_yolosam.napari_hooks.reader import get_reader
    from napari_yolosam.napari_hooks.sample import phantom_sample

    reader = get_reader(str(phantom_folder))
    assert reader is not None
    layers = reader(str(phantom_folder))
    assert [t for _, _, t in layers] == ["image", "labels"]
    assert layers[1][1]["metadata"]["yolosam"]["names"][0].endswith(".png")
    assert get_reader(str(phantom_folder / "corruptions.json")) is None
    sample = phantom_sample()
    assert [t for _, _, t in sample] == ["image", "labels", "labels"]
    assert sample[0][0].shape == sample[1][0].shape == (16, 256, 256)


def test_writer_restores_layout_and_protects_originals(phantom_folder, tmp_path):
    import pytest

    from napari_yolosam.napari_hooks.reader import read_layers
    from napari_yolosam.napari_hooks.writer import write_labels_layer

    _, (labels, meta, _) = read_layers(str(phantom_folder))
    written = write_labels_layer(str(tmp_path / "saved"), labels, meta)
    assert sorted(Path(p).name for p in written) == sorted(
        p.name for p in (phantom_folder / "masks").iterdir()
    )
    for p in written:
        assert Path(p).read_bytes() == (phantom_folder / "masks" / Path(p).name).read_bytes()
    tif = write_labels_layer(str(tmp_path / "saved.tif"), labels, meta)
    assert Path(tif[0]).suffix == ".tif"
    from napari_yolosam.io.outputs import OutputError

    with pytest.raises(OutputError, match="input|data set"):
        write_labels_layer(str(phantom_folder / "masks"), labels, meta)
