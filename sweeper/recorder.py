"""The one place where a Ray Tune result becomes an Optuna study record.

The stock integration tells the study COMPLETE with whatever the last epoch said, even when the scheduler
stopped the trial after two epochs. Here a trial is COMPLETE only when the training function returned (its
last report carries the final flag); stopped earlier by the scheduler it is PRUNED; failed it is FAIL with the
error in a user attr. Every epoch's objective becomes an intermediate value (learning curves in the dashboard).
"""

from __future__ import annotations

import math
import os
import re
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import optuna
from ray import cloudpickle
from ray.tune import Callback

from search_spaces import Spec
from storage import attrs
from storage.target import record_target_met
from sweeper.searcher import StudySearcher
from sweeper.trainable import FAILED_KEY, FINAL_FLAG, NODE_KEY, RESULT_KEYS

RECORDED_EPOCH_KEYS = ("epoch", "train_loss", "val_loss", "val_top1", "val_top3", "val_top5")

class StudyRecorder(Callback):
    def __init__(self, searcher: StudySearcher, spec: Spec, on_finished: Callable[[optuna.trial.FrozenTrial], None]
                 ) -> None:
        self.searcher = searcher
        self.study = searcher.study
        self.spec = spec
        self.metric = spec.objective.metric
        self.on_finished = on_finished
        self.target_reached = False

    def _trial(self, ray_trial: Any) -> optuna.Trial | None:
        return self.searcher.trials.get(ray_trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        optuna_trial = self._trial(trial)
        if optuna_trial is None or result.get(FINAL_FLAG) or result.get(FAILED_KEY):
            return
        value, epoch = result.get(self.metric), result.get("epoch")
        if isinstance(value, (int, float)) and math.isfinite(value) and isinstance(epoch, int) and epoch > 0:
            with warnings.catch_warnings():  # a retried or carried-on trial reports its checkpointed epoch again
                warnings.filterwarnings("ignore", message="The reported value is ignored because")
                optuna_trial.report(float(value), step=epoch)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        optuna_trial = self._trial(trial)
        if optuna_trial is None:
            return
        result = trial.last_result or {}
        record_node(optuna_trial, result)
        if result.get(FAILED_KEY):
            optuna_trial.set_user_attr(attrs.STOP_REASON, attrs.STOP_NAN)
            self._fail(optuna_trial, str(result[FAILED_KEY]))
            self.searcher.trials.pop(trial.trial_id, None)
            return
        # COMPLETE: everything the training function returned; otherwise the last epoch's metrics
        for key in result.get(RESULT_KEYS) or [k for k in RECORDED_EPOCH_KEYS if k in result]:
            if isinstance(result.get(key), (str, int, float, bool)):
                optuna_trial.set_user_attr(key, result[key])
        if result.get(FINAL_FLAG):
            value = final_value(result, self.metric, optuna_trial)
            if value is None:
                self._fail(optuna_trial, f"the training function returned without reporting {self.metric!r}")
                self.searcher.trials.pop(trial.trial_id, None)
                return
            frozen = self.study.tell(optuna_trial, value)
            if self.spec.targets and self.spec.targets_met(result):
                self.target_reached = True
                record_target_met(self.study, frozen)  # once per study: the first trial to meet them
        else:
            optuna_trial.set_user_attr(attrs.STOP_REASON, attrs.STOP_SWEEP_STOPPED if self.searcher.stopped
                                       else attrs.STOP_PRUNED)
            optuna_trial.set_user_attr(attrs.EPOCHS_RUN, int(result.get("epoch", 0) or 0))
            frozen = self.study.tell(optuna_trial, state=optuna.trial.TrialState.PRUNED)
        self.searcher.trials.pop(trial.trial_id, None)
        self.on_finished(frozen)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        optuna_trial = self._trial(trial)
        if optuna_trial is None:
            return
        record_node(optuna_trial, trial.last_result or {})
        self._fail(optuna_trial, error_message(trial))
        self.searcher.trials.pop(trial.trial_id, None)

    def _fail(self, optuna_trial: optuna.Trial, message: str) -> None:
        optuna_trial.set_user_attr(attrs.ERROR, message[:2000])
        frozen = self.study.tell(optuna_trial, state=optuna.trial.TrialState.FAIL)
        self.on_finished(frozen)


def record_node(optuna_trial: optuna.Trial, result: dict) -> None:
    if isinstance(result.get(NODE_KEY), str):
        optuna_trial.set_user_attr(attrs.NODE, result[NODE_KEY])


def final_value(result: dict, metric: str, optuna_trial: optuna.Trial) -> float | None:
    """The objective of a finished trial: its best epoch if it says so, else its last reported epoch.

    A trial carried on after its driver died may have checkpointed its last epoch without that report reaching
    the study; it then returns without reporting again, and its last recorded epoch is the value.
    """
    value = result.get("best_" + metric, result.get(metric))
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    recorded = optuna_trial.study._storage.get_trial(optuna_trial._trial_id).intermediate_values
    return recorded[max(recorded)] if recorded else None


def error_message(trial: Any) -> str:
    """``ValueError: x must be positive``: the user's exception, not Ray's wrapper and traceback."""
    path = trial.pickled_error_file
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                error = cloudpickle.load(f)
            cause = getattr(error, "cause", None) or error
            return f"{type(cause).__name__}: {cause}".strip()
        except Exception:  # an unpicklable error: fall back to the text file
            pass
    path = trial.error_file
    if path and os.path.exists(path):
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        exception_lines = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
        return (exception_lines or lines or ["unknown error"])[-1].strip()
    return "unknown error (Ray kept no error file)"
