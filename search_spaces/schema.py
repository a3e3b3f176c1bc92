"""The search-space schema: :class:`Spec`, the typed, immutable model of one sweep.

A check across sections sits on the later of the two fields (pydantic validates fields in declaration order and
passes the valid earlier ones in ``info.data``), so independent sections still report their problems together.
The entrypoint's description travels in the validation context; checks of the whole training config run last.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

import optuna
from pydantic import Field, PrivateAttr, StringConstraints, ValidationInfo, field_validator, model_validator

from search_spaces.entrypoint import DEFAULT_ENTRYPOINT, KNOWN_DIRECTIONS, EntrypointError, EntrypointInfo, describe
from search_spaces.sections import (
    SAMPLER_CLASSES,
    Baseline,
    Budget,
    FixedParam,
    NoScheduler,
    Objective,
    Param,
    Path,
    Resources,
    SampledParam,
    Sampler,
    Scheduler,
    _Model,
    fail,
    metric_values,
)
from trials.config import ConfigError, did_you_mean, unknown_key


def flatten(nested: Mapping[str, Any], leaves: set[str]) -> tuple[dict[str, Any], list[tuple[Path, str]]]:
    """``{dataset: {classes: 5}}`` -> ``{"dataset.classes": 5}``; ``leaves`` are dotted keys whose value is a dict."""
    flat: dict[str, Any] = {}
    issues: list[tuple[Path, str]] = []

    def walk(node: Mapping[str, Any], prefix: str) -> None:
        for key, value in node.items():
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and name not in leaves:
                walk(value, name + ".")
            elif name in flat:
                issues.append(((name,), f"{name} is set twice"))
            else:
                flat[name] = value

    walk(nested, "")
    return flat, issues


def unflatten(flat: Mapping[str, Any]) -> dict[str, Any]:
    """The inverse of :func:`flatten`, for the resolved spec; a key that cannot nest stays dotted."""
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, last = key.split(".")
        node: Any = out
        for part in parents:
            node = node.setdefault(part, {}) if isinstance(node, dict) else node
        if isinstance(node, dict) and last not in node:
            node[last] = value
        else:
            out[key] = value
    return out


def _entry(info: ValidationInfo) -> EntrypointInfo | None:
    """The entrypoint's description once the ``entrypoint`` field validated (else its own error is reported)."""
    return info.context.get("entry") if isinstance(info.context, dict) else None


def _unknown_metric(metric: str, entry: EntrypointInfo) -> str | None:
    if entry.metrics is None or metric in entry.metrics:
        return None
    return f"unknown metric {metric!r}{did_you_mean(metric, list(entry.metrics))}; " \
           f"{entry.target} reports: {', '.join(entry.metrics)}"


def resolve_key(key: str, entry: EntrypointInfo | None, params: Mapping[str, Any]) -> str:
    """The spec path a ``--set`` or ``quick:`` key means: a path into a section as written, else a training setting.

    ``epochs`` means ``training.epochs`` when the entrypoint has that setting and no param samples it (the param
    would win over the training value, so that spelling would change nothing); anything else is an error.
    """
    head = key.split(".")[0]
    if head in Spec.model_fields or entry is None:
        return key
    sections = list(Spec.model_fields)
    if entry.settings is None:
        raise ValueError(f"{key!r} is not a section of the space ({', '.join(sections)}){did_you_mean(head, sections)};"
                         f" a setting of {entry.target} is written training.{key}")
    if key in entry.settings and key in params:
        raise ValueError(f"{key} is a param of this space (params.{key}), which wins over training.{key}: change "
                         f"its range or choices (params.{key}.high=...) or pin it ('params.{key}={{type: fixed, "
                         f"value: ...}}')")
    if key in entry.settings:
        return f"training.{key}"
    hint = did_you_mean(head, sections) or did_you_mean(key, list(entry.settings))
    raise ValueError(f"{key!r} is neither a section of the space ({', '.join(sections)}) nor a setting of "
                     f"{entry.target}{hint}")


class Spec(_Model):
    """One sweep: what to train, what to tune, how to sample and schedule, and what counts as success."""

    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1)]  # the study; default: file stem
    description: str = ""
    storage: str | None = None  # Optuna storage URL; the driver may override it (--storage, environment)
    entrypoint: str = Field(DEFAULT_ENTRYPOINT, validate_default=True)
    training: dict[str, Any] = Field(default_factory=dict)  # flat dotted keys after loading
    objective: Objective = Field(default_factory=Objective, validate_default=True)
    targets: dict[str, float] = Field(default_factory=dict)
    baseline: Baseline | None = None
    params: dict[str, Param]
    sampler: Sampler = Field(default_factory=Sampler)
    scheduler: Scheduler = Field(default_factory=NoScheduler)
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
    def _defaults(cls, value: Any, info: ValidationInfo) -> Any:
        """An empty section (``sampler:`` with nothing under it) means its defaults; a scheduler's is none."""
        if value is None:
            return [] if info.field_name == "enqueue" else {}
        if info.field_name == "scheduler" and isinstance(value, Mapping) and "type" not in value:
            return {**value, "type": "none"}
        return value

    @field_validator("entrypoint")
    @classmethod
    def _describe(cls, target: str, info: ValidationInfo) -> str:
        try:
            info.context["entry"] = describe(target, info.context.get("base_dir"))
        except EntrypointError as exc:
            raise ValueError(str(exc)) from None
        return target

    @field_validator("training", mode="before")
    @classmethod
    def _check_training(cls, value: Any, info: ValidationInfo) -> Any:
        entry = _entry(info)
        if not isinstance(value, Mapping) or entry is None:
            return value
        flat, issues = flatten(value, {k for k, v in (entry.settings or {}).items() if isinstance(v, Mapping)})
        for key, raw in flat.items():
            try:
                flat[key] = entry.setting(key, raw)
            except ConfigError as exc:
                issues.append(((key,), str(exc)))
        if issues:
            fail(issues)
        return flat

    @field_validator("objective")
    @classmethod
    def _check_objective(cls, value: Objective, info: ValidationInfo) -> Objective:
        entry = _entry(info)
        issues: list[tuple[Path, str]] = []
        metric = value.metric
        if entry is not None and (problem := _unknown_metric(metric, entry)):
            issues.append((("metric",), problem))
        elif entry is not None and entry.epoch_metrics is not None and metric not in entry.epoch_metrics:
            issues.append((("metric",), f"{metric!r} is not reported every epoch with a direction; the objective "
                                        f"must be one of: {', '.join(entry.epoch_metrics)}"))
        known = KNOWN_DIRECTIONS.get(metric)
        direction = value.direction or known
        if direction is None:
            issues.append((("direction",), f"is required: {metric!r} has no known direction "
                                           f"(write maximize or minimize)"))
        elif known is not None and direction != known:
            issues.append((("direction",), f"{metric} is better when {'larger' if known == 'maximize' else 'smaller'}"
                                           f", so direction should be {known} (got {direction})"))
        if issues:
            fail(issues)
        return value.model_copy(update={"direction": direction})

    @field_validator("targets", mode="before")
    @classmethod
    def _parse_targets(cls, value: Any) -> Any:
        return metric_values(value)

    @field_validator("targets", "baseline")
    @classmethod
    def _reported(cls, value: Any, info: ValidationInfo) -> Any:
        entry = _entry(info)
        metrics = value.metrics if isinstance(value, Baseline) else value or {}
        issues = [((m,), p) for m in metrics if entry is not None and (p := _unknown_metric(m, entry))]
        if issues:
            fail(issues)
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, Param], info: ValidationInfo) -> dict[str, Param]:
        entry = _entry(info)
        issues: list[tuple[Path, str]] = []
        if entry is not None and entry.settings is not None:
            issues += [((n,), unknown_key(n, list(entry.settings), "setting")) for n in value if n not in entry.settings]
        if all(isinstance(p, FixedParam) for p in value.values()):
            issues.append(((), "needs at least one param to tune (float, int or categorical)"))
        if issues:
            fail(issues)
        return value

    @field_validator("sampler")
    @classmethod
    def _check_grid(cls, value: Sampler, info: ValidationInfo) -> Sampler:
        params: dict[str, Param] = info.data.get("params") or {}
        if value.type != "grid":
            return value
        issues = []
        for name, param in params.items():
            if isinstance(param, SampledParam) and param.grid_values() is None:
                advice = ("drop log: true and give it a step, or list the values as categorical choices" if param.log
                          else "give it a step (e.g. step: 0.05) or categorical choices")
                why = "a log range" if param.log else "a float range without a step"
                issues.append(((), f"the grid sampler needs a finite set of values, but params.{name} is {why}; "
                                   f"{advice}"))
        if issues:
            fail(issues)
        return value

    @field_validator("enqueue")
    @classmethod
    def _check_enqueue(cls, rows: list[dict[str, Any]], info: ValidationInfo) -> list[dict[str, Any]]:
        params: dict[str, Param] | None = info.data.get("params")
        if params is None:
            return rows
        sampled = [n for n, p in params.items() if isinstance(p, SampledParam)]
        issues: list[tuple[Path, str]] = [((i,), "is empty; give values for some params") for i, r in enumerate(rows)
                                          if not r]
        out = []
        for i, row in enumerate(rows):
            clean = {}
            for key, raw in row.items():
                param = params.get(key)
                try:
                    if param is None:
                        raise ValueError(unknown_key(key, sampled, "param"))
                    if isinstance(param, FixedParam):
                        raise ValueError("is a fixed param; only sampled params can be enqueued")
                    clean[key] = param.admit(raw, key)
                except ValueError as exc:
                    issues.append(((i, key), str(exc)))
            out.append(clean)
        if issues:
            fail(issues)
        return out

    @field_validator("quick")
    @classmethod
    def _check_quick(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        issues = []
        for key in value:
            try:
                resolve_key(str(key), _entry(info), info.data.get("params") or {})
            except ValueError as exc:
                issues.append(((str(key),), str(exc)))
        if issues:
            fail(issues)
        return value

    # -- whole-config checks ---------------------------------------------------------------------------------
    @model_validator(mode="after")
    def _check_configs(self, info: ValidationInfo) -> Spec:
        self._entrypoint = entry = _entry(info)
        assert entry is not None  # every field validated, the entrypoint too
        issues: list[tuple[Path, str]] = []
        set_objective = self.training.get("objective")
        if set_objective is not None and set_objective != self.objective.metric:
            issues.append((("training", "objective"), f"is {set_objective!r} but objective.metric is "
                                                      f"{self.objective.metric!r}; remove one of them"))
        base = self.base_config()
        if problem := entry.check(base):
            where = ("params", problem.key, "value") if problem.key in self.params else \
                ("training", problem.key) if problem.key in self.training else ("training",)
            issues.append((where, f"{entry.target} refuses the training config: {problem}"))
        else:
            for name, param in self.sampled_params().items():
                issues += [(("params", name, *sub), f"refused by {entry.target}: {problem}")
                           for sub, value in param.extremes() if (problem := entry.check({**base, name: value}))]
            issues += [(("enqueue", i), f"refused by {entry.target}: {problem}")
                       for i, row in enumerate(self.enqueue) if (problem := entry.check({**base, **row}))]
        if issues:
            fail(issues)
        return self

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

    def sampled_params(self) -> dict[str, SampledParam]:
        return {n: p for n, p in self.params.items() if isinstance(p, SampledParam)}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the sampled (non-fixed) params, by flat key."""
        return {n: p.distribution() for n, p in self.sampled_params().items()}

    def fixed_params(self) -> dict[str, Any]:
        return {n: p.value for n, p in self.params.items() if isinstance(p, FixedParam)}

    def base_config(self) -> dict[str, Any]:
        """Training values + the objective (when the entrypoint takes one) + fixed params: every trial's start."""
        config = dict(self.training)
        settings = self._entrypoint.settings if self._entrypoint is not None else None
        if settings is not None and "objective" in settings and "objective" not in self.params:
            config.setdefault("objective", self.objective.metric)
        config.update(self.fixed_params())
        return config

    def trial_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The one flat config given to the entrypoint: training + fixed + sampled params (params win)."""
        return {**self.base_config(), **params}

    def metric_direction(self, metric: str) -> str:
        """``maximize`` or ``minimize`` for a reported metric (unknown metrics follow the objective)."""
        return self.direction if metric == self.objective.metric else KNOWN_DIRECTIONS.get(metric) or self.direction

    def grid_search_space(self) -> dict[str, list[Any]]:
        """The values a grid search visits, per sampled param (continuous params are left out)."""
        return {n: values for n, p in self.sampled_params().items() if (values := p.grid_values()) is not None}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_search_space().values())

    def default_sampler_options(self) -> dict[str, Any]:
        """The constructor options ``build_sampler`` passes (the spec's options over sweeper's defaults)."""
        options = self.sampler.options
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
        if self.sampler.type == "grid":
            return optuna.samplers.GridSampler(self.grid_search_space(), seed=seed)
        if self.sampler.type == "tpe":
            from search_spaces.samplers import ParallelTPESampler

            return ParallelTPESampler(seed=seed, **self.default_sampler_options())
        return getattr(optuna.samplers, SAMPLER_CLASSES[self.sampler.type])(seed=seed, **self.default_sampler_options())

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML/JSON data, in the file's layout; loading it gives the same spec."""
        out: dict[str, Any] = {"name": self.name, "description": self.description, "storage": self.storage,
                               "entrypoint": self.entrypoint,
                               "objective": {"metric": self.objective.metric, "direction": self.direction},
                               "targets": dict(self.targets),
                               "baseline": {"source": self.baseline.source, **self.baseline.metrics}
                               if self.baseline else None,
                               "training": unflatten(self.training),
                               "params": {name: p.to_yaml_dict() for name, p in self.params.items()},
                               "sampler": {"type": self.sampler.type, "seed": self.sampler.seed, **self.sampler.options},
                               "scheduler": {"type": self.scheduler.type, **self.scheduler.options},
                               "budget": self.budget.model_dump(), "resources": self.resources.model_dump(),
                               "enqueue": [dict(row) for row in self.enqueue], "quick": dict(self.quick)}
        always = ("name", "entrypoint", "objective", "training", "params", "sampler", "scheduler", "budget",
                  "resources")
        return {k: v for k, v in out.items() if k in always or v}
