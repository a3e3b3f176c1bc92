"""The ``sweeper`` command line. Thin: each command parses its flags and calls one function elsewhere."""

from __future__ import annotations

import contextlib
import logging
import os
import shlex
import signal
import sys
import tempfile
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
from rich.markup import escape
from typer.core import TyperGroup

from storage.retry import StorageUnavailable
from sweeper.console import console, err_console, lost_output, to_devnull
from sweeper.errors import (
    BAD_INPUT,
    INTERRUPTED_EXIT_CODE,
    NOTHING_FINISHED_EXIT_CODE,
    STORAGE_UNAVAILABLE_EXIT_CODE,
    USAGE_EXIT_CODE,
    BadInput,
    DiskUnavailable,
    NothingFinished,
)

if TYPE_CHECKING:
    from sweeper.driver import SweepOptions


def _without_type(option: Any) -> Any:
    """-h/--help without typer's ``<bool>`` beside it, as every flag here is shown (``metavar=""``)."""
    if option is not None:
        option.metavar = ""
    return option


class _Commands(TyperGroup):
    """The commands, with -h/--help shown as every other flag, and a reader that went away taken for no error: typer
    would exit 1, which ``sweeper run`` means for a sweep whose every trial failed."""

    def get_help_option(self, ctx: typer.Context) -> Any:
        return _without_type(super().get_help_option(ctx))

    def get_command(self, ctx: typer.Context, name: str) -> Any:
        command = super().get_command(ctx, name)
        if command is not None:
            _without_type(command.get_help_option(ctx))
        return command

    def invoke(self, ctx: typer.Context) -> Any:
        lost_output.clear()  # a command run in-process after one whose stdout failed (a program's, a test's): afresh
        console.quiet = err_console.quiet = False
        try:
            result = super().invoke(ctx)
            sys.stdout.flush()  # here, not at exit: output still buffered may find the reader gone too
        except BrokenPipeError:  # a plain write (--format json); the consoles' own are quiet, see main()
            to_devnull(sys.stdout)
            return None
        finally:  # a program's own later calls (show_best in a notebook, a test's capsys) print again
            console.quiet = err_console.quiet = False
        if "stdout" in lost_output:  # a full disk under `sweeper export NAME > rows.csv`: cut short, no success
            raise BadInput(f"Cannot write to stdout: {lost_output['stdout']}.")
        return result


app = typer.Typer(
    cls=_Commands,
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    help="Hyperparameter sweeps for PyTorch training: Ray Tune drives, Optuna samples, every trial is recorded.",
)

def _print_version(value: bool) -> None:
    if value is True:  # not a bare truth test: an older click hands typer the string 'False', which is truthy
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"sweeper {version('sweeper')}", markup=False)
        except PackageNotFoundError:  # run from a checkout that was never installed
            console.print("sweeper (not installed: pip install -e . in the checkout)", markup=False)
        raise typer.Exit()


@app.callback()
def _group(
    version: Annotated[bool, typer.Option("--version", metavar="", callback=_print_version, is_eager=True,
                                          help="Print the version and exit.")] = False,
) -> None:
    """Makes ``sweeper`` a group of commands (typer would run a lone command without its name)."""


SetFlags = Annotated[list[str], typer.Option("--set", metavar="KEY=VALUE", help="Override a setting (repeatable).")]


def _within(low: int, high: int | None = None) -> Any:
    """The callback of an int flag that takes ``low`` to ``high``: typer's own min/max named one bound ("Input should
    be greater than or equal to 0"), not what is allowed; bad input is one message, exit 2."""
    allowed = f"{low} to {high}" if high is not None else f"{low} or more"

    def check(value: int) -> int:
        if value < low or (high is not None and value > high):
            raise typer.BadParameter(f"{value} is out of range: give {allowed}")
        return value

    return check


def _output(value: str | None) -> str | None:
    """``-o``: a script's unset $OUT wrote NAME.csv into the working folder (``Path('')`` is ``.``), not stdout."""
    if value is not None and not value.strip():
        raise typer.BadParameter("is empty; give a file, DIR/ or - for stdout, or leave the flag out")
    return value


def _existing_part(value: str | Path | None) -> Path | None:
    """A folder flag's nearest existing part, which must be a folder; an empty flag is refused."""
    if value is not None and not str(value).strip():  # a script's unset $DIR: the working folder would fill up
        raise typer.BadParameter("is empty; give a folder, or leave the flag out")
    if value is None:
        return None
    existing = Path(value).absolute()
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise typer.BadParameter(f"{existing} is a file, not a folder")
    return existing


def _folder(value: str | Path | None) -> str | Path | None:
    """A folder flag, checked before anything is trained or written: a folder, or one that can be made."""
    if (existing := _existing_part(value)) is not None:
        try:  # os.access says yes to root everywhere, /proc included: make a folder there, and remove it
            os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".sweeper-check-"))
        except OSError as exc:
            raise typer.BadParameter(f"cannot make a folder in {existing}: {exc.strerror or exc}") from None
    return value


def _folder_to_clean(value: str) -> str:
    """``clean --results-dir``: a folder or none yet (it holds nothing to delete); clean makes none, so whether one
    could be made there is no question (it was ``cannot make a folder in /proc``, where /proc is a folder)."""
    _existing_part(value)
    return value


@app.command()
def train(
    space: Annotated[Optional[str], typer.Argument(metavar="SPACE", help="Space YAML or built-in name: its entrypoint and training block (default: the core alone).")] = None,  # noqa: UP045, E501
    set_: SetFlags = [],  # noqa: B006
    # text, not a Path, as every path flag here: a Path makes an empty value '.', the working folder
    checkpoint_dir: Annotated[Optional[str], typer.Option(metavar="DIR", help="Write/resume epoch checkpoints here.", callback=_folder)] = None,  # noqa: UP045, E501
    seeds: Annotated[Optional[str], typer.Option(metavar="S1,S2,...", help="Train once per seed (beats --set seed=), then the final metrics' mean, sd and range, and how many seeds reach the space's targets.")] = None,  # noqa: UP045, E501
) -> None:
    """Run one training standalone, printing a line per epoch: the space's own entrypoint (default: the core)."""
    from sweeper import standalone
    from sweeper.interrupts import noting_interrupts

    seed_list = _seed_list(seeds) if seeds is not None else []
    run, base_dir = standalone.prepare(space, set_, seed_list)
    checkpoints = Path(checkpoint_dir) if checkpoint_dir is not None else None
    try:
        with noting_interrupts(threading.Event()):  # SIGTERM (kill, timeout, a scheduler) is Ctrl-C: exit 130, as run
            if seed_list:
                standalone.train_seeds(run, base_dir, checkpoints, seed_list)
            else:
                standalone.train(run, base_dir, checkpoints)
    except KeyboardInterrupt:  # Ctrl-C or a stop signal: a log must tell it from a crash, and say what comes next
        err_console.print(f"interrupted: the same command resumes it from {checkpoint_dir}" if checkpoint_dir
                          is not None else "interrupted (without --checkpoint-dir it saved nothing)", markup=False)
        raise typer.Exit(INTERRUPTED_EXIT_CODE) from None
    except DiskUnavailable as exc:  # exit 75, as a sweep's trial on a full disk: the same command carries it on
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(STORAGE_UNAVAILABLE_EXIT_CODE) from None
    except standalone.FunctionFailed as exc:
        import traceback

        traceback.print_exception(exc.__cause__, file=sys.stderr)
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        raise typer.Exit(1) from None


def _seed_list(text: str) -> list[int]:
    """``"42,43,44"`` -> ``[42, 43, 44]``; anything else is bad input that says what is allowed."""
    parts = [part.strip() for part in text.split(",")]
    seeds = []
    for part in parts:
        try:
            seeds.append(int(part))
        except ValueError:
            raise BadInput(f"--seeds {shlex.quote(text)}: {part!r} is not an integer; give the seeds as integers "
                           "separated by commas, e.g. --seeds 42,43,44") from None
    if len(set(seeds)) < len(seeds):
        raise BadInput(f"--seeds {shlex.quote(text)}: a seed is given twice, which would train the same run twice")
    return seeds


# --storage of a command that reads a space, whose YAML may name a storage too
SpaceStorage = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--storage", metavar="URL", help="Optuna storage URL (beats SWEEPER_STORAGE and the YAML).")]
Address = Annotated[Optional[str], typer.Option(  # noqa: UP045
    metavar="ADDRESS", help="Join this Ray cluster (default: RAY_ADDRESS or local).")]
ResultsDir = Annotated[str, typer.Option(metavar="DIR", help="Checkpoints and Ray's results (a path all nodes see); "
                                         "a resumed study keeps its first run's checkpoint folder.", callback=_folder)]
MaxFailures = Annotated[int, typer.Option(metavar="N", callback=_within(0, 100),
                                          help="Retries of a trial whose worker crashed (from its checkpoint), 0 to "
                                               "100.")]
StorageTimeout = Annotated[Optional[str], typer.Option(  # noqa: UP045
    metavar="DURATION", help="How long a storage outage may last before the sweep stops, resumable (90s, 10m, 1h; "
                             "default: the space's budget.storage_timeout, 10m).")]


@app.command()
def run(
    space: Annotated[str, typer.Argument(metavar="SPACE", help="Space YAML, or a built-in: spaces/asl50.yaml, asl50.")],
    set_: SetFlags = [],  # noqa: B006
    quick: Annotated[bool, typer.Option("--quick", metavar="",
                                        help="Smoke profile: tiny data, few epochs, few trials.")] = False,
    fresh: Annotated[bool, typer.Option("--fresh", metavar="", help="Start a new study (NAME-2, ...) even if NAME "
                                                                    "exists; the old one is kept.")] = False,
    storage: SpaceStorage = None,
    address: Address = None,
    results_dir: ResultsDir = "sweeper_runs",
    max_failures: MaxFailures = 2,
    storage_timeout: StorageTimeout = None,
) -> None:
    """Run a sweep: sample with Optuna, train with Ray Tune, record every trial. An existing study is resumed."""
    _note_stop_signals()
    from sweeper.driver import SweepOptions

    _sweep(SweepOptions(space=space, overrides=tuple(set_), quick=quick, fresh=fresh, storage=storage,
                        address=address, results_dir=results_dir, max_failures=max_failures,
                        storage_timeout=_seconds("--storage-timeout", storage_timeout)))


@app.command()
def resume(
    name: Annotated[str, typer.Argument(metavar="NAME", help="Study name (sweeper status lists them).")],
    set_: SetFlags = [],  # noqa: B006
    storage: Annotated[Optional[str], typer.Option(metavar="URL", help="Optuna storage URL (beats SWEEPER_STORAGE).")] = None,  # noqa: UP045, E501
    address: Address = None,
    results_dir: ResultsDir = "sweeper_runs",
    max_failures: MaxFailures = 2,
    storage_timeout: StorageTimeout = None,
) -> None:
    """Continue a study from the spec stored in it: finished trials are kept, interrupted ones carried on."""
    _note_stop_signals()
    from sweeper.driver import SweepOptions

    _sweep(SweepOptions(study=name, overrides=tuple(set_), storage=storage, address=address,
                        results_dir=results_dir, max_failures=max_failures,
                        storage_timeout=_seconds("--storage-timeout", storage_timeout)))


def _seconds(flag: str, text: str | None) -> float | None:
    """A duration flag (``90s``, ``10m``, ``1h30m``, or plain seconds) in seconds; bad input is exit 2."""
    if text is None:
        return None
    from search_spaces.sections import duration_seconds

    try:  # plain seconds as YAML reads them (1e3 too); duration_seconds refuses 0, negatives, inf and NaN
        value: float | str = float(text)
    except ValueError:
        value = text
    try:
        return duration_seconds(value)
    except ValueError as exc:
        raise BadInput(f"{flag} {text!r}: {exc}") from None


_stopped_early: list[int] = []


def _note_stop_signals() -> None:
    """Ctrl-C or a stop signal while ``sweeper run`` still imports the driver (Optuna, pydantic's schemas: a second,
    more on a busy machine) is noted, and :func:`_sweep` leaves with 130 before anything starts: a KeyboardInterrupt
    raised inside those imports would come out as another error (pydantic's ``SchemaError``), and a SIGTERM or
    SIGUSR1 would end the process at once (exit -15, -10)."""
    from sweeper.interrupts import stop_signals

    for signum in stop_signals():
        signal.signal(signum, lambda number, frame: _stopped_early.append(number))


def _sweep(options: SweepOptions) -> None:
    from sweeper.driver import run_sweep

    def interrupted(how: str = "the same command") -> NoReturn:  # after --fresh, sweeper resume NAME (carry_on)
        _leave(INTERRUPTED_EXIT_CODE, f"interrupted: the study keeps its finished trials; {how} carries it on")

    # SIGTERM, SIGUSR1 and SIGHUP (stop_signals) are a Ctrl-C from the first moment: the driver then takes them
    # over, and puts this back where Ray's start-up changed it
    from sweeper.interrupts import stop_signals

    for signum in stop_signals():
        signal.signal(signum, signal.default_int_handler)
    if _stopped_early:
        interrupted()
    try:
        run_sweep(options, exit_on_interrupt=interrupted)
    except KeyboardInterrupt:  # Ctrl-C or a stop signal; the trials that were running are carried on by a resume
        interrupted()
    except NothingFinished as exc:
        _leave(NOTHING_FINISHED_EXIT_CODE, f"[bold red]error:[/] {escape(str(exc))}")
    except (StorageUnavailable, DiskUnavailable) as exc:  # the study is consistent and resumable
        _leave(STORAGE_UNAVAILABLE_EXIT_CODE, f"[bold red]error:[/] {escape(str(exc))}")
    _leave(0)


_leaving = threading.Lock()


def _leave(code: int, message: str = "") -> NoReturn:
    """Exit now: the driver has written what it will (on Ctrl-C, what it drained; the rest runs again on resume), so
    the graceful teardowns (seconds, or a minute waiting on a Ray that a SIGTERM to the process group already
    stopped) have nothing left to save. The main thread and the driver's interrupt watcher may both get here: the
    first one out says why."""
    from sweeper.interrupts import ignore_stop_signals

    ignore_stop_signals()  # a second Ctrl-C must not cut the exit short
    _leaving.acquire()
    try:
        from sweeper.ray_runtime import kill_local_ray_before_exit

        kill_local_ray_before_exit()
        # `sweeper run ... | head`: the reader went away; a closed terminal: EIO. The exit code stands either way
        with contextlib.suppress(OSError):
            if message:
                err_console.print(message, markup=True)
            if "stdout" in lost_output:  # a full disk under its log, a closed terminal: why the log ends early
                err_console.print(f"note: the sweep went on without its output (stdout: {lost_output['stdout']}); "
                                  "sweeper status shows it", markup=False)
        for stream in (s for s in (sys.stdout, sys.stderr) if s is not None):
            with contextlib.suppress(OSError):
                stream.flush()
    finally:  # whatever failed above, the other thread waiting on the lock must not wait forever
        os._exit(code)


@app.command()
def dashboard(
    space: Annotated[Optional[str], typer.Argument(metavar="SPACE", help="Space YAML or built-in name whose storage to show (else --storage).")] = None,  # noqa: UP045, E501
    storage: SpaceStorage = None,
    host: Annotated[str, typer.Option(metavar="HOST",
                                      help="Address to listen on; other than 127.0.0.1 exposes it.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(metavar="PORT", help="Port to listen on, 0 to 65535 (0: any free port).",
                                      callback=_within(0, 65535))] = 8080,
) -> None:
    """Start optuna-dashboard on a sweep's storage: live learning curves, params, pruned trials."""
    from storage.urls import resolve_storage_url, validate_storage_url
    from sweeper.dashboard import serve_dashboard
    from sweeper.inspection import naming_the_variable

    spec_storage = None
    if space is not None:
        from search_spaces.loader import load_spec, resolve_space_path

        # only its storage is read: a sampler option Optuna deprecated, which its study may run with, is no matter
        spec_storage = load_spec(resolve_space_path(space), keep_deprecated=True).storage
    with naming_the_variable(storage):  # SWEEPER_STORAGE, where given, comes before the space's storage
        serve_dashboard(validate_storage_url(resolve_storage_url(spec_storage, storage)), host=host, port=port)


@app.command()
def validate(
    space: Annotated[str, typer.Argument(metavar="SPACE", help="Space YAML or built-in name.")],
    set_: SetFlags = [],  # noqa: B006
    quick: Annotated[bool, typer.Option("--quick", metavar="", help="Check the space as --quick runs it.")] = False,
    storage: SpaceStorage = None,
) -> None:
    """Check a space file and the storage URL a run would use, without connecting; print both, passwords masked."""
    from search_spaces.loader import load_spec, render_spec, resolve_space_path
    from storage.urls import ENV_VAR, mask_in_text, mask_url
    from sweeper.preflight import check_data_found, check_spec, spec_storage_url, typed_storage, unfusable_on_gpu
    from sweeper.samplers import check_sampling

    spec = load_spec(resolve_space_path(space), tuple(set_), quick=quick)
    check_sampling(spec)
    url = spec_storage_url(spec, storage)
    origin = "--storage" if storage else typed_storage(spec) or (
        ENV_VAR if os.environ.get(ENV_VAR, "").strip() else "the space's storage" if spec.storage else "the default")
    check_data_found(spec)
    check_spec(spec)  # what sweeper run refuses, validate refuses too
    if unfused := unfusable_on_gpu(spec):
        console.print(f"# {unfused}", markup=False)
    console.print(f"# a run would use the storage {mask_url(url)} ({origin})", markup=False)
    console.print(mask_in_text(render_spec(spec), spec.storage), markup=False)


@app.command()
def spaces() -> None:
    """List the built-in spaces (a local spaces/NAME.yaml wins over a built-in of that name)."""
    from search_spaces.loader import list_builtin_spaces

    builtin = list_builtin_spaces()
    width = max((len(f"spaces/{name}.yaml") for name, _ in builtin), default=0)
    for name, description in builtin:
        local = Path("spaces", f"{name}.yaml").is_file()  # what `sweeper run spaces/NAME.yaml` runs from here
        note = f"  (from here, the local spaces/{name}.yaml is used instead)" if local else ""
        console.print(f"{f'spaces/{name}.yaml':<{width}}  {description}{note}", markup=False)


StorageFlag = Annotated[Optional[str], typer.Option(  # noqa: UP045
    "--storage", metavar="URL", help="Optuna storage URL (beats SWEEPER_STORAGE; default sqlite:///sweeps.db).")]
StudyName = Annotated[str, typer.Argument(metavar="NAME", help="Study name, as `sweeper status` lists it.")]
OutputFormat = Annotated[str, typer.Option("--format", metavar="table|json",
                                           help="table, or json for scripts (keys: see README).")]


@app.command()
def status(
    name: Annotated[Optional[str], typer.Argument(metavar="NAME", help="One study (default: every study in the storage).")] = None,  # noqa: UP045, E501
    storage: StorageFlag = None,
    format_: OutputFormat = "table",
) -> None:
    """Every study in storage: trials by state, best value against targets, how long its trials took."""
    from sweeper import inspection

    inspection.check_output_format(format_)
    with inspection.reading(storage) as (opened, url):
        inspection.status(opened, url, name, format_)


@app.command()
def report(
    name: StudyName,
    # text, not a Path: a Path drops the slash of -o reports/, the folder (made if missing) to write into
    output: Annotated[Optional[str], typer.Option(  # noqa: UP045
        "-o", "--output", metavar="FILE", callback=_output,
        help="HTML file (- for stdout), or DIR/ for NAME-report.html in it (default: NAME-report.html).")] = None,
    top: Annotated[int, typer.Option(metavar="N", callback=_within(1),
                                     help="Trials in the learning curves and the table (1 or more).")] = 10,
    storage: StorageFlag = None,
) -> None:
    """Write one self-contained HTML report: history, parallel coordinates, importances, curves, slices, table."""
    from sweeper import inspection

    with inspection.reading(storage) as (opened, url):
        inspection.report(opened, url, name, output, top)


@app.command()
def export(
    name: StudyName,
    format_: Annotated[Optional[str], typer.Option("--format", metavar="csv|json", help="csv or json (default: from -o, else csv).")] = None,  # noqa: UP045, E501
    output: Annotated[Optional[str], typer.Option("-o", "--output", metavar="FILE", callback=_output, help="File, or DIR/ for NAME.csv (or .json) in it (default: stdout).")] = None,  # noqa: UP045, E501
    storage: StorageFlag = None,
) -> None:
    """One row per trial: params, state, metrics, durations, as CSV or JSON."""
    from sweeper import inspection

    with inspection.reading(storage) as (opened, url):
        inspection.export(opened, url, name, format_, output)


@app.command()
def best(name: StudyName, storage: StorageFlag = None, format_: OutputFormat = "table") -> None:
    """The best trial's params, metrics and weights, and the sweeper train command that reproduces it."""
    from sweeper import inspection
    from sweeper.best import show_best

    inspection.check_output_format(format_)
    with inspection.reading(storage) as (opened, url):
        show_best(inspection.load_view(opened, name, url), format_, url)


@app.command()
def clean(
    name: StudyName,
    keep: Annotated[int, typer.Option(metavar="N", callback=_within(0),
                                      help="The best N COMPLETE trials keep theirs (0 or more).")] = 3,
    dry_run: Annotated[bool, typer.Option("--dry-run", metavar="", help="List what would go; delete nothing.")] = False,
    results_dir: Annotated[str, typer.Option(metavar="DIR", callback=_folder_to_clean, help="The run's --results-dir: "
                                             "clean deletes only under it or the folder it runs in.")] = "sweeper_runs",
    storage: StorageFlag = None,
) -> None:
    """Delete finished trials' checkpoints but the best N's and the target's (a RUNNING one's is read again)."""
    from sweeper import inspection
    from sweeper.clean import clean_checkpoints

    with inspection.reading(storage) as (opened, url):
        clean_checkpoints(inspection.load_view(opened, name, url), url, keep, Path(results_dir), dry_run)


def _reopen_closed_streams() -> None:
    """A stream a script closed (``>&-``, ``2>&-``) is None to Python, and the first print, Ray's start (which fails
    with no stderr) or the exit's flush would raise: a finished sweep would exit 1. It writes to /dev/null instead,
    as ``>/dev/null`` would."""
    for fd, name in enumerate(("stdin", "stdout", "stderr")):
        if getattr(sys, name) is None:
            null = os.open(os.devnull, os.O_RDONLY if fd == 0 else os.O_WRONLY)
            if null != fd:
                os.dup2(null, fd)
                os.close(null)
            setattr(sys, name, open(fd, "r" if fd == 0 else "w", closefd=False))  # noqa: SIM115 (the process's)


_PATH_OPTIONS = ("-o", "--output", "--results-dir", "--checkpoint-dir")  # a file or folder they may make


def _check_arguments_are_text() -> None:
    """Under a locale that is not UTF-8 (LC_ALL=C with PYTHONUTF8=0) Python keeps an argument's other bytes as
    surrogates (``sweeper status café``): no storage takes them, and the query failed with a UnicodeEncodeError
    traceback, on SQLite and PostgreSQL alike. A file's path is no name a storage takes: a space file or an output
    whose name holds other bytes (a Latin-1 caf\xe9.yaml under a UTF-8 locale) opens as the bytes it is; a path
    option's value too where it is still to be made in this folder (-o caf\xe9.html, which has no folder to find)."""
    previous = ""
    for arg in sys.argv[1:]:
        option, _, path = arg.partition("=") if arg.startswith("--") else ("", "", arg)  # --results-dir=DIR too
        taken, previous = previous in _PATH_OPTIONS or option in _PATH_OPTIONS, arg
        if taken or os.path.lexists(path) or os.path.isdir(os.path.dirname(path)):
            continue
        try:
            arg.encode("utf-8")
        except UnicodeEncodeError:
            shown = os.fsencode(arg).decode("utf-8", "backslashreplace")
            raise BadInput(f"The argument {shown!r} is not text in this locale's encoding "
                           f"({sys.getfilesystemencoding()}): run sweeper under a UTF-8 locale (e.g. LC_ALL=C.UTF-8) "
                           "or with PYTHONUTF8=1.") from None


def main() -> None:
    """Console-script entry: bad input is one message and exit 2, a storage that stayed away exit 75, a reader that
    went away (``sweeper status | head -1``) no error at all."""
    _reopen_closed_streams()
    # ps shows a --storage URL's password for as long as the process runs: a sweep waits seconds for its storage
    # (and more for a server that is down) before Ray starts; masked first, whatever the command (only a URL
    # pays for the import)
    if any("://" in arg for arg in sys.argv[1:]):
        from sweeper.ray_runtime import mask_passwords_in_command_line

        mask_passwords_in_command_line()
    # a log that is not UTF-8 (PYTHONIOENCODING=ascii) gets an escape for a character it cannot hold, not an error
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):  # a stream that is no TextIOWrapper keeps its own
            stream.reconfigure(errors="backslashreplace")
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from rich.console import Console

    # typer's help makes consoles of its own (``sweeper --help | head -1`` under pipefail exited 1)
    Console.on_broken_pipe = type(console).on_broken_pipe
    try:
        _check_arguments_are_text()
        app()  # Ctrl-C: typer exits 130
    except StorageUnavailable as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}", markup=True)
        sys.exit(STORAGE_UNAVAILABLE_EXIT_CODE)
    except BAD_INPUT as exc:
        from storage.errors import StorageError
        from storage.urls import mask_url  # a --set storage=... that fails to load is quoted in the message

        text = str(exc) if isinstance(exc, StorageError) else mask_url(str(exc))  # masked once: password=***: ...
        err_console.print(f"[bold red]error:[/] {escape(text)}", markup=True)
        sys.exit(USAGE_EXIT_CODE)


if __name__ == "__main__":
    main()
