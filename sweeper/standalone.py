"""The config of a standalone ``sweeper train``: a space's fixed training block, then ``--set`` on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def standalone_config(space: Path | None, overrides: dict[str, Any]) -> dict[str, Any]:
    """Without a space, ``--set`` keys are the core's flat keys over its defaults."""
    from search_spaces import standalone

    return standalone(space, overrides).config
