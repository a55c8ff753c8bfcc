"""The viewer's colours, from Okabe and Ito's palette: each pair an annotator must tell
apart (proposal only against the myocardium, label only against proposal only, scar
against both) stays apart under protanopia and deuteranopia too (tests/test_palette.py)."""

from __future__ import annotations

from .labelspec import LabelSpec

BLOOD_POOL = "#56b4e9"  # sky blue
MYOCARDIUM = "#009e73"  # bluish green
SCAR = "#d55e00"  # vermillion
NO_REFLOW = "#cc79a7"  # reddish purple
OTHER = "#999999"  # a value the specification does not name
#: The disagreement layer: where only the label, or only the proposal, has scar.
LABEL_ONLY = "#f0e442"  # yellow
PROPOSAL_ONLY = "#0072b2"  # blue


def label_colours(spec: LabelSpec) -> dict:
    """A labels layer's colours (napari ``colormap`` mapping) for ``spec``'s values."""
    colours: dict = {None: OTHER, 0: "transparent"}
    for values, colour in (
        (spec.blood_pool, BLOOD_POOL),
        (spec.myocardium, MYOCARDIUM),
        (spec.scar, SCAR),
        (spec.no_reflow, NO_REFLOW),
    ):
        colours.update({int(v): colour for v in values})  # later roles win: scar over wall
    if spec.mode == "binary":
        colours[int(spec.binary_value)] = SCAR
    return colours
