"""SAM's mask decoder for interactive prompting, with the prompt-independent work done once.

For one image embedding and any prompt, these parts of the stock decoder
never change: the dense positional encoding, the "no mask" dense embedding
added to the image, and three of the four image-side projections of the
first two-way attention block (keys and values of token-to-image attention,
queries of image-to-token attention). :class:`PreparedEmbedding` computes
them once per slice; :func:`predict_target` then runs the rest for K
prompts and only the requested output token. The stride-2 transposed
convolutions of the upscaler run as matrix products (they are per-pixel
linear maps). Outputs equal the stock ``MaskDecoder.predict_masks`` up to
float rounding (tested).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F


def _heads(x: torch.Tensor, n: int) -> torch.Tensor:
    b, t, c = x.shape
    return x.reshape(b, t, n, c // n).transpose(1, 2)


def _attend(att, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """SAM's ``Attention.forward`` on already projected q, k, v."""
    q, k, v = _heads(q, att.num_heads), _heads(k, att.num_heads), _heads(v, att.num_heads)
    attn = torch.softmax((q @ k.transpose(2, 3)) / math.sqrt(q.shape[-1]), dim=-1)
    out = (attn @ v).transpose(1, 2)
    return att.out_proj(out.reshape(out.shape[0], out.shape[1], -1))


def _conv_t2(x: torch.Tensor, conv: torch.nn.ConvTranspose2d) -> torch.Tensor:
    """A 2x2, stride-2 transposed convolution as one matrix product."""
    n, cin, h, w = x.shape
    cout = conv.out_channels
    weight = conv.weight.reshape(cin, cout * 4)
    y = x.permute(0, 2, 3, 1).reshape(n, h * w, cin) @ weight
    y = y.reshape(n, h, w, cout, 2, 2).permute(0, 3, 1, 4, 2, 5).reshape(n, cout, 2 * h, 2 * w)
    return y + conv.bias.view(1, -1, 1, 1)


class PreparedEmbedding:
    """Prompt-independent decoder inputs of one image embedding."""

    def __init__(self, sam, embedding: torch.Tensor) -> None:
        decoder = sam.mask_decoder
        layer = decoder.transformer.layers[0]
        self.embedding = embedding
        _, c, h, w = embedding.shape
        self.shape = (h, w)
        dense_pe = sam.prompt_encoder.get_dense_pe()
        no_mask = sam.prompt_encoder.no_mask_embed.weight.reshape(1, -1, 1, 1)
        self.keys = (embedding + no_mask).flatten(2).permute(0, 2, 1)
        self.pe = dense_pe.flatten(2).permute(0, 2, 1)
        keys_pe = self.keys + self.pe
        self.k_t2i = layer.cross_attn_token_to_image.k_proj(keys_pe)
        self.v_t2i = layer.cross_attn_token_to_image.v_proj(self.keys)
        self.q_i2t = layer.cross_attn_image_to_token.q_proj(keys_pe)

    def matches(self, embedding: torch.Tensor) -> bool:
        """Whether ``embedding`` is the one prepared here."""
        e = self.embedding
        return embedding is e or (
            embedding.shape == e.shape
            and embedding.device == e.device
            and torch.equal(embedding, e)
        )


def predict_target(sam, prepared: PreparedEmbedding, sparse: torch.Tensor, token: int):
    """Low-resolution logits ``(K, 4h, 4w)`` and IoU ``(K,)`` of one decoder output token."""
    decoder = sam.mask_decoder
    transformer = decoder.transformer
    first, rest = transformer.layers[0], transformer.layers[1:]
    k = sparse.shape[0]
    output_tokens = torch.cat([decoder.iou_token.weight, decoder.mask_tokens.weight], dim=0)
    tokens = torch.cat((output_tokens.unsqueeze(0).expand(k, -1, -1), sparse), dim=1)
    # first two-way block, with the image-side projections taken from ``prepared``
    queries = first.norm1(first.self_attn(q=tokens, k=tokens, v=tokens))
    q = first.cross_attn_token_to_image.q_proj(queries + tokens)
    queries = first.norm2(
        queries
        + _attend(
            first.cross_attn_token_to_image,
            q,
            prepared.k_t2i.expand(k, -1, -1),
            prepared.v_t2i.expand(k, -1, -1),
        )
    )
    queries = first.norm3(queries + first.mlp(queries))
    q = queries + tokens
    attn_out = _attend(
        first.cross_attn_image_to_token,
        prepared.q_i2t.expand(k, -1, -1),
        first.cross_attn_image_to_token.k_proj(q),
        first.cross_attn_image_to_token.v_proj(queries),
    )
    keys = first.norm4(prepared.keys + attn_out)
    pe = prepared.pe.expand(k, -1, -1)
    for layer in rest:
        queries, keys = layer(queries=queries, keys=keys, query_pe=tokens, key_pe=pe)
    attn_out = transformer.final_attn_token_to_image(q=queries + tokens, k=keys + pe, v=keys)
    hs = transformer.norm_final_attn(queries + attn_out)
    # upscale and read out only the requested token
    h, w = prepared.shape
    src = keys.transpose(1, 2).reshape(k, -1, h, w)
    up = decoder.output_upscaling
    x = _conv_t2(src, up[0])
    x = up[2](up[1](x))
    x = up[4](_conv_t2(x, up[3]))
    hyper = decoder.output_hypernetworks_mlps[token](hs[:, 1 + token, :])
    b, c, hh, ww = x.shape
    masks = torch.bmm(hyper.unsqueeze(1), x.reshape(b, c, hh * ww)).reshape(b, hh, ww)
    iou = decoder.iou_prediction_head(hs[:, 0, :])[:, token]
    return masks, iou


def supports(sam) -> bool:
    """Whether the fast path applies (SAM's standard two-way decoder, no mask prompt)."""
    up = getattr(sam.mask_decoder, "output_upscaling", None)
    try:
        return (
            len(up) == 5
            and all(
                isinstance(up[i], torch.nn.ConvTranspose2d)
                and up[i].kernel_size == (2, 2)
                and up[i].stride == (2, 2)
                for i in (0, 3)
            )
            and len(sam.mask_decoder.transformer.layers) >= 1
        )
    except TypeError:
        return False


__all__ = ["PreparedEmbedding", "predict_target", "supports", "F"]
