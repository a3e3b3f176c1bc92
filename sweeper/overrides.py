"""``--set key=value`` pairs from the command line."""

from __future__ import annotations

from collections.abc import Iterable

import yaml

from sweeper.errors import BadInput


def parse_set_flags(pairs: Iterable[str]) -> dict[str, object]:
    """``["epochs=3", "model.size=large"]`` -> ``{"epochs": 3, "model.size": "large"}``.

    Values are read as YAML scalars with the safe loader, so ``3`` is an int, ``1e-4`` a float and ``true`` a
    bool, exactly as they would be in a space file.
    """
    result: dict[str, object] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"--set {pair!r}: expected KEY=VALUE, e.g. --set epochs=3")
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise BadInput(f"--set {pair!r}: the value is not a valid YAML scalar ({exc.__class__.__name__})") from None
        if isinstance(value, (dict, list)):
            raise BadInput(f"--set {pair!r}: the value must be a single number, string or boolean")
        result[key] = value
    return result
