"""``sweeper train``'s ``--set KEY=VALUE`` flags, read as every ``--set`` is (``loader.parse_override``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from search_spaces.errors import SpecError


def read_set_flags(pairs: Iterable[str]) -> list[tuple[str, Any, bool]]:
    """``(setting, value, explicit)`` per flag; ``explicit``: written ``training.KEY``, which may name a setting
    that looks like a section of a space (``training.budget``)."""
    from search_spaces.loader import parse_override  # here: the CLI starts without pydantic and Optuna

    out = []
    for expr in pairs:
        try:
            key, value = parse_override(expr)
        except ValueError as exc:
            raise SpecError.single("", str(exc), source=f"--set {expr}") from None
        out.append((key.removeprefix("training."), value, key.startswith("training.")))
    return out
