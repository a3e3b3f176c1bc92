"""``sweeper train``'s ``--set KEY=VALUE`` flags, read as every ``--set`` is (``search_spaces.parse_override``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any


def parse_set_flags(pairs: Iterable[str]) -> dict[str, Any]:
    """``["epochs=3", "training.model.size=large"]`` -> ``{"epochs": 3, "model.size": "large"}``."""
    from search_spaces.loader import training_overrides  # here: the CLI starts without pydantic and Optuna

    return training_overrides(pairs)
