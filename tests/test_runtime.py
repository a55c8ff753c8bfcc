import subprocess
import sys


def test_triton_hidden_without_nvidia_driver():
    code = (
        "import importlib.util, sys\n"
        "import napari_yolosam\n"
        "from napari_yolosam.runtime import has_nvidia_driver\n"
        "if not has_nvidia_driver():\n"
        "    assert sys.modules['triton'] is None\n"
        "    assert importlib.util.find_spec('triton') is None\n"
        "    import torch\n"
        "    assert torch.ones(2).sum().item() == 2\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_cv2_qt_plugin_path_dropped(monkeypatch):
    import os

    from napari_yolosam.runtime import drop_cv2_qt_plugin_path

    monkeypatch.setenv("QT_QPA_PLATFORM_PLUGIN_PATH", "/x/site-packages/cv2/qt/plugins")
    drop_cv2_qt_plugin_path()
    assert "QT_QPA_PLATFORM_PLUGIN_PATH" not in os.environ
