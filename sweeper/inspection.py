"""``sweeper status``, ``report`` and ``export``: read studies, never write them.

Every command opens the storage with ``create=False`` (a mistyped SQLite path is an error, not a new empty
database) and loads studies by exact name (a typo gets "did you mean"). Failures to read are one
:class:`StorageError` with the URL masked, which the CLI prints with exit code 2.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import optuna
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from search_spaces.entrypoint import KNOWN_DIRECTIONS
from storage.engine import as_storage_error, close_storage, open_storage
from storage.export import FORMATS, trial_rows, write_rows
from storage.report import StudyView, build_report, duration, study_view
from storage.resume import orphaned_trials
from storage.studies import load_existing_study
from storage.target import describe, target_met
from storage.urls import mask_url, resolve_storage_url
from sweeper.console import console, format_value
from sweeper.errors import BadInput


@contextmanager
def reading(storage_flag: str | None) -> Iterator[tuple[optuna.storages.RDBStorage, str]]:
    """``(storage, url)`` for a read-only command: ``--storage`` > ``SWEEPER_STORAGE`` > ``sqlite:///sweeps.db``.

    A server that drops the connection halfway through becomes the same one-line error as one that is down.
    """
    url = resolve_storage_url(None, storage_flag)
    storage = open_storage(url, create=False)
    try:
        yield storage, url
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise as_storage_error(exc, url, "read from") from None
    finally:
        close_storage(storage)


def view_of(study: optuna.Study) -> StudyView:
    """The study as the report and the commands read it, with sweeper's formatting and metric directions."""
    fallback = "maximize" if study.direction == optuna.study.StudyDirection.MAXIMIZE else "minimize"

    def direction_of(metric: str) -> str:
        return {"max": "maximize", "min": "minimize"}.get(KNOWN_DIRECTIONS.get(metric, ""), fallback)

    return study_view(study, format_value, direction_of)


def load_view(storage: optuna.storages.BaseStorage, name: str, url: str) -> StudyView:
    return view_of(load_existing_study(storage, name, url))


# --- status -----------------------------------------------------------------------------------------------------
def status(storage: optuna.storages.BaseStorage, url: str, name: str | None) -> None:
    """A table of every study (or the one named): trials by state, best value, targets and whether they are met,
    and how long it has been running; with a name, also the best trial's params and where the spec came from."""
    if name is not None:
        views = [load_view(storage, name, url)]
    else:
        views = []
        for frozen in storage.get_all_studies():
            try:
                views.append(view_of(optuna.load_study(study_name=frozen.study_name, storage=storage)))
            except KeyError:  # deleted while we listed (a shared server)
                continue
            except ValueError as exc:  # e.g. a multi-objective study someone else keeps here
                console.print(f"{frozen.study_name}: {exc}", markup=False)
        if not views:
            console.print(f"There are no studies in {mask_url(url)} yet.", markup=False)
            return
    table = Table(title=f"studies in {mask_url(url)}", title_justify="left")
    widest = max(len(view.study.study_name) for view in views)
    table.add_column("study", min_width=min(widest, 40), overflow="fold")
    table.add_column("trials", min_width=len("5 COMPLETE"))
    table.add_column("best", justify="right")
    table.add_column("target (best reached)", overflow="fold")
    table.add_column("met")
    table.add_column("first trial", min_width=len("2026-01-01"))
    table.add_column("running")
    for view in views:
        table.add_row(*_status_row(view))
    console.print(table)
    for view in views:
        if (record := target_met(view.study.user_attrs)) is not None:
            console.print(f"time to target, {view.study.study_name}: first met by {describe(record)}", markup=False)
    if name is not None:
        _details(views[0])


def _status_row(view: StudyView) -> list[str]:
    states = view.states()
    best = view.complete[0] if view.complete else None
    span = view.time_span()
    running = "-"
    live = states.get("RUNNING", 0) - len(orphaned_trials(view.study))
    if span is not None:
        end = datetime.now() if live else span[1]
        running = duration(end - span[0]) + (" (running)" if live else " (interrupted)" if states.get("RUNNING")
                                             else "")
    reached = view.reached()
    met = "-" if not view.targets else (f"yes (#{reached.number})" if reached else "no")
    return [
        view.study.study_name,
        "\n".join(f"{n} {state}" for state, n in states.items()) or "none",
        f"{format_value(view.metric, best.value)} (#{best.number})" if best else "-",
        "\n".join(f"{m} {format_value(m, target)} ({_best_of(view, m)})" for m, target in view.targets.items())
        or "-",
        met,
        _time(span[0]) if span else "-",
        running,
    ]


def _best_of(view: StudyView, metric: str) -> str:
    values = [v for t in view.complete if (v := view.values(t).get(metric)) is not None]
    if not values:
        return "-"
    return format_value(metric, max(values) if view.direction(metric) == "maximize" else min(values))


def _details(view: StudyView) -> None:
    user = view.study.user_attrs
    console.print(f"objective: {view.metric} ({'maximize' if view.maximize else 'minimize'})", markup=False)
    if view.baseline:
        console.print("baseline: " + ", ".join(f"{m} {format_value(m, v)}" for m, v in view.baseline.items())
                      + (f" ({view.baseline_source})" if view.baseline_source else ""), markup=False)
    if user.get("space_file"):
        console.print(f"space file: {user['space_file']}", markup=False)
    span = view.time_span()
    if span is not None:
        console.print(f"trials from {span[0].isoformat(sep=' ', timespec='seconds')} to "
                      f"{span[1].isoformat(sep=' ', timespec='seconds')}", markup=False)
    orphans = orphaned_trials(view.study)
    if orphans:
        console.print(f"interrupted: {', '.join(f'#{t.number}' for t in orphans)} were running when their driver "
                      f"died; sweeper resume {view.study.study_name} carries them on from their checkpoints",
                      markup=False)
    if view.complete:
        best = view.complete[0]
        console.print(f"best trial #{best.number}: " + " ".join(f"{k}={format_value(k, v)}"
                                                                 for k, v in best.params.items()), markup=False)
        console.print(f"see it in full: sweeper best {view.study.study_name}", markup=False)


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


# --- report -----------------------------------------------------------------------------------------------------
def report(storage: optuna.storages.BaseStorage, url: str, name: str, output: Path | None, top: int) -> Path:
    """Write the study's HTML report to ``output`` (default ``<study>-report.html``) and say where it went."""
    if top < 1:
        raise BadInput(f"--top must be at least 1, not {top}.")
    view = load_view(storage, name, url)
    path = output or Path(f"{_file_safe(name)}-report.html")
    if not path.parent.is_dir():
        raise BadInput(f"Cannot write the report to {str(path)!r}: the folder {str(path.parent)!r} does not exist.")
    page = build_report(view, url=url, top=top)
    try:
        path.write_text(page, encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"Cannot write the report to {str(path)!r}: {exc.strerror or exc}.") from None
    console.print(f"wrote {path} ({len(view.trials)} trials, {len(page) / 1e6:.1f} MB, works offline)", markup=False)
    return path


def _file_safe(name: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in name) or "study"


# --- export -----------------------------------------------------------------------------------------------------
def export(storage: optuna.storages.BaseStorage, url: str, name: str, fmt: str | None, output: Path | None) -> None:
    """One row per trial as CSV or JSON, to ``output`` or stdout; the format defaults to the file's suffix."""
    if fmt is None:
        fmt = "json" if output is not None and output.suffix.lower() == ".json" else "csv"
    fmt = fmt.lower()
    if fmt not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    if output is not None and not output.parent.is_dir():
        raise BadInput(f"Cannot write to {str(output)!r}: the folder {str(output.parent)!r} does not exist.")
    study = load_existing_study(storage, name, url)
    rows = trial_rows(study.get_trials(deepcopy=False))
    if output is None:
        try:
            write_rows(rows, fmt, sys.stdout)
            sys.stdout.flush()
        except BrokenPipeError:  # `sweeper export NAME | head`: the reader has all it wants
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return
    try:
        with output.open("w", encoding="utf-8", newline="") as out:
            write_rows(rows, fmt, out)
    except OSError as exc:
        raise BadInput(f"Cannot write to {str(output)!r}: {exc.strerror or exc}.") from None
    console.print(f"wrote {len(rows)} trials to {output}", markup=False)
