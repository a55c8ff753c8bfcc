"""Writing an audit: ``report.csv`` (one row per slice), ``cases.csv`` (one per case),
``report.json`` and ``overview.png``."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from ..io.atomic import atomic_write, atomic_write_text, csv_text
from ..io.manifest import Provenance
from ..io.outputs import check_output, staged_folder
from ..stack import Stack
from .cases import CASE_COLUMNS
from .core import REPORT_COLUMNS, AuditResult


def save_audit(
    result: AuditResult,
    stack: Stack,
    proposal_masks: np.ndarray,
    out: str | Path,
    thumbnails: int = 8,
    overwrite: bool = False,
) -> Path:
    """Write ``report.csv``, ``cases.csv``, ``report.json`` and ``overview.png`` to ``out``,
    built beside it and moved into place when complete; an existing ``out`` is replaced
    only with ``overwrite``, and never where it would hold the stack's data."""
    check_output(out, (stack.source, stack.label_source), overwrite)
    made = Provenance("audit", (str(stack.source), str(stack.label_source or "")))
    with staged_folder(out, made) as folder:
        _write_audit(result, stack, proposal_masks, folder, thumbnails)
    return Path(out)


def _write_audit(result, stack, proposal_masks, out: Path, thumbnails: int) -> None:
    atomic_write_text(out / "report.csv", _csv(result.rows, REPORT_COLUMNS))
    atomic_write_text(out / "cases.csv", _csv(result.cases, CASE_COLUMNS))
    summary = {**result.summary, "worst": [r["image"] for r in result.ranked()[:20]]}
    atomic_write_text(out / "report.json", json.dumps(summary, indent=1, default=_json_default))
    write_overview(result, stack, proposal_masks, out / "overview.png", thumbnails)


def write_overview(result, stack, proposal_masks, path: Path, thumbnails: int = 8) -> Path:
    """``overview.png``: the quality histogram and the worst slices (label red, proposal cyan)."""
    return atomic_write(
        path, lambda tmp: _overview(result, stack, proposal_masks, tmp, thumbnails)
    )


def _csv(rows: list[dict], columns: tuple[str, ...]) -> str:
    return csv_text(rows, columns, digits=5, blank_nonfinite=True)


def _json_default(value):
    if isinstance(value, (np.floating, np.integer)):
        return value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return str(value)


def _overview(
    result: AuditResult, stack: Stack, proposal_masks: np.ndarray, path: Path, count: int
) -> None:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    worst = result.ranked()[:count]
    index = {name: i for i, name in enumerate(stack.names)}
    cols = max(4, min(count, 4))
    rows = 1 + int(np.ceil(len(worst) / cols))
    fig = Figure(figsize=(3 * cols, 3 * rows), dpi=90)
    ax = fig.add_subplot(rows, 1, 1)
    quality = [r["quality"] for r in result.rows]
    flagged = [r["quality"] for r in result.rows if r["flag"]]
    ax.hist(quality, bins=30, range=(0, 1), color="0.6", label="all slices")
    ax.hist(flagged, bins=30, range=(0, 1), color="tab:red", label="flagged")
    bias = result.summary["bias"]
    ax.set_title(
        f"label quality (lower = more likely wrong): {len(flagged)} of {len(quality)} flagged; "
        f"bias {bias['median_relative_area_difference']:+.0%} ({bias['meaning']})"
        if np.isfinite(bias["median_relative_area_difference"] or np.nan)
        else f"label quality: {len(flagged)} of {len(quality)} flagged"
    )
    at = result.summary["flag_threshold"]
    ax.axvline(at, color="tab:red", linestyle="--", linewidth=1, label=f"flag threshold {at:.2f}")
    ax.set_xlabel("quality")
    ax.legend()
    for k, row in enumerate(worst):
        i = index[row["image"]]
        a = fig.add_subplot(rows, cols, cols + k + 1)
        image = stack.crop(i, stack.images[i])
        label = stack.crop(i, stack.scar()[i])
        proposal = stack.crop(i, proposal_masks[i])
        focus = label | proposal
        if focus.any():
            r, c = np.nonzero(focus)
            half = max(24, int(max(np.ptp(r), np.ptp(c)) * 0.8))
            cy, cx = int(r.mean()), int(c.mean())
            window = (slice(max(cy - half, 0), cy + half), slice(max(cx - half, 0), cx + half))
        else:
            window = (slice(None), slice(None))
        a.imshow(image[window], cmap="gray")
        outline(a, label[window], "red")
        outline(a, proposal[window], "cyan")
        a.set_title(f"{row['image']}\nq={row['quality']:.2f} {row['issue']}", fontsize=8)
        a.axis("off")
    fig.text(0.01, 0.005, "red: label, cyan: proposal", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, format="png")


def outline(axes, mask: np.ndarray, colour: str) -> None:
    """Draw ``mask``'s outline on ``axes`` (padded by a pixel: closed at the edges, and
    drawable for slices of any size, one pixel included)."""
    if not mask.any():
        return
    h, w = mask.shape
    padded = np.pad(mask.astype(float), 1)
    x, y = np.arange(-1, w + 1), np.arange(-1, h + 1)
    axes.contour(x, y, padded, levels=[0.5], colors=colour, linewidths=1)
