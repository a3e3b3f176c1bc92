"""The search-space schema: :class:`Spec`, the typed, immutable model of one sweep.

The sections it is made of live in ``sections.py``. Cross-field checks live on the field that comes later in
:class:`Spec` (pydantic validates fields in declaration order and passes the earlier valid ones in ``info.data``), so
independent sections still report their problems together; checks of the whole training config run last.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

import optuna
from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, KNOWN_DIRECTIONS, EntrypointError, EntrypointInfo, describe
from search_spaces.sections import (
    SAMPLER_CLASSES,
    Baseline,
    Budget,
    Issue,
    Objective,
    Param,
    Path,
    Resources,
    Sampler,
    Scheduler,
    _looks_like_accuracy,
    _Model,
    did_you_mean,
    fail,
    fraction,
    unknown_key,
)
from trials.config import ConfigError

__all__ = ["Baseline", "Budget", "Objective", "Param", "Resources", "Sampler", "Scheduler", "Spec"]


# ----------------------------------------------------------------------------------------------------------------
# The whole spec
# ----------------------------------------------------------------------------------------------------------------
def _flatten(data: Mapping[str, Any], prefix: str, leaves: set[str], out: dict[str, Any], issues: list[Issue],
             seen_at: dict[str, Path], path: Path) -> None:
    for key, value in data.items():
        if not isinstance(key, str):
            issues.append(((*path, str(key)), f"keys must be strings (got {key!r})"))
            continue
        flat = f"{prefix}{key}"
        here = (*path, key)
        if isinstance(value, Mapping) and flat not in leaves:
            _flatten(value, flat + ".", leaves, out, issues, seen_at, here)
        elif flat in out:
            first = ".".join(map(str, seen_at[flat]))
            issues.append((here, f"{flat} is set twice (also at training.{first})"))
        else:
            out[flat] = value
            seen_at[flat] = here


def _unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        node = out
        parts = key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            out[key] = value
        else:
            node[parts[-1]] = value
    return out


def _entry(info: ValidationInfo) -> EntrypointInfo | None:
    """The entrypoint description when ``entrypoint`` validated, else None (its own error is reported)."""
    target = info.data.get("entrypoint")
    if target is None:
        return None
    context = info.context if isinstance(info.context, dict) else {}
    cached = context.get("_entrypoint")
    if isinstance(cached, EntrypointInfo) and cached.target == target:
        return cached
    try:
        found = describe(target, context.get("base_dir"))
    except EntrypointError:
        return None
    if isinstance(info.context, dict):
        info.context["_entrypoint"] = found
    return found


def _unknown_metric(metric: str, entry: EntrypointInfo) -> str | None:
    if entry.metrics is None or metric in entry.metrics:
        return None
    return f"unknown metric {metric!r}{did_you_mean(metric, list(entry.metrics))}; " \
           f"{entry.target} reports: {', '.join(entry.metrics)}"


class Spec(_Model):
    """One sweep: what to train, what to tune, how to sample and schedule, and what counts as success."""

    name: str  # the Optuna study name; the loader defaults it to the file's stem
    description: str = ""
    storage: str | None = None  # Optuna storage URL; the driver may override it (--storage, environment)
    entrypoint: str = DEFAULT_ENTRYPOINT
    training: dict[str, Any] = Field(default_factory=dict)  # flat dotted keys after loading
    objective: Objective = Field(default_factory=Objective)
    targets: dict[str, float] = Field(default_factory=dict)
    baseline: Baseline | None = None
    params: dict[str, Param]
    sampler: Sampler = Field(default_factory=Sampler)
    scheduler: Scheduler = Field(default_factory=Scheduler)
    budget: Budget = Field(default_factory=Budget)
    resources: Resources = Field(default_factory=Resources)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    quick: dict[str, Any] = Field(default_factory=dict)

    _entrypoint: EntrypointInfo | None = PrivateAttr(default=None)
    _source: str | None = PrivateAttr(default=None)
    _quick_applied: bool = PrivateAttr(default=False)
    _overrides: tuple[str, ...] = PrivateAttr(default=())
    _base_dir: str | None = PrivateAttr(default=None)

    # -- field checks, in declaration order ------------------------------------------------------------------
    @field_validator("training", "targets", "params", "quick", "objective", "sampler", "scheduler", "budget",
                     "resources", "enqueue", mode="before")
    @classmethod
    def _empty_section(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty section (``sampler:`` with nothing under it) means its defaults."""
        if value is None:
            return [] if info.field_name == "enqueue" else {}
        return value

    @field_validator("name")
    @classmethod
    def _check_name(cls, value: str) -> str:
        if not value.strip():
            fail([((), "must not be empty")])
        return value.strip()

    @field_validator("entrypoint")
    @classmethod
    def _check_entrypoint(cls, value: str, info: ValidationInfo) -> str:
        context = info.context if isinstance(info.context, dict) else {}
        try:
            found = describe(value, context.get("base_dir"))
        except EntrypointError as exc:
            fail([((), str(exc))])
        if isinstance(info.context, dict):
            info.context["_entrypoint"] = found
        return value

    @field_validator("training", mode="before")
    @classmethod
    def _flatten_training(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Mapping):
            return value
        entry = _entry(info)
        leaves = {k for k, v in (entry.settings or {}).items() if isinstance(v, Mapping)} if entry else set()
        out: dict[str, Any] = {}
        issues: list[Issue] = []
        _flatten(value, "", leaves, out, issues, {}, ())
        if issues:
            fail(issues)
        return out

    @field_validator("training")
    @classmethod
    def _check_training(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        entry = _entry(info)
        if entry is None:
            return value
        issues: list[Issue] = []
        out = {}
        for key, raw in value.items():
            problem = entry.unknown_setting(key)
            if problem:
                issues.append(((key,), problem))
                continue
            try:
                out[key] = entry.coerce(key, raw)
            except ConfigError as exc:
                issues.append(((key,), str(exc)))
        if issues:
            fail(issues)
        return out

    @field_validator("objective")
    @classmethod
    def _check_objective(cls, value: Objective, info: ValidationInfo) -> Objective:
        entry = _entry(info)
        issues: list[Issue] = []
        metric = value.metric
        if entry is not None:
            problem = _unknown_metric(metric, entry)
            if problem:
                issues.append((("metric",), problem))
            elif entry.epoch_metrics is not None and metric not in entry.epoch_metrics:
                issues.append((("metric",), f"{metric!r} is not reported every epoch with a direction; the objective "
                                            f"must be one of: {', '.join(entry.epoch_metrics)}"))
        known = KNOWN_DIRECTIONS.get(metric, "")
        expected = {"max": "maximize", "min": "minimize"}.get(known)
        direction = value.direction
        if direction is None:
            if expected is None:
                issues.append((("direction",), f"is required: {metric!r} has no known direction "
                                               f"(write maximize or minimize)"))
            direction = expected
        elif expected is not None and direction != expected:
            issues.append((("direction",), f"{metric} is better when {'larger' if known == 'max' else 'smaller'}, "
                                           f"so direction should be {expected} (got {direction})"))
        if issues:
            fail(issues)
        return value.model_copy(update={"direction": direction})

    @field_validator("targets", mode="before")
    @classmethod
    def _parse_targets(cls, value: Any) -> Any:
        if not isinstance(value, Mapping):
            return value
        issues: list[Issue] = []
        out = {}
        for metric, raw in value.items():
            try:
                out[metric] = fraction(raw)
            except ValueError as exc:
                issues.append(((metric,), str(exc)))
                continue
            if _looks_like_accuracy(str(metric)) and out[metric] > 1:
                issues.append(((metric,), f"{raw!r} looks like a percentage; write '{raw}%' or {out[metric] / 100}"))
        if issues:
            fail(issues)
        return out

    @field_validator("targets")
    @classmethod
    def _check_targets(cls, value: dict[str, float], info: ValidationInfo) -> dict[str, float]:
        entry = _entry(info)
        if entry is not None:
            issues = [((m,), p) for m in value if (p := _unknown_metric(m, entry))]
            if issues:
                fail(issues)
        return value

    @field_validator("baseline")
    @classmethod
    def _check_baseline(cls, value: Baseline | None, info: ValidationInfo) -> Baseline | None:
        entry = _entry(info)
        if value is not None and entry is not None:
            issues: list[Issue] = [((m,), p) for m in value.metrics if (p := _unknown_metric(m, entry))]
            for metric, v in value.metrics.items():
                if _looks_like_accuracy(metric) and v > 1:
                    issues.append(((metric,), f"{v} looks like a percentage; write '{v}%' or {v / 100}"))
            if issues:
                fail(issues)
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Param], info: ValidationInfo) -> dict[str, Param]:
        entry = _entry(info)
        issues: list[Issue] = []
        if entry is not None:
            issues += [((name,), p) for name in value if (p := entry.unknown_setting(name))]
        if not any(not p.is_fixed for p in value.values()):
            issues.append(((), "needs at least one param to tune (float, int or categorical)"))
        if issues:
            fail(issues)
        return value

    @field_validator("sampler")
    @classmethod
    def _check_grid(cls, value: Sampler, info: ValidationInfo) -> Sampler:
        params: dict[str, Param] | None = info.data.get("params")
        if value.type != "grid" or params is None:
            return value
        issues: list[Issue] = []
        for name, param in params.items():
            if not param.is_fixed and param.grid_values() is None:
                why = "a log range" if param.log else "a float range without a step"
                issues.append(((), f"the grid sampler needs a finite set of values, but params.{name} is {why}; "
                                   f"give it a step (e.g. step: 0.05) or categorical choices"))
        if issues:
            fail(issues)
        return value

    @field_validator("enqueue")
    @classmethod
    def _check_enqueue(cls, value: list[dict[str, Any]], info: ValidationInfo) -> list[dict[str, Any]]:
        params: dict[str, Param] | None = info.data.get("params")
        if params is None:
            return value
        sampled = [n for n, p in params.items() if not p.is_fixed]
        issues: list[Issue] = []
        out = []
        for i, row in enumerate(value):
            if not row:
                issues.append(((i,), "is empty; give values for some params"))
            clean = {}
            for key, raw in row.items():
                if key not in params:
                    issues.append(((i, key), unknown_key(key, sampled, "param")))
                    continue
                try:
                    clean[key] = params[key].admit(raw)
                except ValueError as exc:
                    issues.append(((i, key), str(exc)))
            out.append(clean)
        if issues:
            fail(issues)
        return out

    @field_validator("quick")
    @classmethod
    def _check_quick(cls, value: dict[str, Any]) -> dict[str, Any]:
        sections = [f for f in cls.model_fields if f != "quick"]
        issues: list[Issue] = []
        for key in value:
            head = str(key).split(".")[0]
            if not isinstance(key, str) or head not in sections or head == "":
                issues.append(((str(key),), f"quick keys are dotted paths into the spec such as training.epochs or "
                                            f"budget.trials; {unknown_key(head, sections, 'section')}"))
        if issues:
            fail(issues)
        return value

    # -- whole-config checks ---------------------------------------------------------------------------------
    @model_validator(mode="after")
    def _check_configs(self, info: ValidationInfo) -> Spec:
        context = info.context if isinstance(info.context, dict) else {}
        entry = context.get("_entrypoint")
        if not isinstance(entry, EntrypointInfo) or entry.target != self.entrypoint:
            entry = describe(self.entrypoint, context.get("base_dir"))
        self._entrypoint = entry
        issues: list[Issue] = []
        set_objective = self.training.get("objective")
        if set_objective is not None and set_objective != self.objective.metric:
            issues.append((("training", "objective"), f"is {set_objective!r} but objective.metric is "
                                                      f"{self.objective.metric!r}; remove one of them"))
        base = self.base_config()
        problem = entry.check(base)
        if problem:
            issues.append((self._blame(problem), f"{entry.target} refuses the training config: {problem}"))
        else:
            for name, param in self.params.items():
                if param.is_fixed:
                    continue
                for sub, value in param.extremes():
                    problem = entry.check({**base, name: value})
                    if problem:
                        issues.append((("params", name, *sub), f"refused by {entry.target}: {problem}"))
            for i, row in enumerate(self.enqueue):
                problem = entry.check({**base, **row})
                if problem:
                    issues.append((("enqueue", i), f"refused by {entry.target}: {problem}"))
        if issues:
            fail(issues)
        return self

    def _blame(self, problem: str) -> Path:
        """Where a whole-config problem most likely comes from: the key its message starts with."""
        match = re.match(r"([\w.]+)=", problem)
        key = match.group(1) if match else ""
        if key in self.params:
            return ("params", key, "value")
        if key in self.training:
            return ("training", key)
        return ("training",)

    # -- what the driver uses --------------------------------------------------------------------------------
    @property
    def direction(self) -> str:
        """``maximize`` or ``minimize``: the Optuna study direction."""
        return self.objective.direction or "maximize"

    @property
    def source_path(self) -> str | None:
        """The YAML file this spec was loaded from, if any."""
        return self._source

    @property
    def base_dir(self) -> str | None:
        """The folder of the YAML file (where user entrypoint modules are looked for first)."""
        return self._base_dir

    @property
    def quick_applied(self) -> bool:
        return self._quick_applied

    @property
    def overrides(self) -> tuple[str, ...]:
        """The ``--set`` expressions applied when loading."""
        return self._overrides

    def sampled_params(self) -> dict[str, Param]:
        return {n: p for n, p in self.params.items() if not p.is_fixed}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the sampled (non-fixed) params, by flat key."""
        return {n: p.distribution() for n, p in self.sampled_params().items()}

    def fixed_params(self) -> dict[str, Any]:
        return {n: p.value for n, p in self.params.items() if p.is_fixed}

    def base_config(self) -> dict[str, Any]:
        """Training values + the objective (when the entrypoint takes one) + fixed params: every trial's start."""
        config = dict(self.training)
        entry = self._entrypoint
        accepts_objective = entry is not None and entry.settings is not None and "objective" in entry.settings
        if accepts_objective and "objective" not in self.params:
            config.setdefault("objective", self.objective.metric)
        config.update(self.fixed_params())
        return config

    def trial_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The one flat config given to the entrypoint: training + fixed + sampled params (params win)."""
        return {**self.base_config(), **params}

    def metric_direction(self, metric: str) -> str:
        """``maximize`` or ``minimize`` for a reported metric (unknown metrics follow the objective)."""
        if metric == self.objective.metric:
            return self.direction
        return {"max": "maximize", "min": "minimize"}.get(KNOWN_DIRECTIONS.get(metric, ""), self.direction)

    def targets_met(self, metrics: Mapping[str, float]) -> bool:
        """True when every target is reached by ``metrics`` (False when there are no targets)."""
        if not self.targets:
            return False
        for metric, target in self.targets.items():
            value = metrics.get(metric)
            if value is None:
                return False
            if (value < target) if self.metric_direction(metric) == "maximize" else (value > target):
                return False
        return True

    def grid_search_space(self) -> dict[str, list[Any]]:
        """The values a grid search visits, per sampled param (continuous params are left out)."""
        space = {}
        for name, param in self.sampled_params().items():
            values = param.grid_values()
            if values is not None:
                space[name] = values
        return space

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_search_space().values())

    def default_sampler_options(self) -> dict[str, Any]:
        """The constructor options ``build_sampler`` passes (the spec's options over sweeper's defaults)."""
        options = dict(self.sampler.options)
        if self.sampler.type == "tpe":
            options.setdefault("multivariate", True)
            options.setdefault("constant_liar", True)  # parallel trials: pending ones count as bad, spreading work
            options.setdefault("n_startup_trials", max(5, min(10, self.budget.trials // 4)))
        return options

    def build_sampler(self, resumed_after: int = 0) -> optuna.samplers.BaseSampler:
        """The spec's sampler; ``resumed_after``: how many trials the study already holds when resuming it.

        A resumed sweep must not replay the random numbers the first run already used (with a fixed seed, the
        start-up trials would be sampled again, exactly), so its seed moves on by the trials already there.
        QMC keeps its seed: its scrambled sequence is indexed by the study and must stay the same sequence.
        """
        seed = self.sampler.seed
        if seed is not None and resumed_after and self.sampler.type != "qmc":
            seed += resumed_after
        cls = getattr(optuna.samplers, SAMPLER_CLASSES[self.sampler.type])
        if self.sampler.type == "grid":
            return cls(self.grid_search_space(), seed=seed)
        if self.sampler.type == "tpe":
            from search_spaces.samplers import ParallelTPESampler

            return ParallelTPESampler(seed=seed, **self.default_sampler_options())
        return cls(seed=seed, **self.default_sampler_options())

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML/JSON data, in the file's layout; loading it gives the same spec."""
        out: dict[str, Any] = {"name": self.name}
        if self.description:
            out["description"] = self.description
        if self.storage is not None:
            out["storage"] = self.storage
        out["entrypoint"] = self.entrypoint
        out["objective"] = {"metric": self.objective.metric, "direction": self.direction}
        if self.targets:
            out["targets"] = dict(self.targets)
        if self.baseline is not None:
            out["baseline"] = {"source": self.baseline.source, **self.baseline.metrics}
        out["training"] = _unflatten(self.training)
        out["params"] = {name: p.to_yaml_dict() for name, p in self.params.items()}
        out["sampler"] = {"type": self.sampler.type, "seed": self.sampler.seed, **self.sampler.options}
        out["scheduler"] = {"type": self.scheduler.type, **self.scheduler.options}
        out["budget"] = self.budget.model_dump()
        out["resources"] = self.resources.model_dump()
        if self.enqueue:
            out["enqueue"] = [dict(row) for row in self.enqueue]
        if self.quick:
            out["quick"] = dict(self.quick)
        return out
