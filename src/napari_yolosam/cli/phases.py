"""``--phase all``: a command run once per phase of a cine series, outputs side by side."""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path


def phase_choice(text: str):
    """An argparse type: ``all`` or a phase index (0 or more)."""
    if text.strip().lower() == "all":
        return "all"
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected 'all' or a phase number, got {text!r}"
        ) from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"a phase number is 0 or more, not {value}")
    return value


def phase_output(out: str | Path, phase: int) -> Path:
    """Where phase ``phase``'s output goes: ``NAME_phase03.csv`` beside a file output,
    ``OUT/phase03`` inside a folder output."""
    out = Path(out)
    tag = f"phase{phase:02d}"
    if out.suffix:
        return out.with_name(f"{out.stem}_{tag}{out.suffix}")
    return out / tag


def run_per_phase(args: argparse.Namespace, run) -> int:
    """Run ``run(args)`` for every phase of ``--images`` (``--out`` per phase); the worst
    return code."""
    from ..io import phase_count

    if not getattr(args, "out", None):
        raise ValueError("--phase all needs --out (one output per phase)")
    count = phase_count(args.images, getattr(args, "series", None))
    codes = []
    for phase in range(count):
        each = copy.copy(args)
        each.phase, each.out = phase, str(phase_output(args.out, phase))
        print(f"phase {phase} of {count} -> {each.out}", file=sys.stderr)
        codes.append(int(run(each) or 0))
    return max(codes)
