"""The ``yolosam`` command: :func:`main` parses (:mod:`.parser`) and runs a sub-command
(:mod:`.commands`); :mod:`.options` holds the options several sub-commands share and
:mod:`.ddp` the ``torchrun`` entry for several-GPU segmenter training."""

from __future__ import annotations

import sys

from .parser import build_parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``yolosam``; bad input ends with a one-line error, not a traceback."""
    from ..io import StackError
    from ..progress import Stopped

    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (StackError, ValueError, PermissionError, FileNotFoundError, RuntimeError) as exc:
        print(f"yolosam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped):
        print(f"yolosam {args.command}: stopped", file=sys.stderr)
        return 130


__all__ = ["build_parser", "main"]
