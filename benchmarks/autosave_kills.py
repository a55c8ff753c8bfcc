"""SIGKILL a real review process at random moments; is every restored session consistent?

A worker process reviews a phantom stack as an annotator would (accept, keep,
union, intersection, undo, redo on random queued slices, autosaving after
each) until it is killed with SIGKILL at a random moment. The session is then
restored from its autosave and checked:

- every slice's scar area equals what the last logged decision on it left,
  and a slice without decisions equals the original label;
- the decisions log on disk lists exactly the restored decisions;
- undo still works after the restore.

    .venv/bin/python benchmarks/autosave_kills.py --trials 200 --out runs/kills

tests/test_review_kills.py runs a few trials of the same code.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ACTIONS = ("accept", "keep", "union", "intersection", "undo", "redo")


def session_for(data: Path, autosave: Path, fresh: bool):
    """The review session of the phantom in ``data`` with proposals = labels shifted by 3 px."""
    from napari_yolosam.io import read_stack
    from napari_yolosam.review import ReviewSession

    stack = read_stack(data)
    proposals = np.roll(stack.scar(), 3, axis=2)
    rows = [{"image": n, "quality": 0.1, "flag": True} for n in stack.names]
    if not fresh:
        return stack, ReviewSession.restore(stack, proposals, rows, autosave)
    return stack, ReviewSession(stack, proposals, rows, autosave)


def worker(data: Path, autosave: Path, seed: int) -> None:
    """Review until killed, printing ``ready`` after the first decision."""
    _, session = session_for(data, autosave, fresh=True)
    rng = np.random.default_rng(seed)
    told = False
    while True:
        action = str(rng.choice(ACTIONS))
        if action == "undo":
            session.undo()
        elif action == "redo":
            session.redo()
        else:
            session.decide(int(rng.integers(len(session.stack))), action)
        if not told:
            print("ready", flush=True)
            told = True


def consistent(data: Path, autosave: Path) -> tuple[bool, str]:
    """Restore the killed session and check labels, log and undo agree."""
    from napari_yolosam import review_store

    stack, session = session_for(data, autosave, fresh=False)
    if session is None:  # killed before the first commit: nothing saved, nothing logged
        logged = review_store.read_log(autosave / review_store.LOG)
        state = (autosave / review_store.STATE).exists()
        return not logged and not state, "no decision committed before the kill"
    last = {}
    for decision in session.decisions:
        last[decision.slice] = decision
    for i in range(len(stack)):
        area = int(stack.spec.scar_mask(session.labels[i]).sum())
        if i in last and area != last[i].after["label_area"]:
            return (
                False,
                f"slice {i}: area {area}, last decision left {last[i].after['label_area']}",
            )
        if i not in last and not np.array_equal(session.labels[i], session.original[i]):
            return False, f"slice {i}: changed without a logged decision"
    logged = [e for e in review_store.read_log(autosave / review_store.LOG) if "undo" not in e]
    if logged != [d.__dict__ for d in session.decisions]:
        return False, "the decisions log differs from the restored decisions"
    if session.decisions and session._undo:
        undone = session.undo()
        if undone is None or undone.slice not in range(len(stack)):
            return False, "undo failed after the restore"
    return True, f"{len(session.decisions)} decisions"


def trial(data: Path, autosave: Path, seed: int, max_wait: float = 0.6) -> tuple[bool, str]:
    """One worker killed after a random wait; returns the consistency check."""
    env = {**os.environ, "PYTHONWARNINGS": "ignore"}
    process = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(data), str(autosave), str(seed)],
        stdout=subprocess.PIPE,
        env=env,
    )
    try:
        line = process.stdout.readline()
        if b"ready" not in line:
            return False, "the worker did not start"
        time.sleep(float(np.random.default_rng(seed).uniform(0, max_wait)))
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    return consistent(data, autosave)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", default="runs/autosave-kills")
    parser.add_argument("--worker", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(Path(args.worker[0]), Path(args.worker[1]), int(args.worker[2]))
        return
    from napari_yolosam.phantom.io import save_phantom
    from napari_yolosam.phantom.make import make_phantom

    out = Path(args.out)
    data = save_phantom(make_phantom(n_slices=6, n_cases=3, shape=(128, 128)), out / "data")
    results = []
    for k in range(args.trials):  # one line per trial, so that a cut-short run still reports
        results.append(trial(data, out / f"autosave{k}", seed=k))
        print(
            json.dumps({"trial": k, "consistent": results[-1][0], "detail": results[-1][1]}),
            flush=True,
        )
    good = sum(ok for ok, _ in results)
    failures = [why for ok, why in results if not ok]
    print(json.dumps({"trials": len(results), "consistent": good, "failures": failures[:10]}))


if __name__ == "__main__":
    main()
