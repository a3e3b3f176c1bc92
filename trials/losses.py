"""Soft-target cross entropy: label smoothing, mixup and class weights in one place.

Mixup (seed 004) mixes inputs and therefore targets. Combining it with label smoothing (seed 000) is done on
the target distributions: each label becomes ``(1 - eps) * onehot + eps / C`` and the two smoothed targets are
mixed with ``lam``. That equals ``lam * CE(smooth(y_a)) + (1 - lam) * CE(smooth(y_b))`` by linearity, and with
``mixup_alpha = 0`` and no class weights it is exactly ``F.cross_entropy(logits, y, label_smoothing=eps)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

CLASS_WEIGHT_BOUNDS = (0.1, 10.0)  # seed 002: clipped to [0.1, 10] to prevent extreme values


def smoothed_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot rows softened towards the uniform distribution."""
    targets = torch.full((labels.shape[0], num_classes), smoothing / num_classes, device=labels.device)
    targets.scatter_add_(1, labels.unsqueeze(1), torch.full_like(targets[:, :1], 1.0 - smoothing))
    return targets


def mixup(
    inputs: torch.Tensor, targets: torch.Tensor, alpha: float
) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix each sample with a random partner from the batch; ``lam ~ Beta(alpha, alpha)``."""
    lam = float(symmetric_beta(torch.tensor(alpha, dtype=torch.float64)))
    partner = torch.randperm(inputs.shape[0], device=inputs.device)
    mixed_inputs = lam * inputs + (1.0 - lam) * inputs[partner]
    mixed_targets = lam * targets + (1.0 - lam) * targets[partner]
    return mixed_inputs, mixed_targets


def symmetric_beta(alpha: torch.Tensor) -> torch.Tensor:
    """One draw of ``Beta(a, a)`` per entry of ``alpha`` (each > 0), from two Gamma draws taken as logs.

    torch's ``Beta`` underflows both Gamma draws to the same floor for a small ``a`` and returns exactly 0.5: 24% of
    draws at 1e-3, 87% at 1e-4, the most mixing where a small alpha means almost none. ``Gamma(a) = Gamma(a + 1) *
    U^(1/a)``, in logs (``log U = -Exp(1)``), stays exact for any ``a``.
    """
    a = alpha.double().unsqueeze(-1).expand(*alpha.shape, 2)
    log_gamma = torch.distributions.Gamma(a + 1, 1.0).sample().log() - torch.empty_like(a).exponential_() / a
    return torch.sigmoid(log_gamma[..., 0] - log_gamma[..., 1]).to(alpha.dtype)


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, class_weights: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean over the batch of ``-sum_c w_c q_c log p_c`` (PyTorch's semantics for probability targets)."""
    return F.cross_entropy(logits.float(), targets, weight=class_weights)


def inverse_frequency_weights(labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Seed 002's class weights: inverse frequency with add-one smoothing, mean 1, clipped to [0.1, 10].

    Add-one smoothing keeps a class with very few samples from dominating the loss; normalising to mean 1
    keeps the loss scale (and so the useful LR) the same as without weights.
    """
    counts = torch.bincount(labels.cpu(), minlength=num_classes).double()
    weights = 1.0 / (counts + 1.0)
    weights = weights * num_classes / weights.sum()
    low, high = CLASS_WEIGHT_BOUNDS
    return weights.clamp(low, high).float()
