"""The fixed set of label issue types, in the order that picks a slice's primary issue."""

ISSUE_TYPES: dict[str, str] = {
    "outside_myocardium": "labelled scar lies outside the myocardium (labelled, or proposed when labels carry none)",
    "not_enhanced": "labelled scar is not brighter than remote myocardium",
    "spurious_scar": "a label component that the segmenter, prompted with that component's own box, does not support",
    "missed_scar": "the detector finds scar where the label has none",
    "over_segmented": "the label is larger than the proposal, beyond the data set's bias",
    "under_segmented": "the label is smaller than the proposal, beyond the data set's bias",
    "inconsistent_slices": "scar appears or vanishes abruptly between neighbouring slices of a case, against the data set's own continuity",
    "boundary": "the label's outline disagrees with the proposal's although the areas agree",
    "specks": "components below the minimum size",
    "holes": "holes inside labelled scar",
    "model_found_nothing": "the models proposed no scar where the label has some: no evidence either way (never flags a slice alone)",
}

#: Issues that flag a slice whatever its quality score.
HARD_ISSUES = ("outside_myocardium", "spurious_scar", "missed_scar", "not_enhanced")
