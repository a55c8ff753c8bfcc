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
        patients = _study(args)
        if patients:
            from .study import run_per_patient

            return run_per_patient(args, args.func, patients)
        if getattr(args, "phase", None) == "all":
            from .phases import run_per_phase

            return run_per_phase(args, args.func)
        return int(args.func(args) or 0)
    except (StackError, ValueError, PermissionError, FileNotFoundError, RuntimeError) as exc:
        print(f"yolosam {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a full or read-only disk, a missing permission: one line
        from ..io.outputs import disk_message

        print(f"yolosam {args.command}: error: {disk_message(exc)}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Stopped):
        print(f"yolosam {args.command}: stopped", file=sys.stderr)
        return 130


def _study(args) -> list:
    """The patients when a per-patient command's ``--images`` is a study, else ``[]``."""
    from ..io.study import study_or_raise
    from .study import PER_PATIENT

    if args.command not in PER_PATIENT or not getattr(args, "images", None):
        return []
    return study_or_raise(args.images, getattr(args, "labels", None))


__all__ = ["build_parser", "main"]
