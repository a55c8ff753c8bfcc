"""npe2 sample data: a phantom stack with noisy labels (generated, no network)."""

from __future__ import annotations

from ..phantom.make import make_phantom
from .layers import stack_to_layer_data


def phantom_sample() -> list[tuple]:
    """Two phantom cases of 8 slices, 30% of labels corrupted; the truth as a hidden layer."""
    phantom = make_phantom(n_slices=8, n_cases=2, corrupt=0.3, seed=2025)
    return stack_to_layer_data(phantom.stack, truth=phantom.truth)
