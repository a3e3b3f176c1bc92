"""Which metrics are accuracies, and when a value is on its target: one rule for the schema, the study and the
console (NumPy-free, for the CLI)."""

from __future__ import annotations

import math
import re

_ACCURACY = re.compile(r"(?:^|_)(?:acc|accuracy|top\d+)(?:_|$)", re.IGNORECASE)  # val_acc, test_top3; not grad_accum


def is_accuracy(metric: str) -> bool:
    """A fraction of 1: its targets are fractions ("80%" is 0.8), it prints as a percentage, and a value outside
    [0, 1] was reported on the wrong scale."""
    return bool(_ACCURACY.search(metric))


def on_target(value: float, target: float) -> bool:
    """Equal to the target but for float32 rounding: ``(pred == y).float().mean().item()``, the usual accuracy,
    gives 0.949999988 for 285 of 300, which a target of 95% must count as met (2**-24 relative, within 1e-6)."""
    return math.isclose(value, target, rel_tol=1e-6)
