"""Output manifests: every folder a command writes says who wrote it, from what, and which
files, so ``--overwrite`` replaces only what this project made and a rerun knows what is done.

A manifest (``.yolosam-output.json`` in the folder) records the command, its inputs (with
a cheap signature of their files: count, bytes, newest change), its settings, the files
it wrote and whether it finished. :func:`foreign_files` names what a folder holds that its
manifest does not claim (everything, when there is no manifest); :func:`is_done` says
whether a folder finished for the same inputs and settings.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

#: The manifest's file name inside an output folder.
MANIFEST_NAME = ".yolosam-output.json"
#: What a manifest's ``tool`` field must say.
TOOL = "napari-yolosam"


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(TOOL)
    except PackageNotFoundError:  # a source tree that is not installed
        return "unknown"


def input_signature(path: str | Path) -> dict:
    """A cheap fingerprint of an input file or folder: files, bytes, newest change."""
    path = Path(path).expanduser().resolve()
    if path.is_file():
        stat = path.stat()
        return {"path": str(path), "files": 1, "bytes": stat.st_size, "mtime": stat.st_mtime_ns}
    files = size = newest = 0
    for root, _, names in os.walk(path):
        for name in names:
            try:
                stat = os.stat(os.path.join(root, name))
            except OSError:
                continue
            files, size, newest = files + 1, size + stat.st_size, max(newest, stat.st_mtime_ns)
    return {"path": str(path), "files": files, "bytes": size, "mtime": newest}


def _digest(value: object) -> str:
    text = json.dumps(value, sort_keys=True, default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class Provenance:
    """What made an output: the command, its inputs (paths) and its settings."""

    command: str
    inputs: tuple[str, ...] = ()
    settings: Mapping[str, object] = field(default_factory=dict)

    def settings_key(self) -> str:
        """The same for every output of one run's settings (patients of a study share it)."""
        return _digest({"command": self.command, "settings": dict(self.settings)})

    def key(self) -> str:
        """The same only for the same command, settings and unchanged inputs."""
        files = [input_signature(p) for p in self.inputs if p and Path(p).exists()]
        return _digest({"settings": self.settings_key(), "inputs": self.inputs, "files": files})


def files_in(folder: Path) -> list[str]:
    """Every file under ``folder`` (relative, POSIX separators), the manifest excluded."""
    found = []
    for root, dirs, names in os.walk(folder):
        dirs.sort()
        for name in sorted(names):
            rel = Path(root, name).relative_to(folder).as_posix()
            if rel != MANIFEST_NAME:
                found.append(rel)
    return found


def write_manifest(folder: str | Path, provenance: Provenance, finished: bool = True) -> Path:
    """Write ``folder``'s manifest atomically; a finished one lists every file in it."""
    from .atomic import atomic_write_text

    folder = Path(folder)
    record = {
        "tool": TOOL,
        "version": _version(),
        "command": provenance.command,
        "inputs": [p for p in provenance.inputs if p],
        "settings": dict(provenance.settings),
        "settings_key": provenance.settings_key(),
        "key": provenance.key(),
        "finished": finished,
        "written": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "files": files_in(folder) if finished else None,
    }
    return atomic_write_text(folder / MANIFEST_NAME, json.dumps(record, indent=1, default=str))


def read_manifest(folder: str | Path) -> dict | None:
    """``folder``'s manifest, or ``None`` when it has none (or one this project did not write)."""
    path = Path(folder) / MANIFEST_NAME
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError):
        return None
    if not isinstance(record, dict) or record.get("tool") != TOOL:
        return None
    return record


def foreign_files(folder: str | Path) -> list[str]:
    """What ``folder`` holds that its manifest does not claim: every file when there is no
    manifest, none while its run has not finished (the run made the folder), else the
    files it did not list."""
    folder = Path(folder)
    record = read_manifest(folder)
    present = files_in(folder)
    if record is None:
        return present
    listed = record.get("files")
    if listed is None:
        return []
    return sorted(set(present) - set(listed))


def is_done(folder: str | Path, provenance: Provenance) -> bool:
    """Whether ``folder`` holds a finished output of the same command, inputs and settings."""
    record = read_manifest(folder)
    return bool(record and record.get("finished") and record.get("key") == provenance.key())


def describe(paths: Iterable[str], limit: int = 3) -> str:
    """A short list of names for a message: ``a, b, c and 4 more``."""
    paths = list(paths)
    shown = ", ".join(paths[:limit])
    return shown + (f" and {len(paths) - limit} more" if len(paths) > limit else "")
