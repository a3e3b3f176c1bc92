"""The sections of a space file as pydantic models; each checks its own values, :class:`Spec` checks across them."""

from __future__ import annotations

import contextlib
import inspect
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from importlib.util import find_spec
from typing import Annotated, Any, ClassVar, Literal

import optuna
from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, model_validator
from pydantic_core import InitErrorDetails, PydanticCustomError, ValidationError

from trials.config import ConfigError, coerce, did_you_mean, text_keys, unknown_key
from trials.entrypoint import DEFAULT_ENTRYPOINT, KNOWN_DIRECTIONS
from trials.metrics import is_accuracy

Path = tuple[str | int, ...]
SAMPLER_CLASSES = {"tpe": "TPESampler", "random": "RandomSampler", "grid": "GridSampler", "cmaes": "CmaEsSampler",
                   "qmc": "QMCSampler", "gp": "GPSampler"}
# Optional packages some Optuna samplers import only when they first sample: check them before a sweep starts.
SAMPLER_PACKAGES = {"cmaes": ("cmaes",), "qmc": ("scipy",), "gp": ("scipy", "torch")}


def fail(issues: Sequence[tuple[Path, str]]) -> None:
    """Raise every problem at once, if any; pydantic prefixes each path with the place of the value validated."""
    if issues:
        raise ValidationError.from_exception_data("spec", [InitErrorDetails(
            type=PydanticCustomError("spec", "{message}", {"message": message}), loc=path, input=None)
            for path, message in issues])


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):  # pydantic would read true as 1
        raise ValueError(f"expected a number, got {value!r}")
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool), Field(allow_inf_nan=False)]


def fraction(value: Any) -> float:
    """``0.8``, ``"0.8"`` or ``"80%"`` -> 0.8; anything else (a list, an empty value, NaN) is refused."""
    text = value.strip() if isinstance(value, str) else None
    try:
        number = round(float(text[:-1]) / 100, 12) if text and text.endswith("%") else float(text or _not_bool(value))
    except (TypeError, ValueError):
        number = math.nan
    if not math.isfinite(number):
        raise ValueError(f"expected a number or a percentage such as '80%', got {value!r}")
    return number


def metric_values(raw: Any) -> Any:
    """Targets and baseline figures as fractions; an accuracy above 1 is a percentage, or one above 100%."""
    if not isinstance(raw, Mapping):
        return raw
    out, issues = {}, []
    for metric, value in raw.items():
        try:
            out[metric] = number = fraction(value)
        except ValueError as exc:
            issues.append(((metric,), str(exc)))
            continue
        if is_accuracy(str(metric)) and not 0 <= number <= 1:
            issues.append(((metric,), f"{value} is {'below 0%' if number < 0 else 'above 100%'}, which {metric} "
                           "cannot reach" if number < 0 or str(value).endswith("%") else
                           f"{value!r} looks like a percentage; write '{value}%' or {number / 100}"))
    fail(issues)
    return out


Targets = Annotated[dict[str, float], BeforeValidator(metric_values)]
_DURATION = re.compile("".join(rf"(?:(\d+(?:\.\d*)?(?:e[+-]?\d+)?){unit})?" for unit in "dhms"))  # 1e-07s: 1e-7 s


def duration_seconds(value: Any) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"`` -> seconds."""
    match = _DURATION.fullmatch(value.replace(" ", "").lower()) if isinstance(value, str) else None
    if match and any(match.groups()):
        seconds = sum(float(g or 0) * unit for g, unit in zip(match.groups(), (86400, 3600, 60, 1), strict=True))
    elif isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    else:
        raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1h30m, got {value!r}")
    if not 0 < seconds < math.inf:  # NaN too
        raise ValueError(f"must be a positive, finite duration (got {value!r})")
    return seconds


def _duration(value: Any) -> Any:
    duration_seconds(value)
    return f"{value}s" if isinstance(value, int | float) else value


Duration = Annotated[str, BeforeValidator(_duration)]


def _on_grid(value: float, low: float, step: float) -> bool:
    return abs((k := (value - low) / step) - round(k)) <= 1e-9 * max(1.0, abs(k))


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Objective(_Model):
    """The metric each trial is judged on; ``direction`` defaults from the metric (``val_top3`` -> maximize)."""

    metric: str = "val_top3"
    direction: Literal["maximize", "minimize"]

    @model_validator(mode="before")
    @classmethod
    def _direction(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        metric = data.get("metric", "val_top3")
        known, given = KNOWN_DIRECTIONS.get(str(metric)), data.get("direction")
        if given is None and known is None:
            fail([(("direction",), f"is required: {metric!r} has no known direction (write maximize or minimize)")])
        if known is not None and given not in (None, known):
            fail([(("direction",), f"{metric} is better when {'larger' if known == 'maximize' else 'smaller'}, "
                                   f"so direction should be {known} (got {given})")])
        return {**data, "direction": given or known}


class Baseline(_Model):
    """Reference results a sweep is compared with, written flat: ``{source: ..., test_top1: 42.47%}``."""

    model_config = ConfigDict(frozen=True, extra="allow")
    __pydantic_extra__: dict[str, float]
    source: str
    metrics = property(lambda self: dict(self.model_extra or {}))

    @model_validator(mode="before")
    @classmethod
    def _figures(cls, data: Any) -> Any:
        figures = {k: v for k, v in data.items() if k != "source"} if isinstance(data, Mapping) else None
        if figures == {}:
            raise ValueError("needs at least one metric value, e.g. test_top3: 75.29%")
        return data if figures is None else {**data, **metric_values(figures)}


class _Range(_Model):
    """Float and int params: a range, sampled on a log scale or on a grid of ``step``."""

    type: str
    low: Float
    high: Float
    log: bool = False
    step: Float | None = Field(None, gt=0)

    @model_validator(mode="after")
    def _check(self) -> _Range:
        issues: list[tuple[Path, str]] = []
        if self.log and self.low <= 0:
            issues.append((("low",), f"must be > 0 when log: true (got low={self.low})"))
        if not self.low < self.high:
            issues.append((("low",), f"must be < high (got low={self.low}, high={self.high})"))
        if self.step is not None and self.log and not (isinstance(self, IntParam) and self.step == 1):
            issues.append((("step",), "cannot be combined with log: true (Optuna samples log ranges continuously, "
                                      "an int's in steps of 1)"))
        elif self.step is not None and not _on_grid(self.high, self.low, self.step):
            issues.append((("step",), f"high - low must be a multiple of step (got low={self.low}, high={self.high},"
                                      f" step={self.step})"))
        fail(issues)
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        if isinstance(self, IntParam):
            return optuna.distributions.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)

    def grid_count(self) -> int | None:
        """How many values a grid search visits (counted, not listed: a fine step makes billions), or None when the
        range is continuous."""
        step = self.step or (1 if isinstance(self, IntParam) else None)
        return None if self.log or step is None else round((self.high - self.low) / step) + 1

    def grid_values(self) -> list[Any] | None:
        """Every value a grid search visits, or None when the range is continuous."""
        if (count := self.grid_count()) is None:
            return None
        values = [self.low + i * (self.step or 1) for i in range(count)]
        return values if isinstance(self, IntParam) else [float(f"{v:.12g}") for v in values]

    def admit(self, value: Any, name: str = "value") -> Any:
        """The value in this param's type when it lies in its range and on its step; raises ValueError."""
        v = coerce(name, value, int if isinstance(self, IntParam) else float)
        if not self.low <= v <= self.high:
            raise ValueError(f"{v} is outside [{self.low}, {self.high}]")
        if self.step is not None and not _on_grid(v, self.low, self.step):
            raise ValueError(f"{v} is not on the grid low + k * step (low={self.low}, step={self.step})")
        return v

    def extremes(self) -> list[tuple[Path, Any]]:
        return [(("low",), self.low), (("high",), self.high)]


class FloatParam(_Range):
    type: Literal["float"]


class IntParam(_Range):
    type: Literal["int"]
    low: Int
    high: Int
    step: Int | None = Field(None, gt=0)


def _scalar(choice: Any) -> Any:
    if not (choice is None or isinstance(choice, bool | int | float | str)):
        raise ValueError(f"choices must be str, number, bool or null (got {choice!r})")
    return choice


def _same(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)  # True == 1 in Python, not in a space


class CategoricalParam(_Model):
    type: Literal["categorical"]
    choices: list[Annotated[Any, AfterValidator(_scalar)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _distinct(self) -> CategoricalParam:
        """Optuna finds a choice's index with ==: 1 and true would both be stored, and learned, as the first."""
        choices = self.choices
        fail([(("choices", i), f"duplicate choice {c!r}" if c is other or _same(c, other) else
               f"{c!r} is the choice {other!r} to Optuna (True == 1, False == 0): keep one, or use strings")
              for i, c in enumerate(choices) if c in choices[:i] for other in [choices[choices.index(c)]]])
        return self

    def distribution(self) -> optuna.distributions.BaseDistribution:
        return optuna.distributions.CategoricalDistribution(self.choices)

    def grid_count(self) -> int:
        return len(self.choices)

    def grid_values(self) -> list[Any]:
        return list(self.choices)

    def admit(self, value: Any, name: str = "value") -> Any:
        if found := [c for c in self.choices if _same(value, c)]:
            return found[0]
        if matching := [c for c in self.choices if str(c) == str(value)]:  # '0.1' for 0.1: a quoted number
            raise ValueError(f"{value!r} ({type(value).__name__}) is not one of the choices {self.choices}: the "
                             f"choice is {matching[0]!r} ({type(matching[0]).__name__}); write it as the choices do")
        raise ValueError(f"{value!r} is not one of the choices {self.choices}"
                         f"{did_you_mean(value, [str(c) for c in self.choices])}")

    def extremes(self) -> list[tuple[Path, Any]]:
        return [(("choices", i), c) for i, c in enumerate(self.choices)]


class FixedParam(_Model):
    type: Literal["fixed"]
    value: Annotated[Any, AfterValidator(text_keys)]


Param = Annotated[FloatParam | IntParam | CategoricalParam | FixedParam, Field(discriminator="type")]
SampledParam = FloatParam | IntParam | CategoricalParam


def _param_name(name: str, info: ValidationInfo) -> str:
    """A param's name, checked as a key: so its errors come beside those of the params' bodies, not after them."""
    names = info.context.setdefault("param_names", {})  # name: refused? (the enqueued rows', where params fail)
    names[name] = True
    if (entry := info.context.get("entry")) and (problem := entry.unknown_setting(name)):
        raise ValueError(problem)
    if name == "objective" and entry and entry.target == DEFAULT_ENTRYPOINT and "objective" in info.data:
        raise ValueError(f"trials are judged by objective.metric ({info.data['objective'].metric!r}), and select "
                         "their best epoch by it: set that, not a param")  # not by a metric the study ignores
    names[name] = False
    return name


def _param_body(param: Param, info: ValidationInfo) -> Param:
    """A param that validated, by its name (the key validated just before it): where another param is refused, an
    enqueued row's value for this one is still checked against it."""
    if names := info.context.get("param_names"):
        info.context.setdefault("param_bodies", {})[next(reversed(names))] = param
    return param


Params = Annotated[dict[Annotated[str, AfterValidator(_param_name)], Annotated[Param, AfterValidator(_param_body)]],
                   BeforeValidator(lambda value: {} if value is None else value)]  # none: nothing to tune


class Sampler(BaseModel):
    """An Optuna sampler; the keys beside ``type`` and ``seed`` are its constructor's options, written flat."""

    model_config = ConfigDict(frozen=True, extra="allow")
    type: Literal["tpe", "random", "grid", "cmaes", "qmc", "gp"] = "tpe"
    seed: Int | None = Field(None, ge=0, lt=2**32)  # numpy's range; a resume moves it on, modulo 2**32
    options = property(lambda self: dict(self.model_extra or {}))

    @model_validator(mode="after")
    def _check_options(self, info: ValidationInfo) -> Sampler:
        name, settable, issues = SAMPLER_CLASSES[self.type], sampler_options(self.type), []
        context = info.context if isinstance(info.context, dict) else {}  # none for the default, Sampler()
        stored = bool(context.get("stored"))  # a study's spec: what Optuna took passes, so resume carries it on
        for key, value in self.options.items():
            option = settable.get(key)
            if key == "search_space":
                issues.append(((key,), "is derived from params (categorical choices, int ranges, float ranges with "
                                       "a step)"))
            elif option is None:
                issues.append(((key,), unknown_key(key, ["type", "seed", *settable], f"{name} option")))
            elif any(word in str(option.annotation) for word in ("Callable", "BaseSampler", "FrozenTrial")):
                issues.append(((key,), f"{name} option {key!r} takes a Python object and cannot be written in YAML"))
            elif (kind := _option_type(option)) and value is not None:
                try:  # stored converted: "10" would reach the sampler as a string, and fail only when it samples
                    self.model_extra[key] = value = coerce(key, value, kind)
                except ConfigError as exc:
                    issues.append(((key,), str(exc)))
                if kind is int and key.startswith("n_") and isinstance(value, int) and value < 0 and not stored:
                    issues.append(((key,), f"is {value}: a count, a whole number >= 0 (Optuna takes it, and "
                                           "then counts nothing)"))
        if self.type == "cmaes" and isinstance(sigma := self.options.get("sigma0"), int | float) and not sigma > 0:
            issues.append((("sigma0",), f"is {sigma!r}: a number > 0 (Optuna takes it, and samples one point)"))
        if missing := [p for p in SAMPLER_PACKAGES.get(self.type, ()) if find_spec(p) is None]:
            issues.append((("type",), f"the {self.type} sampler needs the Python package(s) {', '.join(missing)}, "
                                      f"which are not installed (pip install {' '.join(missing)})"))
        if not issues and self.type != "grid":
            try:  # Optuna judges the values themselves (e.g. qmc_type: halton)
                with warnings.catch_warnings(action="ignore"):
                    getattr(optuna.samplers, name)(seed=self.seed, **self.options)
            except Exception as exc:
                issues.append(((), f"{name} rejects these options: {exc}"))
        # keep_deprecated: the caller vets them against the study it carries on. True passes all; a mapping (the
        # quick: section's check) those as the full spec gave them, so one the quick: section adds is refused
        kept = context.get("keep_deprecated")
        if not issues and not stored and kept is not True:
            issues += [((key,), deprecated_refusal(said)) for key, said in deprecated_options(self).items()
                       if not isinstance(kept, Mapping) or key not in kept or kept[key] != self.options[key]]
        fail(issues)
        return self


def deprecated_options(sampler: Sampler) -> dict[str, str]:
    """The sampler's options that Optuna has deprecated, each with Optuna's own word for it (its FutureWarning, which
    names what replaces it where anything does); each still works while Optuna takes it."""
    found = {}
    for key, value in sampler.options.items():  # one at a time, to name it
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", FutureWarning)  # Optuna's word for a deprecated option
            with contextlib.suppress(Exception):  # alone, an option may be refused: together, they were taken
                # seeded: QMC logs a seedless one
                getattr(optuna.samplers, SAMPLER_CLASSES[sampler.type])(**{"seed": 0, key: value})
        if said := [str(w.message) for w in caught if issubclass(w.category, FutureWarning)]:
            found[key] = said[0]
    return found


def deprecated_refusal(said: str) -> str:
    """Why a new space may not use a deprecated sampler option, with Optuna's word for it."""
    return f"is deprecated by Optuna: {said} Leave it out (a study that ran with it goes on with it: sweeper run " \
           "of its space, or sweeper resume NAME)"


def _option_type(option: inspect.Parameter) -> type | None:
    """The scalar type of a sampler option, from its default or, where that is None, its annotation's text
    (Optuna's annotations name types imported only for type checkers, so they cannot be evaluated)."""
    if option.default is not None:
        return type(option.default) if isinstance(option.default, bool | int | float | str) else None
    scalars = {"bool": bool, "int": int, "float": float, "str": str}
    named = [scalars[part.strip()] for part in str(option.annotation).split("|") if part.strip() in scalars]
    return named[0] if len(named) == 1 else None


def sampler_options(kind: str) -> dict[str, inspect.Parameter]:
    """The constructor parameters of an Optuna sampler that a space may name (``seed`` has its own key)."""
    signature = inspect.signature(getattr(optuna.samplers, SAMPLER_CLASSES[kind]))
    return {name: p for name, p in signature.parameters.items() if name != "seed" and p.kind is not p.VAR_KEYWORD}


class _Scheduler(_Model):
    """A Ray Tune trial scheduler; ``options`` is what the driver passes beside metric and mode, over ``DEFAULTS``
    (Ray's, but where sweeper's differ: time is in epochs)."""

    DEFAULTS: ClassVar[dict[str, Any]] = {}
    options = property(lambda self: self.model_dump(exclude={"type"}, exclude_none=True))


class NoScheduler(_Scheduler):
    type: Literal["none"] = "none"


class AshaScheduler(_Scheduler):
    DEFAULTS: ClassVar[dict[str, Any]] = {"grace_period": 1, "reduction_factor": 4, "brackets": 1}
    type: Literal["asha"]
    grace_period: Int | None = Field(None, ge=1)
    reduction_factor: Float | None = Field(None, ge=1.1)  # nearer 1, rungs (and Ray's memory) grow without bound
    brackets: Int | None = Field(None, ge=1, le=10)
    max_t: Int | None = Field(None, ge=1)

    @model_validator(mode="after")
    def _grace_within_max_t(self) -> AshaScheduler:
        if self.grace_period is not None and self.max_t is not None and self.grace_period > self.max_t:
            fail([(("grace_period",), f"must be <= max_t (got grace_period={self.grace_period}, max_t={self.max_t})")])
        return self


class HyperbandScheduler(_Scheduler):
    DEFAULTS: ClassVar[dict[str, Any]] = {"reduction_factor": 3}  # HyperBand's own (Ray's ASHA has 4)
    type: Literal["hyperband"]
    max_t: Int | None = Field(None, ge=1)
    reduction_factor: Float | None = Field(None, ge=1.1)  # nearer 1, brackets (and Ray's memory) grow without bound


class MedianScheduler(_Scheduler):
    DEFAULTS: ClassVar[dict[str, Any]] = {"grace_period": 1, "min_samples_required": 3}  # Ray's 60 means seconds
    type: Literal["median"]
    grace_period: Int | None = Field(None, ge=1)
    min_samples_required: Int | None = Field(None, ge=1)


Scheduler = Annotated[NoScheduler | AshaScheduler | HyperbandScheduler | MedianScheduler, Field(discriminator="type")]
# The kinds of each typed section by ``type``: for the messages, and to switch a type from the command line.
KINDS: dict[str, dict[str, type[BaseModel]]] = {
    "params": {"float": FloatParam, "int": IntParam, "categorical": CategoricalParam, "fixed": FixedParam},
    "scheduler": {"none": NoScheduler, "asha": AshaScheduler, "hyperband": HyperbandScheduler,
                  "median": MedianScheduler}}


class Budget(_Model):
    trials: Int = Field(20, ge=1)
    max_concurrent: Int = Field(2, ge=1)
    time: Duration | None = None  # wall-clock limit of the whole sweep: 90s, 30m, 2h, 1h30m
    stop_on_target: bool = False  # stop the sweep once a trial meets every target
    storage_timeout: Duration = "10m"  # how long a storage outage may last before the sweep stops, resumable
    time_seconds = property(lambda self: None if self.time is None else duration_seconds(self.time))
    storage_timeout_seconds = property(lambda self: duration_seconds(self.storage_timeout))


class Resources(_Model):
    """Per trial; fractions share a device (gpu: 0.5 runs two trials per GPU).

    ``custom`` asks for Ray custom resources that nodes declare with ``ray start --resources``, e.g. ``{big_gpu: 1}``
    (or ``{"accelerator_type:A100": 0.01}``). ``fuse: K`` trains up to K trials of one architecture as one stacked
    model on these resources (``sweeper/fused.py``); each is still its own Optuna trial.
    """

    cpu: Float = Field(1.0, gt=0)
    gpu: Float = Field(0.0, ge=0)
    fuse: Int = Field(1, ge=1)
    custom: dict[str, Annotated[Float, Field(gt=0)]] = Field(default_factory=dict)
    # all of the above where the sweep's Ray cluster has a GPU (unset keys: defaults): one space serves laptops and GPUs
    on_gpu: Resources | None = None

    @model_validator(mode="after")
    def _check(self) -> Resources:
        issues = [(("custom", name), "is a built-in resource: set cpu / gpu beside custom instead")
                  for name in sorted({"cpu", "gpu", "CPU", "GPU", "memory", "object_store_memory"} & set(self.custom))]
        # Ray counts resources in ten-thousandths and raises on less inside Tune's loop, after trials were asked
        amounts = [(("cpu",), self.cpu), (("gpu",), self.gpu), *((("custom", k), v) for k, v in self.custom.items())]
        issues += [(place, f"is {amount:g}, below 0.0001, the least of a resource Ray can give")
                   for place, amount in amounts if 0 < amount < 1e-4]
        if self.on_gpu is not None and self.on_gpu.on_gpu is not None:
            issues.append((("on_gpu", "on_gpu"), "is not allowed inside on_gpu"))
        if self.on_gpu is not None and self.on_gpu.gpu == 0:
            issues.append((("on_gpu", "gpu"), "must be above 0: on_gpu is what a trial takes on a cluster with a GPU"))
        fail(issues)
        return self

    def on_cluster(self, gpus: float) -> Resources:
        """What a trial takes on a Ray cluster with ``gpus`` GPUs in all."""
        return self.on_gpu if self.on_gpu is not None and gpus > 0 else self

    def ray_resources(self) -> dict[str, float]:
        """What one trial asks Ray for."""
        return {"cpu": self.cpu, "gpu": self.gpu, **self.custom}
