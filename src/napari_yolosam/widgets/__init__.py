"""napari dock widgets: thin Qt faces over the Qt-free core."""
