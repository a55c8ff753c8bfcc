"""The one error type for bad input files."""

from __future__ import annotations

from pathlib import Path


class StackError(ValueError):
    """An input file or folder that cannot be used, with the path and the problem.

    The message always names the file, so a user can find and fix it.
    """

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{self.path}: {problem}" if self.path is not None else problem)
