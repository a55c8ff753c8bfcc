"""The review autosave as one atomic state.

Labels, reviewed slices, the decisions and the undo/redo history live in one
small file, ``state.npz``, replaced atomically after every decision, undo or
redo (a kill leaves the state before it or after it, never a mix). The labels
are kept as the slices that differ from the original labels (with a digest of
those originals); each such slice, and each slice of the undo/redo history,
is a file of its own in ``slices/`` named by its content, written once before
any state refers to it. So a commit writes the one or two slices the
decision made and a small index, whatever the number of earlier decisions.
``decisions.jsonl`` beside it is the human-readable log: one line per change,
appended after the state is committed and rewritten from the state on
restore, so the two always agree when a session is picked up. A torn last
line (a kill while appending) is skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import warnings
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io.atomic import atomic_write, atomic_write_text, remove_partials
from .io.errors import StackError

STATE = "state.npz"
SLICES = "slices"  # content-named slice files the state refers to
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


class SliceFiles:
    """The content-named slice files of one autosave folder; remembers which arrays it has
    written (the session keeps one, so each slice is hashed and written once)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder / SLICES
        self._known: dict[int, tuple[np.ndarray, str]] = {}  # id(array) -> (array, name)
        self._slices: dict[int, tuple[np.ndarray, str]] = {}  # slice -> (as written, name)

    def name(self, array: np.ndarray) -> str:
        """The file name of ``array`` (written now if new; arrays are never changed later)."""
        known = self._known.get(id(array))
        if known is not None and known[0] is array:
            return known[1]
        import hashlib

        data = np.ascontiguousarray(array)
        digest = hashlib.blake2b(data.data, digest_size=16)
        digest.update(f"{data.shape}{data.dtype}".encode())
        name = f"{digest.hexdigest()}.npy"
        path = self.folder / name
        if not path.exists():
            self.folder.mkdir(parents=True, exist_ok=True)
            atomic_write(path, lambda tmp: _save_npy(tmp, data))
        self._known[id(array)] = (array, name)
        return name

    def slice_name(self, index: int, array: np.ndarray) -> str:
        """The file name of slice ``index`` of the labels (a mutable array): hashed and
        written only when it differs from what was written for that slice last time."""
        last = self._slices.get(index)
        if last is not None and np.array_equal(last[0], array):
            return last[1]
        copy = np.array(array, copy=True)
        name = self.name(copy)
        self._slices[index] = (copy, name)
        return name

    def read(self, name: str) -> np.ndarray:
        return np.load(self.folder / Path(name).name, allow_pickle=False)

    def keep_only(self, names: set[str]) -> None:
        """Delete the slice files no committed state refers to (and forget them)."""
        self._known = {k: v for k, v in self._known.items() if v[1] in names}
        self._slices = {k: v for k, v in self._slices.items() if v[1] in names}
        if self.folder.is_dir():
            for path in self.folder.glob("*.npy"):
                if path.name not in names:
                    path.unlink(missing_ok=True)


def _save_npy(path: Path, array: np.ndarray) -> None:
    with open(path, "wb") as handle:
        np.save(handle, array, allow_pickle=False)


def _history(history: list[tuple[dict, np.ndarray]], files: SliceFiles) -> tuple[str, list]:
    kept = history[-HISTORY:]
    return json.dumps([d for d, _ in kept], default=float), [files.name(a) for _, a in kept]


def save_state(
    folder: Path,
    key: str,
    state: SavedState,
    entry: dict,
    base: Baseline,
    files: SliceFiles | None = None,
) -> None:
    """Commit ``state`` atomically (its labels as the slices that differ from ``base``, each
    in its own content-named file), then append ``entry`` (with the state's sequence
    number) to the readable log. ``files``: the session's :class:`SliceFiles` (so that
    slices written before are not hashed again)."""
    folder.mkdir(parents=True, exist_ok=True)
    files = files or SliceFiles(folder)
    touched = {int(d["slice"]) for d in state.decisions}
    touched |= {int(d["slice"]) for d, _ in (*state.undo, *state.redo)}
    changed = [i for i in sorted(touched) if not np.array_equal(state.labels[i], base.labels[i])]
    changed_files = [files.slice_name(i, state.labels[i]) for i in changed]
    undo_json, undo_files = _history(state.undo, files)
    redo_json, redo_files = _history(state.redo, files)
    atomic_write(
        folder / STATE,
        lambda tmp: np.savez(
            tmp,
            key=np.array(key),
            seq=np.array(state.seq),
            shape=np.array(state.labels.shape),
            base=np.array(base.digest),
            changed=np.array(changed, int),
            changed_files=np.array(changed_files, dtype=str),
            reviewed=np.array(sorted(state.reviewed), int),
            decisions=np.array(json.dumps(state.decisions, default=float)),
            undo=np.array(undo_json),
            undo_files=np.array(undo_files, dtype=str),
            redo=np.array(redo_json),
            redo_files=np.array(redo_files, dtype=str),
        ),
    )
    try:  # the state is committed: the readable log follows it (rebuilt on restore)
        with open(folder / LOG, "a", encoding="utf-8") as handle:
            handle.write(json.dumps({**entry, "seq": state.seq}, default=float) + "\n")
    except OSError as exc:
        logging.getLogger("napari_yolosam").warning(
            "review log %s not appended: %s", folder / LOG, exc
        )
    if state.seq % 50 == 0:  # now and then: the files the committed state no longer uses
        files.keep_only({*changed_files, *undo_files, *redo_files})


def _saved_labels(data, base: Baseline, files: SliceFiles) -> np.ndarray | None:
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
    if changed.size and "changed_labels" in data:  # slices inside the state (before files)
        labels[changed] = data["changed_labels"]
    elif changed.size:
        for i, name in zip(changed, data["changed_files"], strict=True):
            labels[i] = files.read(str(name))
    return labels


def _arrays(data, history: str, files: SliceFiles) -> list[np.ndarray]:
    """A history's slices: from their files, or inside the state (autosaves before files)."""
    if f"{history}_labels" in data:
        return list(data[f"{history}_labels"])
    return [files.read(str(name)) for name in data[f"{history}_files"]]


def load_state(folder: Path, key: str, base: Baseline) -> SavedState | None:
    """The autosaved state of the stack ``key`` in ``folder`` (``None``: none, another stack's,
    or one made from other original labels); the readable log is rewritten to match it."""
    remove_partials(folder)  # a state half-written when the session was killed
    shape = base.labels.shape
    if not (folder / STATE).exists():
        return _load_legacy(folder, key, shape)
    try:
        state = _read_state(folder, key, base)
    except (OSError, EOFError, ValueError, KeyError, zipfile.BadZipFile) as exc:
        size = (folder / STATE).stat().st_size
        raise StackError(
            folder / STATE,
            f"the autosaved review is damaged ({size:,} bytes; {type(exc).__name__}: "
            f"{str(exc)[:120]}); it cannot be restored: move {folder} aside to start afresh",
        ) from None
    if state is None:
        return None
    _match_log(folder, state)
    return state


def _read_state(folder: Path, key: str, base: Baseline) -> SavedState | None:
    """The committed state in ``folder`` (``None``: another stack's or other originals')."""
    with np.load(folder / STATE, allow_pickle=False) as data:
        files = SliceFiles(folder)
        labels = _saved_labels(data, base, files) if str(data["key"]) == key else None
        if labels is None:
            return None
        undo = list(zip(json.loads(str(data["undo"])), _arrays(data, "undo", files), strict=True))
        redo = list(zip(json.loads(str(data["redo"])), _arrays(data, "redo", files), strict=True))
        state = SavedState(
            labels,
            {int(i) for i in data["reviewed"]},
            json.loads(str(data["decisions"])),
            [(d, a.copy()) for d, a in undo],
            [(d, a.copy()) for d, a in redo],
            int(data["seq"]),
        )
    return state


def _match_log(folder: Path, state: SavedState) -> None:
    """Rewrite the readable log where it disagrees with the committed state."""
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


#: The review's proposals, kept beside its state, and what made them.
PROPOSALS, PROPOSALS_RECORD = "proposals", "proposals.json"


def _proposals_digest(proposals) -> str:
    import hashlib

    digest = hashlib.blake2b(digest_size=16)
    for sp in proposals.slices:
        digest.update(np.packbits(sp.mask).tobytes())
        digest.update(sp.status.encode())
    return digest.hexdigest()


def save_review_proposals(folder: Path, proposals, stack, made_by: dict) -> None:
    """Keep ``proposals`` (masks, probabilities, prompts) in the autosave ``folder`` with
    ``made_by`` (the models and options that made them); unchanged ones are not rewritten."""
    from .proposals.io import save_proposals

    record = {"made_by": made_by, "digest": _proposals_digest(proposals)}
    if _read_record(folder) == json.loads(json.dumps(record, default=str)):
        return
    save_proposals(proposals, stack, folder / PROPOSALS, overwrite=True)
    atomic_write_text(folder / PROPOSALS_RECORD, json.dumps(record, default=str))


def _read_record(folder: Path) -> dict | None:
    try:
        return json.loads((folder / PROPOSALS_RECORD).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def saved_proposals(folder: Path, stack, made_by: dict):
    """The proposals kept in ``folder`` when the same models and options made them (``None``
    when there are none, or the models changed: then they are proposed again)."""
    from .proposals.io import load_proposals

    record = _read_record(folder)
    if not record or record.get("made_by") != json.loads(json.dumps(made_by, default=str)):
        return None
    try:
        return load_proposals(folder / PROPOSALS, stack)
    except (StackError, OSError, ValueError) as exc:
        logging.getLogger("napari_yolosam").warning("kept proposals not read: %s", exc)
        return None
