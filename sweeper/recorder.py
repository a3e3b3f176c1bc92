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
import time
import warnings
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from ray import cloudpickle
from ray.tune import Callback

from search_spaces.schema import Spec
from storage import attrs
from storage.target import record_target_met
from storage.view import percent_scale, targets_met
from sweeper.console import console, err_console
from sweeper.driver_only import DriverOnly
from sweeper.searcher import StudySearcher
from sweeper.study_writer import StudyWriter
from sweeper.trainable import (
    DISK_KEY,
    FAILED_KEY,
    FINAL_FLAG,
    NO_OBJECTIVE_KEY,
    NODE_KEY,
    NON_FINITE_ERROR,
    RESULT_KEYS,
    TrainingFunctionError,
    note_stopped,
    objective_key,
)
from trials.config import OBJECTIVE_METRICS

FINAL_WAIT_S = 60.0  # how long a sweep stopping at its target waits for a trial's result after its last epoch
# what a trial stopped before it returned (pruned, the sweep stopped) records of its last epoch: the epoch and every
# metric a study could optimise, as the training core reports them (trials.config owns the list; not lr, timings)
RECORDED_EPOCH_KEYS = ("epoch", *OBJECTIVE_METRICS)


class StudyRecorder(DriverOnly, Callback):
    """Turns Tune's events into study writes, queued on ``writer`` so a slow or absent database never blocks Tune.

    Every write is safe to repeat: reports and attrs overwrite, and a retried tell skips a trial that its lost
    first attempt already finished.
    """

    def __init__(self, searcher: StudySearcher, spec: Spec, on_finished: Callable[[optuna.trial.FrozenTrial], None],
                 writer: StudyWriter) -> None:
        self.searcher = searcher
        self.study = searcher.study
        self.spec = spec
        self.metric = spec.objective.metric
        self.on_finished = on_finished
        self.writer = writer
        self.target_reached = False
        self.warned: set[str] = set()  # accuracies already warned about, once per sweep each
        self.warned_unrecorded = False  # a returned value no user attr can hold (a list, a dict): said once
        self.curves: set[int] = set()  # trials with a report the scheduler could judge (an epoch and the objective)
        self.unjudged: dict[int, int] = {}  # trials without such a report: how many others they sent
        self.warned_unjudged = self.spec.scheduler.type == "none"  # no scheduler: nothing to warn about
        self.finishing: dict[str, float] = {}  # trials that reported their last epoch (monotonic time), result due
        self.disk_problem: str | None = None  # a worker's disk took no writes: the sweep stops, its trials RUNNING
        self.rerun: set[int] = set()  # trials asked again after Ray ended them with retries left (once each)

    def _warn_unjudged(self, number: int, what: str) -> None:
        """The scheduler compares trials at each report's epoch and objective; without them it silently prunes
        nothing and no learning curve is recorded. Said once per sweep."""
        if self.warned_unjudged:
            return
        self.warned_unjudged = True
        console.print(f"warning: trial #{number} {what}; the {self.spec.scheduler.type} scheduler compares trials "
                      f"at each report's epoch and {self.metric}, so without them it can prune no trial, and no "
                      f"learning curve is recorded. Call report({{'epoch': 1, '{self.metric}': ...}}) every epoch "
                      "(epoch 1, 2, ...).", markup=False)

    def _warn_unrecorded(self, number: int, dropped: dict[str, Any]) -> None:
        """A list or dict in a trial's result (returned, or its last report) is left out of its attrs (each is one
        number, string or bool, which ``best``, ``export`` and the report can show): said once per sweep, not left for
        the user to find gone."""
        if dropped and not self.warned_unrecorded:
            self.warned_unrecorded = True
            kinds = ", ".join(f"{k} (a {type(v).__name__})" for k, v in dropped.items())
            console.print(f"warning: trial #{number}'s result holds {kinds}, which no trial attr records: a trial "
                          "records numbers, strings and bools; give each figure a name of its own (e.g. acc_class_3).",
                          markup=False)

    def _warn_percent_scale(self, result: dict) -> None:
        """An accuracy outside [0, 1] meets no target (``targets_met``); say once per metric why, as it arrives."""
        for key, value in result.items():
            metric = key.removeprefix("best_")  # best_val_acc is val_acc's best epoch: one warning for both
            if (metric not in self.warned and isinstance(value, (int, float)) and not isinstance(value, bool)
                    and math.isfinite(value) and percent_scale(metric, value)):
                self.warned.add(metric)
                judged = f" Until then no trial meets the target on {metric}." if metric in self.spec.targets else ""
                console.print(f"warning: {key} = {value:g} is outside 0-1; sweeper reads accuracies as fractions "
                              f"(a target of 95% is 0.95), so report {metric} / 100.{judged}", markup=False)

    def _trial(self, ray_trial: Any) -> optuna.Trial | None:
        return self.searcher.trials.get(ray_trial.trial_id)

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        optuna_trial = self._trial(trial)
        if optuna_trial is None or result.get(FINAL_FLAG) or result.get(FAILED_KEY):
            return
        self._warn_percent_scale(result)
        value, epoch = result.get(self.metric), whole_epoch(result.get("epoch"))
        if (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
                and epoch is not None and epoch > 0):
            self.curves.add(optuna_trial.number)
            self.writer.submit(lambda: report(optuna_trial, float(value), epoch))
        elif optuna_trial.number not in self.curves:
            self._note_unjudged(optuna_trial.number, value, result.get("epoch"))
        last = (getattr(trial, "config", None) or {}).get("epochs")
        if isinstance(last, int) and epoch is not None and epoch >= last:
            self.finishing[trial.trial_id] = time.monotonic()

    def _note_unjudged(self, number: int, value: Any, epoch: Any) -> None:
        """A report the scheduler cannot judge; one is fine (an epoch-0 evaluation, extra figures), two are not."""
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            missing = f"without {self.metric!r}"
        elif (whole := whole_epoch(epoch)) is None or whole < 1:
            missing = "without an 'epoch' key (1, 2, ...)" if epoch is None else f"with epoch {epoch!r}, not 1, 2, ..."
        else:
            return  # a NaN: it fails the trial
        seen = self.unjudged[number] = self.unjudged.get(number, 0) + 1
        if seen >= 2:
            self._warn_unjudged(number, f"reported {seen} times {missing}")

    def results_due(self) -> bool:
        """Whether a trial that trained its last epoch has yet to send its result (its test metrics, computed just
        after): a sweep stopping at its target waits for it, lest it record a trial that trained fully as PRUNED
        (every member but the first of a fused group that finishes in lockstep)."""
        return any(time.monotonic() - since < FINAL_WAIT_S for since in self.finishing.values())

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finishing.pop(trial.trial_id, None)
        optuna_trial = self.searcher.trials.pop(trial.trial_id, None)
        if optuna_trial is None:
            return
        result = dict(trial.last_result or {})
        if result.get(DISK_KEY) or (self.disk_problem and not result.get(FINAL_FLAG)):
            self.disk_problem = self.disk_problem or str(result[DISK_KEY])
            self._leave_running(optuna_trial, f": {result[DISK_KEY]}" if result.get(DISK_KEY) else " with the sweep")
            return
        if result.get(FAILED_KEY):
            message = str(result[FAILED_KEY])  # "ConfigError: ...": the exception's name says what failed
            # only a diverged loss is "diverged"; a refused config, bad data or a bad return value has no stop reason
            nan = message.startswith(NON_FINITE_ERROR + ":")
            self._fail(optuna_trial, message, result, reason=attrs.STOP_DIVERGED if nan else None)
            return
        # COMPLETE: everything the training function returned; otherwise the last epoch's metrics. A target's metric
        # reported every epoch but not returned: its last report (else no trial could meet that target)
        keys = result.get(RESULT_KEYS) or [k for k in RECORDED_EPOCH_KEYS if k in result]
        keys = [*keys, *(m for m in self.spec.targets if m in result and m not in keys)]
        user_attrs = {f"returned_{k}" if k in attrs.SWEEPER_ONLY else k: result[k] for k in keys
                      if isinstance(result.get(k), (str, int, float, bool))}
        if result.get(FINAL_FLAG):
            self._warn_percent_scale({k: result[k] for k in keys if k in result})  # what it returned
            self._warn_unrecorded(optuna_trial.number, {k: result[k] for k in keys if result.get(k) is not None
                                                        and not isinstance(result[k], (str, int, float, bool))})
            if optuna_trial.number not in self.curves | self.searcher.carried_on:  # one carried on may end at once
                self._warn_unjudged(optuna_trial.number, f"returned without a report of {self.metric} per epoch")
            # judged here, on Tune's loop, so that a sweep stopping at its target asks no further trial; only a finite
            # objective, which _complete records COMPLETE as it is (another fails the trial, or is a stand-in for the
            # last recorded epoch, judged once read there)
            value = result.get(objective_key(result, self.metric))
            if isinstance(value, (int, float)) and math.isfinite(value) and meets_targets(self.spec, user_attrs, value):
                self.target_reached = True
            finished = datetime.now()  # before Tune fills the slot: the tell may be written later, after it
            self.writer.submit(lambda: self._complete(optuna_trial, result, user_attrs, finished))
        else:
            # only a reached target stops running trials; after budget.time they run on, and a rung may stop them
            ended = self.spec.budget.stop_on_target and self.target_reached
            user_attrs[attrs.STOP_REASON] = attrs.STOP_SWEEP_STOPPED if ended else attrs.STOP_PRUNED
            user_attrs[attrs.EPOCHS_RUN] = whole_epoch(result.get("epoch")) or 0  # a NaN one raised in Tune's loop
            note_stopped(self.searcher.checkpoints, optuna_trial.number, user_attrs)  # lest an outage lose the tell
            self.writer.submit(lambda: self._finish(optuna_trial, result, user_attrs,
                                                    state=optuna.trial.TrialState.PRUNED))

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.finishing.pop(trial.trial_id, None)
        optuna_trial = self.searcher.trials.pop(trial.trial_id, None)
        if optuna_trial is not None and self.disk_problem:  # Ray's own writes fail on that disk too
            self._leave_running(optuna_trial, " with the sweep")
        elif optuna_trial is not None and trial.should_recover() and optuna_trial.number not in self.rerun:
            # Ray's own double failure: a worker that died while its actor waited for the next trial fails the actor
            # and the reset queued on it, both, and Tune ends the trial with its retries unspent. It runs again, once
            self.rerun.add(optuna_trial.number)
            error = trial_error(trial)[0].partition("\n")[0]
            why = f"lost its Ray worker before it began ({error})"
            if self.searcher.run_again(optuna_trial):
                err_console.print(f"trial #{optuna_trial.number} {why}; it runs again")
            else:  # the sweep asks no more trials: the next run carries it on
                self._leave_running(optuna_trial, f": it {why}")
        elif optuna_trial is not None:
            message, frames = trial_error(trial)
            if frames:  # where in the user's code; Ray's own log of it (its frames around theirs) is muted
                err_console.print(f"trial #{optuna_trial.number} failed:\n{frames.rstrip()}")
            self._fail(optuna_trial, message, dict(trial.last_result or {}))

    def _leave_running(self, optuna_trial: optuna.Trial, why: str) -> None:
        """Not FAIL or PRUNED: the machine stopped it. Without an owner, the next run (in this process too) carries
        it on from its checkpoint once there is room."""
        err_console.print(f"trial #{optuna_trial.number} stopped{why}; it stays RUNNING for the next run to carry on")
        self.searcher.handed_back.add(optuna_trial.number)
        self.writer.submit(lambda: optuna_trial.set_user_attr(attrs.DRIVER, None))

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        optuna_trial = self._trial(trial)
        if optuna_trial is not None:
            error = trial_error(trial)[0].partition("\n")[0]  # one line per retry
            err_console.print(f"trial #{optuna_trial.number} failed ({error}); Ray runs it again, from its last "
                              f"checkpoint where it saved one (retry {trial.num_failures} of {trial.max_failures})")

    def _complete(self, optuna_trial: optuna.Trial, result: dict, user_attrs: dict[str, Any],
                  finished: datetime) -> None:
        last = result.get(key := objective_key(result, self.metric))
        # NaN or ±inf, not an earlier epoch's value in its place (the worst value stood in for one never given)
        if not result.get(NO_OBJECTIVE_KEY) and isinstance(last, float) and not math.isfinite(last):
            message = f"the training function ended with {key} = {last}"
            self._finish(optuna_trial, result,
                         {**user_attrs, attrs.ERROR: message, attrs.STOP_REASON: attrs.STOP_DIVERGED},
                         state=optuna.trial.TrialState.FAIL)
            return
        value = final_value(result, self.metric, optuna_trial)
        if value is None:
            message = f"the training function returned without reporting {self.metric!r}"
            self._finish(optuna_trial, result, {**user_attrs, attrs.ERROR: message}, state=optuna.trial.TrialState.FAIL)
        else:
            frozen = self._finish(optuna_trial, result, user_attrs, value=value)
            # judged as recorded: another driver may have finished the trial first, and this result was dropped
            complete = frozen.state == optuna.trial.TrialState.COMPLETE
            if complete and meets_targets(self.spec, frozen.user_attrs, frozen.value):
                self.target_reached = True  # already, unless the value is the last recorded epoch's
                self.writer.submit(lambda: record_target_met(self.study, frozen, finished))  # a write of its own

    def _fail(self, optuna_trial: optuna.Trial, message: str, result: dict, reason: str | None = None) -> None:
        user_attrs = {attrs.ERROR: message[:2000], **({attrs.STOP_REASON: reason} if reason else {})}
        self.writer.submit(lambda: self._finish(optuna_trial, result, user_attrs,
                                                state=optuna.trial.TrialState.FAIL))

    def _finish(self, optuna_trial: optuna.Trial, result: dict, user_attrs: dict[str, Any], *,
                value: float | None = None, state: optuna.trial.TrialState | None = None
                ) -> optuna.trial.FrozenTrial:
        """Attrs, then the tell; run again after a lost answer, it finds the trial finished and leaves it so."""
        if isinstance(result.get(NODE_KEY), str):
            user_attrs = {attrs.NODE: result[NODE_KEY], **user_attrs}
        try:
            for key, item in user_attrs.items():
                optuna_trial.set_user_attr(key, item)
        except optuna.exceptions.UpdateFinishedTrialError:
            pass  # the tell whose answer was lost did commit: the trial is recorded, attrs and all
        frozen = self.study.tell(optuna_trial, value, state=state, skip_if_finished=True)
        self.on_finished(frozen)
        return frozen


def whole_epoch(epoch: Any) -> int | None:
    """A report's epoch as an int, a whole float too (``step / steps_per_epoch``: 2.0 is epoch 2, which the
    schedulers judge as well); None for anything else (a bool, 1.5, NaN, a text)."""
    if isinstance(epoch, float) and epoch.is_integer():
        return int(epoch)
    return epoch if isinstance(epoch, int) and not isinstance(epoch, bool) else None


def report(optuna_trial: optuna.Trial, value: float, epoch: int) -> None:
    """An epoch's objective as an intermediate value (a retried or carried-on trial repeats its last epoch)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The reported value is ignored because")
        optuna_trial.report(value, step=epoch)


def final_value(result: dict, metric: str, optuna_trial: optuna.Trial) -> float | None:
    """The objective of a finished trial: its best epoch if it says so, else its last reported epoch.

    A trial carried on after its driver died may have checkpointed its last epoch without that report reaching
    the study; it then returns without reporting again (its result holds the worst value as a stand-in), and its
    last recorded epoch is the value.
    """
    value = result.get(objective_key(result, metric))
    if isinstance(value, (int, float)) and math.isfinite(value):
        return float(value)
    recorded = optuna_trial.study._storage.get_trial(optuna_trial._trial_id).intermediate_values
    return recorded[max(recorded)] if recorded else None


def meets_targets(spec: Spec, recorded: dict, value: Any) -> bool:
    """Judged on what the study records (the trial's attrs, its value for the objective), as status and the
    report judge it."""
    return targets_met({**recorded, spec.objective.metric: value}, spec.targets, spec.metric_direction)


def trial_error(trial: Any) -> tuple[str, str]:
    """``("ValueError: x must be positive", its traceback from the training function's first frame, or "")``:
    the user's exception, not Ray's wrapper and traceback."""
    path = trial.pickled_error_file
    if path and os.path.exists(path):
        try:
            with open(path, "rb") as f:
                error = cloudpickle.load(f)
            cause = getattr(error, "cause", None) or error
            if isinstance(cause, TrainingFunctionError):
                return cause.args[0].strip(), cause.args[1] if len(cause.args) > 1 else ""
            return f"{type(cause).__name__}: {cause}".strip(), ""
        except Exception:  # an unpicklable error: fall back to the text file
            pass
    path = trial.error_file
    if path and os.path.exists(path):
        lines = [line for line in Path(path).read_text().splitlines() if line.strip()]
        exception_lines = [line for line in lines if re.match(r"^[\w.]+(Error|Exception|Interrupt)\b", line)]
        return (exception_lines or lines or ["unknown error"])[-1].strip(), ""
    return "unknown error (Ray kept no error file)", ""
