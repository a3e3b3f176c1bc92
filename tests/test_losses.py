import math

import pytest
import torch
import torch.nn.functional as F

from trials.losses import (
    CLASS_WEIGHT_BOUNDS,
    inverse_frequency_weights,
    mixup,
    smoothed_targets,
    soft_cross_entropy,
    symmetric_beta,
)


def test_label_smoothing_matches_pytorch():
    torch.manual_seed(0)
    logits, labels = torch.randn(8, 5), torch.randint(0, 5, (8,))
    ours = soft_cross_entropy(logits, smoothed_targets(labels, 5, 0.1))
    assert ours.item() == pytest.approx(F.cross_entropy(logits, labels, label_smoothing=0.1).item(), rel=1e-6)


def test_smoothing_plus_mixup_against_hand_computation():
    # two samples, three classes, lam fixed by hand: target rows mix the two smoothed one-hots
    logits = torch.tensor([[2.0, 0.0, -1.0], [0.5, 1.5, 0.0]])
    labels = torch.tensor([0, 1])
    eps, lam = 0.3, 0.75
    t = smoothed_targets(labels, 3, eps)
    assert t[0].tolist() == pytest.approx([0.8, 0.1, 0.1])
    mixed = lam * t + (1 - lam) * t[[1, 0]]  # partner of 0 is 1 and vice versa
    loss = soft_cross_entropy(logits, mixed).item()

    def log_softmax(row):
        z = math.log(sum(math.exp(v) for v in row))
        return [v - z for v in row]

    q0 = [lam * a + (1 - lam) * b for a, b in zip([0.8, 0.1, 0.1], [0.1, 0.8, 0.1], strict=True)]
    q1 = [lam * a + (1 - lam) * b for a, b in zip([0.1, 0.8, 0.1], [0.8, 0.1, 0.1], strict=True)]
    hand = -(sum(q * p for q, p in zip(q0, log_softmax([2.0, 0.0, -1.0]), strict=True))
             + sum(q * p for q, p in zip(q1, log_softmax([0.5, 1.5, 0.0]), strict=True))) / 2
    assert loss == pytest.approx(hand, rel=1e-6)
    # and it equals the lam-weighted sum of the two smoothed losses
    split = lam * F.cross_entropy(logits, labels, label_smoothing=eps) + (1 - lam) * F.cross_entropy(
        logits, labels[[1, 0]], label_smoothing=eps)
    assert loss == pytest.approx(split.item(), rel=1e-6)


def test_mixup_mixes_inputs_and_targets_with_the_same_lam_and_partner():
    x = torch.arange(12, dtype=torch.float32).reshape(4, 3)
    t = smoothed_targets(torch.tensor([0, 1, 2, 3]), 4, 0.1)
    torch.manual_seed(3)
    mx, mt = mixup(x, t, alpha=0.4)
    torch.manual_seed(3)  # replay the two draws mixup makes: lam ~ Beta(alpha, alpha), then the partner permutation
    lam = float(symmetric_beta(torch.tensor(0.4, dtype=torch.float64)))
    partner = torch.randperm(4)
    assert torch.allclose(mx, lam * x + (1 - lam) * x[partner])
    assert torch.allclose(mt, lam * t + (1 - lam) * t[partner])
    assert torch.allclose(mt.sum(1), torch.ones(4))


@pytest.mark.parametrize("alpha", [1e-4, 1e-3, 0.4, 1.0, 50.0])
def test_mixup_lam_follows_beta_alpha_alpha_for_small_alphas_too(alpha):
    """torch's Beta(1e-4, 1e-4) returned exactly 0.5 for 87% of draws (24% at 1e-3): the most mixing where a small
    mixup_alpha means almost none. Beta(a, a) has mean 1/2 and variance 1 / (4 (2a + 1))."""
    torch.manual_seed(0)
    lam = symmetric_beta(torch.full((20_000,), alpha, dtype=torch.float64))
    assert torch.isfinite(lam).all() and (lam == 0.5).float().mean() < 0.01
    assert lam.mean().item() == pytest.approx(0.5, abs=0.01)
    assert lam.var().item() == pytest.approx(1 / (4 * (2 * alpha + 1)), rel=0.05)
    if alpha <= 1e-3:  # lam at 0 or 1 (within 5%) nearly always: a sample stays itself, or becomes its partner
        assert ((lam > 0.05) & (lam < 0.95)).float().mean() < 0.01


def test_class_weights_inverse_frequency_normalised_and_clipped():
    low, high = CLASS_WEIGHT_BOUNDS
    w = inverse_frequency_weights(torch.tensor([0] * 200 + [1] * 20 + [2] * 2 + [3] * 50), 4)
    assert w[0] == pytest.approx(low)  # the head class is clipped at the floor
    assert w[2] > w[1] > w[3] > w[0]  # rarer classes weigh more
    # hand computation for the unclipped ones: 1/(n+1), scaled so the raw weights average 1
    raw = [1 / 201, 1 / 21, 1 / 3, 1 / 51]
    scale = 4 / sum(raw)
    assert w[1].item() == pytest.approx(raw[1] * scale, rel=1e-5)
    assert w[3].item() == pytest.approx(raw[3] * scale, rel=1e-5)
    tail = inverse_frequency_weights(torch.tensor([0] + [c for c in range(1, 20) for _ in range(1000)]), 20)
    assert tail[0] == pytest.approx(high)  # a one-sample class is clipped at the ceiling
    assert torch.all(tail >= low) and torch.all(tail <= high)
    balanced = inverse_frequency_weights(torch.arange(4).repeat(10), 4)
    assert torch.allclose(balanced, torch.ones(4))  # normalised: balanced data is unweighted


def test_class_weights_change_the_loss_toward_rare_classes():
    logits = torch.zeros(2, 2)
    logits[0, 0] = 3.0  # confident and right on class 0, unsure on class 1
    targets = smoothed_targets(torch.tensor([0, 1]), 2, 0.0)
    plain = soft_cross_entropy(logits, targets)
    weighted = soft_cross_entropy(logits, targets, torch.tensor([0.5, 2.0]))
    assert weighted > plain
