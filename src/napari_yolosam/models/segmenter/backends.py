"""Encoder backends: what computes a frozen encoder's image embedding for inference.

The image encoder is nearly all of a study's time. Its inference can run on:

- ``torch``: PyTorch in float32 on the segmenter's device (the reference; training always
  uses it, since it is differentiable);
- ``onnx``: ONNX Runtime in float32 on the CPU, the encoder exported once per weights
  into the plugin's cache (``encoders/<fingerprint>.onnx``) and checked against
  ``torch`` before its first use; its embeddings equal PyTorch's to float32 rounding, so
  both share cached embeddings;
- ``half``: PyTorch autocast (float16 on CUDA, bfloat16 on a CPU); its embeddings differ,
  so the embedding cache keys them apart.

``auto`` (the default, :data:`~napari_yolosam.defaults.ENCODER_BACKEND`) is ``onnx`` on a
CPU where ONNX Runtime is installed and the export checks out, else ``torch``. On CUDA it is
``torch``: float16 holds there (Dice of proposals +0.0006 on an H200) but one slice at a
time, as the product encodes, it was slower (9.6 ms against 6.6 ms; faster from batches of 4:
benchmarks/gpu_check.py). A backend that cannot run here falls back to ``torch`` and says why in one
logged line (also kept in :attr:`EncoderRunner.note`). Measured in
``benchmarks/encoder_speed.py`` (docs/benchmarks.md).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...defaults import ENCODER_BACKENDS

LOG = logging.getLogger("napari_yolosam")
#: The largest relative error (L2) of an exported encoder against PyTorch that is accepted
#: as the same float32 network (measured: about 1e-6 on LiteMedSAM).
EXPORT_TOLERANCE = 1e-4


def cache_tag(requested: str) -> str:
    """The embedding-cache tag of a backend's outputs, known without resolving it (no export):
    ``"half"`` for ``half``; ``""`` for the others, whose embeddings equal PyTorch float32's
    (``auto`` never resolves to ``half``)."""
    return "half" if requested == "half" else ""


@dataclass
class EncoderRunner:
    """One resolved backend: ``run`` maps a ``(B, 3, S, S)`` float32 batch to the embedding
    ``(B, 256, h, w)`` on the segmenter's device; ``cache_tag`` is ``""`` where the outputs
    equal PyTorch float32's, else a name that keeps their cached embeddings apart."""

    name: str
    run: Callable
    cache_tag: str = ""
    note: str = ""


def resolve(segmenter, requested: str, cache_root: Path | None = None) -> EncoderRunner:
    """The runner for ``requested`` (one of :data:`ENCODER_BACKENDS`) on ``segmenter``;
    ``torch`` with a logged one-line reason where it cannot run here."""
    if requested not in ENCODER_BACKENDS:
        raise ValueError(
            f"unknown encoder backend {requested!r}; known: {', '.join(ENCODER_BACKENDS)}"
        )
    if requested == "auto":
        wanted = "onnx" if segmenter.device.type == "cpu" else "torch"
    else:
        wanted = requested
    if wanted == "torch":
        return torch_runner(segmenter)
    if wanted == "half":
        return half_runner(segmenter)
    reason = onnx_unavailable(segmenter)
    if reason is None:
        try:
            return onnx_runner(segmenter, cache_root)
        except Exception as exc:  # a failed export or session: today's path, said once
            reason = f"the ONNX export failed ({type(exc).__name__}: {exc})"
    runner = torch_runner(segmenter)
    runner.note = f"encoder backend {wanted}: {reason}; using PyTorch float32"
    LOG.warning(runner.note)
    return runner


def torch_runner(segmenter) -> EncoderRunner:
    """PyTorch float32 on the segmenter's device (today's path)."""
    import torch

    def run(batch):
        with torch.inference_mode():
            return segmenter.model.image_encoder(batch.to(segmenter.device))

    return EncoderRunner("torch", run)


def half_runner(segmenter) -> EncoderRunner:
    """PyTorch autocast: float16 on CUDA, bfloat16 elsewhere; embeddings returned as float32."""
    import torch

    device = segmenter.device.type
    dtype = torch.float16 if device == "cuda" else torch.bfloat16

    def run(batch):
        with torch.inference_mode(), torch.autocast(device, dtype=dtype):
            return segmenter.model.image_encoder(batch.to(segmenter.device)).float()

    return EncoderRunner("half", run, cache_tag=cache_tag("half"))


def onnx_unavailable(segmenter) -> str | None:
    """Why ONNX Runtime cannot encode for ``segmenter`` here (``None`` when it can)."""
    if segmenter.device.type != "cpu":
        return f"ONNX Runtime serves the CPU, not {segmenter.device}"
    for package in ("onnxruntime", "onnx"):
        if importlib.util.find_spec(package) is None:
            return f"the package {package} is not installed"
    return None


def onnx_runner(segmenter, cache_root: Path | None = None) -> EncoderRunner:
    """ONNX Runtime float32 on the CPU, from the encoder exported once per weights."""
    import onnxruntime as ort
    import torch

    path = exported_encoder(segmenter, cache_root)
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    options.inter_op_num_threads = 1
    options.log_severity_level = 3  # no notices about hardware-specific graph rewrites
    # no arena or pre-planned buffers: encoding adds about 60 MB instead of 270 MB, at the
    # same speed (benchmarks/encoder_speed.py)
    options.enable_cpu_mem_arena = False
    options.enable_mem_pattern = False
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(batch):
        images = batch.detach().to("cpu", torch.float32).numpy()
        out = [session.run(None, {name: images[i : i + 1]})[0] for i in range(len(images))]
        return torch.from_numpy(np.concatenate(out))

    return EncoderRunner("onnx", run)


def exported_encoder(segmenter, cache_root: Path | None = None) -> Path:
    """The segmenter's encoder as an ONNX file in the cache: exported on first use, checked
    against PyTorch, and re-exported when the file no longer matches its record."""
    from ...paths import cache_dir

    folder = Path(cache_root) if cache_root is not None else cache_dir("encoders")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{segmenter.fingerprint[:32]}.onnx"
    record_path = path.with_suffix(".json")
    if path.is_file() and record_path.is_file():
        try:
            record = json.loads(record_path.read_text())
        except (OSError, ValueError):
            record = {}
        if record.get("sha256") == _sha256(path):
            return path
    _export(segmenter, path)
    error = _export_error(segmenter, path)
    if not error <= EXPORT_TOLERANCE:
        path.unlink(missing_ok=True)
        raise ValueError(f"the exported encoder differs from PyTorch (relative error {error:.2g})")
    from ...io.atomic import atomic_write

    record = {"sha256": _sha256(path), "relative_error": float(error)}
    atomic_write(record_path, lambda tmp: Path(tmp).write_text(json.dumps(record)))
    return path


def _export(segmenter, path: Path) -> None:
    """Export the encoder (batch of one, the model's input size) atomically to ``path``."""
    import warnings

    import torch

    from ...io.atomic import atomic_write

    encoder = segmenter.model.image_encoder
    example = torch.zeros(1, 3, segmenter.img_size, segmenter.img_size)

    def write(tmp):
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the exporter's notes on traced control flow
            torch.onnx.export(
                encoder,
                (example,),
                str(tmp),
                input_names=["image"],
                output_names=["embedding"],
                opset_version=17,
                dynamo=False,
            )

    atomic_write(path, write)


def _export_error(segmenter, path: Path) -> float:
    """Relative L2 error of the ONNX file's embedding against PyTorch's on a fixed slice."""
    import onnxruntime as ort
    import torch

    from ..preprocess import prepare_image

    rows, cols = np.mgrid[0:96, 0:96]
    slice_ = np.sin(rows / 7.0) * np.cos(cols / 11.0) + np.hypot(rows - 48, cols - 40) / 40
    batch = prepare_image(slice_.astype(np.float32), segmenter.preprocess)[None]
    with torch.inference_mode():
        expected = segmenter.model.image_encoder(batch).float().numpy()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: batch.numpy()})[0]
    return float(np.linalg.norm(got - expected) / max(np.linalg.norm(expected), 1e-12))


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
