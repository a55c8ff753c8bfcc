"""The one guard every writer goes through: nothing the user had is written over.

:func:`check_output` refuses an output that is, contains or lies inside an
input (images, labels, proposals), that is a data set's root or lies in its
``images/`` or ``masks/`` folder, or that already exists with content, unless
the user said ``overwrite``. :func:`staged_folder` builds a result folder
beside its destination and moves it into place only when complete, so a
killed run leaves the old folder (or none) plus a hidden ``.NAME.partial-*``
folder that the next run removes, never a mix of old and new files.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import StackError

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
) -> Path:
    """Check that writing ``out`` can lose nothing; return it resolved.

    Raises
    ------
    OutputError
        ``out`` is, contains or lies inside one of ``inputs``; is a data set
        (``images/`` + ``masks/``) or lies in one's ``images/`` or ``masks/``;
        or exists (a file, or a folder with anything in it) and ``overwrite``
        is false (the message names ``flag``, the option that allows it).
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
    if target.is_dir() and any(target.iterdir()) and not overwrite:
        raise OutputError(out, f"is a folder that is not empty; add {flag} to replace it")
    if target.exists() and not (target.is_file() or target.is_dir()):
        raise OutputError(out, "exists and is neither a file nor a folder")
    return target


def _leftovers(target: Path) -> list[Path]:
    return sorted(target.parent.glob(f".{target.name}.partial-*")) + sorted(
        target.parent.glob(f".{target.name}.old-*")
    )


@contextlib.contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yield an empty folder beside ``out``; when the block ends without error it replaces
    ``out`` (whose old content is removed only after the new folder is in place).

    Leftovers of killed runs (``.NAME.partial-*``, ``.NAME.old-*``) are removed first.
    On error the staged folder is removed and ``out`` is untouched.
    """
    target = Path(out).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    for leftover in _leftovers(target):
        shutil.rmtree(leftover, ignore_errors=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{target.name}.partial-", dir=target.parent))
    try:
        yield staging
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
