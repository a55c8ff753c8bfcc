"""The label audit on constructed cases with known answers."""

import csv
import json
import re

import numpy as np
import pytest
from scipy import ndimage as ndi

from napari_yolosam.audit import CASE_COLUMNS, REPORT_COLUMNS, AuditConfig, audit, save_audit
from napari_yolosam.audit.metrics import dice, hd95_and_msd, iou
from napari_yolosam.labelspec import LabelSpec
from napari_yolosam.proposals.core import Proposals, SliceProposal
from napari_yolosam.stack import Stack


def soft(mask: np.ndarray, sigma: float = 1.0) -> np.ndarray:
    """A probability map whose 0.5 level is ``mask``'s outline."""
    inside = ndi.distance_transform_edt(mask)
    outside = ndi.distance_transform_edt(~mask)
    return (1 / (1 + np.exp(-(inside - outside) / sigma))).astype(np.float32)


def proposal(
    label_prompted: np.ndarray,
    detected: np.ndarray | None = None,
    score: float = 0.8,
    myocardium: np.ndarray | None = None,
) -> SliceProposal:
    masks, sources, scores = [label_prompted], ["label"], [np.nan]
    if detected is not None:
        masks.append(detected)
        sources.append("detector")
        scores.append(score)
    union = np.any(masks, axis=0)
    prob = np.max([soft(m) if m.any() else np.zeros(m.shape, np.float32) for m in masks], axis=0)
    return SliceProposal(
        union,
        prob,
        np.zeros((len(masks), 4), np.float32),
        np.array(scores, np.float32),
        np.ones(len(masks), np.float32),
        sources,
        np.stack(masks),
        "ok",
        myocardium,
    )


def ring(shape=(96, 96), centre=(48, 48), r_in=18, r_out=28):
    rows, cols = np.mgrid[: shape[0], : shape[1]]
    r = np.hypot(rows - centre[0], cols - centre[1])
    angle = np.mod(np.arctan2(rows - centre[0], cols - centre[1]), 2 * np.pi)
    return (r >= r_in) & (r < r_out), r < r_in, angle


def base_slice(rng):
    """An LGE-like slice: dark myocardium ring, bright blood pool, bright scar sector."""
    myo, blood, angle = ring()
    scar = myo & (angle < np.pi / 3)
    image = rng.normal(60, 4, myo.shape).astype(np.float32)
    image[blood] = 150
    image[myo] = rng.normal(30, 4, int(myo.sum()))
    image[scar] = rng.normal(200, 6, int(scar.sum()))
    labels = np.zeros(myo.shape, np.uint8)
    labels[blood], labels[myo], labels[scar] = 1, 2, 3
    return image, labels, scar, myo, blood, angle


def make_case(modify):
    """A 3-slice case of identical slices; ``modify(labels, truth_scar, ...)`` edits the middle label."""
    rng = np.random.default_rng(0)
    images, labels, props = [], [], []
    for k in range(3):
        image, lab, scar, myo, blood, angle = base_slice(rng)
        extra = None
        if k == 1:
            lab, extra = modify(lab.copy(), scar, myo, blood, angle)
        images.append(image)
        labels.append(lab)
        own = np.isin(lab, (3, 4))
        comps, count = ndi.label(own, structure=np.ones((3, 3)))
        # SAM, prompted with each label component's box, draws the true scar inside that box
        supported = np.zeros_like(scar)
        for c in range(1, count + 1):
            rows, cols = np.nonzero(comps == c)
            box = np.zeros_like(scar)
            box[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1] = True
            supported |= scar & ndi.binary_dilation(box, iterations=3)
        props.append(proposal(supported, extra))
    stack = Stack(
        np.stack(images),
        np.stack(labels),
        names=[f"case_slice{k}.png" for k in range(3)],
        spec=LabelSpec.emidec(),
        spacing=(1.0, 1.0),
    )
    return stack, Proposals(stack.names, props, {"probabilities": True})


def test_metrics_by_hand():
    a = np.zeros((10, 10), bool)
    b = np.zeros((10, 10), bool)
    assert dice(a, b) == 1.0 and iou(a, b) == 1.0 and hd95_and_msd(a, b) == (0.0, 0.0)
    a[2:4, 2:4] = True
    assert dice(a, b) == 0.0 and np.isnan(hd95_and_msd(a, b)[0])
    assert dice(a, a) == 1.0 and hd95_and_msd(a, a) == (0.0, 0.0)
    b[2:4, 6:8] = True
    assert dice(a, b) == 0.0 and iou(a, b) == 0.0
    hd, msd = hd95_and_msd(a, b)
    assert hd == pytest.approx(4.0) and msd == pytest.approx(3.5)  # edge pixels 3 or 4 apart
    hd_mm, _ = hd95_and_msd(a, b, spacing=(1.0, 0.5))
    assert hd_mm == pytest.approx(2.0)
    c = np.zeros((10, 10), bool)
    c[2:4, 2:6] = True
    assert dice(a, c) == pytest.approx(2 * 4 / 12) and iou(a, c) == pytest.approx(0.5)


def _spurious(lab, scar, myo, blood, angle):
    lab[myo & (angle > 1.2 * np.pi) & (angle < 1.35 * np.pi)] = (
        3  # an unenhanced patch of healthy wall
    )
    return lab, None


def _outside(lab, scar, myo, blood, angle):
    rows, cols = np.mgrid[:96, :96]
    lab[(np.hypot(rows - 10, cols - 10) < 8)] = 3  # a blob in the corner: outside the myocardium
    return lab, None


def _missed(lab, scar, myo, blood, angle):
    other = myo & (angle > np.pi) & (angle < 1.4 * np.pi)
    return lab, other


def _over(lab, scar, myo, blood, angle):
    lab[myo & (angle < np.pi)] = 3
    return lab, None


def _under(lab, scar, myo, blood, angle):
    lab[scar & (angle > np.pi / 9)] = 2
    return lab, None


def _not_enhanced(lab, scar, myo, blood, angle):
    lab[scar] = 2
    lab[myo & (angle > np.pi) & (angle < 1.3 * np.pi)] = 3
    return lab, None


def _specks(lab, scar, myo, blood, angle):
    r, c = np.argwhere(myo & (angle > 1.2 * np.pi))[0]
    lab[r, c : c + 2] = 3  # a 2-pixel speck
    return lab, None


@pytest.mark.parametrize(
    "modify, issue",
    [
        (_spurious, "spurious_scar"),
        (_outside, "outside_myocardium"),
        (_missed, "missed_scar"),
        (_over, "over_segmented"),
        (_under, "under_segmented"),
        (_not_enhanced, "not_enhanced"),
    ],
)
def test_each_issue_type(modify, issue):
    stack, proposals = make_case(modify)
    result = audit(stack, proposals)
    rows = result.rows
    assert rows[1]["flag"] and rows[1]["issue"] == issue, rows[1]["evidence"]
    if issue in ("spurious_scar", "missed_scar"):  # each component with size and confidence
        assert re.search(r"\d+ px, .*(probability there|confidence) 0\.\d\d", rows[1]["evidence"])
    assert rows[1]["quality"] < min(rows[0]["quality"], rows[2]["quality"]) or issue in (
        "outside_myocardium",
        "not_enhanced",
    )
    assert not rows[0]["flag"] and rows[0]["issue"] == "ok"
    assert result.ranked()[0]["image"] == "case_slice1.png" or issue in (
        "outside_myocardium",
        "not_enhanced",
    )


def _holes(lab, scar, myo, blood, angle):
    r, c = np.argwhere(scar & (angle > np.pi / 6))[
        len(np.argwhere(scar & (angle > np.pi / 6))) // 2
    ]
    lab[r, c] = 2  # one unlabelled pixel inside the scar
    return lab, None


def test_specks_holes_and_consistency():
    stack, proposals = make_case(_specks)
    assert audit(stack, proposals).rows[1]["specks"] >= 1
    stack, proposals = make_case(_holes)
    assert audit(stack, proposals).rows[1]["holes"] == 1
    rng = np.random.default_rng(0)
    image, lab, scar, myo, blood, angle = base_slice(rng)
    empty = lab.copy()
    empty[scar] = 2
    stack = Stack(
        np.stack([image] * 3),
        np.stack([lab, empty, lab]),
        names=[f"c_slice{k}.png" for k in range(3)],
        spec=LabelSpec.emidec(),
    )
    props = Proposals(
        stack.names, [proposal(scar), proposal(np.zeros_like(scar)), proposal(scar)], {}
    )
    rows = audit(stack, props).rows
    assert rows[1]["consistency"] == "vanishes"


def test_continuity_by_hand():
    from napari_yolosam.audit.checks import continuity, neighbours_with_scar

    # case a: scar on slices 1-3, slice 2 left empty; case b: no scar but an isolated label
    areas = np.array([0, 50, 0, 50, 0, 0, 0, 30, 0, 0], float)
    cases = ["a"] * 5 + ["b"] * 5
    count, k = neighbours_with_scar(areas, cases, 20)
    assert count.tolist() == [1, 2, 2, 2, 1, 1, 2, 2, 2, 1]
    assert k.tolist() == [1, 0, 2, 0, 1, 0, 1, 0, 1, 0]
    scores, rates, with_scar = continuity(areas, cases, 20)
    assert with_scar.tolist() == k.tolist()
    # P(label) leaving the slice out, uniform prior: 3 labelled of 10
    base_labelled, base_empty = (2 + 1) / (9 + 2), (3 + 1) / (9 + 2)
    # k = 2: only slice 2 (empty); leave-one-out leaves no other slice: prior 1/2
    assert scores[2] == pytest.approx((1 - 0.5) / (1 - base_empty))
    # k = 0: slices 1, 3, 5, 7, 9; labelled 1, 3, 7. Slice 1 (labelled): others 2 of 4
    assert scores[1] == 1.0, "(2 + 1) / (4 + 2) = 0.5 is above P(label): no penalty"
    empty_k0 = 1 - (3 + 1) / (4 + 2)  # slice 5, empty: others 3 of 4 labelled
    assert scores[5] == pytest.approx(empty_k0 / (1 - base_empty))
    # k = 1: slices 0, 4, 6, 8, all empty: an empty slice is expected there
    assert scores[0] == 1.0
    assert rates == {0: 3 / 5, 1: 0.0, 2: 0.0}
    # a lone label where isolated slices are empty: below 1
    lone = np.array([0, 0, 0, 30, 0, 0, 0] + [0, 40, 40, 40, 0] * 3, float)
    lone_cases = ["x"] * 7 + [c for c in "abc" for _ in range(5)]
    assert continuity(lone, lone_cases, 20)[0][3] < 0.5
    assert base_labelled < 0.5
    assert continuity(np.array([10.0]), ["x"], 20)[0].tolist() == [1.0], "no neighbours"


@pytest.mark.parametrize("offset", [0, 3], ids=["agreeing models", "weak models"])
def test_slices_that_break_the_run_of_scar_rank_low(offset):
    """A slice left empty in a run of scar slices and a lone label in a scar-free case rank
    below the slices whose labels follow the data set's own continuity, also where weak models
    (proposals a few pixels off) agree poorly with every label: agreement is rated against
    that common level, so it ranks on one scale with the model-free evidence."""
    rng = np.random.default_rng(3)
    images, labels, props, names = [], [], [], []
    for c in range(10):
        for k in range(5):
            image, lab, scar, myo, blood, angle = base_slice(rng)
            has = c < 6 and 1 <= k <= 3  # cases 0-5: scar on slices 1-3; cases 6-9: none
            if not has or (c, k) == (0, 2):  # case 0, slice 2: the label misses the scar
                lab[scar] = 2
            if (c, k) == (9, 2):  # a lone label in a scar-free case
                lab[scar] = 3
            images.append(image)
            labels.append(lab)
            props.append(proposal(np.roll(np.isin(lab, (3, 4)), offset, axis=(0, 1))))
            names.append(f"c{c}_slice{k:03d}.png")
    stack = Stack(np.stack(images), np.stack(labels), names=names, spec=LabelSpec.emidec())
    result = audit(stack, Proposals(names, props, {"probabilities": True}))
    rows = {r["image"]: r for r in result.rows}
    assert result.ranked()[0]["image"] == "c0_slice002.png"
    missed, lone = rows["c0_slice002.png"], rows["c9_slice002.png"]
    assert missed["issue"] == "inconsistent_slices" and missed["flag"] and lone["flag"]
    assert all(
        r["quality"] > lone["quality"] for r in result.rows if r["case"] not in ("c0", "c9")
    )
    if not offset:
        assert not any(r["flag"] for r in result.rows if r["case"] not in ("c0", "c9"))
    else:
        assert result.summary["agreement_power"] < 1
        assert max(r["agreement"] for r in result.rows if r["label_area"]) < 0.5
    assert result.summary["continuity"]["P(label | 2 scar-bearing neighbours)"] > 0.7


def test_agreement_rated_against_the_models_common_level(phantom):
    """With weak models every label agrees poorly with its proposal: quality rates agreement
    against that common level, so flags go to the slices far below it, not to all of them, and
    the order by agreement stays the same."""
    scar = np.isin(phantom.truth, (3, 4))
    with_scar = [i for i in range(len(scar)) if scar[i].sum() > 30]
    weak = [np.roll(s, 3, axis=(0, 1)) for s in scar]  # every proposal off by a few pixels
    worst = with_scar[0]
    weak[worst] = np.roll(scar[worst], 40, axis=1)  # one proposal nowhere near its label
    props = Proposals(phantom.stack.names, [proposal(w) for w in weak], {"probabilities": True})
    relative = audit(phantom.stack, props)
    absolute = audit(phantom.stack, props, config=AuditConfig(relative_flag=0))
    typical = relative.summary["median_labelled_agreement"]
    power = relative.summary["agreement_power"]
    assert typical < 0.5 and typical**power == pytest.approx(0.5), "the common level scores 0.5"
    assert absolute.summary["agreement_power"] == 1.0
    for result, p in ((relative, power), (absolute, 1.0)):
        assert result.summary["flag_threshold"] == 0.5
        for r in result.rows:
            assert r["quality"] == pytest.approx(min(r["agreement"] ** p, r["continuity"]))
    assert "retrain" in relative.summary["note"] and "retrain" in absolute.summary["note"]
    assert (
        relative.rows[worst]["flag"]
        and relative.ranked()[0]["image"] == relative.rows[worst]["image"]
    )
    assert 0 < relative.summary["flagged"] < absolute.summary["flagged"]
    by_agreement = sorted(relative.rows, key=lambda r: r["agreement"])
    assert [r["image"] for r in by_agreement] == [
        r["image"] for r in sorted(absolute.rows, key=lambda r: r["agreement"])
    ]
    good = Proposals(phantom.stack.names, [proposal(s) for s in scar], {"probabilities": True})
    clean = audit(phantom.stack.with_labels(phantom.truth), good).summary
    assert clean["median_labelled_agreement"] >= 0.5, "models that agree: agreement as it is"
    assert clean["agreement_power"] == 1.0 and not clean["note"]


def test_bias_on_uniformly_dilated_labels(phantom):
    truth = phantom.truth
    scar = np.isin(truth, (3, 4))
    dilated = truth.copy()
    grown = np.stack([ndi.binary_dilation(s, iterations=2) for s in scar]) & np.isin(
        truth, (2, 3, 4)
    )
    dilated[grown] = 3
    stack = phantom.stack.with_labels(dilated)
    props = Proposals(stack.names, [proposal(s) for s in scar], {"probabilities": True})
    result = audit(stack, props)
    bias = result.summary["bias"]
    assert (
        bias["median_relative_area_difference"] > 0.2
        and bias["meaning"] == "labels larger than proposals"
    )
    assert bias["threshold"] < 0.5 and bias["corrected"], "the shift explains the dilation"
    assert bias["median_dice_at_fitted"] > bias["median_dice_at_0.5"]
    over = [r for r in result.rows if r["issue"] == "over_segmented"]
    assert len(over) <= 1, "a data-set-wide bias is reported once, not flagged on every slice"
    # switched off, the bias is still measured and reported, but nothing is shifted
    plain = audit(stack, props, config=AuditConfig(bias_correction=False)).summary["bias"]
    assert plain["median_relative_area_difference"] == bias["median_relative_area_difference"]
    assert plain["meaning"] == "labels larger than proposals"
    assert plain["threshold"] == 0.5 and not plain["corrected"]
    assert plain["fitted_threshold"] == bias["fitted_threshold"]
    assert plain["correction"].startswith("none: switched off (the proposals at")


def test_a_size_difference_no_threshold_explains_is_not_corrected(phantom):
    truth = phantom.truth
    scar = np.isin(truth, (3, 4))
    slices = []
    for s in scar:  # proposals larger than the labels, surest away from them
        wide = ndi.binary_dilation(s, iterations=6) & ~s
        prob = np.where(s, 0.6, 0.0) + np.where(wide, 0.95, 0.0)
        slices.append(SliceProposal.of_mask(prob > 0.5, prob))
    result = audit(phantom.stack, Proposals(phantom.stack.names, slices, {"probabilities": True}))
    bias = result.summary["bias"]
    assert bias["fitted_threshold"] > 0.5 and bias["meaning"] == "labels smaller than proposals"
    assert bias["median_dice_at_fitted"] < bias["median_dice_at_0.5"]
    assert not bias["corrected"] and bias["threshold"] == 0.5, "the shift would hide, not explain"
    assert "not only in size" in bias["correction"]
    sized = [r for r in result.rows if r["issue"] in ("over_segmented", "under_segmented")]
    assert len(sized) <= 1, "the common size difference is no slice's issue"
    scored = [r for r in result.rows if r["label_area"] > 0]
    assert all(r["corrected_dice"] == pytest.approx(r["dice"]) for r in scored)


def test_corrupted_slices_rank_below_clean(phantom):
    truth_scar = np.isin(phantom.truth, (3, 4))
    props = Proposals(
        phantom.stack.names, [proposal(s) for s in truth_scar], {"probabilities": True}
    )
    result = audit(phantom.stack, props)
    quality = np.array([r["quality"] for r in result.rows])
    corrupted = phantom.corrupted
    assert corrupted.any() and (~corrupted).any()
    assert quality[corrupted].mean() < quality[~corrupted].mean()
    worst = {r["image"] for r in result.ranked()[: int(corrupted.sum())]}
    hits = sum(phantom.stack.names[i] in worst for i in np.flatnonzero(corrupted))
    assert hits >= 0.75 * corrupted.sum()


def test_masks_only_proposals_and_cli(phantom_folder, phantom, tmp_path, capsys):
    from PIL import Image

    from napari_yolosam.cli import main

    other = tmp_path / "nnunet"
    other.mkdir()
    for name, s in zip(phantom.stack.names, np.isin(phantom.truth, (3, 4)), strict=True):
        Image.fromarray((s * 255).astype(np.uint8)).save(other / name)
    assert (
        main(
            [
                "audit",
                "--images",
                str(phantom_folder),
                "--proposals",
                str(other),
                "--out",
                str(tmp_path / "audit"),
            ]
        )
        == 0
    )
    assert "masks alone" in capsys.readouterr().out
    empty = Proposals(phantom.stack.names, [proposal(np.zeros_like(s)) for s in phantom.truth], {})
    assert "no slice has a proposal" in audit(phantom.stack, empty).summary["note"]
    rows = list(csv.DictReader(open(tmp_path / "audit/report.csv")))
    assert set(
        [
            "image",
            "case",
            "label_area",
            "proposal_area",
            "dice",
            "hd95",
            "quality",
            "flag",
            "issue",
        ]
    ) <= set(rows[0])
    assert list(rows[0]) == list(REPORT_COLUMNS)
    assert {r["flag"] for r in rows} <= {"true", "false"}
    summary = json.loads((tmp_path / "audit/report.json").read_text())
    assert summary["probabilities"] is False and "bias" in summary
    assert (tmp_path / "audit/overview.png").stat().st_size > 10000
    assert (tmp_path / "audit/cases.csv").exists()
    assert (
        main(
            [
                "audit",
                "--images",
                str(phantom_folder),
                "--segmenter",
                "tiny",
                "--detector",
                "none",
                "--out",
                str(tmp_path / "audit2"),
                "--no-bias-correction",
            ]
        )
        == 0
    )
    bias = json.loads((tmp_path / "audit2/report.json").read_text())["bias"]
    assert bias["correction"].startswith("none: switched off") and not bias["corrected"]


def test_report_files(phantom, tmp_path):
    truth_scar = np.isin(phantom.truth, (3, 4))
    props = Proposals(
        phantom.stack.names, [proposal(s) for s in truth_scar], {"probabilities": True}
    )
    result = audit(phantom.stack, props)
    out = tmp_path / "audit"
    save_audit(result, phantom.stack, props.masks(), out)
    assert result.issue_map.shape == phantom.stack.shape and result.issue_map.dtype == bool
    assert sorted(p.name for p in out.iterdir()) == [
        ".yolosam-output.json",  # the manifest: this project wrote the folder
        "cases.csv",
        "overview.png",
        "report.csv",
        "report.json",
    ]
    cases = list(csv.DictReader(open(out / "cases.csv")))
    assert list(cases[0]) == list(CASE_COLUMNS)
    assert [c["case"] for c in cases] == list(dict.fromkeys(phantom.stack.cases))


def test_per_case_agreement_by_hand():
    from napari_yolosam.audit.cases import case_rows

    scar = np.zeros((3, 10, 10), bool)
    proposed = np.zeros((3, 10, 10), bool)
    scar[0, :2, :5] = True  # case a, slice 0: label 10 px, proposal 5 of them
    proposed[0, :1, :5] = True
    proposed[1, 5:, 5:] = True  # case a, slice 1: proposal only (25 px)
    scar[2, :4, :4] = proposed[2, :4, :4] = True  # case b: identical
    rows = [
        {"case": c, "image": f"{c}{k}", "quality": q, "flag": q < 0.5, "hd95": h, "units": "px"}
        for c, k, q, h in (("a", 0, 0.6, 1.0), ("a", 1, 0.0, np.nan), ("b", 0, 1.0, 0.0))
    ]
    a, b = case_rows(rows, scar, proposed)
    assert (a["slices"], a["labelled_slices"], a["flagged"]) == (2, 1, 1)
    assert (a["label_area"], a["proposal_area"], a["area_diff"]) == (10, 30, -20)
    assert a["dice"] == pytest.approx(2 * 5 / 40) and a["iou"] == pytest.approx(5 / 35)
    assert a["relative_area_diff"] == pytest.approx(-20 / 20)
    assert a["median_hd95"] == 1.0 and a["worst_image"] == "a1" and a["min_quality"] == 0.0
    assert b["dice"] == b["iou"] == 1.0 and b["area_diff"] == 0
    assert case_rows(rows[2:], scar[2:] & False, proposed[2:] & False)[0]["dice"] == 1.0
