"""Declarative YAML search spaces: load, validate (file:line errors) and turn into Optuna objects.

No Ray and no storage here: the driver (``sweeper``) maps a :class:`Spec` onto Ray Tune and the study.
"""

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, EntrypointInfo
from search_spaces.errors import SpecError, SpecIssue
from search_spaces.loader import (
    BUILTIN_DIR,
    DEFAULT_QUICK,
    apply_quick,
    import_entrypoint,
    list_builtin_spaces,
    load_spec,
    parse_override,
    render_spec,
    resolve_space_path,
    spec_from_dict,
)
from search_spaces.schema import Baseline, Budget, Objective, Param, Resources, Sampler, Scheduler, Spec

__all__ = [
    "BUILTIN_DIR",
    "DEFAULT_ENTRYPOINT",
    "DEFAULT_QUICK",
    "Baseline",
    "Budget",
    "EntrypointInfo",
    "Objective",
    "Param",
    "Resources",
    "Sampler",
    "Scheduler",
    "Spec",
    "SpecError",
    "SpecIssue",
    "apply_quick",
    "import_entrypoint",
    "list_builtin_spaces",
    "load_spec",
    "parse_override",
    "render_spec",
    "resolve_space_path",
    "spec_from_dict",
]
