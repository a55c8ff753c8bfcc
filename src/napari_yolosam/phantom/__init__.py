"""A synthetic LGE data set with known truth and semi-automatic label noise."""

from .io import save_phantom
from .make import (
    CORRUPTIONS,
    INTENSITY,
    Corruption,
    Phantom,
    ScarSector,
    corrupt_label,
    make_phantom,
    make_slice,
    random_sectors,
)

__all__ = [
    "CORRUPTIONS",
    "INTENSITY",
    "Corruption",
    "Phantom",
    "ScarSector",
    "corrupt_label",
    "make_phantom",
    "make_slice",
    "random_sectors",
    "save_phantom",
]
