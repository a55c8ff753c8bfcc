"""Headless review: the widget's decisions from a file or a rule, through the same session.

``yolosam review`` and scripts use :func:`read_decisions` (a CSV or JSON file
of ``image, action[, mask]``) or :func:`rule_decisions` (accept where the
audit's quality is low and the proposal confident), then :func:`apply`, which
calls :meth:`ReviewSession.decide` exactly as the review widget does, and
:meth:`ReviewSession.save_cleaned` for the cleaned set with its provenance.
"""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .io.errors import StackError
from .io.images import read_raw_mask
from .proposals.types import Proposals
from .review import ACTIONS, Decision, ReviewSession
from .review_gain import MIN_GAIN, GainModel, agreement

#: What a decisions file may ask for: the review actions but ``edit`` (a hand edit needs a
#: painter), and ``mask``: the given mask file becomes the slice's scar.
FILE_ACTIONS = (*(a for a in ACTIONS if a != "edit"), "mask")


@dataclass(frozen=True)
class Planned:
    """One decision to make: slice, action, the scar it proposes (``None``: the audit's), source."""

    index: int
    action: str
    proposal: np.ndarray | None = None
    source: str = "audit proposal"
    gain: float = float("nan")  # a rule's expected Dice gain (review_gain)


def read_decisions(
    path: str | Path, session: ReviewSession, patient: str | None = None
) -> list[Planned]:
    """Decisions from a CSV (header ``image,action[,mask]``) or JSON list of such objects.

    ``mask`` rows name a mask file (relative to the decisions file) whose
    non-zero pixels become the slice's scar. Unknown slices, actions or
    unreadable masks are errors naming the file and the row. For one ``patient``
    of a study, one file serves every patient: rows name ``<patient>/<slice>`` (the
    study's own slice names) or carry a ``patient`` column, and other patients'
    rows are left to them.
    """
    path = Path(path)
    rows = _rows(path)
    names = {name: i for i, name in enumerate(session.stack.names)}
    planned = []
    for number, row in enumerate(rows, start=1):
        image, action = str(row.get("image", "")), str(row.get("action", "")).strip().lower()
        where = f"row {number} ({image or 'no image'})"
        if patient is not None:
            owner, image = row_patient(row, image)
            if owner != patient:
                continue
        elif row.get("patient"):
            raise StackError(
                path,
                f"{where}: names patient {row['patient']!r}, but the stack is one patient's; "
                "give the study (a folder of patients) as --images, or drop the patient column",
            )
        if image not in names:
            raise StackError(path, f"{where}: no slice of that name in the stack")
        if action not in FILE_ACTIONS:
            raise StackError(path, f"{where}: action {action!r}, not one of {FILE_ACTIONS}")
        if action != "mask":
            planned.append(Planned(names[image], action))
            continue
        mask = _mask(path, row.get("mask"), session, names[image], where)
        planned.append(Planned(names[image], "accept", mask, f"mask file {row['mask']}"))
    return planned


def row_patient(row: dict, image: str) -> tuple[str | None, str]:
    """A study-wide decision row's patient and its slice name within the patient."""
    if row.get("patient"):
        return str(row["patient"]), image
    owner, _, name = image.rpartition("/")
    return (owner or None), name


def decision_patients(path: str | Path) -> set[str | None]:
    """The patients a study-wide decisions file names (``None`` for a row naming none)."""
    rows = _rows(Path(path))
    return {row_patient(row, str(row.get("image", "")))[0] for row in rows}


def _rows(path: Path) -> list[dict]:
    """The rows of a decisions file: JSON, or CSV with a header (comma, semicolon or tab
    separated; a byte-order mark and Windows line ends are fine)."""
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise StackError(path, f"cannot read the decisions ({exc.strerror or exc})") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise StackError(
            path, f"is not a text file (byte {exc.start} is not UTF-8): expected CSV or JSON"
        ) from None
    if "\0" in text:
        raise StackError(path, "is not a text file (it holds NUL bytes): expected CSV or JSON")
    if path.suffix.lower() == ".json":
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StackError(path, f"not valid JSON ({exc.msg}, line {exc.lineno})") from exc
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise StackError(path, "must hold a list of {image, action[, mask]} objects")
        return rows
    return _csv_rows(path, text)


def _csv_rows(path: Path, text: str) -> list[dict]:
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        return []
    header = lines[0]
    delimiter = max(",;\t", key=header.count) if any(c in header for c in ",;\t") else ","
    reader = csv.DictReader(lines, delimiter=delimiter)
    columns = [c.strip().lower() for c in reader.fieldnames or []]
    if "image" not in columns or "action" not in columns:
        raise StackError(
            path,
            f"its header {header[:80]!r} lacks the columns image and action "
            "(a CSV needs a header line: image,action[,mask])",
        )
    return [
        {str(k).strip().lower(): (v.strip() if isinstance(v, str) else v) for k, v in row.items()}
        for row in reader
    ]


def _mask(path: Path, name, session: ReviewSession, index: int, where: str) -> np.ndarray:
    if not name:
        raise StackError(path, f"{where}: action 'mask' needs a mask file")
    file = (path.parent / str(name)).resolve()
    raw = read_raw_mask(file)
    shape = session.stack.original_shapes[index]
    if raw.shape[:2] != tuple(shape):
        raise StackError(file, f"{where}: mask of {raw.shape[:2]}, the slice is {tuple(shape)}")
    mask = np.zeros(session.labels.shape[1:], bool)
    mask[: shape[0], : shape[1]] = np.asarray(raw) > 0
    return mask


def proposal_confidence(proposals: Proposals, index: int) -> float:
    """SAM's mean probability inside the slice's proposal (NaN without probabilities or mask)."""
    sp = proposals.slices[index]
    if not proposals.settings.get("probabilities", True) or not sp.mask.any():
        return float("nan")
    return float(sp.probability[sp.mask].mean())


def rule_decisions(
    session: ReviewSession,
    proposals: Proposals,
    below: float,
    min_confidence: float = 0.0,
    skipped: list | None = None,
    force: bool = False,
) -> list[Planned]:
    """Accept the proposal on every queued slice whose quality is under ``below``, whose
    proposal is at least ``min_confidence`` sure of itself and is expected to gain at least
    :data:`~.review_gain.MIN_GAIN` (worst first; each :class:`Planned` carries its gain).

    A proposal the review widget would ask about (:meth:`ReviewSession.proposal_concerns`)
    or one not expected to gain is not accepted: ``(image, reason)`` goes to ``skipped``
    when a list is given. Raises :class:`~.review_gain.RuleRefused` where the data cannot
    say that accepting helps (too few agreed slices, proposals too weak), unless ``force``
    (then the gains are not asked for).
    """
    _check_finite("below", below)
    _check_finite("min_confidence", min_confidence)
    model = GainModel.of(session)
    if not force:
        model.check()
    planned = []
    for index in session.queue():
        name = session.stack.names[index]
        confidence = proposal_confidence(proposals, index)
        if not (session.rows[name]["quality"] < below and confidence >= min_confidence):
            continue
        concerns = session.proposal_concerns(index)
        gain = model.gain(agreement(session, index)) if model.agreed else float("nan")
        if not concerns and not force and not gain >= MIN_GAIN:
            concerns = [f"expected gain {gain:+.2f} (under {MIN_GAIN}): not worth accepting"]
        if not concerns:
            planned.append(Planned(index, "accept", source="audit proposal (rule)", gain=gain))
        elif skipped is not None:
            skipped.append((name, "; ".join(concerns)))
    return planned


def _check_finite(name: str, value: float) -> None:
    if not (isinstance(value, int | float) and math.isfinite(value)):
        raise ValueError(
            f"{name} must be a finite number (a quality or confidence), not {value!r}"
        )


def apply(session: ReviewSession, planned: list[Planned]) -> list[Decision]:
    """Make the planned decisions through :meth:`ReviewSession.decide` (as the widget does)."""
    return [
        session.decide(p.index, p.action, proposal=p.proposal, source=p.source) for p in planned
    ]


def queue_table(session: ReviewSession, proposals: Proposals) -> list[dict]:
    """The review queue, worst first: rank, image, quality, issue, confidence, evidence."""
    table = []
    for rank, index in enumerate(session.queue(), start=1):
        row = session.rows[session.stack.names[index]]
        table.append(
            {
                "rank": rank,
                "image": row["image"],
                "quality": row["quality"],
                "issue": row["issue"],
                "confidence": proposal_confidence(proposals, index),
                "evidence": row["evidence"],
            }
        )
    return table
