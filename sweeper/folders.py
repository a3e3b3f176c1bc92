"""Where a study's trials keep their checkpoints and output; free of Ray, so read-only commands can say it too."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storage import attrs


def checkpoint_folder(found: Mapping[str, Any], name: str, results_root: Path) -> Path:
    """Where the study ``name`` (its attrs ``found``) checkpoints: the folder its first run chose, wherever this run
    was started from; where that run's results folder is not on this machine, a folder of the same name under this
    run's.

    Only a folder shaped as a first run makes it (``.../checkpoints/NAME``): the attr is anyone's who may write the
    database, and trials write (and move aside) folders in it.
    """
    stored = Path(found.get(attrs.CHECKPOINTS) or results_root / "checkpoints" / name)
    if stored.name in ("", ".", ".."):
        stored = Path(name)
    shaped = stored.is_absolute() and stored.parent.name == "checkpoints" and stored.parent.is_dir()
    return stored if shaped else results_root / "checkpoints" / stored.name


def trial_checkpoint_dir(checkpoints: str, number: int) -> Path:
    """A trial's own folder in its study's checkpoint folder (the study attr ``checkpoints``)."""
    return Path(checkpoints) / f"trial-{number:05d}"


def trial_output_file(checkpoints: str, number: int) -> Path:
    """Beside the trial's folder, not in it: a training function may take any file there for a checkpoint."""
    return Path(checkpoints) / f"trial-{number:05d}.log"
