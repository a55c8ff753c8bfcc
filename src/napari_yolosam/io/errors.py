"""The one error type for bad input files."""

from __future__ import annotations

from pathlib import Path

#: The most voxels a stack may claim (1 G: 4 GiB as float32); a header claiming more is
#: refused before any pixel memory is allocated (a damaged or hostile file).
MAX_VOXELS = 1 << 30


def check_size(path: str | Path, shape) -> None:
    """Refuse a header whose ``shape`` would need more than :data:`MAX_VOXELS` voxels."""
    count = 1
    for side in shape:
        count *= int(side)
    if count > MAX_VOXELS:
        raise StackError(
            path,
            f"claims {'x'.join(str(int(s)) for s in shape)} = {count:,} voxels, more than the "
            f"{MAX_VOXELS:,} a stack may hold; the header is damaged, or crop the data first",
        )


class StackError(ValueError):
    """An input file or folder that cannot be used, with the path and the problem.

    The message always names the file, so a user can find and fix it.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
