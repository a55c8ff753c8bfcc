"""A whole study, end to end, with the default pretrained segmenter: peak memory and time per stage.

Opens a study of N slices (EMIDEC dev's first N slices where ../shared/data is
present, else a phantom), encodes it once with the default segmenter into a
fresh disk cache (the slice in view first, as the viewer does), proposes,
audits, makes 50 review decisions with autosave, and saves the cleaned set.
After each stage it reports the process's peak RSS, and at the end the
embedding cache's size on disk, the encoder passes (one per slice), the time
per slice of each stage and the share of the encoder-bound time; it also
times what re-encoding for every box (the research code's way) would cost.

    .venv/bin/python benchmarks/study_memory.py --slices 300 --out runs/study-memory
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
EMIDEC = HERE.parents[1] / "shared/data/emidec_dev"


def peak_rss_gb() -> float:
    """Peak resident memory of this process so far (GiB; Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def open_study(slices: int):
    """The study: EMIDEC's first ``slices`` slices where present, else a phantom of that size."""
    from napari_yolosam.io import read_stack
    from napari_yolosam.labelspec import LabelSpec

    if EMIDEC.is_dir():
        stack = read_stack(EMIDEC, spec=LabelSpec.emidec())
        return stack.subset(range(min(slices, len(stack)))), "EMIDEC dev"
    from napari_yolosam.phantom.make import make_phantom

    phantom = make_phantom(n_slices=10, n_cases=max(1, slices // 10), shape=(256, 256), seed=0)
    return phantom.stack, "phantom"


class Stages:
    """Seconds and peak RSS after each stage."""

    def __init__(self) -> None:
        self.rows: list[dict] = []
        self._start = time.perf_counter()

    def done(self, name: str, **extra) -> None:
        now = time.perf_counter()
        row = {"stage": name, "seconds": round(now - self._start, 2), "peak_rss_gb": peak_rss_gb()}
        self.rows.append({**row, **extra})
        print(json.dumps(self.rows[-1]), flush=True)
        self._start = time.perf_counter()


def review(stack, proposals, result, folder: Path, decisions: int) -> float:
    """``decisions`` accepts down the audit's queue with autosave; the mean seconds per decision."""
    from napari_yolosam.review import ReviewSession

    session = ReviewSession(
        stack, proposals.masks(), result.rows, autosave_dir=folder / "autosave"
    )
    queue = session.queue() or list(range(len(stack)))
    started = time.perf_counter()
    for k in range(decisions):
        session.decide(queue[k % len(queue)], "accept" if k % 2 == 0 else "keep")
    seconds = (time.perf_counter() - started) / decisions
    session.save_cleaned(folder / "cleaned")
    return seconds


def research_way(segmenter, stack, proposals, encoder_s: float, sample: int = 3) -> dict:
    """Re-encoding the slice for every box (the research code): measured on a few slices."""
    boxed = [i for i, sp in enumerate(proposals.slices) if len(sp.boxes)][:sample]
    started = time.perf_counter()
    boxes = 0
    for i in boxed:
        image = stack.crop(i, stack.images[i])
        for box in proposals.slices[i].boxes:
            segmenter.decode(segmenter.encode(image), image.shape, boxes=box[None])
            boxes += 1
    per_box = (time.perf_counter() - started) / max(boxes, 1)
    total_boxes = sum(len(sp.boxes) for sp in proposals.slices)
    return {
        "seconds_per_box": per_box,
        "boxes": total_boxes,
        "whole_study_s": per_box * total_boxes,
    }


def main() -> None:
    from napari_yolosam.audit import audit
    from napari_yolosam.defaults import default_segmenter
    from napari_yolosam.models.detector import Detector
    from napari_yolosam.models.embeddings import EmbeddingCache, embed_stack
    from napari_yolosam.models.segmenter import Segmenter
    from napari_yolosam.progress import drive
    from napari_yolosam.proposals.core import propose

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=300)
    parser.add_argument("--out", default="runs/study-memory")
    parser.add_argument("--segmenter", default=default_segmenter())
    parser.add_argument("--detector", help="a detector checkpoint (default: label prompts only)")
    parser.add_argument("--decisions", type=int, default=50)
    args = parser.parse_args()
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    stages = Stages()
    stack, source = open_study(args.slices)
    n = len(stack)
    stages.done("open", slices=n, source=source)
    segmenter = Segmenter.from_spec(args.segmenter)
    detector = Detector.load(args.detector) if args.detector else None
    stages.done("load models", segmenter=segmenter.name)
    cache = EmbeddingCache(disk_dir=out / "embeddings")
    images = [stack.crop(i, stack.images[i]) for i in range(n)]
    passes = drive(embed_stack(segmenter, images, cache, first=n // 2))
    stages.done("embed", encoder_passes=passes)
    proposals = drive(propose(stack, segmenter, detector, cache=cache))
    prompts = sum(len(sp.boxes) for sp in proposals.slices)
    stages.done("propose", prompts=prompts, encoder_passes=cache.stats.encoded)
    result = audit(stack, proposals)
    stages.done("audit", flagged=result.summary["flagged"])
    per_decision = review(stack, proposals, result, out, args.decisions)
    stages.done("review + save", seconds_per_decision=round(per_decision, 3))
    disk = sum(p.stat().st_size for p in (out / "embeddings").rglob("*.npy"))
    by_stage = {r["stage"]: r["seconds"] for r in stages.rows}
    encoder_s = by_stage["embed"] / n
    research = research_way(segmenter, stack, proposals, encoder_s)
    work = sum(by_stage[s] for s in ("embed", "propose", "audit"))
    report = {
        "slices": n,
        "source": source,
        "segmenter": segmenter.name,
        "detector": args.detector,
        "stages": stages.rows,
        "peak_rss_gb": peak_rss_gb(),
        "cache_disk_mb": round(disk / 2**20, 1),
        "cache_mb_per_slice": round(disk / 2**20 / n, 2),
        "encoder_passes": cache.stats.encoded,
        "per_slice_ms": {
            "encoder": 1000 * encoder_s,
            "propose (decoder, cached embeddings)": 1000 * by_stage["propose"] / n,
            "decoder per prompt": 1000 * by_stage["propose"] / max(prompts, 1),
            "audit": 1000 * by_stage["audit"] / n,
        },
        "encoder_share": by_stage["embed"] / work,
        "re_encoding_per_box": research,
        "re_encoding_ratio": (research["whole_study_s"] + by_stage["audit"]) / work,
    }
    out.mkdir(parents=True, exist_ok=True)
    (out / "report.json").write_text(json.dumps(report, indent=1, default=float))
    print(json.dumps({k: v for k, v in report.items() if k != "stages"}, indent=1, default=float))


if __name__ == "__main__":
    main()
