"""The search-space schema: :class:`Spec`, the typed, immutable model of one sweep.

A check across sections sits on the later field (pydantic passes the valid earlier ones in ``info.data``), so
independent sections report their problems together, and one that needs a refused section's values waits for them
(a refused value's follow-on would mislead); checks of the whole training config, which need every value, run last.
"""

from __future__ import annotations

import itertools
import math
import unicodedata
from collections.abc import Callable, Mapping, Sequence
from typing import Annotated, Any

import optuna
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from search_spaces import sections
from search_spaces.sections import Path, fail
from trials.config import ConfigError, did_you_mean, flatten, text_keys, unflatten, unknown_key
from trials.entrypoint import DEFAULT_ENTRYPOINT, KNOWN_DIRECTIONS, EntrypointInfo, describe, metric_direction

Atoms = tuple[str, ...]
MAX_NAME_BYTES = 240
MAX_GRID_POINTS = 1_000_000  # a million trials is no sweep; beyond it the grid alone takes gigabytes
# ways to take related params' extremes tried beside one value, and beside all of a group's or the enqueued rows':
# past them a value is given the benefit of the doubt (300 x 300 categorical choices)
MAX_TRIES, MAX_GROUP_TRIES = 32, 1024
Extreme = tuple[str, Path, Any]  # a sampled param, where its extreme is written, and the value


def atoms(path: Sequence[Any]) -> Atoms:
    """One spelling of a place, for YAML lines, ``--set`` keys and errors: ``("training", "model.size", 0)`` ->
    ``("training", "model", "size", "0")``."""
    return tuple(a for part in path for a in (part.split(".") if isinstance(part, str) else [str(part)]))


def resolve_key(key: str, entry: EntrypointInfo | None, params: Mapping[str, Any], typed: bool = True) -> str:
    """The spec path a ``--set`` or ``quick:`` key means: a path into a section as written, else a training setting.

    A setting a param samples is refused, bare or, when ``typed`` (a --set), as ``training.KEY``: the param would
    win and the override change nothing. A quick profile's ``training.KEY`` yields to a param a --set added (the
    built-in profile pins the param as well); the loader refuses it beside a param of the file's own.
    """
    head, names = key.split(".")[0], list(Spec.model_fields)
    setting = key.removeprefix("training.")
    if setting in params and ((head == "training" and typed) or (entry and entry.settings and key in entry.settings)):
        change = "choices=[...]" if dict(params[setting] or {}).get("type") == "categorical" else "high=..."
        raise ValueError(f"{setting} is a param of this space (params.{setting}), which wins over training.{setting}:"
                         f" change it (params.{setting}.{change}) or pin it: "
                         f"'params.{setting}={{type: fixed, value: ...}}'")
    if head in names or entry is None:
        return key
    if entry.settings is None:
        raise ValueError(f"{key!r} is not a section of the space ({', '.join(names)}){did_you_mean(head, names)};"
                         f" a setting of {entry.target} is written training.{key}")
    if key not in entry.settings and entry.map_holding(key) is None:
        raise ValueError(f"{key!r} is neither a section of the space ({', '.join(names)}) nor a setting of "
                         f"{entry.target}{did_you_mean(head, names) or did_you_mean(key, list(entry.settings))}")
    return f"training.{key}"


def first_pass(entry: EntrypointInfo, config: Mapping[str, Any], options: Sequence[Sequence[Extreme]],
               counts: Callable[[ConfigError], bool], tries: int) -> tuple[bool, list[ConfigError], int]:
    """Whether some way to take one extreme from each of ``options`` leaves ``config`` without a problem that
    ``counts``, with the problems of the first way tried and the number of ways tried; past ``tries`` ways, a
    value is given the benefit of the doubt, as where a partner has no valid value (its own errors say why)."""
    ways, first = math.prod(map(len, options)), []  # no way at all (a partner without a valid value): it passes
    for tried, chosen in enumerate(itertools.islice(itertools.product(*options), tries), 1):
        if not (problems := [p for p in entry.problems({**config, **{n: v for n, _, v in chosen}}) if counts(p)]):
            return True, [], tried
        first = first or problems
    return ways == 0 or ways > tries, first, min(tries, ways)


def related_groups(entry: EntrypointInfo, sampled: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """Each setting of a group of related ones that the space samples, with its group: the entrypoint's rules
    between them wait for the sampled values."""
    return {key: group for group in entry.related if set(group) & set(sampled) for key in group}


def refused_values(entry: EntrypointInfo, base: Mapping[str, Any], sampled: Mapping[str, sections.SampledParam],
                   enqueue: Sequence[Mapping[str, Any]]) -> list[tuple[Path, str]]:
    """Each sampled param's extremes and each enqueued row, beside the training config ``base``: a value bad on
    its own is refused; one breaking a rule between related settings (min_lr <= lr) only where no extremes of its
    sampled partners let it pass, as a trial samples them together."""
    extremes = {name: [(name, sub, v) for sub, v in param.extremes()] for name, param in sampled.items()}
    group_of = related_groups(entry, sampled)
    groups = list(dict.fromkeys(group_of.values()))

    def judged_by_samples(problem: ConfigError) -> bool:
        return bool(problem.partners) and problem.key in group_of

    own = {(name, *sub): problems[0] for name in sampled for _, sub, value in extremes[name] if (problems := [
        p for p in entry.problems({**base, name: value}) if not judged_by_samples(p)])}
    issues = [(("params", *where), f"refused by {entry.target}: {problem}") for where, problem in own.items()]
    valid = {name: [e for e in options if (name, *e[1]) not in own] for name, options in extremes.items()}
    for group in groups:
        left, members = MAX_GROUP_TRIES, [name for name in group if name in sampled]
        for name, sub, value in (e for n in members for e in valid[n]):
            if left <= 0:
                break
            passes, problems, tried = first_pass(entry, {**base, name: value}, [valid[m] for m in members if m != name],
                lambda p, group=group: judged_by_samples(p) and group_of[p.key] == group, min(MAX_TRIES, left))
            left -= tried
            if not passes:
                issues.append((("params", name, *sub), f"refused by {entry.target}: "
                               f"{sorted(problems, key=lambda p: p.key != name)[0]}"))  # its own words first
    left = MAX_GROUP_TRIES
    for i, row in enumerate(enqueue):  # its related params at each of their extremes
        touched = [g for g in groups if set(g) & set(row)]
        passes, problems, tried = first_pass(
            entry, {**base, **row}, [valid[n] for g in touched for n in g if n in sampled and n not in row],
            lambda p, touched=touched: not judged_by_samples(p) or group_of[p.key] in touched,
            max(1, min(MAX_TRIES, left)))
        left -= tried
        if not passes:
            issues.append((("enqueue", i), f"refused by {entry.target}: {problems[0]}"))
    return issues


def _may_be_refused_name(key: str, info: ValidationInfo) -> bool:
    """Whether an enqueued row's key naming no valid param may name one the params refused, so that saying so would
    blame the row for the param's mistake: where no param name could be read (params missing, misspelt, not a
    mapping), where the key is a refused name, or where a name was refused as no setting (a misspelling) and the key
    is a setting (params.dropot beside a row's dropout)."""
    if (names := info.context.get("param_names")) is None or names.get(key):
        return True
    entry = info.context.get("entry")
    return bool(entry and not entry.unknown_setting(key)
                and any(refused and entry.unknown_setting(name) for name, refused in names.items()))


def _quick_key(key: str, info: ValidationInfo) -> str:
    resolve_key(key, info.context.get("entry"), info.data.get("params") or {}, typed=False)
    return key


class Spec(BaseModel):
    """One sweep: what to train, what to tune, how to sample and schedule, and what counts as success."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)
    name: str = Field(min_length=1)  # the study; default: the file's stem
    description: str = ""
    storage: str | None = None  # Optuna storage URL; the driver may override it (--storage, environment)
    entrypoint: str = Field(DEFAULT_ENTRYPOINT, validate_default=True)
    training: dict[str, Any] = Field(default_factory=dict)  # flat dotted keys
    objective: sections.Objective = Field(default_factory=sections.Objective)
    targets: sections.Targets = Field(default_factory=dict)
    baseline: sections.Baseline | None = None
    params: sections.Params
    sampler: sections.Sampler = Field(default_factory=sections.Sampler)
    scheduler: sections.Scheduler = Field(default_factory=sections.NoScheduler)
    budget: sections.Budget = Field(default_factory=sections.Budget)
    resources: sections.Resources = Field(default_factory=sections.Resources)
    enqueue: list[dict[str, Any]] = Field(default_factory=list)
    quick: dict[Annotated[str, AfterValidator(_quick_key)], Any] = Field(default_factory=dict)

    _entrypoint: EntrypointInfo | None = None
    _source: str | None = None
    _quick_applied: bool = False
    _overrides: tuple[str, ...] = ()
    _base_dir: str | None = None
    _where: tuple[dict, list] = ({}, [])  # the loader's YAML lines and --set origins
    source_path = property(lambda self: self._source, doc="The YAML file this spec was loaded from, if any.")
    base_dir = property(lambda self: self._base_dir, doc="The YAML file's folder, where user entrypoints are found.")
    quick_applied = property(lambda self: self._quick_applied)
    overrides = property(lambda self: self._overrides, doc="The ``--set`` expressions applied when loading.")
    entrypoint_info = property(lambda self: self._entrypoint, doc="The entrypoint's settings and metrics.")

    @model_validator(mode="before")
    @classmethod
    def _empty_sections(cls, data: Any) -> Any:
        """An empty section (``sampler:`` with nothing under it) means its defaults; a scheduler's type is none."""
        if not isinstance(data, Mapping):
            return data
        fields = cls.model_fields  # a misspelt or required one stays, to be refused
        data = {k: v for k, v in data.items() if v is not None or k not in fields or fields[k].is_required()}
        if isinstance(data.get("scheduler"), Mapping) and "type" not in data["scheduler"]:
            data["scheduler"] = {**data["scheduler"], "type": "none"}
        return data

    @field_validator("name")
    @classmethod
    def _folder_name(cls, name: str) -> str:
        """The name is a folder too (Ray's results, checkpoints), which must stay inside the results folder."""
        if name.startswith(".") or any(c in name for c in "/\\\0"):
            raise ValueError(f"{name!r} cannot name a study: it is also a folder name, so it may not start with '.' "
                             "or hold / or \\ (e.g. asl20-lr)")
        if (size := len(name.encode())) > MAX_NAME_BYTES:  # a folder name takes 255 bytes; room for --fresh's -2
            raise ValueError(f"is {size} bytes long; a study name is also a folder name: at most {MAX_NAME_BYTES}")
        if unseen := [c for c in name if unicodedata.category(c) in ("Cc", "Cf")]:  # tabs, newlines, U+202E
            raise ValueError(f"{name!r} holds {unseen[0]!a}, which a terminal or a listing shows as something "
                             "else or not at all: letters, digits, spaces and punctuation only")
        return name

    @field_validator("storage")
    @classmethod
    def _some_storage(cls, url: str | None) -> str | None:
        if url is not None and not url.strip():  # "$URL" unset in a script: not unset, it would write elsewhere
            raise ValueError("is empty; give a storage URL, or leave the key out for the default (sqlite:///sweeps.db)")
        return url

    @field_validator("entrypoint")
    @classmethod
    def _describe(cls, target: str, info: ValidationInfo) -> str:
        info.context["entry"] = describe(target, info.context.get("base_dir"))  # an EntrypointError is a ValueError
        return target

    @field_validator("training", mode="before")
    @classmethod
    def _check_training(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, Mapping) or (entry := info.context.get("entry")) is None:
            return value
        flat, twice = flatten(value, {k for k, v in (entry.settings or {}).items() if isinstance(v, Mapping)})
        issues: list[tuple[Path, str]] = [((key,), f"{key} is set twice") for key in twice]
        for key, raw in flat.items():
            try:
                flat[key] = entry.coerce(key, text_keys(raw))
            except ValueError as exc:  # a ConfigError too
                issues.append(((key,), str(exc)))
        fail(issues)
        return flat

    @field_validator("objective", mode="before")
    @classmethod
    def _objective_metric(cls, value: Any, info: ValidationInfo) -> Any:
        """Before the direction's check: an unknown metric's direction is no second problem."""
        entry = info.context.get("entry")
        metric = str(value.get("metric", "val_top3")) if isinstance(value, Mapping) and entry else None
        if metric is not None and (problem := entry.unknown_metric(metric)):
            fail([(("metric",), problem)])
        if metric is not None and entry.epoch_metrics is not None and metric not in entry.epoch_metrics:
            fail([(("metric",), f"{metric!r} is not reported every epoch with a direction; the objective must be one "
                                f"of: {', '.join(entry.epoch_metrics)}")])
        return value

    @field_validator("targets", "baseline")
    @classmethod
    def _reported(cls, value: Any, info: ValidationInfo) -> Any:
        entry = info.context.get("entry")
        metrics = value.metrics if isinstance(value, sections.Baseline) else value or {}
        fail([((m,), p) for m in metrics if entry and (p := entry.unknown_metric(m))])
        if info.field_name == "targets" and entry and entry.target == DEFAULT_ENTRYPOINT:
            fail([((m,), f"describes the run, not how good it is: neither larger nor smaller is better, so no "
                         f"target can be judged on it (targets may name: "
                         f"{', '.join(k for k, d in KNOWN_DIRECTIONS.items() if d)})")
                  for m in metrics if m in KNOWN_DIRECTIONS and KNOWN_DIRECTIONS[m] is None])
        return value

    @field_validator("params")
    @classmethod
    def _check_params(cls, value: dict[str, sections.Param]) -> dict[str, sections.Param]:
        if all(isinstance(p, sections.FixedParam) for p in value.values()):
            raise ValueError("needs at least one param to tune (float, int or categorical)")
        return value

    @field_validator("sampler")
    @classmethod
    def _check_grid(cls, value: sections.Sampler, info: ValidationInfo) -> sections.Sampler:
        if value.type == "grid":
            sampled = {n: p for n, p in (info.data.get("params") or {}).items() if isinstance(p, sections.SampledParam)}
            fail([((), f"the grid sampler needs a finite set of values, but params.{n} is " + (
                "a log range; drop log: true and give it a step, or list the values as categorical choices" if p.log
                else "a float range without a step; give it a step (e.g. step: 0.05) or categorical choices"))
                  for n, p in sampled.items() if p.grid_count() is None])
            if (points := math.prod(p.grid_count() for p in sampled.values())) > MAX_GRID_POINTS:
                raise ValueError(f"the grid has {points:,} points, and Optuna's grid sampler holds every one in memory:"
                                 f" at most {MAX_GRID_POINTS:,} (a coarser step, fewer choices, or another sampler)")
        return value

    @field_validator("budget")
    @classmethod
    def _targets_to_stop_at(cls, budget: sections.Budget, info: ValidationInfo) -> sections.Budget:
        if budget.stop_on_target and "targets" in info.data and not info.data["targets"]:  # refused: they say why
            fail([(("stop_on_target",), "is true, but the space names no targets to stop at: add targets (e.g. "
                                        "targets: {test_top3: 80%}), or leave it out")])
        return budget

    @field_validator("enqueue")
    @classmethod
    def _check_enqueue(cls, rows: list[dict[str, Any]], info: ValidationInfo) -> list[dict[str, Any]]:
        # params is None where one is refused: then a row's value is checked against its param where that validated,
        # else by its key only (a value needs its param)
        params, bodies = info.data.get("params"), info.context.get("param_bodies", {})
        names = params or {n: bodies.get(n) for n, bad in info.context.get("param_names", {}).items() if not bad}
        sampled = [n for n, p in names.items() if p is None or isinstance(p, sections.SampledParam)]
        issues: list[tuple[Path, str]] = [((i,), "is empty; give values for some params") for i, r in enumerate(rows)
                                          if not r]
        grid = bool(params) and getattr(info.data.get("sampler"), "type", None) == "grid"  # samples no missing key
        issues += [((i,), f"the grid sampler needs every param in an enqueued row; missing: {', '.join(missing)}")
                   for i, r in enumerate(rows) if r and grid and (missing := [n for n in sampled if n not in r])]
        for i, row in enumerate(rows):  # pydantic's copies: each value is put in its param's type in place
            for key, raw in row.items():
                if params is None and key not in names and _may_be_refused_name(key, info):
                    continue
                try:
                    if key not in sampled:
                        raise ValueError("is a fixed param; only sampled params can be enqueued" if key in names
                                         else unknown_key(key, sampled, "param"))
                    row[key] = names[key].admit(raw, key) if names[key] is not None else raw
                except ValueError as exc:
                    issues.append(((i, key), str(exc)))
        fail(issues)
        return rows

    @model_validator(mode="after")
    def _check_configs(self, info: ValidationInfo) -> Spec:
        """The configs trials would get, against the entrypoint: the base, each param's extremes, each enqueued row."""
        self._entrypoint = entry = info.context.get("entry")
        assert entry is not None  # every field validated, the entrypoint too
        issues: list[tuple[Path, str]] = []
        # placed at training.objective's line, which a check on the objective field (after training) could not do
        if self.training.get("objective") not in (None, self.objective.metric):
            issues.append((("training", "objective"), f"is {self.training['objective']!r} but objective.metric is "
                                                      f"{self.objective.metric!r}; remove one of them"))
        sampled = self.sampled_params()
        judged = related_groups(entry, sampled)
        try:  # a rule between settings the space samples waits for the sampled values (refused_values)
            base = self.base_config()
            loose = [p for p in entry.problems(base) if not (p.partners and p.key in judged)]
        except ConfigError as exc:  # a fixed value not of its setting's type
            base, loose = {}, [exc]
        if loose:
            key = loose[0].key
            where = ("params", key, "value") if key in self.params else \
                ("training", key) if key in self.training else ("training",)
            issues.append((where, f"{entry.target} refuses the training config: {loose[0]}"))
        else:
            issues += refused_values(entry, base, sampled, self.enqueue)
            issues += self._targets_always_met(entry, base, sampled)
            issues += [(("params", name, "type"), f"{name} is an int setting of {entry.target}; a float range would "
                                                  "give it fractions: write type: int")
                       for name, param in sampled.items()
                       if isinstance(param, sections.FloatParam) and type((entry.settings or {}).get(name)) is int]
            # a full sweep's: a smoke run (--quick) says so as it starts, and a stored study goes on as it ran
            if not (info.context.get("stored") or info.context.get("quick")) and (idle := self.idle_scheduler()):
                issues.append((("scheduler", idle[0]), idle[1]))
        fail(issues)
        return self

    def _targets_always_met(self, entry: EntrypointInfo, base: Mapping[str, Any],
                            sampled: Mapping[str, sections.SampledParam]) -> list[tuple[Path, str]]:
        """A top-k target with k at least the classes is met by any model, as the objective is refused then."""
        param = sampled.get("dataset.classes")
        classes = min(value for _, value in param.extremes()) if param else base.get("dataset.classes")
        if entry.target != DEFAULT_ENTRYPOINT or not isinstance(classes, int):
            return []
        tops = {metric: int(k) for metric in self.targets if (k := metric.rpartition("_top")[2]).isdigit()}
        return [(("targets", metric), f"with {classes} classes every label is in the top {k}, so any model meets "
                                      f"it: judge a top-k below {classes}, or top-1")
                for metric, k in tops.items() if k >= classes]

    def idle_scheduler(self) -> tuple[str, str] | None:
        """The scheduler's field and why, where it (or an ASHA bracket) judges a trial first at its last epoch or later,
        so that it stops none: no trial is stopped at its last epoch (that saves nothing, and would record a trained
        trial as PRUNED), and the sweep (or the bracket's share) would run as with no scheduler, silently."""
        kind, epochs = self.scheduler.type, self.planned_epochs()
        options = {**self.scheduler.DEFAULTS, **self.scheduler.options}
        first, others = options.get("grace_period", 1), options.get("min_samples_required", 0)
        most = "at most " * isinstance(self.params.get("epochs"), sections.SampledParam)
        if others >= self.budget.trials:  # the median rule judges a trial beside that many others, or not at all
            return "min_samples_required", (
                f"{kind} would stop no trial early: it compares a trial with min_samples_required={others} others, "
                f"but a sweep of budget.trials={self.budget.trials} gives a trial at most {self.budget.trials - 1}; "
                f"give a min_samples_required below {self.budget.trials}, or more trials")
        top = min(options.get("max_t", math.inf), epochs - 1 if epochs else 100)  # build_scheduler's last rung
        if kind == "asha" and first <= top and (brackets := options["brackets"]) > (useful := int(  # Ray's count of
                math.log(top / first) / math.log(options["reduction_factor"]) + 1)):  # brackets with a rung
            last = f", below a trial's last epoch ({most}{epochs})" if top == epochs - 1 else " (max_t)"
            return "brackets", (f"asha would stop no trial in {brackets - useful} of its {brackets} brackets, and run "
                                "their trials unjudged: bracket k judges first at epoch grace_period x reduction_factor"
                                f"^k, at most {top}{last}, so at most {useful} can: give brackets: {useful} or fewer, "
                                "a smaller reduction_factor, or train more epochs")
        if kind == "none" or not epochs or first < epochs:
            return None
        field = "type" if kind == "hyperband" else "grace_period"  # HyperBand's first rung is epoch 1
        fix = f"give a grace_period below {epochs}, " if field == "grace_period" and epochs > 1 else ""
        return field, (f"{kind} would stop no trial early: it judges a trial first at epoch {first}, but a trial "
                       f"trains {most}epochs={epochs}, and none is stopped at its last epoch (that saves nothing); "
                       f"{fix}train more epochs, or use scheduler type: none")

    direction = property(lambda self: self.objective.direction, doc="``maximize`` or ``minimize``: the study's.")

    def metric_direction(self, metric: str) -> str:
        """``maximize`` or ``minimize`` for a reported metric (see :func:`trials.entrypoint.metric_direction`)."""
        return self.direction if metric == self.objective.metric else metric_direction(metric, self.direction)

    def planned_epochs(self) -> int:
        """The epochs a trial trains: the training block's, else the most a param samples, else the entrypoint's
        default (the core's 30); 0 when unknown."""
        epochs = self.params.get("epochs")
        if isinstance(epochs, sections.SampledParam):
            return int(max(value for _, value in epochs.extremes()))
        default = (self._entrypoint.settings or {}).get("epochs") if self._entrypoint else None
        return int(self.base_config().get("epochs", default) or 0)

    def sampled_params(self) -> dict[str, sections.SampledParam]:
        return {n: p for n, p in self.params.items() if isinstance(p, sections.SampledParam)}

    def distributions(self) -> dict[str, optuna.distributions.BaseDistribution]:
        """Optuna distributions of the sampled (non-fixed) params, by flat key."""
        return {n: p.distribution() for n, p in self.sampled_params().items()}

    def fixed_params(self) -> dict[str, Any]:
        return {n: p.value for n, p in self.params.items() if isinstance(p, sections.FixedParam)}

    def base_config(self) -> dict[str, Any]:
        """Training values + the objective (when the entrypoint takes one) + fixed params: every trial's start."""
        config = dict(self.training)
        if "objective" in ((self._entrypoint and self._entrypoint.settings) or ()) and "objective" not in self.params:
            config.setdefault("objective", self.objective.metric)
        return self._typed({**config, **self.fixed_params()})

    def trial_config(self, params: Mapping[str, Any]) -> dict[str, Any]:
        """The one flat config given to the entrypoint: training + fixed + sampled params (params win)."""
        return {**self.base_config(), **self._typed(dict(params))}

    def _typed(self, config: dict[str, Any]) -> dict[str, Any]:
        """Values in their settings' types, as the training block's are (a fixed 1000.0 for an int setting is 1000)."""
        settings = (self._entrypoint and self._entrypoint.settings) or {}
        return {k: self._entrypoint.coerce(k, v) if k in settings else v for k, v in config.items()}

    def grid_search_space(self) -> dict[str, list[Any]]:
        """The values a grid search visits, per sampled param (continuous params are left out)."""
        return {n: values for n, p in self.sampled_params().items() if (values := p.grid_values()) is not None}

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.grid_search_space().values())

    def _quick_left(self) -> dict[str, Any]:
        """The quick: section without what a --set changed (a new type: the options it does not take, which --quick
        applied first, and the new type dropped; a param, its setting, and its enqueued values where it is pinned): the
        sections hold the --set's value, which --quick, applying a --set after the profile, keeps."""
        typed = {("sampler",): self.sampler, ("scheduler",): self.scheduler,
                 **{("params", *atoms([n])): p for n, p in self.params.items()}}
        sets = [o for o, label, *_ in self._where[1] if label.startswith("--set")]
        quick = flatten(self.quick)[0]  # each leaf is a step of --quick, nested or not (loader.quick_profile)
        at = {k: atoms([k if k.split(".")[0] in Spec.model_fields else f"training.{k}"]) for k in quick}
        rows = {a[:2] for a in at.values() if a[0] == "enqueue"}  # a param's value in any row; a --set's, in its own
        sets += [(*head, *o[1:]) for o in sets if o[0] == "params" for head in [("training",), *rows] if head[0] ==
                 "training" or any(o[:len(k)] == k and isinstance(p, sections.FixedParam) for k, p in typed.items())]
        def kept(a: Atoms, o: Atoms) -> bool:  # the quick's key a beside the --set o
            if o[-1] == "type" and (t := typed.get(o[:-1])) and len(a) >= len(o) and a[:len(o) - 1] == o[:-1]:
                takes = {*type(t).model_fields, *(sections.sampler_options(t.type) if t is self.sampler else ())}
                return a[len(o) - 1] in takes - {"type"}
            return a[:len(o)] != o[:len(a)]
        return {k: v for k, v in quick.items() if all(kept(at[k], o) for o in sets)}

    def to_yaml_dict(self) -> dict[str, Any]:
        """The resolved spec as plain YAML/JSON data, in the file's layout; loading it gives the same spec."""
        out = {**self.model_dump(), "training": unflatten(self.training), "quick": self._quick_left(),
               "params": {n: p.model_dump(exclude_defaults=True) for n, p in self.params.items()},
               "scheduler": self.scheduler.model_dump(exclude_none=True),
               "resources": self.resources.model_dump(exclude_none=True)}  # no on_gpu: null
        optional = ("description", "storage", "targets", "baseline", "enqueue", "quick")
        return {k: v for k, v in out.items() if v or k not in optional}
