"""A study as every reader sees it (status, best, clean, the HTML report, the final table): its trials, objective,
targets and baseline parsed once from the sweep's study attrs (:mod:`storage.attrs`), and the rule for when a trial
meets the targets, which the sweep itself judges its trials by too.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property
from typing import Any

import optuna
from optuna.study import StudyDirection
from optuna.trial import FrozenTrial, TrialState

from storage import attrs
from storage.errors import StorageError
from storage.reading import trials_with_last_values, whole_curves
from trials.metrics import is_accuracy, on_target

ValueFormatter = Callable[[str, Any], str]  # (metric or param name, value) -> text, e.g. 0.8 -> "80.00%"
DirectionOf = Callable[[str], str]  # metric -> "maximize" | "minimize"


@dataclass(frozen=True)
class StudyView:
    """The study, its trials and its sweep attrs, parsed once for every reader (and every section of the report)."""

    study: optuna.Study
    trials: list[FrozenTrial]
    metric: str  # the objective's name, e.g. "val_top3" ("value" for a study without the attr)
    maximize: bool
    targets: dict[str, float]
    baseline_source: str
    baseline: dict[str, float]
    fmt: ValueFormatter
    direction_of: DirectionOf
    # every intermediate value of a few trials, by trial id: ``trials`` may hold only the last (storage.reading)
    curves: Callable[[Sequence[FrozenTrial]], dict[int, dict[int, float]]] = \
        lambda trials: {trial._trial_id: trial.intermediate_values for trial in trials}

    @cached_property
    def complete(self) -> list[FrozenTrial]:
        """COMPLETE trials, best first (PRUNED trials carry an early epoch's value and never rank)."""
        done = [t for t in self.trials if t.state == TrialState.COMPLETE and t.value is not None]
        return sorted(done, key=lambda t: t.value, reverse=self.maximize)  # type: ignore[arg-type, return-value]

    def values(self, trial: FrozenTrial) -> dict[str, float]:
        """The trial's numeric metrics by name, the objective under its metric name."""
        out = {k: float(v) for k, v in trial.user_attrs.items()
               if isinstance(v, (int, float)) and not isinstance(v, bool)}
        if trial.value is not None:
            out[self.metric] = trial.value
        return out

    def direction(self, metric: str) -> str:
        """The objective follows the study's direction; other metrics the caller's ``direction_of``."""
        if metric == self.metric:
            return "maximize" if self.maximize else "minimize"
        return self.direction_of(metric)

    def met(self, trial: FrozenTrial) -> bool:
        return targets_met(self.values(trial), self.targets, self.direction)

    def met_target(self, metric: str, value: float) -> bool:
        """Whether ``value`` reaches the target of ``metric`` (False when it has none)."""
        return metric in self.targets and targets_met({metric: value}, {metric: self.targets[metric]}, self.direction)

    def best_meeting_targets(self) -> FrozenTrial | None:
        """The best COMPLETE trial that meets every target, if any."""
        return next((t for t in self.complete if self.met(t)), None)

    def first_meeting_targets(self) -> FrozenTrial | None:
        """The first COMPLETE trial to finish meeting every target: the one time to target counts to."""
        met = [t for t in self.complete if self.met(t) and t.datetime_complete is not None]
        return min(met, key=lambda t: (t.datetime_complete, t.number), default=None)

    def met_by(self) -> str | None:
        """``first met by #1; best trial meeting them: #4``, or None when no trial met the targets. The first and
        the best trial meeting them are often two trials: the final table, status and the report all name both."""
        first, best = self.first_meeting_targets(), self.best_meeting_targets()
        if first is None or best is None:
            return None
        return f"first met by #{first.number}" + (f"; best trial meeting them: #{best.number}" if best != first else "")

    def states(self) -> dict[str, int]:
        """Trials by state name, only the states present, in Optuna's order (RUNNING, COMPLETE, PRUNED, ...)."""
        counts = {s.name: sum(t.state == s for t in self.trials) for s in TrialState}
        return {name: n for name, n in counts.items() if n}

    def time_span(self) -> tuple[datetime, datetime] | None:
        """First trial start, last trial end (or start, for one still running); None before any trial started."""
        starts = [t.datetime_start for t in self.trials if t.datetime_start]
        ends = [t.datetime_complete or t.datetime_start for t in self.trials if t.datetime_start]
        return (min(starts), max(ends)) if starts else None  # type: ignore[type-var]


def percent_scale(metric: str, value: float) -> bool:
    """Whether ``value`` of ``metric`` is an accuracy outside [0, 1], i.e. a percentage where a fraction belongs: it
    would "meet" any target (targets on accuracies are fractions)."""
    return is_accuracy(metric) and not 0 <= value <= 1


def targets_met(values: Mapping[str, float], targets: Mapping[str, float], direction_of: DirectionOf) -> bool:
    """Whether ``values`` reach every target (False without targets): a maximised metric at or above its target,
    a minimised one at or below (a float32 rounding of the target is on it: ``on_target``); an accuracy outside
    [0, 1] meets none. ``direction_of`` comes from the caller, which knows the entrypoint's metrics."""
    if not targets:
        return False
    for metric, target in targets.items():
        value = values.get(metric)
        if value is None or not math.isfinite(value):  # NaN compares false both ways: it would pass
            return False
        if percent_scale(metric, value):
            return False
        if not on_target(value, target) and ((value < target) if direction_of(metric) == "maximize" else
                                             (value > target)):
            return False
    return True


def study_view(study: optuna.Study, fmt: ValueFormatter, direction_of: DirectionOf,
               storage: optuna.storages.BaseStorage | None = None) -> StudyView:
    """Parse the sweep's study attrs (see :mod:`storage.attrs`); a study without them still gets a view. With the
    study's ``storage``, the trials hold their last intermediate values only (``storage.reading``)."""
    if len(study.directions) != 1:
        raise StorageError(f"Study {study.study_name!r} has {len(study.directions)} objectives; sweeper reads "
                           "single-objective studies only.")
    user = study.user_attrs
    objective = user.get(attrs.OBJECTIVE) if isinstance(user.get(attrs.OBJECTIVE), dict) else {}
    baseline = user.get(attrs.BASELINE) if isinstance(user.get(attrs.BASELINE), dict) else {}
    return StudyView(
        study=study,
        trials=study.get_trials(deepcopy=False) if storage is None else trials_with_last_values(storage, study),
        metric=str(objective.get("metric") or "value"),
        maximize=study.direction == StudyDirection.MAXIMIZE,
        targets=_numbers(user.get(attrs.TARGETS)),
        baseline_source=str(baseline.get("source") or ""),
        baseline=_numbers(baseline.get("metrics")),
        fmt=fmt,
        direction_of=direction_of,
        **({} if storage is None else {"curves": lambda trials: whole_curves(storage, trials)}),
    )


def _numbers(data: Any) -> dict[str, float]:
    if not isinstance(data, dict):
        return {}
    return {str(k): float(v) for k, v in data.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
