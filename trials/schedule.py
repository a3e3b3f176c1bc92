"""Linear warmup from 1% of the LR, then cosine down to ``min_lr``, evaluated per optimizer step.

Seed 000 warms up over epochs and seed 002 per batch; stepping per optimizer step is what makes a warmup of
one or two epochs in a short sweep trial mean anything. The schedule is a pure function of the step, so the
only scheduler state a checkpoint needs is the step counter.
"""

from __future__ import annotations

import math

WARMUP_START_FRACTION = 0.01  # seed 000: "Gradually increases LR from 1% to 100% during warmup"


def lr_at(step: int, *, base_lr: float, min_lr: float, warmup_steps: int, total_steps: int) -> float:
    """The learning rate used by optimizer step ``step`` (0-based)."""
    if warmup_steps > 0 and step < warmup_steps:
        return base_lr * (WARMUP_START_FRACTION + (1.0 - WARMUP_START_FRACTION) * step / warmup_steps)
    cosine_steps = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / cosine_steps)
    return min_lr + (base_lr - min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))


def warmup_steps_for(warmup_epochs: float, steps_per_epoch: int) -> int:
    return round(warmup_epochs * steps_per_epoch)
