"""``sweeper status``, ``report`` and ``export``, and the read-only opening ``best`` and ``clean`` share: read
studies, never write them.

Every command opens the storage read-only (``read_only=True``: a mistyped SQLite path is an error, not a new
empty database; a database Optuna did not write is refused, and not a byte of it changes) and loads studies by
exact name (a typo gets "did you mean"). Failures to read are one :class:`StorageError` with the URL masked,
which the CLI prints with exit code 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shlex
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import optuna
from rich.cells import cell_len
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from storage import attrs
from storage.engine import as_storage_error, close_storage, open_storage, writable_url
from storage.errors import StorageError
from storage.export import FORMATS, json_safe, trial_rows, write_rows
from storage.reading import curve_lengths, trials_with_last_values
from storage.report import build_report, duration
from storage.resume import GRACE_PERIOD_S, HEARTBEAT_INTERVAL_S, orphaned_trials
from storage.retry import retry_briefly
from storage.studies import load_existing_study
from storage.target import describe_target_met, epochs_trained, target_met
from storage.urls import ENV_VAR, mask_url, resolve_storage_url, validate_storage_url
from storage.view import StudyView, study_view
from sweeper.console import (
    console,
    count_trials,
    err_console,
    escape_control,
    format_value,
    shell_command,
    shrunk_widths,
    write_out,
)
from sweeper.errors import BadInput
from sweeper.folders import kept_checkpoint, study_checkpoints
from trials.entrypoint import metric_direction


@contextmanager
def reading(storage_flag: str | None) -> Iterator[tuple[optuna.storages.RDBStorage, str]]:
    """``(storage, url)`` for a read-only command: ``--storage`` > ``SWEEPER_STORAGE`` > ``sqlite:///sweeps.db``.

    A server that drops the connection halfway through becomes the same one-line error as one that is down.
    """
    url = resolve_storage_url(None, storage_flag)
    # the heartbeat settings only read: they let orphaned_trials tell a dead driver on another host from a live one
    with naming_the_variable(storage_flag):
        url = validate_storage_url(url)  # shown as opened: u@host:5432/db?x=a@b is ?x=a%40b (make_url: host 'b')
        storage = retry_briefly(lambda: open_storage(url, read_only=True, heartbeat_interval=HEARTBEAT_INTERVAL_S,
                                                     grace_period=GRACE_PERIOD_S))
    try:
        yield storage, url
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
        raise as_storage_error(exc, url, "read from") from None
    finally:
        close_storage(storage)


@contextmanager
def naming_the_variable(storage_flag: str | None) -> Iterator[None]:
    """A storage error where the URL came from ``SWEEPER_STORAGE``, not typed here, says so, as sweeper run does."""
    try:
        yield
    except StorageError as exc:
        if storage_flag is None and os.environ.get(ENV_VAR, "").strip():
            raise StorageError(f"{ENV_VAR}: {exc}") from None
        raise


def view_of(study: optuna.Study, storage: optuna.storages.BaseStorage | None = None) -> StudyView:
    """The study as the report and the commands read it, with sweeper's formatting and metric directions; read
    from ``storage`` where given, with each trial's last intermediate value only (``storage.reading``)."""
    # directions[0], not direction: study_view refuses a multi-objective study in words, not with Optuna's error
    fallback = study.directions[0].name.lower()  # a StudyDirection's name is the direction's word: MAXIMIZE

    def direction_of(metric: str) -> str:
        return metric_direction(metric, fallback)

    return study_view(study, format_value, direction_of, storage)


def load_view(storage: optuna.storages.BaseStorage, name: str, url: str) -> StudyView:
    return view_of(load_existing_study(storage, name, url), storage)


# --- status -----------------------------------------------------------------------------------------------------
OUTPUT_FORMATS = ("table", "json")


def status(storage: optuna.storages.BaseStorage, url: str, name: str | None, fmt: str = "table") -> None:
    """A table of every study (or the one named): trials by state, best value, targets and whether they are met,
    and how long its trials took; with a name, also the best trial's params and where the spec came from.

    ``fmt="json"`` prints :func:`study_summary` of each study instead, for scripts (the CLI checks ``fmt`` before
    it opens the storage: :func:`check_output_format`).
    """
    views = [load_view(storage, name, url)] if name is not None else _all_views(storage, url)
    if fmt == "json":
        print_json({"storage": mask_url(url), "studies": [study_summary(view) for view in views]})
        return
    console.print(_status_table(f"studies in {mask_url(url)}", [_status_row(view) for view in views]))
    for view in views:
        if (record := target_met(view.study.user_attrs)) is not None:
            console.print(f"time to target, {view.study.study_name}: first met by {describe_target_met(record)}",
                          markup=False)
    if name is not None:
        _details(views[0], url)


def storage_option(url: str | None, writing: bool = False) -> str:
    """`` --storage URL`` (masked) for a command suggested to reach this storage; none where a plain command would.
    ``writing``: for ``sweeper resume``, which refuses a SQLite URL's read-only option that a reader may be given."""
    if url is not None and writing:
        url = writable_url(url)
    return "" if url is None or url == resolve_storage_url(None, None) else f" --storage {shlex.quote(mask_url(url))}"


STATUS_HEADERS = ("study", "trials", "best", "target (best reached)", "first trial\nduration")


def _status_table(title: str, rows: list[list[str]]) -> Table:
    """Five columns, so that a built-in space's study fits 80 columns (a CI log's): whether the targets are met is the
    last line of the targets' column, and the first trial's start and the duration share one. Where it fits, a
    study's name (to copy; up to 40 characters), a line of trials by state and every other word (a metric's name, a
    date, "(interrupted)") stay whole; a narrower terminal folds them."""
    # measured as printed: an escaped control character is 4 columns wide (rich drops a few, such as a bell)
    rows = [[escape_control(cell) for cell in row] for row in rows]
    columns = [[header, *(row[i] for row in rows)] for i, header in enumerate(STATUS_HEADERS)]
    lines = [[line for text in column for line in text.splitlines()] for column in columns]
    natural = [max(map(cell_len, column)) for column in lines]
    # unbroken: a study's name (up to 40 characters) and each line of trials; in the other columns, each word
    parts = [column[1:] if i < 2 else " ".join(column[1:]).split() for i, column in enumerate(lines)]
    whole = [min(max(map(cell_len, part), default=1), 40) for part in parts]
    # never narrower than its widest character: a column 1 wide prints none of a name in CJK or with an emoji
    narrowest = [max((cell_len(char) for line in column[1:] for char in line), default=1) for column in lines]
    states = max(map(cell_len, " ".join(columns[1][1:]).split()))  # "COMPLETE"
    room = console.width - 3 * len(columns) - 1  # borders and padding

    def names_fold(rest: list[int]) -> list[int]:  # whole, the names that fit beside the other columns' words
        left = room - sum(rest)
        return [max([narrowest[0], *(width for name in parts[0] if (width := cell_len(name)) <= left)]), *rest]

    # too narrow for them all: the names fold first, then "6 COMPLETE" splits; then every column folds
    tiers = (whole, names_fold(whole[1:]), names_fold([states, *whole[2:]]), narrowest)
    widths = next((found for tier in tiers if (found := shrunk_widths(natural, tier, room))), None)
    table = Table(title=title, title_justify="left")
    for i, header in enumerate(STATUS_HEADERS):  # narrower still: wider than the terminal, rather than left out
        table.add_column(header, width=widths[i] if widths else None, min_width=None if widths else narrowest[i],
                         overflow="fold", justify="right" if header == "best" else "left")
    for row in rows:
        table.add_row(*row)
    return table


def _all_views(storage: optuna.storages.BaseStorage, url: str) -> list[StudyView]:
    views, skipped = [], 0
    for frozen in storage.get_all_studies():
        try:
            views.append(view_of(optuna.load_study(study_name=frozen.study_name, storage=storage), storage))
        except KeyError:  # deleted while we listed (a shared server)
            continue
        except StorageError as exc:  # e.g. a multi-objective study someone else keeps here
            err_console.print(f"skipped: {exc}", markup=False)
            skipped += 1
    if not views and skipped:  # "no studies" right under the line that named one would read as a contradiction
        raise StorageError(f"No study in {mask_url(url)} that sweeper can read: {skipped} "
                           f"stud{'y' if skipped == 1 else 'ies'} skipped (above).")
    if not views:
        raise StorageError(f"There are no studies in {mask_url(url)} yet: run a sweep first (sweeper run SPACE).")
    return views


def check_output_format(fmt: str) -> None:
    if fmt not in OUTPUT_FORMATS:
        raise BadInput(f"--format must be one of {', '.join(OUTPUT_FORMATS)}, not {fmt!r}.")


def print_json(data: object) -> None:
    """Plain JSON on stdout (no rich wrapping or colour); NaN and infinity become null, as JSON has neither."""
    write_out(lambda out: out.write(json.dumps(json_safe(data), indent=2, allow_nan=False) + "\n"))


def study_state(view: StudyView) -> str:
    """``running`` (a live driver's trials run), ``interrupted`` (RUNNING trials whose driver died), ``finished``
    (nothing runs now; running it again may still add trials) or ``empty`` (no trial started yet)."""
    running = view.states().get("RUNNING", 0)
    # another tool's trials say nothing of their driver: sweeper cannot tell them dead, nor resume them. Asked of
    # the trials read already: Optuna's trial cache would load every trial's whole curve (storage.reading)
    orphans = len(orphaned_trials(view.study, view.trials)) if running and is_sweepers(view) else 0
    if running > orphans:
        return "running"
    if running:
        return "interrupted"
    return "finished" if view.time_span() is not None else "empty"


def is_sweepers(view: StudyView) -> bool:
    """Whether sweeper made the study (it stores its spec), not another tool sharing the storage."""
    return attrs.SPEC in view.study.user_attrs


def study_summary(view: StudyView) -> dict[str, Any]:
    """What ``status --format json`` prints for one study. Keys are stable (README, "Inspecting studies")."""
    best = view.complete[0] if view.complete else None
    span = view.time_span()
    state = study_state(view)
    elapsed = None if span is None else ((datetime.now() if state == "running" else span[1]) - span[0]).total_seconds()
    first_met = view.first_meeting_targets()
    user = view.study.user_attrs
    ends = [t.datetime_complete for t in view.trials if t.datetime_complete is not None]  # a RUNNING trial has none
    return {
        "name": view.study.study_name,
        "state": state,
        "trials": view.states(),
        "n_trials": len(view.trials),
        "objective": {"metric": view.metric, "direction": "maximize" if view.maximize else "minimize"},
        "best": None if best is None else {"number": best.number, "value": best.value, "params": best.params},
        "targets": {m: {"target": target, "best": _best_value(view, m)} for m, target in view.targets.items()},
        "target_met": None if not view.targets else first_met is not None,
        "target_met_by": first_met.number if first_met else None,
        "best_meeting_targets": best_met.number if (best_met := view.best_meeting_targets()) else None,
        "baseline": dict(view.baseline),
        "first_trial_start": span[0].isoformat() if span else None,
        "last_trial_end": max(ends).isoformat() if ends else None,
        "duration_seconds": elapsed,
        "interrupted_trials": [t.number for t in orphaned_trials(view.study, view.trials)]
        if state == "interrupted" else [],
        "space_file": attrs.space_file(user),
    }


def _status_row(view: StudyView) -> list[str]:
    states = view.states()
    best = view.complete[0] if view.complete else None
    span = view.time_span()
    taken = "-"
    state = study_state(view)
    if span is not None:  # first trial's start to the last one's end; to now while trials run
        end = datetime.now() if state == "running" else span[1]
        taken = duration(end - span[0]) + (f" ({state})" if state in ("running", "interrupted") else "")
    # a line per target, then whether they are met (two lines where the first trial to meet them is not the best)
    targets = [f"{m} {format_value(m, target)} ({_best_of(view, m)})" for m, target in view.targets.items()]
    met = (view.met_by() or "not met").replace("; ", ";\n")
    return [
        view.study.study_name,
        "\n".join(f"{n} {state}" for state, n in states.items()) or "none",
        f"{format_value(view.metric, best.value)} (#{best.number})" if best else "-",
        "\n".join([*targets, met]) if targets else "-",
        f"{_time(span[0])}\n{taken}" if span else "-",
    ]


def _best_value(view: StudyView, metric: str) -> float | None:
    values = [v for t in view.complete if (v := view.values(t).get(metric)) is not None and math.isfinite(v)]
    if not values:
        return None
    return max(values) if view.direction(metric) == "maximize" else min(values)


def _best_of(view: StudyView, metric: str) -> str:
    value = _best_value(view, metric)
    return "-" if value is None else format_value(metric, value)


def _details(view: StudyView, url: str) -> None:
    """``url``: the storage's, which the commands it suggests need to reach (:func:`storage_option`)."""
    user = view.study.user_attrs
    console.print(f"objective: {view.metric} ({'maximize' if view.maximize else 'minimize'})", markup=False)
    if view.baseline:
        console.print("baseline: " + ", ".join(f"{m} {format_value(m, v)}" for m, v in view.baseline.items())
                      + (f" ({view.baseline_source})" if view.baseline_source else ""), markup=False)
    if space := attrs.space_file(user):
        console.print(f"space file: {space}", markup=False)
    span = view.time_span()
    if span is not None:
        running = view.states().get("RUNNING", 0)
        console.print(f"trials from {span[0].isoformat(sep=' ', timespec='seconds')} to "
                      f"{span[1].isoformat(sep=' ', timespec='seconds')}"
                      + (f" (the last start or end on record; {running} still RUNNING)" if running else ""),
                      markup=False)
    name = view.study.study_name
    orphans = orphaned_trials(view.study, view.trials) if is_sweepers(view) else []
    if orphans:
        was, its = ("was", "its") if len(orphans) == 1 else ("were", "their")  # as best.py says it
        console.print(f"interrupted: {', '.join(f'#{t.number}' for t in orphans)} {was} running when {its} driver "
                      f"stopped; {shell_command('resume', name, storage_option(url, writing=True))} "
                      f"{carried_on(view, url, orphans)}", markup=False)
    if view.complete:
        best = view.complete[0]
        console.print(f"best trial #{best.number}: " + " ".join(f"{k}={format_value(k, v)}"
                                                                 for k, v in best.params.items()), markup=False)
        console.print(f"see it in full: {shell_command('best', name, storage_option(url))}", markup=False)


def carried_on(view: StudyView, url: str | None, orphans: list[optuna.trial.FrozenTrial]) -> str:
    """How ``sweeper resume`` carries ``orphans`` on: from their checkpoints, but one that kept none starts over, as
    resume's own line says (a trial still waiting to run when its sweep ended, one stopped before its first
    checkpoint: ``checkpoint_every``). Where the study's folder is not on this machine, only one that trained no
    epoch is known to have none."""
    checkpoints = str(study_checkpoints(view.study, url))
    here = Path(checkpoints).is_dir()
    anew = [t for t in orphans if not kept_checkpoint(checkpoints, t.number) and (here or not epochs_trained(t))]
    one = len(orphans) == 1
    it, its = ("it", "its") if one else ("them", "their")
    if any(epochs_trained(t) for t in anew):  # resume's words: no checkpoint in its folder
        why_all, why = f"{'it kept no checkpoint' if one else 'none kept a checkpoint'} in {checkpoints}", \
            f"none in {checkpoints}"
    else:  # true wherever the folder is
        why_all, why = "it trained no epoch" if one else "none trained an epoch", "no epoch trained"
    if len(anew) == len(orphans):
        return f"runs {it} from the start ({why_all})"
    return f"carries {it} on from {its} checkpoints" + (
        f" ({', '.join(f'#{t.number}' for t in anew)} from the start: {why})" if anew else "")


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M")


# --- report -----------------------------------------------------------------------------------------------------
def report(storage: optuna.storages.BaseStorage, url: str, name: str, output: str | None, top: int) -> None:
    """Write the study's HTML report to ``output`` (default ``<study>-report.html``) and say where it went: a folder
    (``reports/``, made if missing, or one that exists) gets ``<study>-report.html`` in it; ``-`` is stdout."""
    if top < 1:
        raise BadInput(f"--top must be at least 1, not {top}.")
    view = load_view(storage, name, url)
    if output == "-":  # the usual name of stdout, as export takes it: this wrote a file named "-"
        page = build_report(view, url=url, top=top, state=study_state(view))
        write_out(lambda out: out.write(page))
        return
    default, folder = f"{_file_safe(name)}-report.html", output is not None and _is_folder(output)
    path = Path(output) / default if folder else Path(output or default)
    if path.suffix.lower() not in ("", ".html", ".htm"):  # a report.csv would be HTML all the same
        raise BadInput(f"Cannot write the report to {str(path)!r}: it is an HTML page; name the file .html.")
    if not folder and not path.parent.is_dir():
        raise BadInput(f"Cannot write the report to {str(path)!r}: {_no_folder(path.parent)}.")
    page = build_report(view, url=url, top=top, state=study_state(view))
    try:
        path.parent.mkdir(parents=True, exist_ok=True)  # only a -o DIR/ may be missing by now
        write_whole(path, lambda out: out.write(page))
    except OSError as exc:
        raise BadInput(f"Cannot write the report to {str(path)!r}: {_cannot(exc, path.parent)}.") from None
    err_console.print(f"wrote {path} ({count_trials(len(view.trials))}, {len(page) / 1e6:.1f} MB, works offline)",
                      markup=False)  # stderr: -o /dev/stdout is the page alone


def _no_folder(folder: Path) -> str:
    """Why ``folder`` cannot hold the output: missing, or a file where it or a folder above it would be (``-o
    notes.txt/r.html``, ``-o notes.txt/``, ``-o notes.txt/sub/``)."""
    there = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if there is not None and not there.is_dir():
        return f"{str(there)!r} is a file, not a folder"
    return f"the folder {str(folder)!r} does not exist"


def _cannot(exc: OSError, folder: Path) -> str:
    """``exc`` in words: a -o DIR/ that a file keeps from being made (mkdir's "File exists") as :func:`_no_folder`."""
    return _no_folder(folder) if isinstance(exc, FileExistsError | NotADirectoryError) else str(exc.strerror or exc)


def write_whole(path: Path, write: Callable[[TextIO], object]) -> None:
    """Write ``path`` through a temporary file beside it, renamed over it once whole: a disk that filled up halfway
    (exit 2) left a truncated report or export in place of the earlier one, which now stays as it was. A device, a
    pipe and a link (``-o /dev/stdout``) are written in place: a rename would replace the link itself.

    A file there is written as writing it in place would: refused where it may not be written (a rename would
    replace a read-only file), keeping its mode (a private one would become readable by all), and written in place
    where its folder takes no new file (a shared folder holding a file of one's own), where it is another's (a
    rename would make it ours; a sticky folder such as /tmp refuses it), where it is another group's (a rename would
    give it ours: a team's shared file no longer theirs) and where it is hard-linked (a rename would cut the link)."""
    if path.is_symlink() or (path.exists() and not path.is_file()):
        _write_in_place(path, write)
        return
    try:  # opened for writing, neither made nor truncated: refused as open("w") would refuse it
        os.close(os.open(path, os.O_WRONLY))
        found: os.stat_result | None = path.stat()
    except FileNotFoundError:
        found = None
    if found is not None and (found.st_uid != os.geteuid() or found.st_gid != os.getegid() or found.st_nlink > 1):
        _write_in_place(path, write)
        return
    mode = None if found is None else stat.S_IMODE(found.st_mode)
    try:  # the name shortened: a long one's temporary name would be too long for the file system
        fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name[:32]}.", suffix=".tmp")
    except PermissionError:
        if mode is None:
            raise
        _write_in_place(path, write)
        return
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as out:
            if mode is None:
                mode = 0o666 & ~(umask := os.umask(0))
                os.umask(umask)
            os.fchmod(out.fileno(), mode)  # as open() makes or leaves it, not mkstemp's owner-only
            write(out)
        os.replace(temporary, path)
    except BaseException:  # Ctrl-C too: no half-written file is left beside it
        with suppress(OSError):
            os.unlink(temporary)
        raise


def _write_in_place(path: Path, write: Callable[[TextIO], object]) -> None:
    with path.open("w", encoding="utf-8", newline="") as out:
        write(out)


def _export_format(fmt: str | None, output: Path | None) -> str:
    """The format to write: ``--format`` if given, else the suffix of ``-o``, else csv; they must agree."""
    if fmt is not None and fmt.lower() not in FORMATS:
        raise BadInput(f"--format must be one of {', '.join(FORMATS)}, not {fmt!r}.")
    suffix = output.suffix.lower().removeprefix(".") if output is not None else ""
    if suffix and suffix not in FORMATS:
        raise BadInput(f"Cannot export to {str(output)!r}: sweeper export writes {' or '.join(FORMATS)}, not "
                       f"{suffix!r}; name the file .csv or .json.")
    if fmt is not None and suffix and fmt.lower() != suffix:
        raise BadInput(f"--format {fmt} does not match the file {str(output)!r}; name it .{fmt.lower()} or drop "
                       "--format.")
    return fmt.lower() if fmt is not None else suffix or "csv"


def _is_folder(output: str) -> bool:
    """``-o reports/`` (made if missing; a Path drops the slash) or a folder that exists: write NAME.SUFFIX in it."""
    return output.endswith(("/", os.sep)) or Path(output).is_dir()


def _file_safe(name: str) -> str:
    """The study name as a file name; where characters had to go, a digest of the name keeps two studies' files apart
    ("with space" and "with_space")."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return safe if safe == name and name else f"{safe or 'study'}-{hashlib.sha256(name.encode()).hexdigest()[:8]}"


# --- export -----------------------------------------------------------------------------------------------------
def export(storage: optuna.storages.BaseStorage, url: str, name: str, fmt: str | None, to: str | None) -> None:
    """One row per trial as CSV or JSON, to ``to`` (a file, or a folder for NAME.csv) or stdout; the format defaults
    to the file's suffix.

    A file named for another format (``t.xlsx``) is refused rather than filled with CSV a spreadsheet misreads.
    """
    to = None if to == "-" else to  # the usual name of stdout
    folder = to is not None and _is_folder(to)
    fmt = _export_format(fmt, Path(to) if to is not None and not folder else None)
    output = None if to is None else Path(to) / f"{_file_safe(name)}.{fmt}" if folder else Path(to)
    if output is not None and not folder and not output.parent.is_dir():
        raise BadInput(f"Cannot write to {str(output)!r}: {_no_folder(output.parent)}.")
    study = load_existing_study(storage, name, url)  # a mistyped name makes no -o DIR/: nothing is written
    if output is not None and folder:
        try:
            output.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:  # -o FILE/: a file named as the folder, or under it
            raise BadInput(f"Cannot write to {str(output)!r}: {_cannot(exc, output.parent)}.") from None
    rows = trial_rows(trials_with_last_values(storage, study), curve_lengths(storage, study))
    if output is None:
        # `sweeper export NAME | head`: the CLI's _Commands ends a broken pipe
        write_out(lambda out: write_rows(rows, fmt, out))
        return
    try:
        write_whole(output, lambda out: write_rows(rows, fmt, out))
    except OSError as exc:
        raise BadInput(f"Cannot write to {str(output)!r}: {exc.strerror or exc}.") from None
    err_console.print(f"wrote {count_trials(len(rows))} to {output}", markup=False)  # -o /dev/stdout: data alone
