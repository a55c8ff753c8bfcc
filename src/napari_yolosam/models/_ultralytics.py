"""Importing ultralytics offline-safe, with its settings in the project's cache.

ultralytics, left alone, writes settings under the user's home, checks
online, fetches Arial.ttf when it plots, and pins torch to one thread (on
import, ``OMP_NUM_THREADS=1``) or ``cpu_count - 1`` threads (device
selection). :func:`import_ultralytics` sets it up once per process; use
:func:`keep_torch_threads` around calls that select a device.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from ..paths import cache_dir
from ..runtime import drop_cv2_qt_plugin_path

_FONTS = ("Arial.ttf", "Arial.Unicode.ttf")


def _install_font(config_dir: Path) -> None:
    """Put a local TTF where ultralytics looks for its fonts, so it never downloads one."""
    target_dir = config_dir / "Ultralytics"
    target_dir.mkdir(parents=True, exist_ok=True)
    missing = [name for name in _FONTS if not (target_dir / name).exists()]
    if not missing:
        return
    import matplotlib

    source = Path(matplotlib.get_data_path()) / "fonts" / "ttf" / "DejaVuSans.ttf"
    for name in missing:
        shutil.copyfile(source, target_dir / name)


def import_ultralytics():
    """Import and configure ultralytics for offline use; returns the module."""
    import torch

    threads = torch.get_num_threads()
    config_dir = cache_dir("ultralytics")
    os.environ.setdefault("YOLO_CONFIG_DIR", str(config_dir))
    os.environ.setdefault("YOLO_OFFLINE", "1")
    os.environ.setdefault("YOLO_VERBOSE", "False")
    _install_font(Path(os.environ["YOLO_CONFIG_DIR"]))
    omp = os.environ.get("OMP_NUM_THREADS")
    os.environ["OMP_NUM_THREADS"] = omp or str(threads)
    import ultralytics
    from ultralytics.utils import SETTINGS, torch_utils

    drop_cv2_qt_plugin_path()
    wanted = {
        "sync": False,
        "clearml": False,
        "comet": False,
        "dvc": False,
        "mlflow": False,
        "raytune": False,
        "wandb": False,
        "tensorboard": False,
        "datasets_dir": str(cache_dir("ultralytics", "datasets")),
        "weights_dir": str(cache_dir("ultralytics", "weights")),
        "runs_dir": str(cache_dir("ultralytics", "runs")),
    }
    changed = {k: v for k, v in wanted.items() if SETTINGS.get(k) != v}
    if changed:
        SETTINGS.update(changed)
    torch_utils.NUM_THREADS = threads
    torch.set_num_threads(threads)
    return ultralytics


@contextlib.contextmanager
def keep_torch_threads():
    """Restore torch's thread count after ultralytics' device selection changes it."""
    import torch

    threads = torch.get_num_threads()
    try:
        yield
    finally:
        torch.set_num_threads(threads)
