"""Propagating one expert mask through each patient's stack, against two baselines (EMIDEC dev).

For every patient with expert scar: start from the middle slice of those with
scar, its expert scar mask as the start, and propose the other slices of the
patient three ways:

- ``propagate``: :func:`napari_yolosam.proposals.propagate.propagate` (both
  directions, SAM prompted by the neighbour's mask, inside the labels'
  myocardium, stopping where the scar vanishes or the myocardium ends);
- ``copy``: the start mask copied unchanged onto every other slice;
- ``detector``: proposals from the detector alone (no label prompts), with
  the fold detectors of ``models_benchmark.py`` (trained on the other half's
  noisy labels), so each patient is judged by a detector that never saw it;
  its scar boxes alone, and with its LV box prompting scar too (the end-to-end
  modes of the models benchmark). These fold detectors find no scar box on
  EMIDEC even at confidence 0.01 (only LV boxes).

Scored against the expert on the other slices: mean Dice over slices with
expert scar (a slice left empty scores 0), and the share of scar-free slices
given some scar. The labels' myocardium is the expert's (the noise of the
audit benchmarks changes scar only).

    .venv/bin/python benchmarks/propagation_benchmark.py --models runs/models-lite
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def scores(masks: np.ndarray, expert: np.ndarray, start: int) -> dict:
    """Dice on the other slices with expert scar, and false scar on the scar-free ones."""
    from napari_yolosam.audit.metrics import dice

    others = [k for k in range(len(expert)) if k != start]
    scar = [dice(masks[k], expert[k]) for k in others if expert[k].any()]
    free = [bool(masks[k].any()) for k in others if not expert[k].any()]
    return {"dice": scar, "false_scar": free}


def start_slice(expert: np.ndarray) -> int:
    """The middle one of the slices with expert scar."""
    with_scar = np.flatnonzero(expert.any(axis=(1, 2)))
    return int(with_scar[len(with_scar) // 2])


def main() -> None:
    from napari_yolosam.io import read_stack
    from napari_yolosam.labelspec import LabelSpec
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.models.embeddings import EmbeddingCache
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose
    from napari_yolosam.proposals.propagate import propagate

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--emidec", default=str(HERE.parents[1] / "shared/data/emidec_dev"))
    parser.add_argument("--models", default="runs/models-lite", help="models_benchmark.py OUT")
    parser.add_argument("--segmenter", default="lite_medsam")
    parser.add_argument("--out", default="runs/propagation.json")
    args = parser.parse_args()
    stack = read_stack(args.emidec, spec=LabelSpec.emidec())
    expert_all = np.isin(stack.labels, (3, 4))
    segmenter = Segmenter.from_spec(args.segmenter)
    cache = EmbeddingCache(max_bytes=2 << 30, disk_dir=Path(args.models) / "embeddings")
    detectors = {}
    for fold in sorted(Path(args.models).glob("fold*")):
        split = json.loads((fold / "split.json").read_text())
        trained_on = set(split["train_cases"]) | set(split["val_cases"])
        detectors[fold.name] = (Detector.load(fold / "detector.pt"), trained_on)
    results: dict[str, dict[str, list]] = {}
    for case in sorted(set(stack.cases)):
        idx = [i for i, c in enumerate(stack.cases) if c == case]
        sub, expert = stack.subset(idx), expert_all[idx]
        if not expert.any():
            continue
        k = start_slice(expert)
        ways = {
            "propagate": drive(propagate(sub, segmenter, k, expert[k], cache=cache)).masks(),
            "copy": np.repeat(expert[k][None], len(sub), axis=0),
        }
        unseen = [d for d, seen in detectors.values() if case not in seen]
        for lv_scar, way in ((False, "detector"), (True, "detector + LV box scar prompt")):
            if unseen:
                found = propose(
                    sub, segmenter, unseen[0], cache=cache, lv_scar=lv_scar, use_labels=False
                )
                ways[way] = drive(found).masks()
        for way, masks in ways.items():
            for key, values in scores(masks, expert, k).items():
                results.setdefault(way, {}).setdefault(key, []).extend(values)
        print(
            case,
            {
                w: round(float(np.mean(scores(m, expert, k)["dice"] or [0])), 3)
                for w, m in ways.items()
            },
            flush=True,
        )
    table = {
        way: {
            "mean_dice": round(float(np.mean(r["dice"])), 3),
            "slices": len(r["dice"]),
            "false_scar_share": round(float(np.mean(r["false_scar"])), 3)
            if r["false_scar"]
            else None,
            "scar_free_slices": len(r["false_scar"]),
        }
        for way, r in results.items()
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(table, indent=1))
    print(json.dumps(table, indent=1))


if __name__ == "__main__":
    main()
