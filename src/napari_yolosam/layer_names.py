"""Fixed napari layer names: widgets find their layers by these, and only these."""

IMAGE = "LGE image"
LABELS = "labels"
TRUTH = "phantom truth"

#: Key under which a layer's metadata carries the stack description.
METADATA_KEY = "yolosam"

PROPOSAL = "scar proposal"
#: Every phase of a cine series (a time axis of its own); the stack's layers hold one phase.
PHASES = "all phases"
PROBABILITY = "scar probability"
MYOCARDIUM_PROPOSAL = "myocardium proposal"
SEMIAUTO_PREFIX = "semi-auto: "
#: Drawn by the user: a labels layer of remote myocardium (n-SD), a labels
#: layer of myocardium (instead of the labels'), and FWHM seed points.
REMOTE = "remote myocardium"
MYOCARDIUM_DRAWN = "myocardium"
FWHM_SEEDS = "FWHM seeds"


def semiauto_layer(method: str, n: float | None = None) -> str:
    """Layer name of a semi-automatic result (``semi-auto: nsd 5``)."""
    return SEMIAUTO_PREFIX + (f"{method} {n:g}" if method == "nsd" and n is not None else method)
