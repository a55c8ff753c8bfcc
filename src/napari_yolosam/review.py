"""A review session (Qt-free): the queue of flagged slices, decisions, undo/redo, autosave,
and saving the cleaned set.

Every decision, undo and redo commits the whole session (labels, decisions,
undo/redo history) as one atomic state (:mod:`.review_store`), so a crash or a
closed viewer loses nothing and never leaves a log that disagrees with the
labels; :meth:`ReviewSession.restore` picks the session up again.
The original labels are never written: :meth:`save_cleaned` writes a new
folder in the stack's own layout with ``decisions.jsonl`` and ``summary.json``.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import review_store as store
from .audit.metrics import dice
from .io.atomic import atomic_write_text
from .io.dataset import write_dataset
from .io.errors import StackError
from .io.manifest import Provenance
from .io.outputs import check_output, disk_message, staged_folder
from .io.writers import write_labels
from .stack import Stack

ACTIONS = ("accept", "keep", "union", "intersection", "edit")


class ReviewSaveError(StackError):
    """A decision, undo or redo whose autosave failed; the session is as it was before."""


@dataclass
class Decision:
    """One review decision on one slice, with metrics before and after."""

    slice: int
    image: str
    action: str
    time: float
    before: dict
    after: dict
    models: dict = field(default_factory=dict)
    source: str = "audit proposal"  # what the scar came from: audit proposal, user prompt, ...

    def to_json(self) -> str:
        """One line of the decisions log."""
        return json.dumps(self.__dict__, default=float)


def stack_key(stack: Stack) -> str:
    """Identity of a stack for autosave: its source and slice names."""
    digest = hashlib.blake2b(digest_size=12)
    digest.update(str(stack.source).encode())
    digest.update("\n".join(stack.names).encode())
    return digest.hexdigest()


#: Scar over this share of a slice without labelled myocardium is implausible.
IMPLAUSIBLE_SHARE = 0.05
#: Accepting a proposal that would remove more than this share of the label's scar asks
#: first: a model that sees nothing is no evidence that the label's scar is not there.
REMOVAL_SHARE = 0.5


def _removal_concern(scar: np.ndarray, proposal: np.ndarray) -> list[str]:
    """The label's scar an accepted ``proposal`` would remove, in words, when it is most of it."""
    removed, total = int((scar & ~proposal).sum()), int(scar.sum())
    if not total or removed <= REMOVAL_SHARE * total:
        return []
    why = ": the model found no scar here" if not proposal.any() else ""
    return [f"it removes {removed} of the label's {total} px of scar ({removed / total:.0%}){why}"]


class ReviewSession:
    """Review of a stack's labels against proposals, slice by slice.

    ``fresh`` (the default) moves an earlier autosave in ``autosave_dir`` aside
    (:attr:`archived`) instead of mixing two sessions; :meth:`restore` continues it.

    Parameters
    ----------
    stack
        The stack with the labels under review (its labels are copied; the
        originals on disk are never touched).
    proposal_masks
        ``(N, H, W)`` scar proposals.
    rows
        Audit rows (``image``, ``quality``, ``flag``, ...); flagged slices form the queue.
    autosave_dir
        Folder for ``decisions.jsonl`` and ``labels.npz`` (``None``: no autosave).
    models
        Provenance recorded with each decision (checkpoint names, fingerprints).
    """

    def __init__(
        self,
        stack: Stack,
        proposal_masks: np.ndarray,
        rows: list[dict],
        autosave_dir: str | Path | None = None,
        models: dict | None = None,
        fresh: bool = True,
    ) -> None:
        if not stack.has_labels:
            raise ValueError("a review needs labels")
        self.stack = stack
        self.original = stack.labels.copy()
        self.labels = stack.labels.copy()
        self.proposals = np.asarray(proposal_masks, bool)
        self.rows = {r["image"]: r for r in rows}
        self.models = models or {}
        self.decisions: list[Decision] = []
        self._undo: list[tuple[Decision, np.ndarray]] = []
        self._redo: list[tuple[Decision, np.ndarray]] = []
        self.reviewed: set[int] = set()
        self._base: store.Baseline | None = None  # the originals and their digest
        self._files: store.SliceFiles | None = None  # the autosave's slice files
        self.autosave_dir = None if autosave_dir is None else Path(autosave_dir)
        self._seq = 0
        #: Where an earlier autosave of this stack went when this fresh session started.
        self.archived = store.archive(self.autosave_dir) if fresh and self.autosave_dir else None
        if fresh and self.autosave_dir:  # hashed now (a worker's job), not on the first decision
            self._baseline()

    def rescore(self, proposal_masks: np.ndarray, rows: list[dict], models: dict | None = None):
        """New proposals and audit rows for the same review (after fine-tuning): the labels,
        decisions, undo history and reviewed slices stay, so the log and the summary count
        every decision made before the re-score."""
        masks = np.asarray(proposal_masks, bool)
        if masks.shape != self.proposals.shape:
            raise ValueError(
                f"proposals of shape {masks.shape} for a review of {self.proposals.shape}"
            )
        self.proposals = masks
        self.rows = {r["image"]: r for r in rows}
        self.models = models or self.models

    # -- the queue ---------------------------------------------------------------
    def _flagged(self) -> list[int]:
        """Every flagged slice, reviewed or not, worst (lowest quality) first."""
        index = {n: i for i, n in enumerate(self.stack.names)}
        flagged = [r for r in self.rows.values() if r.get("flag")]
        return [
            index[r["image"]] for r in sorted(flagged, key=lambda r: (r["quality"], r["image"]))
        ]

    def queue(self) -> list[int]:
        """Flagged, not yet reviewed slices, worst (lowest quality) first."""
        return [i for i in self._flagged() if i not in self.reviewed]

    def next_slice(self, current: int | None = None) -> int | None:
        """The queued slice after ``current`` in queue order (also when ``current`` was just
        decided and left the queue), else the first."""
        return self._step(current, 1)

    def previous_slice(self, current: int | None = None) -> int | None:
        """The queued slice before ``current`` in queue order, else the last."""
        return self._step(current, -1)

    def _step(self, current: int | None, direction: int) -> int | None:
        order = self._flagged()
        queued = set(order) - self.reviewed
        if not queued:
            return None
        if current in order:
            k = order.index(current)
            around = (
                order[k + 1 :] + order[:k]
                if direction > 0
                else order[:k][::-1] + order[k + 1 :][::-1]
            )
            return next(i for i in [*around, current] if i in queued)
        q = [i for i in order if i in queued]
        return q[0] if direction > 0 else q[-1]

    # -- decisions ---------------------------------------------------------------
    def _with_scar(
        self, index: int, scar: np.ndarray, allow_outside: bool = False
    ) -> tuple[np.ndarray, int]:
        """Slice ``index``'s labels with the scar replaced by ``scar`` (only scar changes:
        :meth:`LabelSpec.replace_scar`) and the count of ``scar`` pixels outside the
        labelled myocardium (left out unless ``allow_outside``: the annotator confirmed)."""
        return self.stack.spec.replace_scar(self.labels[index], scar, allow_outside)

    def _edit_inside(
        self, current: np.ndarray, edited: np.ndarray, allow_outside: bool
    ) -> tuple[np.ndarray, int]:
        """An edit under Accept's rule: scar painted outside the labelled myocardium (the
        label's, or healthy myocardium painted in the edit) goes back to what it was, unless
        ``allow_outside``; returns the edit and how many such pixels there were."""
        spec = self.stack.spec
        if not spec.has_myocardium:
            return edited, 0
        wall = spec.myocardium_mask(current) | (
            spec.myocardium_mask(edited) & ~spec.scar_mask(edited)
        )
        painted = spec.scar_mask(edited) & ~spec.scar_mask(current) & ~wall
        outside = int(painted.sum())
        if outside and not allow_outside:
            edited = edited.copy()
            edited[painted] = current[painted]
        return edited, outside

    def _metrics(self, index: int, labels: np.ndarray) -> dict:
        scar = self.stack.spec.scar_mask(labels)
        return {
            "label_area": int(scar.sum()),
            "dice_vs_proposal": dice(scar, self.proposals[index]),
        }

    def proposal_concerns(
        self,
        index: int,
        proposal: np.ndarray | None = None,
        untrained: bool = False,
        action: str = "accept",
    ) -> list[str]:
        """Why a proposal should not replace slice ``index``'s scar without a second look, in
        words: it comes from an untrained model, most of it lies outside the labelled
        myocardium, it is larger than the whole myocardium (burden over 100%), or (to
        ``accept``) it would remove most of the label's scar."""
        proposal = self.proposals[index] if proposal is None else np.asarray(proposal, bool)
        area = int(proposal.sum())
        concerns = []
        if untrained and area:
            concerns.append("it comes from an untrained model (random weights)")
        spec, label = self.stack.spec, self.labels[index]
        if action == "accept":
            concerns += _removal_concern(spec.scar_mask(label), proposal)
        wall = spec.myocardium_mask(label) | spec.scar_mask(label)
        if spec.has_myocardium and wall.any():
            outside = int((proposal & ~wall).sum())
            if area and outside > area / 2:
                concerns.append(f"{outside} of its {area} px lie outside the myocardium")
            if area > wall.sum():
                concerns.append(f"it is {area / wall.sum():.0%} of the myocardium's area")
        elif area > IMPLAUSIBLE_SHARE * proposal.size:
            concerns.append(f"it covers {area / proposal.size:.0%} of the slice")
        return concerns

    def decide(
        self,
        index: int,
        action: str,
        edited: np.ndarray | None = None,
        allow_outside: bool = False,
        proposal: np.ndarray | None = None,
        source: str | None = None,
    ) -> Decision:
        """Apply a decision to slice ``index`` and mark it reviewed.

        ``accept``: the proposal becomes the scar; ``keep``: the label stays;
        ``union`` / ``intersection`` of label and proposal; ``edit``: the
        slice's labels become ``edited`` (hand-painted in napari). Accept, union
        and intersection change scar only and keep it inside the labelled
        myocardium unless ``allow_outside``, and so does an edit's newly painted scar; the
        decision records how many proposed or painted pixels lay outside
        (``after["outside_myocardium_px"]``).
        ``proposal`` replaces the audit's proposal for this decision (what the
        annotator sees after prompting, or a given mask), and ``source`` says
        where it came from (default: ``audit proposal``, or ``hand edit``).
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown action {action!r}; choose from {ACTIONS}")
        current = self.labels[index]
        scar = self.stack.spec.scar_mask(current)
        proposal = self.proposals[index] if proposal is None else np.asarray(proposal, bool)
        if proposal.shape != current.shape:
            raise ValueError(
                f"a proposal of shape {proposal.shape} for a slice of {current.shape}"
            )
        combined = {"accept": proposal, "union": scar | proposal, "intersection": scar & proposal}
        outside = 0
        if action in combined:
            new, outside = self._with_scar(index, combined[action], allow_outside)
        elif action == "keep":
            new = current.copy()
        else:
            if edited is None or edited.shape != current.shape:
                raise ValueError("an edit needs the slice's edited labels of the same shape")
            new, outside = self._edit_inside(
                current, np.asarray(edited, current.dtype), allow_outside
            )
        after = {**self._metrics(index, new), "outside_myocardium_px": outside}
        if outside:
            after["outside_myocardium"] = "kept" if allow_outside else "left out"
        decision = Decision(
            index,
            self.stack.names[index],
            action,
            time.time(),
            self._metrics(index, current),
            after,
            dict(self.models),
            source or ("hand edit" if action == "edit" else "audit proposal"),
        )
        with self._applied_only_if_saved(index):
            self._undo.append((decision, current.copy()))
            self._redo.clear()
            self.labels[index] = new
            self.reviewed.add(index)
            self.decisions.append(decision)
            self._autosave(decision)
        return decision

    def undo(self) -> Decision | None:
        """Revert the last decision (its slice returns to the queue)."""
        if not self._undo:
            return None
        with self._applied_only_if_saved(self._undo[-1][0].slice):
            decision, previous = self._undo.pop()
            self._redo.append((decision, self.labels[decision.slice].copy()))
            self.labels[decision.slice] = previous
            self.decisions.remove(decision)
            if not any(d.slice == decision.slice for d in self.decisions):
                self.reviewed.discard(decision.slice)
            self._autosave(None, undone=decision)
        return decision

    def redo(self) -> Decision | None:
        """Re-apply the last undone decision."""
        if not self._redo:
            return None
        with self._applied_only_if_saved(self._redo[-1][0].slice):
            decision, labels = self._redo.pop()
            self._undo.append((decision, self.labels[decision.slice].copy()))
            self.labels[decision.slice] = labels
            self.decisions.append(decision)
            self.reviewed.add(decision.slice)
            self._autosave(decision)
        return decision

    # -- persistence ---------------------------------------------------------------
    @contextlib.contextmanager
    def _applied_only_if_saved(self, index: int) -> Iterator[None]:
        """Undo the block's changes to the session when its autosave fails (a full or
        read-only disk): a decision that cannot be saved is not applied either."""
        before = (
            self.labels[index].copy(),
            set(self.reviewed),
            list(self.decisions),
            list(self._undo),
            list(self._redo),
            self._seq,
        )
        try:
            yield
        except OSError as exc:
            self.labels[index] = before[0]
            self.reviewed, self.decisions, self._undo, self._redo, self._seq = before[1:]
            raise ReviewSaveError(
                self.autosave_dir, f"{disk_message(exc)}; the decision was not applied"
            ) from exc

    def _autosave(self, decision: Decision | None, undone: Decision | None = None) -> None:
        if self.autosave_dir is None:
            return
        self._seq += 1
        entry = decision.__dict__ if decision else {"undo": undone.image, "time": time.time()}
        state = store.SavedState(
            self.labels,
            self.reviewed,
            [d.__dict__ for d in self.decisions],
            [(d.__dict__, a) for d, a in self._undo],
            [(d.__dict__, a) for d, a in self._redo],
            self._seq,
        )
        if self._files is None:
            self._files = store.SliceFiles(self.autosave_dir)
        store.save_state(
            self.autosave_dir, stack_key(self.stack), state, entry, self._baseline(), self._files
        )

    def _baseline(self) -> store.Baseline:
        """The original labels and their digest (computed once per session)."""
        if self._base is None:
            self._base = store.Baseline.of(self.original)
        return self._base

    @staticmethod
    def autosave_for(stack: Stack, root: str | Path) -> Path:
        """The autosave folder of a stack under ``root``."""
        return Path(root) / stack_key(stack)

    @classmethod
    def restore(
        cls,
        stack: Stack,
        proposal_masks: np.ndarray,
        rows: list[dict],
        autosave_dir: str | Path,
        models: dict | None = None,
    ) -> ReviewSession | None:
        """The session autosaved in ``autosave_dir`` for this stack (labels, decisions and
        undo/redo history), or ``None`` if there is none."""
        autosave_dir = Path(autosave_dir)
        base = store.Baseline.of(stack.labels)
        saved = store.load_state(autosave_dir, stack_key(stack), base)
        if saved is None:
            return None
        session = cls(stack, proposal_masks, rows, autosave_dir, models, fresh=False)
        session._base = base
        session.labels = saved.labels.astype(stack.labels.dtype)
        session.reviewed = saved.reviewed
        session.decisions = [Decision(**d) for d in saved.decisions]
        by_time = {(d.image, d.time): d for d in session.decisions}
        session._undo = [
            (by_time.get((d["image"], d["time"])) or Decision(**d), a) for d, a in saved.undo
        ]
        session._redo = [(Decision(**d), a) for d, a in saved.redo]
        session._seq = saved.seq
        return session

    def save_cleaned(self, out: str | Path, overwrite: bool = False) -> list[Path]:
        """Write the cleaned set, a data set every reader opens (the images, linked or copied,
        beside the cleaned labels: :func:`~.io.dataset.write_dataset`), with ``decisions.jsonl``,
        ``summary.json`` and its manifest, to
        ``out``, built beside it and moved into place when complete; an existing ``out`` is
        replaced only with ``overwrite``, and never where it would hold the stack's data."""
        check_output(out, (self.stack.source, self.stack.label_source), overwrite)
        inputs = (str(self.stack.source), str(self.stack.label_source or ""))
        with staged_folder(out, Provenance("cleaned set", inputs)) as folder:
            self._write_cleaned(folder)
        return sorted(p for p in Path(out).rglob("*") if p.is_file())

    def _write_dicom_seg(self, out: Path) -> str | None:
        """DICOM input: the cleaned labels as a DICOM-SEG of the series too; what the summary
        says of it (``None`` for other inputs)."""
        from .io.dicom_seg import dicom_seg_problem

        if self.stack.layout != "dicom":
            return None
        problem = dicom_seg_problem(self.stack)
        if problem:
            return f"not written: {problem}"
        write_labels(self.stack, out / DICOM_SEG, labels=self.labels, fmt="dicom-seg")
        return DICOM_SEG

    def _write_cleaned(self, out: Path) -> None:
        write_dataset(self.stack, out, labels=self.labels)  # a data set: it trains as it is
        seg = self._write_dicom_seg(out)
        atomic_write_text(
            out / "decisions.jsonl", "".join(d.to_json() + "\n" for d in self.decisions)
        )
        changed = [
            i
            for i in range(len(self.stack))
            if not np.array_equal(self.labels[i], self.original[i])
        ]
        counts = {a: sum(d.action == a for d in self.decisions) for a in ACTIONS}
        summary = {
            "slices": len(self.stack),
            "reviewed": len(self.reviewed),
            "changed": len(changed),
            "changed_slices": [self.stack.names[i] for i in changed],
            "actions": counts,
            "models": self.models,
            "source_labels": str(self.stack.label_source),
            "dicom_seg": seg,
        }
        atomic_write_text(out / "summary.json", json.dumps(summary, indent=1))


#: The cleaned set's DICOM Segmentation (DICOM input only).
DICOM_SEG = "labels.seg.dcm"


def open_review(
    stack: Stack,
    proposals,
    config=None,
    models: dict | None = None,
    autosave_root: str | Path | None = None,
    restore: bool = True,
    previous: ReviewSession | None = None,
    made_by: dict | None = None,
):
    """Audit ``stack`` against ``proposals`` and open its review: ``previous`` re-scored
    (its decisions kept) when given for the same slices, else the autosaved session of this
    stack under ``autosave_root`` when ``restore`` finds one, else a new one. With
    ``made_by`` (the models and options that made the proposals) the proposals are kept
    in the autosave too (:func:`.review_store.saved_proposals` finds them again). A generator:
    yields the audit's progress and returns ``(session, audit result, restored)``; slow (the
    audit), so the GUI runs it in a worker, where it can be stopped."""
    from .audit import AuditConfig, audit_steps

    result = yield from audit_steps(stack, proposals, config=config or AuditConfig())
    masks = proposals.masks()
    if previous is not None and list(previous.stack.names) == list(stack.names):
        previous.rescore(masks, result.rows, models)
        return previous, result, False
    autosave = None if autosave_root is None else ReviewSession.autosave_for(stack, autosave_root)
    session = None
    if restore and autosave is not None:
        session = ReviewSession.restore(stack, masks, result.rows, autosave, models)
    restored = session is not None
    if session is None:
        session = ReviewSession(stack, masks, result.rows, autosave, models)
    if autosave is not None and made_by is not None:  # kept with the review: no re-proposing
        store.save_review_proposals(autosave, proposals, stack, made_by)
    return session, result, restored
