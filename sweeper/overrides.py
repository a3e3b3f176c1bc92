"""``sweeper train``'s ``--set KEY=VALUE`` flags, read as every ``--set`` is (``loader.parse_override``)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from search_spaces.errors import SpecError


def read_set_flags(pairs: Iterable[str], split_maps: bool = True) -> list[tuple[str, Any, bool]]:
    """``(setting, value, explicit)`` per setting the flags set; ``explicit``: written ``training.KEY``, which may name
    a setting that looks like a section of a space (``training.budget``). A map given to a group sets each of its
    keys, the group's others staying, as in ``sweeper run``; not ``split_maps``: every map is one setting's (a
    function that declares no settings gets it as typed, as a reproduce command wrote it)."""
    from search_spaces.loader import parse_override  # here: the CLI starts without pydantic and Optuna

    out = []
    for expr in pairs:
        try:
            settings = parse_override(expr, () if split_maps else (expr.partition("=")[0].strip(),))
        except ValueError as exc:
            raise SpecError.single("", str(exc), source=f"--set {expr}") from None
        out += [(key.removeprefix("training."), value, key.startswith("training.")) for key, value in settings.items()]
    return out
