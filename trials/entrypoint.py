"""What the training function of a space accepts and reports.

An entrypoint ``package.module:function`` names ``fn(config: dict, report: Callable[[dict], None],
checkpoint_dir: str | None) -> dict``. Two optional attributes let a space be checked before any trial runs:
``fn.settings`` (the flat config keys it accepts, with their defaults) and ``fn.metrics`` (the names it reports);
without one, anything is accepted for it. ``trials:run`` is described from ``trials.config`` without importing it:
that pulls in torch, and validation must stay light.
"""

from __future__ import annotations

import contextlib
import copy
import importlib
import inspect
import os
import re
import reprlib
import sys
import sysconfig
import traceback
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from trials.config import (
    EPOCH_METRICS,
    FINAL_METRICS,
    OBJECTIVE_METRICS,
    RELATED_SETTINGS,
    ConfigError,
    TrainConfig,
    coerce,
    did_you_mean,
    unknown_key,
)

DEFAULT_ENTRYPOINT = "trials:run"
SWEEPER_PACKAGES = ("sweeper", "trials", "storage", "search_spaces")  # a user's module cannot take these names
_TARGET = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
# The core's metrics whose direction is known: a space that names one needs no ``direction``.
KNOWN_DIRECTIONS: dict[str, str | None] = {m: d or None for m, d in {**EPOCH_METRICS, **FINAL_METRICS}.items()}
_LARGER = {"acc", "accuracy", "f1", "auc", "precision", "recall", "score", "iou", "map", "bleu", "r2", "reward", "ndcg",
           "ssim", "psnr"}
_SMALLER = {"loss", "err", "error", "mse", "mae", "rmse", "nll", "perplexity", "ppl", "wer", "cer", "regret", "cost"}
_TIME_UNITS = {"latency", "seconds", "ms"}  # smaller, unless a larger word is there too: latency_p95, not ms_ssim


def metric_direction(metric: str, fallback: str) -> str:
    """Which way a target's metric is better: the core's own, else its name's words (``test_acc``, ``valAccuracy``:
    larger; ``val_err``, ``top1_error``: smaller; ``top3`` alone: larger), else ``fallback`` (the objective's). A
    target on a user's metric is judged by it."""
    if known := KNOWN_DIRECTIONS.get(metric):
        return known
    # camelCase read both ways: valF1 is val, f1; valIoU is val, iou; mAP and nDCG are words whole
    split = [re.sub(rf"(?<=[a-z0-9])(?={upper})", "_", metric) for upper in ("[A-Z]", "[A-Z][a-z]")]
    words = {w for name in (metric, *split) for w in re.split(r"[^a-z0-9]+", name.lower())}
    larger = bool(words & _LARGER)
    smaller = bool(words & _SMALLER) or (bool(words & _TIME_UNITS) and not larger)
    if not larger and not smaller and any(re.fullmatch(r"top\d+", w) for w in words):
        return "maximize"  # topN says which accuracy, or which error: the other word decides
    return "maximize" if larger and not smaller else "minimize" if smaller and not larger else fallback


def with_torch_threads(config: dict[str, Any], target: str, cpus: float) -> dict[str, Any]:
    """The core's config with the torch threads of a trial that Ray gives ``cpus`` CPUs, unless it sets them: torch
    would start a thread per core in every trial, and oversubscribed cores spin and crawl. ``sweeper best`` gives its
    retrain the same count, whose float rounding another count would not repeat."""
    if target == DEFAULT_ENTRYPOINT and "threads" not in config:
        config["threads"] = max(1, int(cpus))
    return config


@contextlib.contextmanager
def working_in(folder: str | None) -> Iterator[None]:
    """Run in ``folder`` (a study's first run's: where relative paths in its space are read from, whichever folder
    a resume starts in); where it is not on this machine (another node of a cluster), where the process is."""
    if not folder or not os.path.isdir(folder):
        yield
        return
    before = os.getcwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


class EntrypointError(ValueError):
    """The entrypoint cannot be found, imported or called as a training function."""


@dataclass(frozen=True)
class EntrypointInfo:
    """What validation knows about an entrypoint; plain data (no function object) so a Spec stays picklable."""

    target: str
    settings: dict[str, Any] | None  # accepted flat keys -> defaults; None: anything is accepted
    metrics: tuple[str, ...] | None  # reported metric names; None: any name is accepted
    epoch_metrics: tuple[str, ...] | None  # metrics reported every epoch (usable as objective); None: unknown
    related: tuple[tuple[str, ...], ...] = ()  # settings checked against each other (min_lr <= lr)

    def unknown_setting(self, key: str) -> str | None:
        """Why ``key`` is refused, or None."""
        known = self.settings is None or key in self.settings
        return None if known else unknown_key(key, list(self.settings or ()), "setting")

    def unknown_metric(self, metric: str) -> str | None:
        """Why ``metric`` is refused (the entrypoint does not report it), or None."""
        if self.metrics is None or metric in self.metrics:
            return None
        return f"unknown metric {metric!r}{did_you_mean(metric, list(self.metrics))}; " \
               f"{self.target} reports: {', '.join(self.metrics)}"

    def map_holding(self, key: str) -> str | None:
        """The setting declared with a map for its default that ``key`` is a key of (``opts`` for ``opts.a``), or
        None: ``--set opts.a=5`` sets that key of the map, which starts from the declared one where the space sets
        none (its other keys keep their defaults: a function merging its settings over the config merges one level)."""
        return next((k for k, v in (self.settings or {}).items() if key.startswith(f"{k}.") and isinstance(v, Mapping)),
                    None)

    def with_declared_map(self, block: Any, key: str) -> Any:
        """``block`` (a space's training settings) with the declared map ``key`` is a key of, where it has none of
        its own (``opts:`` with its keys commented out is none), for ``key`` to be set in: ``--set opts.a=5`` keeps
        the other keys' defaults, as it keeps those of a space's ``opts``. Anything but a mapping (or none) is left
        for setting the key to refuse, in run, validate and train alike."""
        if (held := self.map_holding(key)) is None or not isinstance(block, Mapping | None) or \
                (block or {}).get(held) is not None:
            return block
        return {**(block or {}), held: copy.deepcopy((self.settings or {})[held])}

    def coerce(self, key: str, value: Any) -> Any:
        """The value in the setting's type (that of its default); raises ConfigError, also for an unknown key."""
        if problem := self.unknown_setting(key):
            raise ConfigError(problem, key)
        default = (self.settings or {}).get(key)
        if isinstance(default, Mapping) and isinstance(value, Mapping):
            return _keys_as_declared(value, default)
        return coerce(key, value, type(default)) if isinstance(default, bool | int | float | str) else value

    def problems(self, config: Mapping[str, Any]) -> list[ConfigError]:
        """Why the entrypoint would refuse the whole flat config: every rule it breaks, the first first."""
        try:
            if self.target == DEFAULT_ENTRYPOINT:
                return TrainConfig.from_flat(config, validate=False).problems()
            for key, value in config.items():
                self.coerce(key, value)
        except ConfigError as exc:
            return [exc]
        return []


def _keys_as_declared(value: Mapping[Any, Any], default: Mapping[Any, Any]) -> Any:
    """A map setting's keys as numbers where the function declares its map with number keys ({0: 1.0, 1: 2.0}):
    a space's map reaches it with text keys ('0', as JSON and so a resumed study give them), and fit's ``w[0]``
    found none. Keys that are not all numbers stay text, which a driver can sort."""
    if not default or not all(type(k) is int for k in default) or \
            not all(isinstance(k, int | str) and re.fullmatch(r"-?\d+", str(k)) for k in value):
        return value
    return {int(k): v for k, v in value.items()}


def import_target(target: str, base_dir: str | Path | None = None, cwd: str | Path | None = None
                  ) -> Callable[..., Any]:
    """Import the entrypoint function, with the space file's folder, then the working directory (``cwd`` where it
    is on this machine: the driver's, for a trial), on sys.path."""
    if not _TARGET.match(target):
        raise EntrypointError(f"must look like package.module:function (got {target!r})")
    module_name, function = target.split(":")
    here = Path(cwd) if cwd is not None and Path(cwd).is_dir() else Path.cwd()
    folders = [*([Path(base_dir).resolve()] if base_dir is not None else []), here.resolve()]
    added = [text for text in dict.fromkeys(map(str, folders)) if text not in sys.path]
    sys.path[:0] = added
    try:
        module = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # any failure importing user code (argparse exits) is a validation error
        # the module itself not found (not a module it imports): say where it was looked for
        missing = isinstance(exc, ModuleNotFoundError) and exc.name is not None and f"{module_name}.".startswith(
            f"{exc.name}.")
        if missing and (hidden := _hidden_by_ours(module_name, folders)):  # there, but import looks in sweeper's
            raise EntrypointError(hidden) from exc
        places = list(dict.fromkeys(map(str, folders)))
        whose = "the space file's folder, then the working directory" if len(places) > 1 else \
            "the space file's folder and the working directory" if base_dir is not None else "the working directory"
        where = f"; looked for it in {' and '.join(places)} ({whose})" if missing else ""
        raise EntrypointError(f"cannot import module {module_name!r}: {type(exc).__name__}: "
                              f"{exc.msg if isinstance(exc, SyntaxError) else exc}{_raised_at(exc)}{where}") from exc
    finally:  # the space's folder stays, last: the function may import its sibling modules when it runs
        kept = [text for text in added if base_dir is not None and text == str(folders[0])]
        sys.path[:] = [text for text in sys.path if text not in added] + kept
    # the core's own target names sweeper's package, whatever the folder holds
    if target != DEFAULT_ENTRYPOINT and (hidden := _hidden_by_ours(module_name, folders)):
        raise EntrypointError(hidden)
    fn = getattr(module, function, None)
    if not callable(fn):
        functions = [name for name, value in vars(module).items()  # its own: not what it imports (os.path.join)
                     if inspect.isfunction(value) and value.__module__ == module.__name__ and not name.startswith("_")]
        raise EntrypointError(f"module {module_name!r} has no attribute {function!r}"
                              f"{did_you_mean(function, functions)}" if fn is None else f"{target} is not callable")
    try:
        inspect.signature(fn).bind(None, None, None)
    except TypeError as exc:
        raise EntrypointError(f"{target} must accept (config, report, checkpoint_dir): {exc}") from None
    except ValueError:  # builtins without a signature are given the benefit of the doubt
        pass
    return fn


def _raised_at(exc: BaseException) -> str:
    """`` (at FILE, line N)``: where importing the user's module failed, in their own code (not Python's or an
    installed package's: the line that called argparse or imported torch); the parser's own place for a SyntaxError.
    Empty where no such frame is to blame (the module itself is not found, or is an installed package)."""
    if isinstance(exc, SyntaxError) and exc.filename and exc.lineno:
        return f" (at {exc.filename}, line {exc.lineno})"
    libraries = ("<", *{sysconfig.get_paths()[name] for name in ("stdlib", "purelib", "platlib")})  # <frozen ...>
    frames = traceback.extract_tb(exc.__traceback__)[1:]  # not import_target's own
    theirs = [frame for frame in frames if not frame.filename.startswith(libraries)]
    return f" (at {theirs[-1].filename}, line {theirs[-1].lineno})" if theirs else ""


def _hidden_by_ours(module_name: str, folders: list[Path]) -> str | None:
    """Why a user's module named like one of sweeper's packages (``storage.py``, ``trials/mine.py``) would never
    run: sweeper's package, imported first, is what ``import`` returns and where it looks for submodules. None
    where no such file is in ``folders``, or the package imported is the user's own."""
    top = module_name.partition(".")[0]
    ours = sys.modules.get(top)
    if top not in SWEEPER_PACKAGES or ours is None:
        return None
    relative = Path(*module_name.split("."))
    for folder in folders:
        home = folder / top if (folder / top).is_dir() else folder / f"{top}.py"
        if Path(getattr(ours, "__file__", None) or home).resolve().is_relative_to(home.resolve()):
            continue  # what import returned is this folder's
        for own in (folder / f"{relative}.py", folder / relative / "__init__.py"):
            if own.is_file():
                return (f"{own} is hidden by sweeper's own package {top!r} ({ours.__file__}), which has the same "
                        "name: rename your module (or its package), and the entrypoint with it")
    return None


def returned_metrics(target: str, result: Any) -> dict[str, Any] | None:
    """What a training function returned, checked: a dict of metric name -> value, or None."""
    if result is not None and not (isinstance(result, Mapping) and all(isinstance(k, str) for k in result)):
        raise EntrypointError(f"{target} must return a dict of metric name -> value or None, not "
                              f"{type(result).__name__}")
    if result is not None and (problem := torch_problem(target, "returned", result)):
        raise EntrypointError(problem)
    return None if result is None else dict(result)


def report_problem(target: str, metrics: Any) -> str | None:
    """Why ``report(metrics)`` cannot be taken: not a dict of metric name -> value (``report(loss)``), or one holding
    a torch object (:func:`torch_problem`). Either would fail every retry of the trial alike."""
    if not (isinstance(metrics, Mapping) and all(isinstance(k, str) for k in metrics)):
        return f"{target} reported {reprlib.repr(metrics)}: report takes a dict of metric name -> value " \
               "(report({'epoch': 1, 'val_acc': 0.9}))"
    return torch_problem(target, "reported", metrics)


def torch_problem(target: str, verb: str, metrics: Mapping[str, Any]) -> str | None:
    """Why ``metrics`` cannot be recorded, where a value holds a torch object that is not a number (a 0-d tensor,
    which :func:`sweeper.console.plain` turns into one, is): Ray refuses it in its own words, and retried, every
    attempt of the trial trains in full to be refused again."""
    def holds_torch(value: Any) -> bool:
        if isinstance(value, Mapping):
            return any(map(holds_torch, value.values()))
        if isinstance(value, list | tuple):
            return any(map(holds_torch, value))
        return type(value).__module__.partition(".")[0] == "torch"

    for key, value in metrics.items():
        number = hasattr(value, "item") and getattr(value, "ndim", None) == 0
        if holds_torch(value) and not number:
            return (f"{target} {verb} {key} = {reprlib.repr(value)}, which holds a torch object: metrics are numbers "
                    "(tensor.item()) or strings; a list (tensor.tolist()) or a dict is taken but recorded on no trial")
    return None


def objective_key(result: Mapping[str, Any], metric: str) -> str:
    """Where a final result holds the objective: its best epoch's (``best_METRIC``) where it says so, else its last.
    A ``best_METRIC`` of None says nothing: the last is the value (the recorder and ``sweeper train`` read it so)."""
    return "best_" + metric if result.get("best_" + metric) is not None else metric


def objective_problem(target: str, verb: str, result: Mapping[str, Any], key: str) -> str | None:
    """Why ``result[key]``, a trial's objective, is no value Optuna can record (a list, a string, a bool), or None
    (a number, absent, or None: the last report stands in); a sweep fails the trial, ``sweeper train`` refuses it.
    ``verb``: how the function gave ``result``, "returned" or, where it returned None, "last reported"."""
    value = result.get(key)
    if value is not None and (isinstance(value, bool) or not isinstance(value, int | float)):
        return f"{target} {verb} {key} = {reprlib.repr(value)}, not a number"
    return None


def describe(target: str, base_dir: str | Path | None = None) -> EntrypointInfo:
    """Describe an entrypoint; raises EntrypointError. ``trials:run`` is described without importing it."""
    if target == DEFAULT_ENTRYPOINT:
        return EntrypointInfo(target=target, settings=TrainConfig.defaults(),
                              metrics=tuple(EPOCH_METRICS) + tuple(FINAL_METRICS),
                              epoch_metrics=tuple(OBJECTIVE_METRICS), related=RELATED_SETTINGS)
    fn = import_target(target, base_dir)
    settings, metrics = getattr(fn, "settings", None), getattr(fn, "metrics", None)
    if settings is not None and not (isinstance(settings, Mapping) and all(isinstance(k, str) for k in settings)):
        raise EntrypointError(f"{target}.settings must be a dict of setting name -> default")
    if metrics is not None and not (isinstance(metrics, list | tuple) and all(isinstance(m, str) for m in metrics)):
        raise EntrypointError(f"{target}.metrics must be a list of metric names")
    return EntrypointInfo(target, None if settings is None else dict(settings),
                          None if metrics is None else tuple(metrics), epoch_metrics=None)
