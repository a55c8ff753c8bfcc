"""A command over a study: once per patient, outputs mirroring the study, one report across.

Each patient's output goes to ``OUT/<patient>/`` (a folder output) or
``DIR/<patient>/NAME.csv`` (a file output ``DIR/NAME.csv``), each patient's folder
built aside and moved into place, with its manifest, when its command succeeds; a patient
whose manifest says it finished for the same inputs and settings is skipped, so a stopped
run goes on where it stopped. Every output is checked before any work (nothing an input
or the user's own files is ever replaced). After the run, every CSV at the top of the patients' outputs
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

from .options import INPUT_OPTIONS, provenance_from_args

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
    failures are reported and the others go on. Returns 0, or 2 if a patient failed.

    Every output is checked first, before any model loads (:func:`plan_outputs`)."""
    from tqdm import tqdm

    from ..io import StackError
    from ..io.outputs import disk_message

    k, n = getattr(args, "shard", None) or (0, 1)
    mine = patients[k::n]
    if getattr(args, "decisions", None):
        check_decisions(args.decisions, patients)
    todo, skipped = plan_outputs(args, patients, mine)
    failed = []
    for patient, each in tqdm(todo, desc="patients", unit="patient", file=sys.stderr):
        target = study_root(args.out) / patient.name if getattr(args, "out", None) else None
        try:
            _run_one(run, each, target)
        except _Failed:
            failed.append(patient.name)
        except (StackError, ValueError, PermissionError, FileNotFoundError) as exc:
            print(f"{patient.name}: error: {exc}", file=sys.stderr)
            failed.append(patient.name)
        except OSError as exc:
            print(f"{patient.name}: error: {disk_message(exc)}", file=sys.stderr)
            failed.append(patient.name)
    if getattr(args, "out", None):
        gathered = gather_reports(args.out, patients, provenance_from_args(args).settings_key())
        if gathered:
            print(f"across patients: {', '.join(str(p) for p in gathered)}")
    print(
        f"{len(todo) - len(failed)} patient(s) done, {len(skipped)} already "
        f"done before (skipped), {len(failed)} failed"
        + (f": {', '.join(failed)}" if failed else "")
        + (f" (shard {k}/{n} of {len(patients)} patients)" if n > 1 else "")
    )
    return 2 if failed else 0


def _study_inputs(args: argparse.Namespace, patients) -> list:
    named = [getattr(args, name, None) for name in INPUT_OPTIONS]
    return [*named, *(p.images for p in patients), *(p.labels for p in patients)]


def plan_outputs(args: argparse.Namespace, patients, mine) -> tuple[list, list[str]]:
    """Check the study's output and each patient's before any work; return the patients to
    run (with their arguments) and the names of those already done.

    The output may not be, contain or lie in an input (symbolic links resolved). An
    existing patient folder is "done" only when its manifest says it finished for the same
    inputs and settings; one made otherwise is replaced only with ``--overwrite``; one this
    project did not write (or holding files it did not write) is never replaced. All the
    problems are named in one error.
    """
    from ..io import StackError
    from ..io.manifest import is_done, read_manifest, write_manifest
    from ..io.outputs import check_output, check_owned

    pairs = [(patient, _for_patient(args, patient)) for patient in mine]
    if not getattr(args, "out", None):
        return pairs, []
    overwrite = bool(getattr(args, "overwrite", False))
    root = check_output(study_root(args.out), _study_inputs(args, patients), overwrite=True)
    study = provenance_from_args(args)
    record = read_manifest(root) if root.is_dir() else None
    if record and record.get("settings_key") != study.settings_key() and not overwrite:
        raise StackError(
            args.out,
            f"holds the output of an earlier '{record.get('command')}' with other settings; "
            "add --overwrite to replace its patients' outputs, or choose a new location",
        )
    todo, done, problems = [], [], []
    for patient, each in pairs:
        target = root / patient.name
        try:
            check_output(target, _study_inputs(args, patients), overwrite=True)
            if target.is_dir() and any(target.iterdir()):
                check_owned(target)
                if is_done(target, provenance_from_args(each)):
                    done.append(patient.name)
                    continue
                if not overwrite:
                    raise StackError(
                        target,
                        "holds an output made from other inputs or settings; add --overwrite "
                        "to replace it",
                    )
        except StackError as exc:
            problems.append(str(exc))
            continue
        todo.append((patient, each))
    if problems:
        raise StackError(args.out, "nothing was run:\n  " + "\n  ".join(problems))
    root.mkdir(parents=True, exist_ok=True)
    write_manifest(root, study, finished=False)  # the study's folder: its reports are ours
    return todo, done


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
    """Run one patient's command; its output folder appears whole, with its manifest,
    when it succeeds."""
    from ..io.outputs import staged_folder

    if target is None:
        if int(run(each) or 0):
            raise _Failed
        return
    with staged_folder(target, provenance_from_args(each)) as folder:
        out = Path(each.out)
        each.out = str(folder / out.name if out.suffix else folder)
        if int(run(each) or 0):
            raise _Failed


def gather_reports(out: str | Path, patients, settings_key: str | None = None) -> list[Path]:
    """One CSV per name across the patients' finished outputs (of the run whose settings
    have ``settings_key``, when given), a ``patient`` column first, at the study's level;
    returns the files written."""
    from ..io.atomic import atomic_write_csv
    from ..io.manifest import read_manifest

    root = study_root(out)
    tables: dict[str, list[dict]] = {}
    columns: dict[str, list[str]] = {}
    for patient in patients:
        folder = root / patient.name
        record = read_manifest(folder) if folder.is_dir() else None
        if not record or not record.get("finished"):
            continue
        if settings_key is not None and record.get("settings_key") != settings_key:
            continue
        for table in sorted(folder.glob("*.csv")):
            with open(table, newline="", encoding="utf-8") as handle:
                reader = csv.DictReader(handle)
                rows = [{"patient": patient.name, **row} for row in reader]
                names = ["patient", *(reader.fieldnames or [])]
            tables.setdefault(table.name, []).extend(rows)
            columns.setdefault(table.name, names)
    return [atomic_write_csv(root / name, rows, columns[name]) for name, rows in tables.items()]
