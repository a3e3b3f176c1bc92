"""One self-contained HTML report of a study (``sweeper report``): a file to mail, archive or open offline.

Built from the study alone (the source of truth), with plotly.js inlined once, so it needs no network and no
Ray results folder. Sections, each a ``<section id=...>`` a reader (or a test) can find:

- ``summary``: objective, targets, baseline, trials by state, best trial, time span, environment;
- ``history``: the objective and every target metric by trial, best so far, target and baseline as lines;
- ``parallel-coordinates``, ``importances``, ``slices``: Optuna's own plots (a short note where they cannot be
  drawn, e.g. too few COMPLETE trials for importances);
- ``learning-curves``: the objective per epoch (intermediate values) of the top trials;
- ``top-trials``: a table of the top trials, with the targets and the baseline where the space has them, and params.

Each figure's data is embedded as JSON (``<script type="application/json" data-figure=...>``) and drawn by one
small script, so the numbers are in the file in plain form. Every text put into the HTML is escaped.
"""

from __future__ import annotations

import html
import math
import re
import warnings
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from storage import attrs
from storage.environment import environment_fields
from storage.target import describe_target_met, epochs_trained, target_met
from storage.urls import mask_url
from storage.view import StudyView

SECTIONS = {
    "summary": "Summary",
    "history": "Optimization history",
    "parallel-coordinates": "Parallel coordinates",
    "importances": "Parameter importances",
    "learning-curves": "Learning curves of the top trials",
    "slices": "Slice plots",
    "top-trials": "Top trials",  # with the targets' and baseline's rows where the space has them
}
MIN_IMPORTANCE_TRIALS = 3  # below this PED-ANOVA's answer is noise (at 1 Optuna returns equal importances)


# what a study is doing as its report is written (``sweeper status``'s ``state``): a page of a live or interrupted
# sweep read as a finished one's
STATES = {"running": "running: a live driver's trials still train; this page is a snapshot",
          "interrupted": "interrupted: its RUNNING trials lost their driver; sweeper resume carries them on",
          "finished": "finished", "empty": "no trial started yet"}


def build_report(view: StudyView, *, url: str, top: int = 10, state: str = "finished") -> str:
    """The whole report as one HTML string; ``url`` is shown masked, ``top`` trials get curves and table rows,
    ``state`` is one of :data:`STATES`."""
    from plotly.offline import get_plotlyjs

    figures: list[tuple[str, str]] = []  # (div id, figure JSON)
    plotted = _plotted_study(view)
    body = [
        _summary(view, url, datetime.now(), state),
        _history(view, figures),
        _optuna_plot(view, plotted, "parallel-coordinates", figures),
        _importances(view, plotted, figures),
        _learning_curves(view, top, figures),
        _optuna_plot(view, plotted, "slices", figures),
        _top_table(view, top),
    ]
    data = "\n".join(f'<script type="application/json" data-figure="{div}">{_script_safe(js)}</script>'
                     for div, js in figures)
    name = html.escape(view.study.study_name)
    nav = " · ".join(f'<a href="#{key}">{html.escape(title)}</a>' for key, title in SECTIONS.items())
    plotly_js = get_plotlyjs().replace("</script", "<\\/script")
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>sweeper report: {name}</title>
<style>{_CSS}</style>
<script>{plotly_js}</script>
</head>
<body>
<h1>Study {name}</h1>
<nav>{nav}</nav>
{"".join(body)}
{data}
<script>{_DRAW}</script>
</body>
</html>
"""


# --- sections ---------------------------------------------------------------------------------------------------
def _section(key: str, *parts: str) -> str:
    return f'<section id="{key}">\n<h2>{html.escape(SECTIONS[key])}</h2>\n{"".join(parts)}</section>\n'


def _note(text: str) -> str:
    return f'<p class="note">{html.escape(text)}</p>\n'


def _summary(view: StudyView, url: str, now: datetime, state: str) -> str:
    user = view.study.user_attrs
    complete = view.complete
    span = view.time_span()
    end = (now if state == "running" else span[1]) if span else now  # as status counts a live sweep: to now
    later = user.get(attrs.ENVIRONMENTS) if isinstance(user.get(attrs.ENVIRONMENTS), list) else []
    rows = [
        ("storage", mask_url(url)),
        ("space file", attrs.space_file(user) or "-"),
        ("objective", f"{view.metric} ({'maximize' if view.maximize else 'minimize'})"),
        ("trials", ", ".join(f"{n} {kind}" for kind, n in view.states().items()) or "none yet"),
        ("state", STATES[state]),
        ("best trial", f"#{complete[0].number}: {view.metric} {view.fmt(view.metric, complete[0].value)}"
                       if complete else "no COMPLETE trial yet"),
        ("targets", ", ".join(f"{m} {view.fmt(m, v)}" for m, v in view.targets.items()) or "none"),
        ("targets met", (view.met_by() or "no") if view.targets else "-"),
        ("time to target", describe_target_met(record) if (record := target_met(user)) else "-"),
        ("baseline", ", ".join(f"{m} {view.fmt(m, v)}" for m, v in view.baseline.items())
                     + (f" ({view.baseline_source})" if view.baseline_source else "") or "none"),
        ("time", f"{_when(span[0])} to {_when(end)} ({duration(end - span[0])})" if span else "-"),
        ("environment", _environment(user.get(attrs.ENVIRONMENT))),
        # a resume with other code or packages: the trials it trained are not the first run's code's
        *((f"environment from #{e.get('from_trial')}" + (f" (and {', '.join(f'#{n}' for n in e['unfinished'])})"
                                                         if e.get("unfinished") else ""), _environment(e))
          for e in later if isinstance(e, dict)),
        ("generated", _when(now)),
    ]
    table = "".join(f"<tr><th>{html.escape(k)}</th><td>{html.escape(v)}</td></tr>\n" for k, v in rows)
    return _section("summary", f'<table class="summary">\n{table}</table>\n')


def _environment(env: Any) -> str:
    """A study's ``environment`` attr (or one of its ``environments``) in one line: versions and commits."""
    return ", ".join(f"{k} {v}" for k, v in environment_fields(env).items() if v) or "-"


def _history(view: StudyView, figures: list[tuple[str, str]]) -> str:
    """One figure per metric: the objective, then each target metric the trials carry as a user attr.

    Every figure spans the same x axis, trial number across all trials, so they line up. PRUNED trials are
    drawn faded at their last rung value (the objective at the epoch the scheduler stopped them); they never
    count as best so far, since an early epoch's value is no final result.
    """
    import plotly.graph_objects as go

    complete = sorted(view.complete, key=lambda t: t.number)
    if not complete:
        return _section("history", _note("No COMPLETE trial yet: nothing to plot."))
    numbers = [t.number for t in view.trials]
    span = [min(numbers), max(max(numbers), min(numbers) + 1)]
    pruned = [t for t in view.trials if t.state == TrialState.PRUNED]
    parts = []
    metrics = [view.metric, *(m for m in view.targets if m != view.metric)]
    for metric in metrics:
        points = [(t.number, v) for t in complete if (v := view.values(t).get(metric)) is not None]
        if not points:
            parts.append(_note(f"No COMPLETE trial reports {metric}."))
            continue
        better = max if view.direction(metric) == "maximize" else min
        best, running = [], None
        for _, value in points:
            if math.isfinite(value):  # a NaN would stick: max(nan, x) is nan
                running = value if running is None else better(running, value)
            best.append(running)
        fig = go.Figure()
        fig.add_scatter(x=[n for n, _ in points], y=[v for _, v in points], mode="markers", name=metric,
                        text=[f"#{n} {view.fmt(metric, v)}" for n, v in points], hoverinfo="text")
        stopped = [(t.number, v, e) for t in pruned if (last := _last_rung(t, view, metric)) for v, e in [last]]
        if stopped:
            fig.add_scatter(x=[n for n, _, _ in stopped], y=[v for _, v, _ in stopped], mode="markers",
                            name="PRUNED (last rung)", opacity=0.35, marker={"symbol": "x"},
                            text=[f"#{n} PRUNED at epoch {e}: {view.fmt(metric, v)}" for n, v, e in stopped],
                            hoverinfo="text")
        fig.add_scatter(x=[n for n, _ in points], y=best, mode="lines", line_shape="hv", name="best so far")
        _reference_lines(fig, view, metric, span)
        _axes(fig, view, f"{metric} by trial (PRUNED faded)" if stopped else f"{metric} by trial", "trial",
              metric, span)
        fig.update_layout(xaxis_range=[span[0] - 0.5, span[1] + 0.5])
        div = f"fig-history-{_slug(metric)}"
        figures.append((div, fig.to_json()))
        parts.append(f'<div class="plot" id="{div}" data-metric="{html.escape(metric)}"></div>\n')
    return _section("history", *parts)


def _last_rung(trial: FrozenTrial, view: StudyView, metric: str) -> tuple[float, int] | None:
    """(value, epoch) of a PRUNED trial's last report of ``metric``: the objective's last intermediate value, or
    the metric as its last epoch recorded it; None when it has neither."""
    if metric == view.metric and trial.intermediate_values:
        epoch = max(trial.intermediate_values)
        return trial.intermediate_values[epoch], int(epoch)
    value = view.values(trial).get(metric)
    return (value, epochs_trained(trial)) if value is not None else None


def _learning_curves(view: StudyView, top: int, figures: list[tuple[str, str]]) -> str:
    import plotly.graph_objects as go

    best = [t for t in view.complete[:top] if t.intermediate_values]
    if not best:
        return _section("learning-curves", _note("No COMPLETE trial reported per-epoch values yet."))
    fig, curves = go.Figure(), view.curves(best)
    for trial in best:
        steps = sorted(curves[trial._trial_id])
        fig.add_scatter(x=steps, y=[curves[trial._trial_id][s] for s in steps], mode="lines+markers",
                        name=f"#{trial.number} ({view.fmt(view.metric, trial.value)})")
    steps = [s for t in best for s in curves[t._trial_id]]
    span = [min(steps), max(max(steps), min(steps) + 1)]
    _reference_lines(fig, view, view.metric, span)
    _axes(fig, view, f"{view.metric} per epoch, top {len(best)} COMPLETE trials", "epoch", view.metric, span)
    figures.append(("fig-learning-curves", fig.to_json()))
    return _section("learning-curves", '<div class="plot" id="fig-learning-curves"></div>\n')


def _plotted_study(view: StudyView) -> optuna.Study:
    """The view's trials in a study in memory, for Optuna's plots: given the stored study, they read every trial again
    with its whole learning curve (4.6 s of a 6.6 s report of 2,000 trials of up to 50 epochs) to draw the COMPLETE
    trials' params and values. Added in order, every trial keeps its number (the slice plots colour by it); not by
    ``add_trials``, which refuses what Optuna stored and plots (an enqueued value out of its param's range)."""
    storage = optuna.storages.InMemoryStorage()
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # not "A new study created in memory" on the console
    try:
        study_id = storage.create_new_study(view.study.directions, view.study.study_name)
    finally:
        optuna.logging.set_verbosity(verbosity)
    for trial in view.trials:
        if trial.state == TrialState.COMPLETE and None in (trial.values or [None]):  # a NaN SQLite stored as NULL
            trial = optuna.trial.create_trial(state=TrialState.FAIL, params=trial.params,
                                              distributions=trial.distributions, user_attrs=trial.user_attrs)
        storage.create_new_trial(study_id, template_trial=trial)
    return optuna.load_study(study_name=view.study.study_name, storage=storage)


def _optuna_plot(view: StudyView, plotted: optuna.Study, key: str, figures: list[tuple[str, str]]) -> str:
    if not view.complete:
        return _section(key, _note("No COMPLETE trial yet: nothing to plot."))
    if not _params(view):
        return _section(key, _note("The COMPLETE trials have no params: nothing to plot."))
    from optuna.visualization import plot_parallel_coordinate, plot_slice

    plot = plot_parallel_coordinate if key == "parallel-coordinates" else plot_slice
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fig = plot(plotted, target_name=view.metric)
    figures.append((f"fig-{key}", fig.to_json()))
    return _section(key, f'<div class="plot" id="fig-{key}"></div>\n')


def _importances(view: StudyView, plotted: optuna.Study, figures: list[tuple[str, str]]) -> str:
    params = _params(view)
    if len(view.complete) < MIN_IMPORTANCE_TRIALS:
        return _section("importances", _note(
            f"Importances need at least {MIN_IMPORTANCE_TRIALS} COMPLETE trials; this study has "
            f"{len(view.complete)}."))
    if len(params) < 2:
        only = f" ({params[0]})" if params else ""
        return _section("importances", _note(f"Only one parameter varies{only}: importances compare two or more."))
    if len({t.value for t in view.complete if math.isfinite(t.value)}) < 2:  # type: ignore[arg-type]
        # Optuna then gives every param an equal share: bars that read as "each matters as much", not "none shows"
        return _section("importances", _note(f"Every COMPLETE trial with a finite {view.metric} has the same one: "
                                             "nothing tells one parameter's importance from another's."))
    from optuna.visualization import plot_param_importances

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            fig = plot_param_importances(plotted, params=params, target_name=view.metric)
    except (ValueError, RuntimeError, ZeroDivisionError) as exc:  # Optuna's evaluator on degenerate data
        return _section("importances", _note(f"Importances could not be computed: {exc}"))
    figures.append(("fig-importances", fig.to_json()))
    return _section("importances", '<div class="plot" id="fig-importances"></div>\n')


def _top_table(view: StudyView, top: int) -> str:
    best = view.complete[:top]
    if not best:
        return _section("top-trials", _note("No COMPLETE trial yet."))
    # the best trial meeting the targets, beneath the top ones where it is not among them (as the final table does)
    reached = view.best_meeting_targets() if view.targets else None
    ranked = [*enumerate(best, 1), *([(view.complete.index(reached) + 1, reached)] if reached and reached not in best
                                     else [])]
    metrics = list(dict.fromkeys([view.metric, *view.targets, *view.baseline]))
    params = list(dict.fromkeys(p for _, t in ranked for p in t.params))
    head = ["", "trial", *metrics, "targets met", "stop reason", "epochs", *params]
    rows = ["<tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    if view.targets:
        rows.append(_row("target", "", [view.targets.get(m) for m in metrics], metrics, view, "reference"))
    if view.baseline:
        rows.append(_row("baseline", view.baseline_source, [view.baseline.get(m) for m in metrics], metrics, view,
                         "reference"))
    for rank, trial in ranked:
        values = view.values(trial)
        cells = [_cell(m, values.get(m), view) for m in metrics]
        met = ("yes" if view.met(trial) else "no") if view.targets else "-"
        # a function of the user's own returns no epochs_run: its reported epochs say how many it trained
        epochs = trial.user_attrs.get(attrs.EPOCHS_RUN, epochs_trained(trial) if trial.intermediate_values else "-")
        extra = [met, str(trial.user_attrs.get(attrs.STOP_REASON, "-")), str(epochs)]
        param_cells = [
            f'<td title="{html.escape(repr(trial.params[p]))}">{html.escape(view.fmt(p, trial.params[p]))}</td>'
            if p in trial.params else "<td>-</td>" for p in params]
        rows.append(f'<tr data-trial="{trial.number}"><td>{rank}</td><td>#{trial.number}</td>{"".join(cells)}'
                    + "".join(f"<td>{html.escape(x)}</td>" for x in extra) + "".join(param_cells) + "</tr>")
    table = '<table class="trials">\n' + "\n".join(rows) + "\n</table>\n"
    return _section("top-trials", table)


def _row(label: str, source: str, values: Sequence[float | None], metrics: list[str], view: StudyView,
         cls: str) -> str:
    cells = "".join(f"<td>{html.escape(view.fmt(m, v)) if v is not None else '-'}</td>"
                    for m, v in zip(metrics, values, strict=True))
    return (f'<tr class="{cls}" data-row="{html.escape(label)}"><td></td><td>{html.escape(label)}</td>{cells}'
            f'<td colspan="3">{html.escape(source)}</td></tr>')


def _cell(metric: str, value: float | None, view: StudyView) -> str:
    if value is None:
        return "<td>-</td>"
    text = html.escape(view.fmt(metric, value))
    if metric not in view.targets:
        return f"<td>{text}</td>"
    return f'<td class="{"met" if view.met_target(metric, value) else "missed"}">{text}</td>'


# --- helpers ----------------------------------------------------------------------------------------------------
def _reference_lines(fig: Any, view: StudyView, metric: str, span: list[int]) -> None:
    """Horizontal target and baseline lines as traces (in the legend and the figure data, unlike shapes)."""
    for label, value, dash in (("target", view.targets.get(metric), "dash"),
                               ("baseline", view.baseline.get(metric), "dot")):
        if value is not None:
            fig.add_scatter(x=span, y=[value, value], mode="lines", line={"dash": dash},
                            name=f"{label} {view.fmt(metric, value)}", meta={"reference": label, "metric": metric})


def _axes(fig: Any, view: StudyView, title: str, x: str, metric: str, span: list[int]) -> None:
    """Percent ticks for accuracies; whole-number ticks (about ten) for trial numbers and epochs."""
    percent = view.fmt(metric, 0.5).endswith("%")
    fig.update_layout(title=title, xaxis_title=x, yaxis_title=metric, yaxis_tickformat=".0%" if percent else None,
                      xaxis_dtick=max(1, math.ceil((span[1] - span[0]) / 10)), legend={"orientation": "h"},
                      margin={"t": 60})


def _params(view: StudyView) -> list[str]:
    """Params of the COMPLETE trials that take more than one value (fixed ones explain nothing)."""
    seen: dict[str, set[str]] = {}
    for trial in view.complete:
        for name, value in trial.params.items():
            seen.setdefault(name, set()).add(repr(value))
    return [name for name, values in seen.items() if len(values) > 1]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]+", "-", text)


def _when(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def duration(span: timedelta) -> str:
    """``1:02:03`` or ``2 days, 1:02:03``: whole seconds, because microseconds of a sweep's length are noise."""
    return str(timedelta(seconds=round(span.total_seconds())))


def _script_safe(text: str) -> str:
    """JSON that cannot end its ``<script>`` early: ``<``, ``>`` and ``&`` only occur inside JSON strings."""
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
nav { margin-bottom: 1.5em; } nav a { margin-right: .3em; }
section { margin-bottom: 2.5em; }
table { border-collapse: collapse; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: .25em .6em; text-align: right; }
table.summary th, table.summary td { text-align: left; }
tr.reference { background: #f4f4f4; font-style: italic; }
td.met { color: #126b12; font-weight: bold; } td.missed { color: #a33; }
.plot { width: 100%; min-height: 420px; overflow-x: auto; }
.note { color: #666; font-style: italic; }
"""

_DRAW = """
document.querySelectorAll('script[data-figure]').forEach(function (el) {
  var fig = JSON.parse(el.textContent);
  Plotly.newPlot(el.dataset.figure, fig.data, fig.layout, {responsive: true, displaylogo: false});
});
"""
