"""Which metrics are accuracies: one rule for the schema, the study and the console (NumPy-free, for the CLI)."""

from __future__ import annotations

import re

_ACCURACY = re.compile(r"(?:^|_)(?:acc|accuracy|top\d+)(?:_|$)", re.IGNORECASE)  # val_acc, test_top3; not grad_accum


def is_accuracy(metric: str) -> bool:
    """A fraction of 1: its targets are fractions ("80%" is 0.8), it prints as a percentage, and a value outside
    [0, 1] was reported on the wrong scale."""
    return bool(_ACCURACY.search(metric))
