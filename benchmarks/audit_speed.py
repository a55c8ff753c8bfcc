"""Audit speed with given proposals: 1,000 slices of 256x256 (phantom, 30% corrupted labels).

.venv/bin/python benchmarks/audit_speed.py [--slices 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
from scipy import ndimage as ndi


def main() -> None:
    from napari_yolosam.audit import audit
    from napari_yolosam.phantom.make import make_phantom
    from napari_yolosam.proposals.core import Proposals, SliceProposal

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--no-cleanlab", action="store_true")
    args = parser.parse_args()
    per_case = 10
    phantom = make_phantom(
        n_slices=per_case, n_cases=args.slices // per_case, shape=(256, 256), corrupt=0.3, seed=0
    )
    truth = np.isin(phantom.truth, (3, 4))
    slices = []
    for mask in truth:  # a proposal equal to the truth, with soft edges
        prob = 1 / (
            1 + np.exp(-(ndi.distance_transform_edt(mask) - ndi.distance_transform_edt(~mask)))
        )
        slices.append(
            SliceProposal(
                mask,
                prob.astype(np.float32),
                np.zeros((1, 4), np.float32),
                np.array([np.nan], np.float32),
                np.ones(1, np.float32),
                ["label"],
                mask[None],
                "ok",
            )
        )
    proposals = Proposals(phantom.stack.names, slices, {"probabilities": True})
    from napari_yolosam.audit import AuditConfig

    config = AuditConfig(cleanlab=not args.no_cleanlab)
    audit(
        phantom.stack.subset(range(10)),
        Proposals(proposals.names[:10], slices[:10], proposals.settings),
        config=config,
    )
    start = time.perf_counter()
    result = audit(phantom.stack, proposals, config=config)
    seconds = time.perf_counter() - start
    quality = np.array([r["quality"] for r in result.rows])
    corrupted = phantom.corrupted
    print("| slices | cleanlab | seconds | ms/slice | flagged | mean quality corrupted / clean |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(phantom.stack)} | {'no' if args.no_cleanlab else 'yes'} | {seconds:.1f} | "
        f"{1000 * seconds / len(phantom.stack):.1f} | {result.summary['flagged']} | "
        f"{quality[corrupted].mean():.2f} / {quality[~corrupted].mean():.2f} |"
    )


if __name__ == "__main__":
    main()
