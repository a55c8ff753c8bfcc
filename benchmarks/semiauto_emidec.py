"""n-SD, FWHM and Otsu inside the expert myocardium of EMIDEC dev, against the expert scar.

Prints a Markdown table: mean Dice over slices with expert scar (all
patients), mean Dice over infarct patients, and the signed scar volume bias
(method minus expert, summed per patient, pixels; spacing is lost in this
derivative) as the median over infarct patients and in % of the expert volume.

    .venv/bin/python benchmarks/semiauto_emidec.py [--data ../shared/data/emidec_dev]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np


def main() -> None:
    from napari_yolosam.io import read_stack
    from napari_yolosam.semiauto import semiauto_slice

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument(
        "--data", default=str(Path(__file__).resolve().parents[2] / "shared/data/emidec_dev")
    )
    args = parser.parse_args()
    stack = read_stack(args.data)
    scar, myo = stack.scar(), stack.myocardium()
    blood = stack.spec.blood_pool_mask(stack.labels)
    methods = {
        "2SD": ("nsd", 2),
        "3SD": ("nsd", 3),
        "5SD": ("nsd", 5),
        "8SD": ("nsd", 8),
        "FWHM": ("fwhm", None),
        "Otsu": ("otsu", None),
    }
    cases = sorted(set(stack.cases))
    infarct = [c for c in cases if "_P" in c]
    print(
        f"EMIDEC dev: {len(stack)} slices, {len(cases)} patients ({len(infarct)} with infarction); "
        "remote = darkest of 6 myocardial sectors; no clean-up\n"
    )
    print(
        "| method | Dice, slices with scar | Dice per infarct patient (mean) | volume bias, median px | "
        "volume bias, median % | false-positive px per normal patient (median) |"
    )
    print("|---|---|---|---|---|---|")
    for label, (method, n) in methods.items():
        pred = np.zeros_like(scar)
        for i in range(len(stack)):
            if myo[i].any():
                pred[i] = semiauto_slice(stack.images[i], myo[i], method, n or 5, blood[i]).mask
        slice_dice = [
            2 * (pred[i] & scar[i]).sum() / (pred[i].sum() + scar[i].sum())
            for i in range(len(stack))
            if scar[i].any()
        ]
        patient_dice, bias_px, bias_pct, normal_fp = [], [], [], []
        for c in cases:
            idx = [i for i, cc in enumerate(stack.cases) if cc == c]
            p, t = pred[idx], scar[idx]
            if c in infarct and t.any():
                patient_dice.append(2 * (p & t).sum() / (p.sum() + t.sum()))
                bias_px.append(int(p.sum()) - int(t.sum()))
                bias_pct.append(100 * (p.sum() - t.sum()) / t.sum())
            elif c not in infarct:
                normal_fp.append(int(p.sum()))
        print(
            f"| {label} | {np.mean(slice_dice):.3f} | {np.mean(patient_dice):.3f} | {np.median(bias_px):+.0f} | "
            f"{np.median(bias_pct):+.0f}% | {np.median(normal_fp):.0f} |"
        )


if __name__ == "__main__":
    main()
