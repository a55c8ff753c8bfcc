"""Fixed napari layer names: widgets find their layers by these, and only these."""

IMAGE = "LGE image"
LABELS = "labels"
TRUTH = "phantom truth"

#: Key under which a layer's metadata carries the stack description.
METADATA_KEY = "yolosam"
