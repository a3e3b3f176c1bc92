"""How metrics look on the terminal: one place, so ``train``, ``run`` and ``best`` print them alike."""

from __future__ import annotations

import contextlib
import io
import math
import numbers
import os
import re
import shlex
import sys
from collections.abc import Callable, Iterator, Mapping
from typing import Any, TextIO

from rich.cells import cell_len
from rich.console import Console, ConsoleOptions, RenderableType, RenderHook, RenderResult
from rich.segment import Segment
from rich.table import Table
from rich.text import Text

from trials.metrics import is_accuracy, on_target

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # all but newline and tab


def escape_control(text: str) -> str:
    """``text`` with its control characters escaped (``\\x1b``), as the console prints them: what measures a cell's
    width before rich renders it must measure this, as each escape is 4 columns wide, not 0."""
    return _CONTROL.sub(lambda m: repr(m[0])[1:-1], text)


def shell_word(text: str) -> str:
    """``text`` as one shell word that reads back as ``text`` pasted as printed: :func:`shlex.quote`, or bash's
    ``$'...'`` where it holds control characters, which print escaped (``\\x1b``) and quoted would name another
    study."""
    if not _CONTROL.search(text):
        return shlex.quote(text)

    def char(c: str) -> str:
        if c in "\\'":
            return "\\" + c
        if _CONTROL.fullmatch(c):  # \u: bash's \xHH is a byte, and C1 controls are two in UTF-8
            return f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\u{ord(c):04x}"
        return c

    return "$'" + "".join(map(char, text)) + "'"


def shell_command(command: str, name: str, flags: str = "") -> str:
    """``sweeper COMMAND NAME FLAGS`` to paste into a shell; a name that starts with '-' (which would read as an
    option) after ``--``, the flags before it."""
    word = shell_word(name)
    return f"sweeper {command}{flags} -- {word}" if name.startswith("-") else f"sweeper {command} {word}{flags}"


class _Escaped:
    """A renderable whose text prints its control characters escaped (``\x1b``): study names, params and attrs are
    anyone's who may write the database, and an escape sequence in one would drive the reader's terminal."""

    def __init__(self, inner: RenderableType) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        # a table's cells under an ASCII stdout (LC_ALL=C, PYTHONIOENCODING=ascii): rich measured café as 4 columns,
        # the stream's backslashreplace printed caf\xe9 in 7, and every later column of its row shifted. A
        # character the stream cannot hold is '?' in its columns there; a line of text keeps the stream's escape
        laid_out = not isinstance(self.inner, Text) and not console.encoding.startswith("utf")
        for segment in console.render(self.inner, options):
            text = segment.text if segment.control else escape_control(segment.text)
            if laid_out:
                text = _held(text, console.encoding)
            yield Segment(text, segment.style, segment.control)


def _held(text: str, encoding: str) -> str:
    """``text`` with each character that ``encoding`` cannot hold replaced by as many '?' as it has columns."""
    try:
        text.encode(encoding)
        return text
    except UnicodeEncodeError:
        return "".join(c if c.encode(encoding, "ignore") else "?" * cell_len(c) for c in text)


class _EscapeControl(RenderHook):
    def process_renderables(self, renderables: list) -> list:
        return [_Escaped(renderable) for renderable in renderables]


# the streams that took no more writes, and why ({"stdout": "No space left on device"}): the CLI says so at its end
lost_output: dict[str, str] = {}


def to_devnull(stream: TextIO) -> None:
    """Point ``stream`` at /dev/null: its reader went away (``sweeper status | head -1``) with all it wanted, so
    later writes and the flush at exit go nowhere instead of failing (the recipe in Python's signal docs, "Note on
    SIGPIPE"). A stream with no file beneath it (a program's io.StringIO) has none to point."""
    with contextlib.suppress(OSError, ValueError):
        null = os.open(os.devnull, os.O_WRONLY)
        try:
            os.dup2(null, stream.fileno())
        finally:
            os.close(null)


class _Console(Console):
    """A console whose stream fails goes quiet, as rich's ``on_broken_pipe`` makes it where the reader went away: a
    full disk under the log (ENOSPC) or the closed terminal of a sweep run with ``& disown`` or ``setsid`` (EIO)
    raised from the line of a finished trial, and ended the sweep with its running trials RUNNING."""

    def _check_buffer(self) -> None:
        try:
            super()._check_buffer()
        except OSError as exc:  # rich's own takes a BrokenPipeError to on_broken_pipe
            lost_output["stderr" if self.stderr else "stdout"] = exc.strerror or str(exc)
            del self._buffer[:]  # what failed is lost: not for the next print (a program's next command, in-process)
            self.on_broken_pipe()

    def on_broken_pipe(self) -> None:
        """Quiet, where rich's own exits 1 (``sweeper run ... | head``: 1 means every trial failed): the command runs
        on to its own exit code. Here, not only in main(): a program running a command in-process (``app([...])``)
        got SystemExit(1) from a full stdout, not the BadInput "Cannot write to stdout" that main() makes exit 2."""
        self.quiet = True
        to_devnull(self.file)


class _Forgiving:
    """``sys.stdout`` or ``sys.stderr`` while a function of the user's trains under ``sweeper train``: its own print
    raised BrokenPipeError once the reader went away (``sweeper train SPACE | head -1``, when 8 KiB filled the
    buffer) and the training failed with a traceback, where the console's lines go quiet and train on. A write that
    fails points the stream at /dev/null, as the console's does; a failure other than the reader's is noted."""

    def __init__(self, stream: TextIO, name: str) -> None:
        self._stream, self._name = stream, name

    def __getattr__(self, attr: str) -> Any:
        return getattr(self._stream, attr)

    def write(self, text: str) -> int:
        try:
            return self._stream.write(text)
        except OSError as exc:
            self._lost(exc)
            return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except OSError as exc:
            self._lost(exc)

    def _lost(self, exc: OSError) -> None:
        if not isinstance(exc, BrokenPipeError):  # a full disk: the command says so at its end
            lost_output[self._name] = exc.strerror or str(exc)
        to_devnull(self._stream)


@contextlib.contextmanager
def forgiving_streams() -> Iterator[None]:
    """Within it, a print to a stdout or stderr that takes no more writes is lost, not an error (see _Forgiving)."""
    saved = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = (_Forgiving(stream, name) if stream is not None else stream
                              for stream, name in ((sys.stdout, "stdout"), (sys.stderr, "stderr")))
    try:
        yield
    finally:
        sys.stdout, sys.stderr = saved


def write_out(write: Callable[[TextIO], object]) -> None:
    """Plain text on stdout (JSON, CSV, HTML) in UTF-8, as -o writes it: an ASCII stdout (PYTHONIOENCODING=ascii)
    wrote caf\\xe9 into the data, a Latin-1 one bytes that the report's charset=utf-8 misreads. A stdout that fails
    (a full disk) is noted as a console's is, not a traceback."""
    text = io.StringIO()
    write(text)
    # a stream of text alone has no bytes beneath it and keeps no encoding of its own to get wrong: a program's
    # io.StringIO under redirect_stdout, a Jupyter notebook's
    binary = getattr(sys.stdout, "buffer", None)
    try:
        sys.stdout.flush()  # what the consoles wrote comes first
        if binary is None:
            sys.stdout.write(text.getvalue())
        else:
            binary.write(text.getvalue().encode("utf-8"))
            binary.flush()
    except BrokenPipeError:  # the reader went away with all it wanted: the CLI's, no error
        raise
    except OSError as exc:
        lost_output["stdout"] = exc.strerror or str(exc)
        console.on_broken_pipe()


# COLUMNS=0 is no width given, as Python's shutil.get_terminal_size reads it: rich took it for 0 columns and printed
# nothing at all, a sweep's lines, its errors and typer's help alike (rich reads it as a console is made)
if os.environ.get("COLUMNS", "").isdigit() and int(os.environ["COLUMNS"]) == 0:
    del os.environ["COLUMNS"]
# markup off: study names, params and messages are the user's text ("exp[v2]" must print as typed); the few styled
# lines say markup=True and escape what they interpolate
console = _Console(highlight=False, soft_wrap=True, markup=False, emoji=False)  # file.yaml:100: is no :100: emoji
err_console = _Console(stderr=True, highlight=False, soft_wrap=True, markup=False, emoji=False)
for _console in (console, err_console):
    _console.push_render_hook(_EscapeControl())


def fits(table: Table) -> bool:
    """Whether ``table`` prints within the console's width. rich keeps each column's ``min_width`` even where the
    columns then run past the terminal, which wraps every line of a table wider than itself."""
    probe = Console(width=console.width, file=io.StringIO(), highlight=False, markup=False, emoji=False, soft_wrap=True)
    probe.push_render_hook(_EscapeControl())
    title, table.title = table.title, None  # a title longer than the terminal is the terminal's to wrap
    try:
        probe.print(table, crop=False)  # cropped, it would always seem to fit
    finally:
        table.title = title
    return max(map(cell_len, probe.file.getvalue().splitlines()), default=0) <= console.width


def shrunk_widths(natural: list[int], whole: list[int], room: int) -> list[int] | None:
    """Column widths that fit in ``room``: the widest shrunk first, one at a time, none below its ``whole`` (where
    its words or names print unbroken); None where even those do not fit. rich's own shrinking ignores a column's
    ``min_width`` and then widens the column back to it, past the terminal, which wraps every line of the table."""
    widths = list(natural)
    while sum(widths) > room:
        above = [i for i, width in enumerate(widths) if width > whole[i]]
        if not above:
            return None
        widths[max(above, key=lambda i: widths[i])] -= 1
    return widths


def count_trials(n: int) -> str:
    """``1 trial``, ``2 trials``."""
    return f"{n} trial{'' if n == 1 else 's'}"


def plain(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """NumPy (and other) scalars, 0-d arrays and 0-d tensors (``loss.detach().cpu().numpy()``) as Python numbers: the
    study, Tune's schedulers and the printer test for them."""
    return {k: _plain_number(v) for k, v in metrics.items()}


def _plain_number(value: Any) -> Any:
    if hasattr(value, "item") and not isinstance(value, int | float) and (
            isinstance(value, numbers.Number) or getattr(value, "ndim", None) == 0):
        value = value.item()
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            float(value)
        except OverflowError:  # past any float (10**400): Ray's and the printer's float() raised, ending the sweep
            return math.inf if value > 0 else -math.inf
    return value


def valued(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`plain` metrics without those given as None, which is no value (an epoch that did not evaluate it): a
    trial's record keeps the metric's last value instead, in a sweep, a fused group and ``sweeper train`` alike."""
    return {k: v for k, v in plain(metrics).items() if v is not None}


def recorded(metrics: Mapping[str, Any]) -> dict[str, Any]:
    """What a report adds to a trial's record (each key's last value): its :func:`valued` metrics less the
    ``replayed`` mark, which says of that one report that an earlier run trained its epoch, not of the trial. Kept,
    a resumed run that trained on ended ``replayed: True``: a recorded attr of a function that returns None, and in
    what ``sweeper train`` returns."""
    from trials.config import REPLAYED  # here: trials.config imports NumPy, which the CLI starts without

    return {k: v for k, v in valued(metrics).items() if k != REPLAYED}


def format_value(name: str, value: Any) -> str:
    """Accuracies as percentages, losses with 4 digits, learning rates in scientific notation."""
    if isinstance(value, float):
        if not math.isfinite(value):
            return str(value)  # "nan", not "nan%"
        if is_accuracy(name) and 0 <= value <= 1:  # else reported on another scale: shown as it came
            return f"{100 * value:.2f}%"
        if name in ("lr",) or name.endswith("_lr") or (value != 0 and abs(value) < 1e-3):
            return f"{value:.2e}"
        if value.is_integer() and abs(value) < 1e15:  # a count (98765 samples) in every digit, not 9.876e+04
            return str(int(value))
        return f"{value:.4g}"
    return str(value)


def format_gap(metric: str, value: float | None, other: float | None) -> str:
    """``+3.20 pts`` for percentages (fractions), a plain difference otherwise."""
    if value is None or other is None:
        return "-"
    if is_accuracy(metric):
        return f"{100 * (value - other):+.2f} pts"
    return f"{value - other:+.4g}"


def target_gap(metric: str, value: float, target: float, direction: str) -> str:
    """``9.90 pts short`` or ``beats by 0.25``: a signed difference reads as a miss for a maximised metric and as a
    win for a minimised one, so the words say which."""
    ahead = value - target if direction == "maximize" else target - value
    if math.isnan(ahead):  # a NaN metric (or reference) is neither ahead nor short: it read "nan short"
        return "no comparison (nan)"
    if ahead == 0 or on_target(value, target):  # as targets_met judges it: float32 rounding is no miss
        return "on target"
    size = format_gap(metric, abs(ahead), 0.0).removeprefix("+")
    return f"beats by {size}" if ahead > 0 else f"{size} short"


def epoch_line(metrics: dict[str, Any], epochs: int) -> str:
    """``epoch  3/30  train_loss 2.981  val_loss 2.870  val_top1 12.30%  ...  1.21s  5400 samples/s``."""
    width = len(str(epochs))
    parts = [f"epoch {metrics['epoch']:>{width}}/{epochs}"]
    for key in ("train_loss", "val_loss", "val_top1", "val_top3", "val_top5", "lr"):
        if key in metrics:
            parts.append(f"{key} {format_value(key, metrics[key])}")
    parts.append(f"{metrics['epoch_seconds']:.2f}s")
    parts.append(f"{metrics['samples_per_second']:.0f} samples/s")
    return "  ".join(parts)


def format_params(params: dict[str, Any]) -> str:
    return " ".join(f"{k}={format_value(k, v)}" for k, v in params.items())
