"""Time to target: when a sweep first met every target, and what it had spent by then.

A sweep exists to reach its targets cheaply, so the moment the first trial meets them is recorded in the study
(the study attr ``target_met``) with the compute spent until then: epochs trained by every trial (finished,
stopped or still running), wall time since the study's first trial started, and trials started. Search methods
are compared on these numbers (bench/search.py), and status, report and the final table print them. A sweep with
``budget.stop_on_target`` stops there: :func:`prune_stopped` records the trials it cut short.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TypedDict

import optuna
from optuna.trial import FrozenTrial

from storage import attrs

TARGET_MET = "target_met"  # study user attr: a TargetMet, written once, by the first trial meeting the targets


class TargetMet(TypedDict):
    """Shape of the study attr ``target_met``."""

    trial: int  # number of the first trial that met every target
    trial_epochs: int | None  # epochs trained by all trials until it finished; None: the function reports none
    wall_seconds: float  # from the study's first trial start to that trial's end
    trials: int  # trials started until then (itself included)


def epochs_trained(trial: FrozenTrial) -> int:
    """Epochs a trial has trained: its last reported epoch (each epoch is an intermediate value), else epochs_run."""
    if trial.intermediate_values:
        return int(max(trial.intermediate_values))
    recorded = trial.user_attrs.get(attrs.EPOCHS_RUN)
    return int(recorded) if isinstance(recorded, int) and not isinstance(recorded, bool) else 0


def time_to_target(trials: Sequence[FrozenTrial], met: FrozenTrial, now: datetime | None = None) -> TargetMet:
    """The record for ``met`` finishing at ``now`` (default its completion time), given the study's ``trials``.

    Trials are counted as they stand at that moment: a trial started before it counts with the epochs it has
    reported so far; one started after it does not count, nor does one that never trained (``never_started``, or
    set aside for a fused group that has not started, and no epoch on record: at a met target it is recorded
    never_started after this; a dead driver's trial carried on may be set aside too, with the epochs it trained).
    A training function may return without reporting an epoch (README): when ``met`` itself has no epoch on
    record, the epochs of the sweep are unknown, not 0.
    """
    end = now or met.datetime_complete or datetime.now()
    started = [t for t in trials if t.datetime_start is not None and t.datetime_start <= end
               and t.user_attrs.get(attrs.STOP_REASON) != attrs.STOP_NEVER_STARTED
               and (t.user_attrs.get(attrs.RAY_TRIAL_ID, "") is not None or t.intermediate_values)]  # None: set aside
    if all(t.number != met.number for t in started):
        started.append(met)
    first = min((t.datetime_start for t in started if t.datetime_start is not None), default=end)
    return {
        "trial": met.number,
        "trial_epochs": sum(epochs_trained(t) for t in started) if _epochs_known(met) else None,
        "wall_seconds": round(max(0.0, (end - first).total_seconds()), 3),
        "trials": len(started),
    }


def _epochs_known(trial: FrozenTrial) -> bool:
    recorded = trial.user_attrs.get(attrs.EPOCHS_RUN)
    return bool(trial.intermediate_values) or (isinstance(recorded, int) and not isinstance(recorded, bool))


def record_target_met(study: optuna.Study, met: FrozenTrial, finished: datetime | None = None) -> TargetMet | None:
    """Write ``target_met`` for ``met``, which finished at ``finished`` (default: when its tell was written),
    unless the study has one already (an earlier trial, or an earlier run)."""
    if isinstance(study.user_attrs.get(TARGET_MET), dict):
        return None
    record = time_to_target(study.get_trials(deepcopy=False), met, finished)
    study.set_user_attr(TARGET_MET, dict(record))
    return record


def recover_target_met(study: optuna.Study, meets: Callable[[FrozenTrial], bool]) -> TargetMet | None:
    """Write a ``target_met`` that a driver died before writing, for the first trial that finished meeting the
    targets: the trial and the attr are two writes, and the next run must not take the targets for unmet."""
    if target_met(study.user_attrs) is not None:
        return None
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    met = [t for t in done if t.datetime_complete is not None and meets(t)]
    first = min(met, key=lambda t: (t.datetime_complete, t.number), default=None)
    return record_target_met(study, first) if first is not None else None


def prune_stopped(study: optuna.Study, unfinished: Iterable[optuna.Trial]) -> list[int]:
    """Record trials still running when the sweep stopped at its target as PRUNED, ``stop_reason`` sweep_stopped
    (never_started for one set aside for a fused group, which trained nothing).

    Tune ends such trials without a last result, so nothing else tells the study; left RUNNING they would look
    like a dead driver's trials to the next ``sweeper run``, which would carry them on. Returns their numbers: not
    those another driver recorded meanwhile (two resumes at once stop the same dead driver's trials).
    """
    numbers = []
    for trial in unfinished:
        frozen = study._storage.get_trial(trial._trial_id)
        if frozen.state != optuna.trial.TrialState.RUNNING:
            continue
        epochs = epochs_trained(frozen)
        # set aside for a fused group that never started (in no Ray trial: its id None), as a live sweep records it
        aside = not epochs and frozen.user_attrs.get(attrs.RAY_TRIAL_ID, "") is None
        try:
            trial.set_user_attr(attrs.STOP_REASON, attrs.STOP_NEVER_STARTED if aside else attrs.STOP_SWEEP_STOPPED)
            trial.set_user_attr(attrs.EPOCHS_RUN, epochs)
            study.tell(trial, state=optuna.trial.TrialState.PRUNED)  # "Cannot tell a PRUNED trial": ValueError
        except (optuna.exceptions.UpdateFinishedTrialError, ValueError):
            continue  # another driver, resumed at the same moment, recorded it
        numbers.append(frozen.number)
    return numbers


def target_met(user_attrs: Mapping[str, Any]) -> TargetMet | None:
    """The study's record, or None when no trial has met the targets (or the attr is not ours)."""
    record = user_attrs.get(TARGET_MET)
    keys = [k for k in TargetMet.__annotations__ if k != "trial_epochs"]
    if not isinstance(record, dict) or not all(isinstance(record.get(k), (int, float)) for k in keys):
        return None
    epochs = record.get("trial_epochs")
    if not isinstance(epochs, (int, float)) and not (epochs is None and "trial_epochs" in record):
        return None
    return {"trial": int(record["trial"]), "trial_epochs": None if epochs is None else int(epochs),
            "wall_seconds": float(record["wall_seconds"]), "trials": int(record["trials"])}


def describe_target_met(record: TargetMet) -> str:
    """``#7 after 212 trial-epochs, 3m05s wall, 9 trials``; without epochs on record, ``#7 after 3m05s wall, 9
    trials (trial-epochs unknown: no epoch was reported)``."""
    if record["trial_epochs"] is None:
        return (f"#{record['trial']} after {clock(record['wall_seconds'])} wall, {_count(record['trials'])} "
                "(trial-epochs unknown: no epoch was reported)")
    return (f"#{record['trial']} after {record['trial_epochs']} trial-epochs, {clock(record['wall_seconds'])} "
            f"wall, {_count(record['trials'])}")


def _count(trials: int) -> str:
    return f"{trials} trial{'' if trials == 1 else 's'}"


def clock(seconds: float) -> str:
    """``45s``, ``3m05s``, ``1h02m``."""
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
