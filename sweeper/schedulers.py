"""The spec's ``scheduler`` and ``budget`` as Ray Tune objects."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

import numpy as np
from optuna.trial import FrozenTrial
from ray.tune.schedulers import ASHAScheduler, FIFOScheduler, MedianStoppingRule, TrialScheduler
from ray.tune.stopper import Stopper

from search_spaces.schema import Spec
from sweeper.driver_only import DriverOnly
from sweeper.trainable import FAILED_KEY, FINAL_FLAG, META_KEY
from trials.config import REPLAYED

TIME_ATTR = "epoch"  # the core reports it every epoch; the final report repeats the last epoch


def ray_mode(spec: Spec) -> str:
    """The study's direction in Ray Tune's words."""
    return {"maximize": "max", "minimize": "min"}[spec.direction]


class _JudgesTraining:
    """What the sweep's scheduler judges of a trial: each epoch it trains while more are to come.

    Recorded but not judged: an epoch a resumed trial replays from its checkpoint (``replayed``: it passed that rung
    before its driver died, and a fresh scheduler would prune it at an epoch it is long past), and a trial's last
    epoch (stopping it there saves nothing, and records a trial that trained to its end as PRUNED). Not shown: the
    final report, which repeats the last epoch with the best epoch's metrics (Ray's median rule would average it
    into every finished trial's curve once more, and prune trials its rule keeps).
    """

    default_last_epoch = 0  # a trial's last epoch where its config does not say (Spec.planned_epochs); 0: unknown

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        if result.get(FINAL_FLAG) or result.get(FAILED_KEY):
            return TrialScheduler.CONTINUE
        # a report whose objective or epoch is no number (None: "no value this epoch", as a returned None is) is
        # not judged, as one without them is: Ray's rules multiply and average it, and their TypeError ended the
        # sweep with a traceback; the recorder warns about a trial whose reports it cannot judge
        judged = (TIME_ATTR, self._metric)  # type: ignore[attr-defined]
        if not all(isinstance(result.get(key), int | float) for key in judged):
            return TrialScheduler.CONTINUE
        action = super().on_trial_result(tune_controller, trial, result)  # type: ignore[misc]
        last = (getattr(trial, "config", None) or {}).get("epochs") or self.default_last_epoch
        at_end = isinstance(last, int) and last > 0 and result.get(TIME_ATTR, 0) >= last
        return TrialScheduler.CONTINUE if result.get(REPLAYED) or at_end else action

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        """Every epoch is in; what Tune passes here is the final report, or the epoch a STOP was decided on."""
        self.on_trial_remove(tune_controller, trial)  # type: ignore[attr-defined]

    def remember(self, trials: Iterable[FrozenTrial]) -> None:
        """Judge the coming trials beside the study's finished ones too, as the sweep that ran them did: a resumed
        or extended sweep starts a new scheduler, which would let its first trials pass every rung unjudged."""
        for trial in trials:
            curve = {step: value for step, value in sorted(trial.intermediate_values.items()) if math.isfinite(value)}
            if trial.state.is_finished() and curve:
                self._recall(f"study#{trial.number}", trial.number, curve)

    def _recall(self, key: str, number: int, curve: dict[int, float]) -> None:
        raise NotImplementedError


class ASHA(_JudgesTraining, ASHAScheduler):
    def __init__(self, *args: Any, seed: int = 0, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.seed = seed

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Ray's choice of a HyperBand bracket, drawn from the sampler's seed and the trial's number instead of
        numpy's global state: the same space and seed prune the same trials."""
        super().on_trial_add(tune_controller, trial)
        number = ((getattr(trial, "config", None) or {}).get(META_KEY) or {}).get("number")
        if number is not None:  # else not a sweep's trial: Ray's draw stands
            self._trial_info[trial.trial_id] = self._bracket_of(number)

    def _bracket_of(self, number: int) -> Any:
        if len(self._brackets) == 1:
            return self._brackets[0]
        sizes = np.array([len(bracket._rungs) for bracket in self._brackets])
        weights = np.e ** (sizes - sizes.max())
        draw = np.random.default_rng([self.seed % 2**32, number])
        return self._brackets[draw.choice(len(self._brackets), p=weights / weights.sum())]

    def _recall(self, key: str, number: int, curve: dict[int, float]) -> None:
        """Its value at each rung it reached: at the first epoch there or past it, as Ray records a trial."""
        for milestone, recorded in self._bracket_of(number)._rungs:
            if reached := [step for step in curve if step >= milestone]:
                recorded[key] = self._metric_op * curve[reached[0]]


class MedianStopping(_JudgesTraining, MedianStoppingRule):
    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """A STOP overruled (a replayed epoch, a trial's last) leaves the trial running, so it is unmarked: Ray's rule
        asserts on the next result of a trial it marked stopped."""
        action = super().on_trial_result(tune_controller, trial, result)
        if action == TrialScheduler.CONTINUE:
            self._stopped_trials.discard(trial)
        return action

    def _recall(self, key: str, number: int, curve: dict[int, float]) -> None:
        self._results[key] = [{self._time_attr: step, self._metric: value} for step, value in curve.items()]


def hyperband_brackets(max_t: int, grace_period: int, reduction_factor: float) -> int:
    """HyperBand's bracket count, s_max + 1, for ASHA's ``brackets``: the asynchronous HyperBand of the ASHA paper
    (Li et al., 2020). Ray's synchronous ``HyperBandScheduler`` halves a bracket once all its trials reach a
    rung, so with fewer trials at a time than a bracket holds it stops none (tests/test_samplers.py shows this one
    stopping trials 2 at a time)."""
    return int(np.log(max_t / grace_period) / np.log(reduction_factor) + 1)  # as Ray counts bracket 0's rungs


def build_scheduler(spec: Spec, history: Iterable[FrozenTrial] = ()) -> TrialScheduler:
    """Periods are in epochs; ``max_t`` defaults to just below the planned epochs, so no rung falls on the last
    epoch: a trial judged there would be stopped before it returns, its training done, and read as PRUNED.
    stop_last_trials=False lets trials that pass max_t train on to their end and return (COMPLETE).
    ``history``: the study's trials so far, whose finished ones the scheduler judges the new ones beside."""
    options = {**spec.scheduler.DEFAULTS, **spec.scheduler.options}
    common = {"time_attr": TIME_ATTR, "metric": spec.objective.metric, "mode": ray_mode(spec)}
    epochs = spec.planned_epochs()
    kind = spec.scheduler.type
    if kind in ("asha", "hyperband"):
        if epochs and options.get("grace_period", 1) >= epochs and "max_t" not in options:
            return FIFOScheduler()  # a stored spec's (a new one is refused): it could only prune finished trials
        options.setdefault("max_t", max(epochs - 1, options.get("grace_period", 1)) if epochs else 100)
        if kind == "hyperband":  # HyperBand's brackets, asynchronous (see hyperband_brackets)
            options["brackets"] = hyperband_brackets(options["max_t"], options.get("grace_period", 1),
                                                     options["reduction_factor"])
        scheduler: TrialScheduler = ASHA(**common, **options, stop_last_trials=False, seed=spec.sampler.seed or 0)
    elif kind == "median":
        # never PAUSE a trial to let a waiting one run: it restarts from its checkpoint, replaying epochs for nothing
        scheduler = MedianStopping(**common, **options, min_time_slice=math.inf)
    else:
        return FIFOScheduler()
    scheduler.default_last_epoch = epochs
    scheduler.remember(history)
    return scheduler


class SweepStopper(DriverOnly, Stopper):
    """Stops the whole sweep when ``stop_all`` says so (a target reached); never a single trial."""

    def __init__(self, stop_all: Callable[[], bool]) -> None:
        self._stop_all = stop_all

    def __call__(self, trial_id: str, result: dict) -> bool:
        return False

    def stop_all(self) -> bool:
        return bool(self._stop_all())
