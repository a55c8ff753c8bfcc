"""A command over a study: once per patient, outputs mirroring the study, one report across.

Each patient's output goes to ``OUT/<patient>/`` (a folder output) or
``DIR/<patient>/NAME.csv`` (a file output ``DIR/NAME.csv``), each patient's folder
built aside and moved into place when its command succeeds; a patient whose folder
exists is skipped, so a stopped run goes on where it stopped. After the run, every CSV at the top of the patients' outputs
is gathered into one of the same name at the study's level, with a ``patient``
column. ``--shard K/N`` runs every N-th patient from the K-th (0-based): N
processes or cluster jobs with K = 0..N-1 share a study without a scheduler.
"""

from __future__ import annotations

import argparse
import copy
import csv
import sys
from pathlib import Path

#: Commands run once per patient of a study (train and embed take the study whole).
PER_PATIENT = (
    "info",
    "convert",
    "boxes",
    "propose",
    "propagate",
    "quantify",
    "semiauto",
    "audit",
    "review",
)
#: Options naming an earlier command's study output: each patient gets its own part.
MIRRORED_INPUTS = ("proposals",)


def shard_choice(text: str) -> tuple[int, int]:
    """An argparse type: ``K/N`` with ``0 <= K < N``."""
    try:
        k, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected K/N such as 0/4, got {text!r}") from None
    if not 0 <= k < n:
        raise argparse.ArgumentTypeError(f"--shard {text}: K must be 0..N-1")
    return k, n


def study_root(out: str | Path) -> Path:
    """The study-level folder of an output (a file output's folder, or the folder)."""
    out = Path(out)
    return out.parent if out.suffix else out


def patient_output(out: str | Path, patient: str) -> Path:
    """Where one patient's output goes."""
    out = Path(out)
    return out.parent / patient / out.name if out.suffix else out / patient


def _for_patient(args: argparse.Namespace, patient) -> argparse.Namespace:
    each = copy.copy(args)
    each.images = str(patient.images)
    each.labels = None if patient.labels is None else str(patient.labels)
    each.series = patient.series
    each.patient = patient.name
    for name in MIRRORED_INPUTS:
        given = getattr(args, name, None)
        if given and (Path(given) / patient.name).is_dir():
            setattr(each, name, str(Path(given) / patient.name))
    if getattr(args, "out", None):
        each.out = str(patient_output(args.out, patient.name))
    return each


def run_per_patient(args: argparse.Namespace, run, patients) -> int:
    """Run ``run`` for each patient (of this shard) with a progress bar over patients;
    failures are reported and the others go on. Returns 0, or 2 if a patient failed."""
    from tqdm import tqdm

    from ..io import StackError

    k, n = getattr(args, "shard", None) or (0, 1)
    mine = patients[k::n]
    if getattr(args, "decisions", None):
        check_decisions(args.decisions, patients)
    failed, skipped = [], []
    for patient in tqdm(mine, desc="patients", unit="patient", file=sys.stderr):
        each = _for_patient(args, patient)
        target = study_root(args.out) / patient.name if getattr(args, "out", None) else None
        if target is not None and target.exists() and not getattr(args, "overwrite", False):
            skipped.append(patient.name)
            continue
        try:
            _run_one(run, each, target)
        except _Failed:
            failed.append(patient.name)
        except (StackError, ValueError, PermissionError, FileNotFoundError) as exc:
            print(f"{patient.name}: error: {exc}", file=sys.stderr)
            failed.append(patient.name)
    if getattr(args, "out", None):
        gathered = gather_reports(args.out, patients)
        if gathered:
            print(f"across patients: {', '.join(str(p) for p in gathered)}")
    print(
        f"{len(mine) - len(failed) - len(skipped)} patient(s) done, {len(skipped)} already "
        f"done before (skipped), {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
        + (f" (shard {k}/{n} of {len(patients)} patients)" if n > 1 else "")
    )
    return 2 if failed else 0


def check_decisions(path: str | Path, patients) -> None:
    """A study-wide decisions file must name each row's patient, and only the study's."""
    from ..io import StackError
    from ..review_batch import decision_patients

    named = decision_patients(path)
    if None in named:
        raise StackError(path, "over a study, each row names <patient>/<slice> or has a patient")
    unknown = sorted(named - {p.name for p in patients})
    if unknown:
        raise StackError(path, f"patients not in the study: {', '.join(unknown)}")


class _Failed(Exception):
    """A patient's command ended with a non-zero code (it said why)."""


def _run_one(run, each: argparse.Namespace, target: Path | None) -> None:
    """Run one patient's command; its output folder appears whole when it succeeds."""
    from ..io.outputs import staged_folder

    if target is None:
        if int(run(each) or 0):
            raise _Failed
        return
    with staged_folder(target) as folder:
        out = Path(each.out)
        each.out = str(folder / out.name if out.suffix else folder)
        if int(run(each) or 0):
            raise _Failed


def gather_reports(out: str | Path, patients) -> list[Path]:
    """One CSV per name across the patients' outputs that exist (a ``patient`` column
    first), at the study's level; returns the files written."""
    from ..io.atomic import atomic_write_csv

    root = study_root(out)
    tables: dict[str, list[dict]] = {}
    columns: dict[str, list[str]] = {}
    for patient in patients:
        folder = root / patient.name
        if not folder.is_dir():
            continue
        for table in sorted(folder.glob("*.csv")):
            with open(table, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = [{"patient": patient.name, **row} for row in reader]
                names = ["patient", *(reader.fieldnames or [])]
            tables.setdefault(table.name, []).extend(rows)
            columns.setdefault(table.name, names)
    return [atomic_write_csv(root / name, rows, columns[name]) for name, rows in tables.items()]
