"""The review autosave as one atomic state.

Labels, reviewed slices, the decisions and the undo/redo history live in one
file, ``state.npz``, replaced atomically after every decision, undo or redo
(a kill leaves the state before it or after it, never a mix).
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


def save_state(folder: Path, key: str, state: SavedState, entry: dict) -> None:
    """Commit ``state`` atomically, then append ``entry`` (with the state's sequence number)
    to the readable log."""
    folder.mkdir(parents=True, exist_ok=True)
    shape = state.labels.shape[1:]
    undo_json, undo_arrays = _history_arrays(state.undo, shape)
    redo_json, redo_arrays = _history_arrays(state.redo, shape)
    atomic_write(
        folder / STATE,
        lambda tmp: np.savez_compressed(
            tmp,
            key=np.array(key),
            seq=np.array(state.seq),
            labels=state.labels,
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


def load_state(folder: Path, key: str, shape: tuple[int, ...]) -> SavedState | None:
    """The autosaved state of the stack ``key`` in ``folder`` (``None``: none, or another
    stack's); the readable log is rewritten to match it."""
    remove_partials(folder)  # a state half-written when the session was killed
    if not (folder / STATE).exists():
        return _load_legacy(folder, key, shape)
    with np.load(folder / STATE, allow_pickle=False) as data:
        if str(data["key"]) != key or data["labels"].shape != shape:
            return None
        undo = list(zip(json.loads(str(data["undo"])), data["undo_labels"], strict=True))
        redo = list(zip(json.loads(str(data["redo"])), data["redo_labels"], strict=True))
        state = SavedState(
            data["labels"].copy(),
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
