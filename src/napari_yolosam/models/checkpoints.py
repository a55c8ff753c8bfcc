"""The project's own checkpoint format: weights + architecture + preprocessing + versions.

A checkpoint is untrusted input: it is read with ``torch.load(weights_only=True)``
(tensors and plain Python values only, no code), and its shapes are checked
against the architecture it names before any weight is copied.
"""

from __future__ import annotations

import io
import platform
from pathlib import Path

FORMAT = "napari-yolosam"
FORMAT_VERSION = 1


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with the file and the reason."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        super().__init__(f"{path}: {problem}" if path is not None else problem)


def versions() -> dict:
    """Versions of the packages a checkpoint depends on."""
    from importlib.metadata import PackageNotFoundError, version

    import torch

    try:
        own = version("napari-yolosam")
    except PackageNotFoundError:  # a source tree that is not installed
        own = "unknown"
    found = {
        "napari_yolosam": own,
        "torch": str(torch.__version__),
        "python": platform.python_version(),
    }
    for name in ("ultralytics", "segment_anything"):
        try:
            from importlib.metadata import version

            found[name] = version(name.replace("_", "-"))
        except Exception:  # noqa: BLE001
            found[name] = None
    return found


def save_checkpoint(
    path: str | Path,
    kind: str,
    config: dict,
    state_dict: dict,
    preprocess: dict,
    extra: dict | None = None,
) -> Path:
    """Write a checkpoint atomically (no partial file on a crash)."""
    import torch

    from ..io.atomic import atomic_write

    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "config": config,
        "preprocess": preprocess,
        "state_dict": {k: v.detach().cpu() for k, v in state_dict.items()},
        "versions": versions(),
        "extra": extra or {},
    }
    buffer = io.BytesIO()  # serialised in memory: a full disk then fails as an OSError
    torch.save(payload, buffer)  # (ENOSPC) naming the file, not as torch's zip-writer error
    return atomic_write(path, lambda tmp: tmp.write_bytes(buffer.getbuffer()))


def read_payload(path: str | Path):
    """``torch.load`` a file safely (``weights_only=True``), with clear errors."""
    import torch

    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "checkpoint file does not exist")
    if path.stat().st_size == 0:
        raise CheckpointError(path, "is empty (0 bytes): an interrupted copy or download?")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001
        reason = (str(exc).splitlines() or ["no message"])[0][:300]
        raise CheckpointError(
            path, f"cannot be loaded safely as a checkpoint ({type(exc).__name__}: {reason})"
        ) from exc


def load_checkpoint(path: str | Path, kind: str) -> dict:
    """Read a project checkpoint of ``kind`` (``"segmenter"`` or ``"detector"``)."""
    payload = read_payload(path)
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(path, f"is not a {FORMAT} checkpoint")
    if payload.get("kind") != kind:
        raise CheckpointError(
            path, f"is a {payload.get('kind')} checkpoint, not a {kind} checkpoint"
        )
    if int(payload.get("format_version", 0)) > FORMAT_VERSION:
        raise CheckpointError(
            path, f"was written by a newer napari-yolosam (format {payload['format_version']})"
        )
    for key in ("config", "preprocess", "state_dict"):
        if not isinstance(payload.get(key), dict):
            raise CheckpointError(path, f"has no '{key}' section")
    return payload


def load_state_checked(
    module, state_dict: dict, path: str | Path | None, strict: bool = True
) -> None:
    """Copy ``state_dict`` into ``module`` after checking every name and shape.

    Raises
    ------
    CheckpointError
        Listing the first mismatched, missing or unexpected parameters.
    """
    import torch

    own = module.state_dict()
    mismatched = [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and isinstance(v, torch.Tensor) and tuple(v.shape) != tuple(own[k].shape)
    ]
    missing = [k for k in own if k not in state_dict]
    unexpected = [k for k in state_dict if k not in own]
    problems = []
    if mismatched:
        problems.append(f"{len(mismatched)} shape mismatch(es), e.g. " + "; ".join(mismatched[:3]))
    if strict and missing:
        problems.append(f"{len(missing)} missing parameter(s), e.g. {missing[:3]}")
    if strict and unexpected:
        problems.append(f"{len(unexpected)} unexpected parameter(s), e.g. {unexpected[:3]}")
    if problems:
        raise CheckpointError(
            path, "does not match the model architecture: " + " | ".join(problems)
        )
    broken = [
        k
        for k, v in state_dict.items()
        if isinstance(v, torch.Tensor)
        and v.is_floating_point()
        and not bool(torch.isfinite(v).all())
    ]
    if broken:
        raise CheckpointError(
            path,
            f"holds non-finite weights (NaN or infinity) in {len(broken)} tensor(s), e.g. "
            f"{broken[:3]}: the training that wrote it diverged; use an earlier checkpoint",
        )
    module.load_state_dict(state_dict, strict=strict)


def state_fingerprint(state_dict: dict, *extra: object) -> str:
    """A content hash of weights (and any extra descriptors): same weights, same key."""
    import hashlib

    import numpy as np

    digest = hashlib.blake2b(digest_size=16)
    for item in extra:
        digest.update(repr(item).encode())
    for name in sorted(state_dict):
        tensor = state_dict[name].detach().cpu().contiguous()
        digest.update(name.encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(np.ascontiguousarray(tensor.view(-1).numpy().view(np.uint8)).data)
    return digest.hexdigest()


def sha256_of(path: Path, chunk: int = 1 << 20) -> str:
    """SHA-256 hex digest of a file."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()
