"""SAM forward for training batches: B prompts, each on its own image or on a shared one
(the stock decoder pairs one image with many prompts)."""

from __future__ import annotations

import torch
from torch import nn

from ..models.segmenter.model import TARGET_TOKENS, encoder_tail


def paired_predict_masks(decoder, image_embeddings, image_pe, sparse, dense):
    """``MaskDecoder.predict_masks`` for B (embedding, prompt) pairs: ``(B, 4, h, w)``, ``(B, 4)``."""
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    output_tokens = output_tokens.unsqueeze(0).expand(sparse.size(0), -1, -1)
    tokens = torch.cat((output_tokens, sparse), dim=1)
    src = image_embeddings + dense
    pos_src = image_pe.expand(src.shape[0], -1, -1, -1)
    b, c, h, w = src.shape
    hs, src = decoder.transformer(src, pos_src, tokens)
    iou_token_out = hs[:, 0, :]
    mask_tokens_out = hs[:, 1 : (1 + decoder.num_mask_tokens), :]
    src = src.transpose(1, 2).reshape(b, c, h, w)
    upscaled = decoder.output_upscaling(src)
    hyper_in = torch.stack(
        [mlp(mask_tokens_out[:, i, :]) for i, mlp in enumerate(decoder.output_hypernetworks_mlps)],
        dim=1,
    )
    b, c, h, w = upscaled.shape
    masks = (hyper_in @ upscaled.view(b, c, h * w)).view(b, -1, h, w)
    return masks, decoder.iou_prediction_head(iou_token_out)


class PromptedSam(nn.Module):
    """A trainable SAM step: (images, last-stage inputs, trunk features or embeddings, boxes,
    target tokens)
    -> logits, IoU.

    Wrapping the step in one module lets DistributedDataParallel see the
    whole forward pass.
    """

    def __init__(self, sam, inputs: str = "embedding") -> None:
        super().__init__()
        if inputs not in ("image", "stage", "trunk", "embedding"):
            raise ValueError(f"unknown step input {inputs!r}")
        self.sam = sam
        self.inputs = inputs

    def forward(
        self,
        inputs: torch.Tensor,
        boxes: torch.Tensor,
        tokens: torch.Tensor,
        points=None,
        image_index: torch.Tensor | None = None,
    ):
        """Logits and IoU of each prompt; prompt ``k`` is on image ``image_index[k]``
        (default: prompt ``k`` on image ``k``), so a slice is encoded once for all its prompts."""
        sam = self.sam
        if self.inputs == "image":
            embeddings = sam.image_encoder(inputs)
        elif self.inputs == "stage":  # tokens entering the encoder's last stage
            embeddings = encoder_tail(sam.image_encoder, inputs)
        elif self.inputs == "trunk":  # features entering the encoder's neck
            embeddings = sam.image_encoder.neck(inputs)
        else:
            embeddings = inputs
        if image_index is not None:
            embeddings = embeddings[image_index]
        sparse, dense = sam.prompt_encoder(points=points, boxes=boxes, masks=None)
        masks, iou = paired_predict_masks(
            sam.mask_decoder, embeddings, sam.prompt_encoder.get_dense_pe(), sparse, dense
        )
        index = torch.arange(masks.shape[0], device=masks.device)
        return masks[index, tokens], iou[index, tokens]


def token_indices(names: list[str], device) -> torch.Tensor:
    """Decoder output index of each target name."""
    return torch.tensor([TARGET_TOKENS[n] for n in names], dtype=torch.long, device=device)
