"""The one guard every writer goes through: nothing the user had is written over.

:func:`check_output` refuses an output that is, contains or lies inside an
input (images, labels, proposals), that is a data set's root or lies in its
``images/`` or ``masks/`` folder, or that already exists with content, unless
the user said ``overwrite``; even then it replaces only a folder whose manifest
(:mod:`.manifest`) says this project wrote it, and only when the folder holds nothing
else. It also checks, before any expensive work, that the location can be written.
:func:`staged_folder` builds a result folder
beside its destination and moves it into place only when complete, so a
killed run leaves the old folder (or none) plus a hidden ``.NAME.partial-*``
folder that the next run removes, never a mix of old and new files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import StackError
from .manifest import Provenance, describe, foreign_files, read_manifest, write_manifest

#: The two folders that make a folder a data set (``images/`` + ``masks/``).
DATASET_PARTS = ("images", "masks")


class OutputError(StackError):
    """An output location that would overwrite or mix with data the user has."""


def _is_dataset(folder: Path) -> bool:
    return all((folder / part).is_dir() for part in DATASET_PARTS)


def _within(path: Path, other: Path) -> bool:
    return path == other or other in path.parents


def check_output(
    out: str | Path,
    inputs: Iterable[str | Path | None] = (),
    overwrite: bool = False,
    flag: str = "--overwrite",
    need_bytes: int = 0,
) -> Path:
    """Check that writing ``out`` can lose nothing; return it resolved.

    Raises
    ------
    OutputError
        ``out`` is, contains or lies inside one of ``inputs``; is a data set
        (``images/`` + ``masks/``) or lies in one's ``images/`` or ``masks/``;
        or exists (a file, or a folder with anything in it) and ``overwrite``
        is false (the message names ``flag``, the option that allows it); or is a
        folder this project did not write, or holds files its manifest does not
        list; or cannot be written (read-only, no permission, fewer than
        ``need_bytes`` free).
    """
    target = Path(out).expanduser().resolve()
    for given in inputs:
        if given is None:
            continue
        source = Path(given).expanduser().resolve()
        if _within(target, source) or _within(source, target):
            raise OutputError(out, f"would write over the input {given}; choose a new location")
    for folder in (target, *target.parents):
        if not _is_dataset(folder):
            continue
        if folder == target or any(_within(target, folder / part) for part in DATASET_PARTS):
            raise OutputError(
                out,
                f"would write into the data set {folder} (images/ + masks/); choose a new location",
            )
    if target.is_file() and not overwrite:
        raise OutputError(out, f"exists; add {flag} to replace it")
    if target.is_dir() and any(target.iterdir()):
        if not overwrite:
            raise OutputError(out, f"is a folder that is not empty; add {flag} to replace it")
        check_owned(target, out)
    if target.exists() and not (target.is_file() or target.is_dir()):
        raise OutputError(out, "exists and is neither a file nor a folder")
    check_writable(target, need_bytes)
    return target


def check_owned(folder: Path, shown: str | Path | None = None) -> None:
    """Refuse to replace a non-empty ``folder`` that this project did not write, or that
    holds files its manifest does not list (the user's, never deleted)."""
    shown = folder if shown is None else shown
    if read_manifest(folder) is None:
        raise OutputError(
            shown,
            "is a folder napari-yolosam did not write (it has no output manifest); it is "
            "never replaced: move what it holds or choose a new location",
        )
    foreign = foreign_files(folder)
    if foreign:
        raise OutputError(
            shown,
            f"holds {len(foreign)} file(s) napari-yolosam did not write ({describe(foreign)}); "
            "they are never deleted: move them or choose a new location",
        )


#: Errors of the disk rather than of the input: each becomes a one-line message.
DISK_ERRORS = (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT)


def disk_message(exc: OSError, path: str | Path | None = None) -> str:
    """One line for a failed file operation: the path and what the system said."""
    where = path or exc.filename or "the output"
    reason = exc.strerror or str(exc)
    if exc.errno not in DISK_ERRORS:
        return f"{where}: {reason}"
    hint = {
        errno.ENOSPC: "; free some space or choose another disk",
        errno.EDQUOT: "; free some space or choose another disk",
        errno.EROFS: "; choose a writable location",
    }.get(exc.errno, "")
    return f"cannot write {where}: {reason}{hint}"


def check_writable(target: Path, need_bytes: int = 0) -> None:
    """Refuse a location whose nearest existing folder cannot take a new file (read-only,
    no permission) or has fewer than ``need_bytes`` free."""
    folder = target if target.is_dir() else target.parent
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        fd, probe = tempfile.mkstemp(prefix=".yolosam-probe-", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise OutputError(target, disk_message(exc, folder)) from None
    if need_bytes:
        free = shutil.disk_usage(folder).free
        if free < need_bytes:
            raise OutputError(
                target,
                f"needs about {need_bytes / 1e6:,.0f} MB but {folder} has "
                f"{free / 1e6:,.0f} MB free; free some space or choose another disk",
            )


def _leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.partial-*")) + sorted(
        target.parent.glob(f".{target.name}.old-*")
    )


@contextlib.contextmanager
def staged_folder(out: str | Path, provenance: Provenance | None = None) -> Iterator[Path]:
    """Yield an empty folder beside ``out``; when the block ends without error its manifest
    is written (``provenance``, listing every file) and it replaces ``out`` (whose old
    content is removed only after the new folder is in place).

    An existing ``out`` is replaced only when it is empty or this project's own output
    (:func:`check_owned`), checked before the block runs. Leftovers of killed runs
    (``.NAME.partial-*``, ``.NAME.old-*``) are removed first. On error the staged folder
    is removed and ``out`` is untouched.
    """
    target = Path(out).expanduser().resolve()
    if target.is_dir() and any(target.iterdir()):
        check_owned(target, out)
    elif target.exists() and not target.is_dir():
        raise OutputError(out, "exists and is not a folder; choose a new location")
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _leftovers(target):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
        write_manifest(staging, provenance or Provenance("napari-yolosam"))
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, old / target.name)
    os.replace(staging, target)
    os.chmod(target, 0o777 & ~_umask())
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask
