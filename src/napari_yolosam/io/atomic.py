"""Atomic file writes: a crash leaves the old file or the new one, never half of one."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextlib.contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it replaces ``path`` atomically.

    The temporary file keeps ``path``'s suffixes, so writers that choose the
    format from the name (PNG, TIFF, NIfTI) work unchanged. On error the
    temporary file is removed and ``path`` is untouched.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = "".join(path.suffixes[-2:]) if path.name.endswith(".nii.gz") else path.suffix
    fd, tmp_name = tempfile.mkstemp(
        prefix=f".{path.stem}.", suffix=f".part{suffix}", dir=path.parent
    )
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the file normal permissions
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def remove_partials(folder: str | Path, recursive: bool = False) -> list[Path]:
    """Delete the temporary files a killed :func:`atomic_path` left in ``folder``
    (``.NAME.XXXX.partSUFFIX``); returns what was removed."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    pattern = "**/.*.part*" if recursive else ".*.part*"
    stale = [p for p in folder.glob(pattern) if p.is_file() and ".part" in p.name]
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call ``write(tmp_path)`` and move the result onto ``path`` atomically."""
    with atomic_path(path) as tmp:
        write(tmp)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically."""
    return atomic_write(path, lambda tmp: tmp.write_bytes(data))


def csv_text(rows, columns, digits: int = 6, blank_nonfinite: bool = False) -> str:
    """The one CSV format of every table the project writes: a header of ``columns``, floats
    to ``digits`` significant digits (NaN/inf blank with ``blank_nonfinite``), booleans as
    ``true``/``false`` in audit style when ``blank_nonfinite``; keys outside ``columns`` ignored."""
    import csv
    import io
    import math

    def cell(value):
        if isinstance(value, bool) and blank_nonfinite:
            return "true" if value else "false"
        if isinstance(value, float):
            if blank_nonfinite and not math.isfinite(value):
                return ""
            return f"{value:.{digits}g}"
        return value

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: cell(v) for k, v in row.items()})
    return buffer.getvalue()


def atomic_write_csv(path: str | Path, rows, columns, digits: int = 6, **options) -> Path:
    """:func:`csv_text` written atomically to ``path``."""
    return atomic_write_text(path, csv_text(rows, columns, digits, **options))
