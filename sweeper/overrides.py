"""``sweeper train``'s ``--set KEY=VALUE`` flags, read as every ``--set`` is (``loader.parse_override``)."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from typing import Any

from search_spaces.errors import SpecError


def read_set_flags(pairs: Iterable[str], whole: Collection[str] | None = ()) -> list[tuple[str, Any, bool]]:
    """``(setting, value, explicit)`` per setting the flags set; ``explicit``: written ``training.KEY``, which may name
    a setting that looks like a section of a space (``training.budget``). A map given to a group sets each of its
    keys, the group's others staying, as in ``sweeper run``; ``whole``: the settings that hold a map; None: every
    map is one setting's (a function that declares no settings gets it as typed, as a reproduce command wrote it)."""
    from search_spaces.loader import parse_override  # here: the CLI starts without pydantic and Optuna

    out = []
    for expr in pairs:
        maps = {expr.partition("=")[0].strip()} if whole is None else {*whole, *(f"training.{s}" for s in whole)}
        try:
            settings = parse_override(expr, maps)
        except ValueError as exc:
            raise SpecError.single("", str(exc), source=f"--set {expr}") from None
        out += [(key.removeprefix("training."), value, key.startswith("training.")) for key, value in settings.items()]
    return out
