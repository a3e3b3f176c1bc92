"""The shared training core: ``trials.run(config, report, checkpoint_dir)``.

Knows nothing of Ray, Optuna or YAML. ``run`` is imported lazily so that reading ``trials.config`` (as the
search-space validator does) does not pay for importing torch.
"""

from typing import Any

__all__ = ["run"]


def __getattr__(name: str) -> Any:
    if name == "run":
        from trials.train import run

        return run
    raise AttributeError(f"module 'trials' has no attribute {name!r}")
