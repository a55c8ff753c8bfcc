"""``python -m napari_yolosam.cli``: the same as ``yolosam``."""

import sys

from . import main

sys.exit(main())
