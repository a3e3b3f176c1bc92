"""What the user sees during and after a sweep: a line per finished trial, then a table against targets."""

from __future__ import annotations

from collections.abc import Sequence

import optuna
from rich.table import Table

from search_spaces.schema import Spec
from storage import attrs
from storage.target import describe_target_met, target_met
from storage.view import StudyView, percent_scale
from sweeper.console import console, escape_control, fits, format_params, format_value, target_gap

TS = optuna.trial.TrialState


class SweepPrinter:
    def __init__(self, spec: Spec, earlier: Sequence[optuna.trial.FrozenTrial] = ()) -> None:
        """``earlier``: the trials a resumed study holds, so that "best" is the study's, not this run's."""
        self.spec = spec
        self.metric = spec.objective.metric
        self.maximize = spec.direction == "maximize"
        self.best: float | None = None
        for trial in earlier:
            self._keep_best(trial)

    def _keep_best(self, trial: optuna.trial.FrozenTrial) -> None:
        if trial.state == TS.COMPLETE and trial.value is not None and (
                self.best is None or (trial.value > self.best) == self.maximize):
            self.best = trial.value

    def trial_finished(self, trial: optuna.trial.FrozenTrial) -> None:
        """``#3 COMPLETE val_top3 71.20%  best 74.02%  test_top3 70.10% (target 80.00%, 9.90 pts short)  lr=...``."""
        parts = [f"#{trial.number:<3} {trial.state.name:<8}"]
        self._keep_best(trial)
        # judged as the final table judges them: a COMPLETE trial's own values, the objective its recorded value
        values = {**trial.user_attrs, self.metric: trial.value} if trial.state == TS.COMPLETE else {}
        judged = {}
        for metric, target in self.spec.targets.items():
            value = values.get(metric)
            if isinstance(value, (int, float)):
                gap = "outside 0-1: not met" if percent_scale(metric, value) else target_gap(
                    metric, value, target, self.spec.metric_direction(metric))
                judged[metric] = f"{metric} {format_value(metric, value)} (target {format_value(metric, target)}, " \
                                 f"{gap})"
        if trial.state == TS.COMPLETE and trial.value is not None:  # with its target, where it has one
            parts.append(judged.pop(self.metric, f"{self.metric} {format_value(self.metric, trial.value)}"))
        elif trial.state == TS.PRUNED and trial.user_attrs.get(attrs.STOP_REASON) == attrs.STOP_NEVER_STARTED:
            parts.append("never started: the sweep stopped first")
        elif trial.state == TS.PRUNED and trial.user_attrs.get(attrs.STOP_REASON) == attrs.STOP_SWEEP_STOPPED:
            parts.append(f"stopped with the sweep after epoch {trial.user_attrs.get(attrs.EPOCHS_RUN, '?')}")
        elif trial.state == TS.PRUNED:
            parts.append(f"stopped at epoch {trial.user_attrs.get(attrs.EPOCHS_RUN, '?')}")
        elif trial.state == TS.FAIL:
            # its first line: a trial is one line, which grep '^#' must find whole; the attr keeps all of it
            first_line = str(trial.user_attrs.get(attrs.ERROR, "?")).strip().partition("\n")[0]
            parts.append(f"error: {first_line}")
        if self.best is not None:
            parts.append(f"best {format_value(self.metric, self.best)}")
        parts.extend(judged.values())
        parts.append(format_params(trial.params))
        console.print("  ".join(parts))

    def final_table(self, study: optuna.Study, top: int = 5) -> None:
        trials = study.get_trials(deepcopy=False)
        counts = {s.name: sum(t.state == s for t in trials) for s in TS if any(t.state == s for t in trials)}
        console.print("trials: " + (", ".join(f"{n} {name}" for name, n in counts.items()) or "none"))
        baseline = self.spec.baseline
        view = StudyView(study, trials, self.metric, self.maximize, dict(self.spec.targets),
                         baseline.source if baseline else "", baseline.metrics if baseline else {}, format_value,
                         self.spec.metric_direction)
        # The best validation scores need not be the ones that meet a test target: the best trial that does is
        # always shown, below the top ones if it is not among them.
        reached = view.best_meeting_targets() if self.spec.targets else None
        best = view.complete[:top]
        complete = [*best, reached] if reached is not None and reached not in best else best
        metrics = list(dict.fromkeys([self.metric, *self.spec.targets, *(self.spec.baseline.metrics
                                                                          if self.spec.baseline else {})]))
        rows = []
        if self.spec.targets:
            rows.append(("target", [_fmt(m, self.spec.targets.get(m)) for m in metrics], ""))
        if self.spec.baseline:
            rows.append(("baseline", [_fmt(m, self.spec.baseline.metrics.get(m)) for m in metrics],
                         self.spec.baseline.source))
        for t in complete:
            values = {**t.user_attrs, self.metric: t.value}
            label = f"#{t.number}{' (target met)' if view.met(t) else ''}"
            rows.append((label, [_fmt(m, values.get(m)) for m in metrics], format_params(t.params)))
        if rows:  # no targets, no baseline and nothing COMPLETE: an empty table says nothing
            against = " and ".join(w for w, has in (("targets", self.spec.targets), ("baseline", self.spec.baseline))
                                   if has)
            _print_best_table(f"best trials of {study.study_name}" + (f" against {against}" if against else ""),
                              metrics, rows)
        if self.spec.targets:
            console.print(f"targets {view.met_by() or 'not met'}")
            record = target_met(study.user_attrs)
            if record:
                console.print(f"time to target: first met by {describe_target_met(record)}")


def _print_best_table(title: str, metrics: list[str], rows: list[tuple[str, list[str], str]]) -> None:
    # laid out and wrapped as printed: rich measures a control character 0 wide, the console prints it escaped (4
    # wide), and a line then wider than the terminal loses its end (soft_wrap=False crops: lr=1.00e-04 read lr=1)
    metrics = [escape_control(metric) for metric in metrics]
    rows = [(escape_control(label), [escape_control(value) for value in values], escape_control(params))
            for label, values, params in rows]
    table = _best_table(title, metrics, rows, with_params=True)
    if fits(table):
        console.print(table)
        return
    # too narrow for the longest param whole: the params go under the table, a line for each row
    console.print(_best_table(title, metrics, rows, with_params=False))
    for label, _, params in rows:  # wrapped between two params: a terminal's own wrap would split one (lr=1.00e-0 / 4)
        if params:
            console.print(f"{label}: {params}", markup=False, soft_wrap=False)


def _best_table(title: str, metrics: list[str], rows: list[tuple[str, list[str], str]], with_params: bool) -> Table:
    table = Table(title=title)
    table.add_column("trial", overflow="fold")  # a CI log's 80 columns: values fold, never cut off
    for metric in metrics:
        table.add_column(metric, justify="right", overflow="fold")
    if with_params:  # they wrap between two params, never inside one (lr=1.00e-0 / 4 would read as another value)
        widest = max((len(word) for *_, params in rows for word in params.split()), default=0)
        table.add_column("params", min_width=min(widest, 40), overflow="fold")
    for label, values, params in rows:
        table.add_row(label, *values, *([params] if with_params else []))
    return table


def _fmt(metric: str, value: object) -> str:
    return format_value(metric, value) if isinstance(value, (int, float)) else "-"
