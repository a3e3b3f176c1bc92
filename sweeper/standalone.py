"""The config of a standalone ``sweeper train``: a space's fixed training block, then ``--set`` on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trials.config import TrainConfig


def standalone_config(space: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Without a space, ``--set`` keys are the core's flat keys over its defaults."""
    config: dict[str, Any] = {}
    if space is not None:
        from search_spaces.loader import load_spec, resolve_space_path

        spec = load_spec(resolve_space_path(str(space)))
        config.update(spec.trial_config({}))
    config.update(overrides)
    TrainConfig.from_flat(config)  # bad keys and values fail here, before any work
    return config
