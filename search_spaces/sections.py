"""The sections of a search space (params, sampler, scheduler, budget, ...) and the helpers they validate with.

Every validator reports problems as ``(path, message)`` pairs relative to the value it validates, through
:func:`fail`; the loader turns the paths into ``file:line: field: message`` (see ``loader.py``).
"""

from __future__ import annotations

import difflib
import inspect
import math
import re
import warnings
from collections.abc import Mapping
from importlib.util import find_spec
from typing import Annotated, Any, Literal

import optuna
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator, model_validator
from pydantic_core import PydanticCustomError

Path = tuple[str | int, ...]
Issue = tuple[Path, str]

SAMPLER_CLASSES: dict[str, str] = {
    "tpe": "TPESampler",
    "random": "RandomSampler",
    "grid": "GridSampler",
    "cmaes": "CmaEsSampler",
    "qmc": "QMCSampler",
    "gp": "GPSampler",
}
# Optional packages some Optuna samplers import only when they first sample: check them before a sweep starts.
SAMPLER_PACKAGES: dict[str, tuple[str, ...]] = {"cmaes": ("cmaes",), "qmc": ("scipy",), "gp": ("scipy", "torch")}

# Scheduler options the driver maps onto Ray Tune; each is (kind, lower bound, bound is inclusive).
_OPTION_RULES: dict[str, tuple[type, float, bool]] = {
    "grace_period": (int, 1, True),
    "reduction_factor": (float, 1, False),
    "brackets": (int, 1, True),
    "max_t": (int, 1, True),
    "min_samples_required": (int, 1, True),
}
SCHEDULER_OPTIONS: dict[str, tuple[str, ...]] = {
    "none": (),
    "asha": ("grace_period", "reduction_factor", "brackets", "max_t"),
    "hyperband": ("max_t", "reduction_factor"),
    "median": ("grace_period", "min_samples_required"),
}


# ----------------------------------------------------------------------------------------------------------------
# Small helpers
# ----------------------------------------------------------------------------------------------------------------
def fail(issues: list[Issue]) -> None:
    """Raise every issue at once; the loader expands them back into separate lines."""
    raise PydanticCustomError("spec", "{summary}", {"summary": "; ".join(m for _, m in issues), "issues": issues})


def did_you_mean(word: Any, options: list[str]) -> str:
    hint = difflib.get_close_matches(str(word), [str(o) for o in options], n=1, cutoff=0.6)
    return f" (did you mean {hint[0]!r}?)" if hint else ""


def unknown_key(key: Any, allowed: list[str], what: str = "key") -> str:
    return f"unknown {what} {key!r}{did_you_mean(key, allowed)}; allowed: {', '.join(allowed) or '(none)'}"


def number(value: Any, *, integer: bool = False) -> float | int:
    """A finite int/float from a YAML value; numeric strings such as ``1e-4`` (PyYAML reads them as str) pass."""
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got {value!r}")
    if isinstance(value, str):
        try:
            value = float(value.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {value!r}") from None
    if not isinstance(value, int | float):
        raise ValueError(f"expected a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"must be finite (got {value!r})")
    if integer:
        if not float(value).is_integer():
            raise ValueError(f"expected an integer, got {value!r}")
        return int(value)
    return float(value)


def fraction(value: Any) -> float:
    """``0.8``, ``"0.8"`` or ``"80%"`` -> 0.8."""
    if isinstance(value, str) and value.strip().endswith("%"):
        text = value.strip()[:-1]
        try:
            return round(float(text) / 100.0, 12)
        except ValueError:
            raise ValueError(f"expected a number or a percentage such as '80%', got {value!r}") from None
    try:
        return number(value)
    except ValueError:
        raise ValueError(f"expected a number or a percentage such as '80%', got {value!r}") from None


_DURATION = re.compile(r"(?:(\d+(?:\.\d*)?)d)?(?:(\d+(?:\.\d*)?)h)?(?:(\d+(?:\.\d*)?)m)?(?:(\d+(?:\.\d*)?)s)?")


def duration_seconds(value: Any) -> float:
    """``90``, ``"90s"``, ``"30m"``, ``"2h"``, ``"1h30m"``, ``"1d"`` -> seconds."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        text = value.replace(" ", "").lower()
        match = _DURATION.fullmatch(text)
        if not text or not match or not any(match.groups()):
            raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1h30m, got {value!r}")
        days, hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = days * 86400 + hours * 3600 + minutes * 60 + secs
    else:
        raise ValueError(f"expected a duration such as 90s, 30m, 2h or 1h30m, got {value!r}")
    if seconds <= 0:
        raise ValueError(f"must be a positive duration (got {value!r})")
    return seconds


def _looks_like_accuracy(metric: str) -> bool:
    return bool(re.search(r"top\d|acc", metric))


def _tidy(x: float) -> float:
    return float(f"{x:.12g}")


def _same_choice(a: Any, b: Any) -> bool:
    return a == b and isinstance(a, bool) == isinstance(b, bool)


def _not_bool(value: Any) -> Any:
    if isinstance(value, bool):
        raise PydanticCustomError("spec", "{summary}", {"summary": f"expected a number, got {value!r}",
                                                        "issues": [((), f"expected a number, got {value!r}")]})
    return value


Int = Annotated[int, BeforeValidator(_not_bool)]
Float = Annotated[float, BeforeValidator(_not_bool)]


def _gather_options(data: Any, fields: tuple[str, ...], bucket: str) -> Any:
    """Move every key that is not a field into ``bucket``: options are written flat beside ``type``."""
    if not isinstance(data, Mapping):
        return data
    out = {k: v for k, v in data.items() if k in fields}
    extra = out.get(bucket) if isinstance(out.get(bucket), Mapping) else {}
    out[bucket] = {**extra, **{k: v for k, v in data.items() if k not in fields}}
    return out


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


# ----------------------------------------------------------------------------------------------------------------
# Sections
# ----------------------------------------------------------------------------------------------------------------
class Objective(_Model):
    """The metric each trial is judged on; ``direction`` defaults from the metric (``val_top3`` -> maximize)."""

    metric: str = "val_top3"
    direction: Literal["maximize", "minimize"] | None = None


class Baseline(_Model):
    """Reference results a sweep is compared with, written flat: ``{source: ..., test_top1: 42.47%}``."""

    source: str
    metrics: dict[str, float] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_metrics(cls, data: Any) -> Any:
        data = _gather_options(data, ("source", "metrics"), "metrics")
        if not isinstance(data, dict):
            return data
        issues: list[Issue] = []
        metrics = {}
        for name, raw in data["metrics"].items():
            try:
                metrics[name] = fraction(raw)
            except ValueError as exc:
                issues.append(((name,), str(exc)))
        if not metrics and not issues:
            issues.append(((), "needs at least one metric value, e.g. test_top3: 75.29%"))
        if issues:
            fail(issues)
        return {**data, "metrics": metrics}


class Param(_Model):
    """One tuned (or pinned) setting: float/int ranges, categorical choices, or a fixed value."""

    type: Literal["float", "int", "categorical", "fixed"]
    low: Any = None
    high: Any = None
    log: bool = False
    step: Any = None
    choices: list[Any] | None = None
    value: Any = None

    @field_validator("low", "high", "step")
    @classmethod
    def _numbers(cls, value: Any, info: ValidationInfo) -> Any:
        """Bounds and steps as numbers of the param's type (``1e-4`` written in YAML arrives as text)."""
        kind = info.data.get("type")
        if value is None or kind not in ("float", "int"):
            return value
        try:
            return number(value, integer=kind == "int")
        except ValueError as exc:
            fail([((), str(exc))])

    @model_validator(mode="after")
    def _check(self) -> Param:
        issues: list[Issue] = []
        allowed = {"float": {"low", "high", "log", "step"}, "int": {"low", "high", "log", "step"},
                   "categorical": {"choices"}, "fixed": {"value"}}[self.type]
        for name in ("low", "high", "log", "step", "choices", "value"):
            if name in self.model_fields_set and name not in allowed:
                owner = {"low": "float and int", "high": "float and int", "log": "float and int",
                         "step": "float and int", "choices": "categorical", "value": "fixed"}[name]
                issues.append(((name,), f"only {owner} params take {name!r} (this param is {self.type})"))
        if self.type in ("float", "int"):
            low, high, step = self.low, self.high, self.step
            issues += [((name,), f"is required for a {self.type} param")
                       for name in ("low", "high") if getattr(self, name) is None]
            if low is not None and high is not None and not low < high:
                issues.append((("low",), f"must be < high (got low={low}, high={high})"))
            if self.log and low is not None and low <= 0:
                issues.append((("low",), f"must be > 0 when log: true (got low={low})"))
            if self.log and step is not None:
                issues.append((("step",), "cannot be combined with log: true (Optuna samples log ranges continuously)"))
            elif step is not None and step <= 0:
                issues.append((("step",), f"must be > 0 (got {step})"))
            elif step is not None and low is not None and high is not None and low < high:
                k = (high - low) / step
                if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
                    issues.append((("step",), f"high - low must be a multiple of step "
                                              f"(got low={low}, high={high}, step={step})"))
        elif self.type == "categorical":
            if not self.choices:
                issues.append((("choices",), "must be a non-empty list"))
            else:
                for i, choice in enumerate(self.choices):
                    if not (choice is None or isinstance(choice, bool | int | float | str)):
                        issues.append((("choices", i), f"choices must be str, number, bool or null (got {choice!r})"))
                    elif any(_same_choice(choice, other) for other in self.choices[:i]):
                        issues.append((("choices", i), f"duplicate choice {choice!r}"))
        elif "value" not in self.model_fields_set:
            issues.append((("value",), "is required for a fixed param"))
        if issues:
            fail(issues)
        return self

    # --------------------------------------------------------------------------------------------------------
    @property
    def is_fixed(self) -> bool:
        return self.type == "fixed"

    def distribution(self) -> optuna.distributions.BaseDistribution:
        """The Optuna distribution of a sampled param (not for fixed ones)."""
        if self.type == "float":
            return optuna.distributions.FloatDistribution(self.low, self.high, log=self.log, step=self.step)
        if self.type == "int":
            return optuna.distributions.IntDistribution(self.low, self.high, log=self.log, step=self.step or 1)
        if self.type == "categorical":
            return optuna.distributions.CategoricalDistribution(list(self.choices or []))
        raise ValueError("a fixed param has no distribution")

    def grid_values(self) -> list[Any] | None:
        """Every value a grid search visits, or None when the param is continuous."""
        if self.type == "categorical":
            return list(self.choices or [])
        if self.type == "fixed" or self.log or (self.type == "float" and self.step is None):
            return None
        step = self.step or 1
        count = round((self.high - self.low) / step)
        if self.type == "int":
            return [self.low + i * step for i in range(count + 1)]
        return [_tidy(self.low + i * step) for i in range(count + 1)]

    def admit(self, value: Any) -> Any:
        """The value in this param's type when it lies in its range or choices; raises ValueError."""
        if self.type == "fixed":
            raise ValueError("is a fixed param; only sampled params can be enqueued")
        if self.type == "categorical":
            for choice in self.choices or []:
                if _same_choice(value, choice):
                    return choice
            strings = [str(c) for c in self.choices or []]
            raise ValueError(f"{value!r} is not one of the choices {self.choices}{did_you_mean(value, strings)}")
        v = number(value, integer=self.type == "int")
        if not self.low <= v <= self.high:
            raise ValueError(f"{v} is outside [{self.low}, {self.high}]")
        if self.step is not None:
            k = (v - self.low) / self.step
            if abs(k - round(k)) > 1e-9 * max(1.0, abs(k)):
                raise ValueError(f"{v} is not on the grid low + k * step (low={self.low}, step={self.step})")
        return v

    def extremes(self) -> list[tuple[Path, Any]]:
        """The values to try against the entrypoint: both bounds, or every choice, or the fixed value."""
        if self.type == "categorical":
            return [(("choices", i), c) for i, c in enumerate(self.choices or [])]
        if self.type == "fixed":
            return [(("value",), self.value)]
        return [(("low",), self.low), (("high",), self.high)]

    def to_yaml_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type}
        if self.type in ("float", "int"):
            out.update(low=self.low, high=self.high)
            if self.log:
                out["log"] = True
            if self.step is not None:
                out["step"] = self.step
        elif self.type == "categorical":
            out["choices"] = list(self.choices or [])
        else:
            out["value"] = self.value
        return out


def sampler_options(kind: str) -> tuple[dict[str, inspect.Parameter], dict[str, str]]:
    """The constructor options of an Optuna sampler: (settable from YAML, not settable -> why)."""
    cls = getattr(optuna.samplers, SAMPLER_CLASSES[kind])
    settable: dict[str, inspect.Parameter] = {}
    blocked: dict[str, str] = {}
    for name, param in inspect.signature(cls.__init__).parameters.items():
        if name in ("self", "seed") or param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD):
            continue
        annotation = param.annotation if isinstance(param.annotation, str) else getattr(
            param.annotation, "__name__", str(param.annotation))
        if name == "search_space":
            blocked[name] = "is derived from params (categorical choices, int ranges, float ranges with a step)"
        elif any(word in annotation for word in ("Callable", "BaseSampler", "FrozenTrial")):
            blocked[name] = "takes a Python object and cannot be written in YAML"
        else:
            settable[name] = param
    return settable, blocked


def _check_option_type(value: Any, annotation: Any) -> str | None:
    text = annotation if isinstance(annotation, str) else getattr(annotation, "__name__", "")
    members, depth, current = [], 0, ""
    for ch in text:
        depth += ch == "["
        depth -= ch == "]"
        if ch == "|" and depth == 0:
            members.append(current.strip())
            current = ""
        else:
            current += ch
    members.append(current.strip())
    checks = {"bool": lambda v: isinstance(v, bool),
              "int": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "float": lambda v: isinstance(v, int | float) and not isinstance(v, bool),
              "str": lambda v: isinstance(v, str),
              "dict": lambda v: isinstance(v, dict), "Mapping": lambda v: isinstance(v, dict),
              "list": lambda v: isinstance(v, list), "Sequence": lambda v: isinstance(v, list),
              "None": lambda v: v is None}
    names = [m.split("[")[0].strip().strip("'\"") for m in members]
    if not names or any(n not in checks for n in names):
        return None  # an annotation we do not understand: let Optuna judge
    if any(checks[n](value) for n in names):
        return None
    return f"must be {' or '.join(names)} (got {value!r})"


class Sampler(_Model):
    """Optuna sampler; extra keys beside ``type`` and ``seed`` are constructor options of the sampler class."""

    type: Literal["tpe", "random", "grid", "cmaes", "qmc", "gp"] = "tpe"
    seed: Int | None = None
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        return _gather_options(data, ("type", "seed", "options"), "options")

    @model_validator(mode="after")
    def _check(self) -> Sampler:
        issues: list[Issue] = []
        settable, blocked = sampler_options(self.type)
        cls_name = SAMPLER_CLASSES[self.type]
        for key, value in self.options.items():
            if key in blocked:
                issues.append(((key,), f"{cls_name} option {key!r} {blocked[key]}"))
            elif key not in settable:
                allowed = ["type", "seed", *settable]
                issues.append(((key,), unknown_key(key, allowed, f"{cls_name} option")))
            else:
                problem = _check_option_type(value, settable[key].annotation)
                if problem:
                    issues.append(((key,), problem))
        missing = [p for p in SAMPLER_PACKAGES.get(self.type, ()) if find_spec(p) is None]
        if missing:
            issues.append((("type",), f"the {self.type} sampler needs the Python package(s) {', '.join(missing)}, "
                                      f"which are not installed (pip install {' '.join(missing)})"))
        if not issues and self.type != "grid":
            try:  # let Optuna judge values we only type-checked (e.g. qmc_type: halton)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    getattr(optuna.samplers, cls_name)(seed=self.seed, **self.options)
            except Exception as exc:
                issues.append(((), f"{cls_name} rejects these options: {exc}"))
        if issues:
            fail(issues)
        return self


class Scheduler(_Model):
    """Trial scheduler (early stopping of poor trials); the driver maps it onto Ray Tune."""

    type: Literal["none", "asha", "hyperband", "median"] = "none"
    options: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _flat_options(cls, data: Any) -> Any:
        return _gather_options(data, ("type", "options"), "options")

    @field_validator("options")
    @classmethod
    def _check_options(cls, value: dict[str, Any], info: ValidationInfo) -> dict[str, Any]:
        kind = info.data.get("type")
        if kind is None:
            return value
        issues: list[Issue] = []
        allowed = SCHEDULER_OPTIONS[kind]
        clean: dict[str, Any] = {}
        for key, raw in value.items():
            if key not in allowed:
                issues.append(((key,), unknown_key(key, ["type", *allowed], f"{kind} scheduler option")))
                continue
            integer, bound, inclusive = _OPTION_RULES[key]
            try:
                clean[key] = number(raw, integer=integer is int)
            except ValueError as exc:
                issues.append(((key,), str(exc)))
                continue
            if clean[key] < bound or (not inclusive and clean[key] == bound):
                issues.append(((key,), f"must be {'>=' if inclusive else '>'} {bound} (got {raw!r})"))
        if "grace_period" in clean and "max_t" in clean and clean["grace_period"] > clean["max_t"]:
            issues.append((("grace_period",), f"must be <= max_t (got grace_period={clean['grace_period']}, "
                                              f"max_t={clean['max_t']})"))
        if issues:
            fail(issues)
        return clean


class Budget(_Model):
    trials: Int = Field(20, ge=1)
    max_concurrent: Int = Field(2, ge=1)
    time: str | None = None  # wall-clock limit of the whole sweep: 90s, 30m, 2h, 1h30m
    stop_on_target: bool = False  # stop the sweep once a trial meets every target

    @field_validator("time", mode="before")
    @classmethod
    def _check_time(cls, value: Any) -> Any:
        if value is None:
            return None
        try:
            duration_seconds(value)
        except ValueError as exc:
            fail([((), str(exc))])
        return f"{value}s" if isinstance(value, int | float) else str(value)

    @property
    def time_seconds(self) -> float | None:
        return None if self.time is None else duration_seconds(self.time)


class Resources(_Model):
    """Per trial; fractions share a device (gpu: 0.5 runs two trials per GPU).

    ``custom`` asks for Ray custom resources that nodes declare with ``ray start --resources``, e.g.
    ``{big_gpu: 1}`` to keep trials on the nodes that have one (or ``{"accelerator_type:A100": 0.01}``).
    ``fuse: K`` trains up to K trials of one architecture as one stacked model on these resources
    (``sweeper/fused.py``); each is still its own Optuna trial.
    """

    cpu: Float = Field(1.0, gt=0)
    gpu: Float = Field(0.0, ge=0)
    fuse: Int = Field(1, ge=1)
    custom: dict[str, Annotated[float, BeforeValidator(_not_bool), Field(gt=0)]] = Field(default_factory=dict)

    @field_validator("custom")
    @classmethod
    def _check_custom(cls, value: dict[str, float]) -> dict[str, float]:
        reserved = {"cpu", "gpu", "CPU", "GPU", "memory", "object_store_memory"} & set(value)
        if reserved:
            fail([((name,), "is a built-in resource: set resources.cpu / resources.gpu instead")
                  for name in sorted(reserved)])
        return value

    def ray_resources(self) -> dict[str, float]:
        """What one trial asks Ray for."""
        return {"cpu": self.cpu, "gpu": self.gpu, **self.custom}
