"""Audit speed with given proposals: 1,000 slices of 256x256 (phantom, 30% corrupted labels).

.venv/bin/python benchmarks/audit_speed.py [--slices 1000] [--rows OUT.json] [--compare REF.json]

``--rows`` keeps the report's rows; ``--compare`` checks this run's rows against
such a file (every column, floats to 1e-6): run the script once with
``PYTHONPATH=<older checkout>/src --rows ref.json`` and once with ``--compare ref.json``
to show a faster audit gives the same report.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi


def main() -> None:
    from napari_yolosam.audit import audit
    from napari_yolosam.phantom import make_phantom
    from napari_yolosam.proposals import Proposals, SliceProposal

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--slices", type=int, default=1000)
    parser.add_argument("--no-cleanlab", action="store_true")
    parser.add_argument("--rows", help="write the report's rows to this JSON file")
    parser.add_argument("--compare", help="compare the rows with this JSON file (1e-6)")
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
        slices.append(SliceProposal.of_mask(mask, prob))
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
    if args.rows:
        import json

        Path(args.rows).write_text(json.dumps(result.rows, default=float))
    if args.compare:
        import json

        differences = same_rows(result.rows, json.loads(Path(args.compare).read_text()))
        print(f"compared with {args.compare}: {len(differences)} difference(s)")
        for line in differences[:20]:
            print("  " + line)
    corrupted = phantom.corrupted
    print("| slices | cleanlab | seconds | ms/slice | flagged | mean quality corrupted / clean |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {len(phantom.stack)} | {'no' if args.no_cleanlab else 'yes'} | {seconds:.1f} | "
        f"{1000 * seconds / len(phantom.stack):.1f} | {result.summary['flagged']} | "
        f"{quality[corrupted].mean():.2f} / {quality[~corrupted].mean():.2f} |"
    )


def same_rows(rows: list[dict], reference: list[dict], tolerance: float = 1e-6) -> list[str]:
    """Differences between two audits' rows (empty when the reports agree)."""
    import math

    found = [] if len(rows) == len(reference) else [f"{len(rows)} rows, {len(reference)} before"]
    for row, ref in zip(rows, reference, strict=False):
        for key, old in ref.items():
            new = row.get(key)
            if isinstance(old, float) and isinstance(new, float):
                if math.isnan(old) and math.isnan(new):
                    continue
                if abs(old - new) <= tolerance:
                    continue
            elif old == new:
                continue
            found.append(f"{ref['image']} {key}: {old!r} before, {new!r} now")
    return found


if __name__ == "__main__":
    main()
