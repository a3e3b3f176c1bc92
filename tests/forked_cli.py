"""Many read-only ``sweeper`` commands as processes of their own, paying the libraries' imports once.

Each command still runs in a process of its own, as ``python -m sweeper.cli ARGS`` runs it (``runpy``, as
``__main__``), with its own stdout and stderr pipes, working folder and exit status. Only the third-party libraries
every command imports first (optuna, SQLAlchemy, typer, rich, plotly: about a second of CPU per command) are
imported once, by a parent that forks a child per command; sweeper's own modules are imported by each child.
On 2 cores, 19 commands each paying those imports took most of test_inspect.py's fixture.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

PRELOADED = ("optuna", "sqlalchemy", "sqlalchemy.orm", "typer", "rich.console", "rich.table", "pydantic", "yaml",
             "plotly.graph_objects", "psycopg")

RUNNER = """
import importlib, json, os, runpy, sys, threading
from concurrent.futures import ThreadPoolExecutor

for module in sys.argv[2:]:
    try:
        importlib.import_module(module)
    except ImportError:  # psycopg where PostgreSQL's extra is not installed: the child imports what it has
        pass
request = json.loads(sys.stdin.read())
forking = threading.Lock()

def read_all(fd):
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    os.close(fd)
    return b"".join(chunks).decode(errors="replace")

def run(args):
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    with forking:  # one fork at a time; the other threads wait on pipes, holding no lock a child could inherit
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.dup2(out_w, 1)
            os.dup2(err_w, 2)
            for fd in (out_r, out_w, err_r, err_w):
                os.close(fd)
            os.chdir(request["cwd"])
            sys.argv = [sys.argv[0], *args]
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

with ThreadPoolExecutor(int(sys.argv[1])) as pool:
    results = list(pool.map(run, request["commands"]))
sys.stdout.write(json.dumps(results))
"""


def run_commands(commands: list[list[str]], cwd: Path, env: dict[str, str], at_once: int, *,
                 preload: tuple[str, ...] = (), timeout: float = 240) -> list[subprocess.CompletedProcess[str]]:
    """Run ``sweeper ARGS`` for every ARGS in ``commands``, ``at_once`` side by side; their results in order.
    ``preload``: more libraries the commands import (torch, for ``sweeper train``), imported once too."""
    runner = subprocess.run([sys.executable, "-c", RUNNER, str(at_once), *PRELOADED, *preload], cwd=cwd, env=env,
                            input=json.dumps({"cwd": str(cwd), "commands": commands}), capture_output=True,
                            text=True, timeout=timeout)
    assert runner.returncode == 0, runner.stdout + runner.stderr
    return [subprocess.CompletedProcess([sys.executable, "-m", "sweeper.cli", *args], r["returncode"], r["stdout"],
                                        r["stderr"]) for args, r in zip(commands, json.loads(runner.stdout),
                                                                        strict=True)]
