"""Declarative YAML search spaces: load, validate (file:line errors) and turn into Optuna objects.

No Ray and no storage here: the driver (``sweeper``) maps a :class:`Spec` onto Ray Tune, the study and its
sampler (``sweeper.samplers``). What a training function accepts and reports is ``trials.entrypoint``'s.
Names are imported lazily, so importing one module does not pay for pydantic and Optuna in the others.
"""

import importlib
from typing import Any

_HOMES = {
    "SpecError": "errors", "SpecIssue": "errors",
    "BUILTIN_DIR": "loader", "DEFAULT_QUICK": "loader", "list_builtin_spaces": "loader", "load_spec": "loader",
    "parse_override": "loader", "render_spec": "loader", "resolve_space_path": "loader", "spec_from_dict": "loader",
    "Baseline": "sections", "Budget": "sections", "Objective": "sections", "Param": "sections",
    "Resources": "sections", "Sampler": "sections", "Scheduler": "sections", "Spec": "schema",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str) -> Any:
    if name not in _HOMES:
        raise AttributeError(f"module 'search_spaces' has no attribute {name!r}")
    return getattr(importlib.import_module(f"search_spaces.{_HOMES[name]}"), name)
