"""The noise-robust segmentation loss: soft Dice + BCE + Bernoulli KL to a softened target.

All terms take *logits* (the sigmoid is applied once, here). The KL target
is the label blurred with a Gaussian of ``sigma`` pixels, per sample (never
across the batch), which tells the network that boundary pixels of a noisy
label are uncertain.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

EPS = 1e-6


@dataclass(frozen=True)
class LossWeights:
    """Weights of the three terms and the softening width (defaults from the method)."""

    dice: float = 0.6
    bce: float = 0.2
    kl: float = 0.2
    sigma: float = 2.0

    def to_dict(self) -> dict:
        """Plain form for checkpoints and logs."""
        return asdict(self)


def gaussian_soften(target: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each ``(B, H, W)`` target separately with a Gaussian of ``sigma`` pixels (0: unchanged)."""
    if sigma <= 0:
        return target
    radius = max(1, int(round(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=target.dtype, device=target.device)
    kernel = torch.exp(-(x**2) / (2 * sigma**2))
    kernel = kernel / kernel.sum()
    t = target[:, None]  # (B, 1, H, W): a grouped conv never mixes samples
    t = F.pad(t, (radius, radius, radius, radius), mode="replicate")
    t = F.conv2d(t, kernel.view(1, 1, 1, -1))
    t = F.conv2d(t, kernel.view(1, 1, -1, 1))
    return t[:, 0].clamp(0, 1)


def soft_dice_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``1 - Dice`` per sample, from logits; a sample with empty target and empty prediction scores 0."""
    prob = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1)
    inter = (prob * t).sum(1)
    denom = prob.sum(1) + t.sum(1)
    return 1 - (2 * inter + EPS) / (denom + EPS)


def bce_loss(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean binary cross-entropy per sample, from logits."""
    return F.binary_cross_entropy_with_logits(logits, target, reduction="none").flatten(1).mean(1)


def bernoulli_kl(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean per-pixel ``KL(Bernoulli(target) || Bernoulli(sigmoid(logits)))`` per sample.

    ``t log(t / p) + (1 - t) log((1 - t) / (1 - p))``, with ``log p`` and
    ``log(1 - p)`` taken as log-sigmoids of the logits for stability.
    """
    t = target.clamp(0, 1)
    log_p = F.logsigmoid(logits)
    log_q = F.logsigmoid(-logits)
    entropy_terms = torch.xlogy(t, t) + torch.xlogy(1 - t, 1 - t)
    return (entropy_terms - t * log_p - (1 - t) * log_q).flatten(1).mean(1)


def noise_robust_loss(
    logits: torch.Tensor, target: torch.Tensor, weights: LossWeights = LossWeights()
) -> tuple[torch.Tensor, dict[str, float]]:
    """``w_dice * Dice + w_bce * BCE + w_kl * KL(soft target, prediction)``, averaged over the batch.

    Parameters
    ----------
    logits
        ``(B, H, W)`` raw network outputs.
    target
        ``(B, H, W)`` labels in 0..1 (Dice and BCE use them as given).
    weights
        Term weights and the Gaussian ``sigma`` of the KL target.

    Returns
    -------
    loss, parts
        The scalar loss and each term's batch mean (floats, for logging).
    """
    target = target.to(logits.dtype)
    dice = soft_dice_loss(logits, target).mean()
    bce = bce_loss(logits, target).mean()
    loss = weights.dice * dice + weights.bce * bce
    kl = torch.zeros((), dtype=logits.dtype, device=logits.device)
    if weights.kl:
        kl = bernoulli_kl(logits, gaussian_soften(target, weights.sigma)).mean()
        loss = loss + weights.kl * kl
    return loss, {"dice": dice.item(), "bce": bce.item(), "kl": kl.item(), "loss": loss.item()}
