"""The spec's ``scheduler`` and ``budget`` as Ray Tune objects."""

from __future__ import annotations

from collections.abc import Callable

from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, HyperBandScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.stopper import Stopper

from search_spaces.schema import Spec
from sweeper.driver_only import DriverOnly

TIME_ATTR = "epoch"  # the core reports it every epoch; the final report repeats the last epoch


def ray_mode(spec: Spec) -> str:
    """The study's direction in Ray Tune's words."""
    return {"maximize": "max", "minimize": "min"}[spec.direction]


def build_scheduler(spec: Spec) -> TrialScheduler:
    """Periods are in epochs; ``max_t`` defaults to the planned epochs."""
    options = dict(spec.scheduler.options)
    common = {"time_attr": TIME_ATTR, "metric": spec.objective.metric, "mode": ray_mode(spec)}
    epochs = int(spec.base_config().get("epochs", 0) or 0)
    kind = spec.scheduler.type
    if kind == "asha":
        options.setdefault("max_t", max(epochs, options.get("grace_period", 1)) or 100)
        # stop_last_trials=False: a trial that reaches max_t must end by returning (COMPLETE, with test metrics),
        # not be stopped by the scheduler at its last epoch (which would read as PRUNED).
        return ASHAScheduler(**common, **options, stop_last_trials=False)
    if kind == "hyperband":
        options.setdefault("max_t", epochs + 1 if epochs else 100)  # +1: never stop a trial at its last epoch
        return HyperBandScheduler(**common, **options)
    if kind == "median":
        return MedianStoppingRule(**common, **options)
    return FIFOScheduler()


class SweepStopper(DriverOnly, Stopper):
    """Stops the whole sweep when ``stop_all`` says so (a target reached); never a single trial."""

    def __init__(self, stop_all: Callable[[], bool]) -> None:
        self._stop_all = stop_all

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self._stop_all())
