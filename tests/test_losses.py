"""The loss against hand-computed values."""

import math

import pytest
import torch

from napari_yolosam.training.losses import (
    LossWeights,
    bce_loss,
    bernoulli_kl,
    gaussian_soften,
    noise_robust_loss,
    soft_dice_loss,
)


def _logit(p):
    return math.log(p / (1 - p))


def test_terms_by_hand():
    # two pixels: p = 0.8 on a scar pixel, p = 0.3 on background
    logits = torch.tensor([[[_logit(0.8), _logit(0.3)]]])
    target = torch.tensor([[[1.0, 0.0]]])
    dice = 1 - 2 * 0.8 / (0.8 + 0.3 + 1)
    assert soft_dice_loss(logits, target).item() == pytest.approx(dice, abs=1e-5)
    bce = -(math.log(0.8) + math.log(0.7)) / 2
    assert bce_loss(logits, target).item() == pytest.approx(bce, abs=1e-6)
    # KL to a soft target t = (0.9, 0.2)
    soft = torch.tensor([[[0.9, 0.2]]])
    kl = (
        0.9 * math.log(0.9 / 0.8)
        + 0.1 * math.log(0.1 / 0.2)
        + 0.2 * math.log(0.2 / 0.3)
        + 0.8 * math.log(0.8 / 0.7)
    ) / 2
    assert bernoulli_kl(logits, soft).item() == pytest.approx(kl, abs=1e-6)
    # KL of a hard target equals BCE (entropy 0), and KL(t || t) = 0
    assert bernoulli_kl(logits, target).item() == pytest.approx(bce, abs=1e-6)
    same = torch.logit(soft)
    assert bernoulli_kl(same, soft).item() == pytest.approx(0, abs=1e-6)


def test_total_with_weights_and_no_double_sigmoid():
    logits = torch.tensor([[[_logit(0.8), _logit(0.3)]]])
    target = torch.tensor([[[1.0, 0.0]]])
    w = LossWeights(dice=0.6, bce=0.2, kl=0.2, sigma=0)
    loss, parts = noise_robust_loss(logits, target, w)
    dice = 1 - 2 * 0.8 / 2.1
    bce = -(math.log(0.8) + math.log(0.7)) / 2
    assert loss.item() == pytest.approx(0.6 * dice + 0.2 * bce + 0.2 * bce, abs=1e-5)
    assert parts["dice"] == pytest.approx(dice, abs=1e-5)
    # a perfect, confident prediction has (almost) zero loss: sigmoid applied once
    perfect = torch.tensor([[[20.0, -20.0]]])
    assert noise_robust_loss(perfect, target, w)[0].item() < 1e-6


def test_softening_is_per_sample():
    target = torch.zeros(2, 21, 21)
    target[0, 10, 10] = 1
    soft = gaussian_soften(target, 2.0)
    assert soft[1].abs().max() == 0, "never blurred across the batch"
    assert soft[0, 10, 10] < 1 and soft[0, 10, 12] > 0
    assert soft[0].sum().item() == pytest.approx(1.0, abs=1e-4)
    assert torch.equal(gaussian_soften(target, 0), target)


def test_gradient_flows():
    logits = torch.zeros(3, 8, 8, requires_grad=True)
    target = (torch.rand(3, 8, 8) > 0.5).float()
    loss, _ = noise_robust_loss(logits, target)
    loss.backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0
