"""Many ``sweeper`` commands as processes of their own, paying the libraries' imports once.

Each command still runs in a process of its own, as ``python -m sweeper.cli ARGS`` runs it (``runpy``, as
``__main__``), with its own stdout and stderr pipes, working folder and exit status. Only the third-party libraries
every command imports first (optuna, SQLAlchemy, typer, rich, plotly: about a second of CPU per command) are
imported once, by a parent that forks a child per command; sweeper's own modules are imported by each child.
On 2 cores, 19 commands each paying those imports took most of test_inspect.py's fixture.

:func:`run_commands` runs a batch in a parent of its own; :func:`run_command` runs one command in a parent kept for
the pytest worker's session (torch too, whose import and its optimizer's first use of torch._dynamo cost ~3 s of CPU
per ``sweeper train``), for tests that run many single commands. A command whose environment differs in what an
interpreter or torch reads as it starts (``PYTHONIOENCODING``, the locale...) runs as a process of its own.
"""

from __future__ import annotations

import json
import os
import re
import select
import shlex
import signal
import subprocess
import sys
from pathlib import Path

PRELOADED = ("optuna", "sqlalchemy", "sqlalchemy.orm", "typer", "rich.console", "rich.table", "pydantic", "yaml",
             "plotly.graph_objects", "psycopg")

# What a parent runs: it imports the modules named after its first argument, then forks a child per command
FORKS = """
import importlib, io, json, os, runpy, sys, threading
from concurrent.futures import ThreadPoolExecutor

for module in sys.argv[2:]:
    try:
        importlib.import_module(module)
    except ImportError:  # psycopg where PostgreSQL's extra is not installed: the child imports what it has
        pass
forking = threading.Lock()

def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")

def run(request):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    with forking:  # one fork at a time; the other threads wait on pipes, holding no lock a child could inherit
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            null = os.open(os.devnull, os.O_RDONLY)
            os.dup2(null, 0)  # not the parent's requests
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (null, out_r, out_w, err_r, err_w):
                os.close(fd)
            # the streams a new interpreter makes on these pipes (the parent's stderr may be a file, seekable)
            sys.stdin = sys.__stdin__ = io.TextIOWrapper(io.BufferedReader(io.FileIO(0, "r", closefd=False)))
            sys.stdout = sys.__stdout__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(1, "w", closefd=False)))
            sys.stderr = sys.__stderr__ = io.TextIOWrapper(io.BufferedWriter(io.FileIO(2, "w", closefd=False)),
                                                           errors="backslashreplace", line_buffering=True)
            if "env" in request:
                os.environ.clear()
                os.environ.update(request["env"])
            os.chdir(request["cwd"])
            sys.argv = [sys.argv[0], *request["args"]]
            try:
                runpy.run_module("sweeper.cli", run_name="__main__", alter_sys=True)
                code = 0
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
                if not isinstance(exc.code, (int, type(None))):
                    print(exc.code, file=sys.stderr)
        except BaseException:
            import traceback
            traceback.print_exc()
        finally:
            for stream in (sys.stdout, sys.stderr):
                try:
                    stream.flush()
                except Exception:
                    pass
            os._exit(code)
    os.close(out_w)
    os.close(err_w)
    with ThreadPoolExecutor(1) as reader:
        err = reader.submit(read_all, err_r)
        out = read_all(out_r)
        err = err.result()
    _, status = os.waitpid(pid, 0)
    return {"returncode": os.waitstatus_to_exitcode(status), "stdout": out, "stderr": err}

if sys.argv[1] == "serve":  # a command per line, for as long as its stdin is open
    for line in sys.stdin:
        sys.stdout.write(json.dumps(run(json.loads(line))) + "\\n")
        sys.stdout.flush()
else:  # a batch, int(sys.argv[1]) at a time
    batch = json.loads(sys.stdin.read())
    with ThreadPoolExecutor(int(sys.argv[1])) as pool:
        results = list(pool.map(run, ({"cwd": batch["cwd"], "args": args} for args in batch["commands"])))
    sys.stdout.write(json.dumps(results))
"""


def run_commands(commands: list[list[str]], cwd: Path, env: dict[str, str], at_once: int, *,
                 preload: tuple[str, ...] = (), timeout: float = 240) -> list[subprocess.CompletedProcess[str]]:
    """Run ``sweeper ARGS`` for every ARGS in ``commands``, ``at_once`` side by side; their results in order.
    ``preload``: more libraries the commands import (torch, for ``sweeper train``), imported once too."""
    runner = subprocess.run([sys.executable, "-c", FORKS, str(at_once), *PRELOADED, *preload], cwd=cwd, env=env,
                            input=json.dumps({"cwd": str(cwd), "commands": commands}), capture_output=True,
                            text=True, timeout=timeout)
    assert runner.returncode == 0, runner.stdout + runner.stderr
    return [subprocess.CompletedProcess([sys.executable, "-m", "sweeper.cli", *args], r["returncode"], r["stdout"],
                                        r["stderr"]) for args, r in zip(commands, json.loads(runner.stdout),
                                                                        strict=True)]


# What an interpreter, its locale and stdio, or torch reads from the environment as they start: a command with
# another value of one of these than its parent started with runs as a process of its own
STARTUP_ENV = re.compile(r"PYTHON|LC_|LANG|OMP_|MKL_|KMP_|TORCH|CUDA|TMPDIR$|TEMP$|TMP$|HOME$")
_parents: dict[tuple[str, ...], tuple[subprocess.Popen[str], dict[str, str]]] = {}


def _starts_alike(env: dict[str, str], started: dict[str, str]) -> bool:
    keys = {key for key in {*env, *started} if STARTUP_ENV.match(key)}
    return all(env.get(key) == started.get(key) for key in keys)


def run_command(args: list[str], cwd: Path | str, env: dict[str, str], *, preload: tuple[str, ...] = (),
                timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m sweeper.cli ARGS`` as a process of its own: forked by a parent kept for the pytest worker, which
    imported the libraries once (``preload`` too), where ``env`` starts an interpreter as the parent's did."""
    command = [sys.executable, "-m", "sweeper.cli", *args]
    key = (*PRELOADED, *preload)
    parent, started = _parents.get(key, (None, dict(os.environ)))
    if not _starts_alike(env, started):
        return subprocess.run(command, capture_output=True, text=True, cwd=cwd, env=env, timeout=timeout)
    if parent is None or parent.poll() is not None:
        parent = subprocess.Popen([sys.executable, "-c", FORKS, "serve", *key], stdin=subprocess.PIPE,
                                  stdout=subprocess.PIPE, text=True, start_new_session=True, env=started)
        _parents[key] = parent, started
    assert parent.stdin is not None and parent.stdout is not None
    parent.stdin.write(json.dumps({"args": list(args), "cwd": str(cwd), "env": env}) + "\n")
    parent.stdin.flush()
    if not select.select([parent.stdout], [], [], timeout)[0]:
        os.killpg(parent.pid, signal.SIGKILL)  # the command with its parent: the next one starts another
        parent.wait()
        raise subprocess.TimeoutExpired(command, timeout)
    reply = parent.stdout.readline()
    assert reply, f"the parent of `sweeper {shlex.join(args)}` ended (exit {parent.wait()})"
    r = json.loads(reply)
    return subprocess.CompletedProcess(command, r["returncode"], r["stdout"], r["stderr"])
