"""The spec's ``scheduler`` and ``budget`` as Ray Tune objects."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.stopper import Stopper

from search_spaces import sections
from search_spaces.schema import Spec
from sweeper.driver_only import DriverOnly
from trials.config import REPLAYED

TIME_ATTR = "epoch"  # the core reports it every epoch; the final report repeats the last epoch


def ray_mode(spec: Spec) -> str:
    """The study's direction in Ray Tune's words."""
    return {"maximize": "max", "minimize": "min"}[spec.direction]


def planned_epochs(spec: Spec) -> int:
    """The epochs a trial trains: the training block's, else the most a param samples, else the entrypoint's
    default (the core's 30); 0 when unknown."""
    epochs = spec.params.get("epochs")
    if isinstance(epochs, sections.SampledParam):
        return int(max(value for _, value in epochs.extremes()))
    default = (spec.entrypoint_info.settings or {}).get("epochs") if spec.entrypoint_info else None
    return int(spec.base_config().get("epochs", default) or 0)


class _SparesReplays:
    """A report a resumed trial repeats from its checkpoint (``replayed``) is recorded in the rungs, not judged:
    the trial passed that rung before its driver died, and a fresh scheduler would prune it at an epoch it is
    long past, recording those metrics as its last."""

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        action = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        return TrialScheduler.CONTINUE if result.get(REPLAYED) else action


class ASHA(_SparesReplays, ASHAScheduler):
    pass


class MedianStopping(_SparesReplays, MedianStoppingRule):
    pass


def hyperband_brackets(max_t: int, reduction_factor: float) -> int:
    """HyperBand's bracket count, s_max + 1, for ASHA's ``brackets``: the asynchronous HyperBand of the ASHA paper
    (Li et al., 2020). Ray's synchronous ``HyperBandScheduler`` halves a bracket once all its trials reach a
    rung; with fewer trials at a time than a bracket holds it stopped nothing (Ray 2.x, 12 trials 2 at a time: 0
    stopped; all 12 at once: 4). tests/test_samplers.py shows this one stopping trials 2 at a time."""
    return int(math.log(max_t) / math.log(reduction_factor) + 1e-9) + 1


def build_scheduler(spec: Spec) -> TrialScheduler:
    """Periods are in epochs; ``max_t`` defaults to just below the planned epochs, so no rung falls on the last
    epoch: a trial judged there would be stopped before it returns, its training done, and read as PRUNED.
    stop_last_trials=False lets trials that pass max_t train on to their end and return (COMPLETE)."""
    options = dict(spec.scheduler.options)
    common = {"time_attr": TIME_ATTR, "metric": spec.objective.metric, "mode": ray_mode(spec)}
    epochs = planned_epochs(spec)
    kind = spec.scheduler.type
    if kind in ("asha", "hyperband"):
        if epochs and options.get("grace_period", 1) >= epochs and "max_t" not in options:
            return FIFOScheduler()  # its first rung would be the last epoch: it could only prune finished trials
        options.setdefault("max_t", max(epochs - 1, options.get("grace_period", 1)) if epochs else 100)
        if kind == "hyperband":  # HyperBand's brackets, asynchronous (see hyperband_brackets)
            options.setdefault("reduction_factor", 3)
            options["brackets"] = hyperband_brackets(options["max_t"], options["reduction_factor"])
        return ASHA(**common, **options, stop_last_trials=False)
    if kind == "median":
        options.setdefault("grace_period", 1)  # Ray's default, 60, means seconds; here time is epochs
        return MedianStopping(**common, **options)
    return FIFOScheduler()


class SweepStopper(DriverOnly, Stopper):
    """Stops the whole sweep when ``stop_all`` says so (a target reached); never a single trial."""

    def __init__(self, stop_all: Callable[[], bool]) -> None:
        self._stop_all = stop_all

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self._stop_all())
