"""The review autosave as one atomic state.

Labels, reviewed slices, the decisions and the undo/redo history live in one
file, ``state.npz``, replaced atomically after every decision, undo or redo
(a kill leaves the state before it or after it, never a mix). The labels are
kept as the slices that differ from the original labels (with a digest of
those originals), so a commit costs the decisions made, not the stack's size.
``decisions.jsonl`` beside it is the human-readable log: one line per change,
appended after the state is committed and rewritten from the state on
restore, so the two always agree when a session is picked up. A torn last
line (a kill while appending) is skipped with a warning.
"""

from __future__ import annotations

import json
import shutil
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io.atomic import atomic_write, atomic_write_text, remove_partials

STATE = "state.npz"
LOG = "decisions.jsonl"
LEGACY_LABELS = "labels.npz"  # autosaves before the one-state format
#: Undo levels kept in the autosave (the session keeps them all in memory).
HISTORY = 200


@dataclass(frozen=True)
class Baseline:
    """The original labels a session started from, and their digest (computed once)."""

    labels: np.ndarray
    digest: str

    @classmethod
    def of(cls, labels: np.ndarray) -> Baseline:
        import hashlib

        array = np.ascontiguousarray(labels)
        digest = hashlib.blake2b(digest_size=16)
        digest.update(f"{array.shape}{array.dtype}".encode())
        digest.update(array.data)
        return cls(array, digest.hexdigest())


@dataclass
class SavedState:
    """What an autosave holds."""

    labels: np.ndarray
    reviewed: set[int]
    decisions: list[dict]
    undo: list[tuple[dict, np.ndarray]] = field(default_factory=list)
    redo: list[tuple[dict, np.ndarray]] = field(default_factory=list)
    seq: int = 0


def _history_arrays(history: list[tuple[dict, np.ndarray]], shape) -> tuple[str, np.ndarray]:
    kept = history[-HISTORY:]
    arrays = np.stack([a for _, a in kept]) if kept else np.zeros((0, *shape), np.uint8)
    return json.dumps([d for d, _ in kept], default=float), arrays


def save_state(folder: Path, key: str, state: SavedState, entry: dict, base: Baseline) -> None:
    """Commit ``state`` atomically (its labels as the slices that differ from ``base``), then
    append ``entry`` (with the state's sequence number) to the readable log."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = state.labels.shape[1:]
    undo_json, undo_arrays = _history_arrays(state.undo, shape)
    redo_json, redo_arrays = _history_arrays(state.redo, shape)
    touched = {int(d["slice"]) for d in state.decisions}
    touched |= {int(d["slice"]) for d, _ in (*state.undo, *state.redo)}
    changed = [i for i in sorted(touched) if not np.array_equal(state.labels[i], base.labels[i])]
    changed_labels = (
        state.labels[changed] if changed else np.zeros((0, *shape), state.labels.dtype)
    )
    atomic_write(
        folder / STATE,
        lambda tmp: np.savez_compressed(
            tmp,
            key=np.array(key),
            seq=np.array(state.seq),
            shape=np.array(state.labels.shape),
            base=np.array(base.digest),
            changed=np.array(changed, int),
            changed_labels=changed_labels,
            reviewed=np.array(sorted(state.reviewed), int),
            decisions=np.array(json.dumps(state.decisions, default=float)),
            undo=np.array(undo_json),
            undo_labels=undo_arrays,
            redo=np.array(redo_json),
            redo_labels=redo_arrays,
        ),
    )
    with open(folder / LOG, "a", encoding="utf-8") as handle:
        handle.write(json.dumps({**entry, "seq": state.seq}, default=float) + "\n")


def _saved_labels(data, base: Baseline) -> np.ndarray | None:
    """The autosaved labels: the original labels with the changed slices (``None`` when the
    originals are not the ones the session started from); full labels in older autosaves."""
    if "labels" in data:  # a state written before the changed-slices format
        return data["labels"].copy() if data["labels"].shape == base.labels.shape else None
    if tuple(int(n) for n in data["shape"]) != base.labels.shape:
        return None
    if str(data["base"]) != base.digest:
        warnings.warn(
            "the labels on disk changed since this review was autosaved: not restored",
            stacklevel=3,
        )
        return None
    labels = base.labels.copy()
    changed = np.asarray(data["changed"], int)
    if changed.size:
        labels[changed] = data["changed_labels"]
    return labels


def load_state(folder: Path, key: str, base: Baseline) -> SavedState | None:
    """The autosaved state of the stack ``key`` in ``folder`` (``None``: none, another stack's,
    or one made from other original labels); the readable log is rewritten to match it."""
    remove_partials(folder)  # a state half-written when the session was killed
    shape = base.labels.shape
    if not (folder / STATE).exists():
        return _load_legacy(folder, key, shape)
    with np.load(folder / STATE, allow_pickle=False) as data:
        labels = _saved_labels(data, base) if str(data["key"]) == key else None
        if labels is None:
            return None
        undo = list(zip(json.loads(str(data["undo"])), data["undo_labels"], strict=True))
        redo = list(zip(json.loads(str(data["redo"])), data["redo_labels"], strict=True))
        state = SavedState(
            labels,
            {int(i) for i in data["reviewed"]},
            json.loads(str(data["decisions"])),
            [(d, a.copy()) for d, a in undo],
            [(d, a.copy()) for d, a in redo],
            int(data["seq"]),
        )
    logged = read_log(folder / LOG)
    lines = (folder / LOG).read_text(encoding="utf-8").splitlines() if logged else []
    agrees = [e for e in logged if "undo" not in e] == state.decisions
    if not agrees or len(logged) != state.seq or len(lines) != len(logged):
        atomic_write_text(  # the state is the truth; the log follows it
            folder / LOG,
            "".join(
                json.dumps({**d, "seq": k + 1}, default=float) + "\n"
                for k, d in enumerate(state.decisions)
            ),
        )
        state.seq = len(state.decisions)
    return state


def read_log(path: Path) -> list[dict]:
    """Entries of a decisions log; a torn last line is skipped with a warning."""
    if not path.exists():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    entries = []
    for number, line in enumerate(lines, start=1):
        try:
            entries.append(json.loads(line))
        except json.JSONDecodeError:
            if number == len(lines):
                warnings.warn(
                    f"{path}: skipped a torn last line (the session was killed while writing it)",
                    stacklevel=2,
                )
                break
            raise ValueError(f"{path}: line {number} is not JSON") from None
    for entry in entries:
        entry.pop("seq", None)
    return entries


def _load_legacy(folder: Path, key: str, shape) -> SavedState | None:
    """An autosave of the earlier format (``labels.npz`` + log); undo history was not kept."""
    if not (folder / LEGACY_LABELS).exists():
        return None
    with np.load(folder / LEGACY_LABELS, allow_pickle=False) as data:
        if str(data["key"]) != key or data["labels"].shape != shape:
            return None
        labels, reviewed = data["labels"].copy(), {int(i) for i in data["reviewed"]}
    decisions: list[dict] = []
    for entry in read_log(folder / LOG):
        if "undo" in entry:
            for k in range(len(decisions) - 1, -1, -1):
                if decisions[k]["image"] == entry["undo"]:
                    del decisions[k]
                    break
        else:
            decisions.append(entry)
    return SavedState(labels, reviewed, decisions, seq=len(decisions))


def archive(folder: Path) -> Path | None:
    """Move an earlier autosave aside (``FOLDER.archived-TIME``) before a fresh session starts."""
    if not folder.is_dir() or not any(folder.iterdir()):
        return None
    target = folder.with_name(f"{folder.name}.archived-{time.strftime('%Y%m%d-%H%M%S')}")
    while target.exists():
        target = target.with_name(target.name + "x")
    shutil.move(str(folder), str(target))
    return target
