"""A storage password never leaves the driver's memory: not into the study, Ray's results folder or Ray's session.

Real PostgreSQL with a real role that has a password (the local server trusts 127.0.0.1, so the password is only
carried, never checked: exactly what a leak needs). Each sweep is a real ``sweeper`` command with its own Ray temp
folder, so the session folders searched are the ones that sweep started. The password is searched for as typed,
percent-encoded, and hex-encoded (Tune writes cloudpickled objects into its JSON files as hex).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from forked_cli import run_commands
from sqlalchemy.engine import make_url

from search_spaces.loader import resolve_space_path

pytestmark = [pytest.mark.slow, pytest.mark.postgres]


@dataclass(frozen=True)
class Role:
    url: str  # postgresql+psycopg://ROLE:PASSWORD@127.0.0.1:5432/DB
    password: str
    admin_dsn: str  # the test server's superuser, to read the database back

    def spellings(self) -> list[bytes]:
        raw = self.password.encode()
        return [raw, quote(self.password, safe="").encode(), raw.hex().encode()]


@pytest.fixture
def role(postgres_url: str) -> Iterator[Role]:
    """A login role with a password and a database of its own; both dropped afterwards."""
    import psycopg

    tag = uuid.uuid4().hex[:10]
    name, password, database = f"pw_{tag}", f"Zq7secret{tag}", f"secrets_{tag}"
    base = make_url(postgres_url)
    admin_dsn = base.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {name} LOGIN PASSWORD '{password}'")
        conn.execute(f"CREATE DATABASE {database} OWNER {name}")
    url = base.set(username=name, password=password, database=database).render_as_string(hide_password=False)
    yield Role(url=url, password=password, admin_dsn=base.set(drivername="postgresql", database=database)
               .render_as_string(hide_password=False))
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)")
        conn.execute(f"DROP ROLE IF EXISTS {name}")


@pytest.fixture
def ray_tmp() -> Iterator[Path]:
    """Ray's temp folder for the sweeps of one test (short: Ray's socket paths must stay under 107 bytes)."""
    folder = Path(tempfile.mkdtemp(prefix="rs", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def environment(ray_tmp: Path, env: dict[str, str] | None) -> dict[str, str]:
    """A command's environment: Ray's temp folder of the test, ``env`` over this one (less SWEEPER_STORAGE)."""
    return {**{k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}, "RAY_TMPDIR": str(ray_tmp),
            "COLUMNS": "200", **(env or {})}


def sweeper(*args: str, cwd: Path, ray_tmp: Path, env: dict[str, str] | None = None) -> str:
    """Run ``sweeper ARGS``; its output (stdout and stderr) after checking it exited 0."""
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", *args], cwd=cwd, env=environment(ray_tmp, env),
                          capture_output=True, text=True, timeout=300)
    output = done.stdout + done.stderr
    assert done.returncode == 0, output
    return output


def database_text(role: Role) -> str:
    """Every row of every table in the role's database, as text: studies, trials, params, all attrs."""
    import psycopg

    with psycopg.connect(role.admin_dsn) as conn:
        tables = [row[0] for row in conn.execute(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        assert "trial_user_attributes" in tables and "study_user_attributes" in tables
        rows = [str(row) for table in tables for row in conn.execute(f'SELECT t::text FROM "{table}" t')]
    assert rows
    return "\n".join(rows)


def files_holding(role: Role, folder: Path) -> list[str]:
    """Files under ``folder`` whose name or bytes hold the password in any spelling."""
    found = []
    for path in folder.rglob("*"):
        if any(s.decode() in str(path) for s in role.spellings()):
            found.append(str(path))
        elif path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            if any(s in data for s in role.spellings()):
                found.append(str(path))
    return found


def assert_nowhere(role: Role, *, texts: list[str], folders: list[Path]) -> None:
    for text in texts:
        assert not any(s.decode() in text for s in role.spellings()), text
    assert role.password not in database_text(role)
    for folder in folders:
        assert folder.is_dir() and any(folder.rglob("*")), f"{folder} is empty: nothing was checked"
        assert files_holding(role, folder) == []


def inspect_all(name: str, *, cwd: Path, ray_tmp: Path, storage: list[str], env: dict[str, str] | None = None
                ) -> list[str]:
    """status, report, export (csv and json) and best on the study; their outputs and written files.

    Side by side, as test_inspect.py runs them: read-only commands do not disturb each other, and each spent
    most of its second or two importing (now paid once: tests/forked_cli.py)."""
    report = cwd / f"{name}.html"
    commands = [["status"], ["status", name], ["best", name], ["export", name, "--format", "csv"],
                ["export", name, "--format", "json"], ["report", name, "-o", str(report)]]
    outputs = []
    for done in run_commands([[*args, *storage] for args in commands], cwd, environment(ray_tmp, env), len(commands)):
        outputs.append(done.stdout + done.stderr)
        assert done.returncode == 0, outputs[-1]
    outputs.append(report.read_text())
    return outputs


def quick_space(folder: Path, name: str, storage: str | None = None) -> Path:
    """The built-in asl20 space under another name, 2 quick trials, with ``storage`` in the file if given."""
    text = resolve_space_path("spaces/asl20.yaml").read_text()
    text += f"\nname: {name}\n" + (f"storage: {storage}\n" if storage else "")
    path = folder / f"{name}.yaml"
    path.write_text(text)
    return path


def test_a_password_in_the_space_file_environment_or_flag_is_written_nowhere_also_on_resume(tmp_path, role, ray_tmp):
    """Each way to give the URL: the space file and SWEEPER_STORAGE in the first run (the environment wins; the
    file's stays in the spec Ray pickles), --storage on resume, and the environment for every reading command."""
    name = f"secret-{uuid.uuid4().hex[:6]}"
    space = quick_space(tmp_path, name, storage=role.url)
    results = tmp_path / "results"
    env = {"SWEEPER_STORAGE": role.url}
    out = sweeper("run", str(space), "--quick", "--set", "budget.trials=2", "--results-dir", str(results),
                  cwd=tmp_path, ray_tmp=ray_tmp, env=env)
    assert "***@127.0.0.1" in out and "2 trials" in out
    resumed = sweeper("resume", f"{name}-quick", "--storage", role.url, "--set", "budget.trials=3",
                      "--results-dir", str(results), cwd=tmp_path, ray_tmp=ray_tmp)
    assert "resumed" in resumed and "3 trials" in resumed
    outputs = inspect_all(f"{name}-quick", cwd=tmp_path, ray_tmp=ray_tmp, storage=[], env=env)
    assert "COMPLETE" in outputs[3] or "PRUNED" in outputs[3]  # the csv export holds the trials
    assert_nowhere(role, texts=[out, resumed, *outputs], folders=[results, ray_tmp])
    assert (results / "ray").stat().st_mode & 0o077 == 0  # Ray's pickles: the owner's alone


def test_a_driver_object_pickles_to_a_stub_that_loads_and_refuses_every_use():
    """Tune reads its experiment state back at the end of a sweep that started no trial (loading must not fail),
    and Tuner.restore must say why the searcher or stopper is not there: Tune checks a stopper with callable(),
    and a restored one failed on Ray's "Invalid stop criteria" instead (found by a regression check)."""
    import copy
    import pickle

    from sweeper.driver_only import DriverOnly, NotSaved

    class Holder(DriverOnly):
        def __init__(self) -> None:
            self.url = "postgresql+psycopg://u:s3cret@db/s"

    blob = pickle.dumps(Holder())
    assert b"s3cret" not in blob
    stub = pickle.loads(blob)
    assert isinstance(stub, NotSaved) and callable(stub) and copy.deepcopy(stub).name == "Holder"
    for use in (lambda: stub("trial", {}), lambda: stub.on_trial_result, lambda: stub.suggest("t")):
        with pytest.raises(RuntimeError, match="sweeper's Holder is not saved with Ray's results: resume the study"):
            use()


SPACED = "postgresql+psycopg://u:pass word9@127.0.0.1:5432/db"  # unencoded: make_url takes it, free text cannot


def test_a_set_storage_url_whose_password_holds_a_space_is_masked_in_the_process_title():
    """ps, and Ray's job table, show the retitled driver: the whole URL of ``--set storage=URL`` is masked."""
    code = ("from sweeper.ray_runtime import mask_passwords_in_command_line as m; m(); "
            "print(open('/proc/self/cmdline').read())")
    quoted = [f"storage='{SPACED}'", f'--set=storage="{SPACED}?sslmode=disable"']  # YAML's quotes, as --set reads
    done = subprocess.run([sys.executable, "-c", code, "--set", f"storage={SPACED}", f"--set=quick.storage={SPACED}",
                           "--set", *quoted], capture_output=True, text=True, timeout=120, check=True)
    assert "word9" not in done.stdout and done.stdout.count("u:***@127.0.0.1") == 4, done.stdout


@pytest.mark.parametrize("value", [SPACED, f'"{SPACED}"'])  # in YAML's quotes too, as --set reads its value
def test_resume_refusing_a_set_storage_url_masks_a_password_that_holds_a_space(tmp_path, value):
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", "some-study", "--set", f"storage={value}"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "cannot move it" in output and "u:***@127.0.0.1" in output, output
    assert "word9" not in output, output


def test_a_set_storage_url_yaml_cuts_at_a_space_and_hash_is_refused_without_its_password(tmp_path):
    """YAML ends an unquoted value at ' #': the storage read was postgresql+psycopg://u:pass, refused as it should
    be, but the refusal echoed the --set as typed with 'pass #9' in it."""
    done = subprocess.run([sys.executable, "-m", "sweeper.cli", "validate", "asl20", "--set",
                           "storage=postgresql+psycopg://u:pass #9@127.0.0.1:5432/db"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    output = done.stdout + done.stderr
    assert done.returncode == 2 and "Cannot parse storage URL" in output and "u:***@127.0.0.1" in output, output
    assert "u:pass" not in output and "#9" not in output, output


@pytest.mark.parametrize("command", [["run", "asl20", "--quick"], ["status"], ["dashboard"]])
def test_a_command_masks_the_password_in_its_title_while_it_waits_for_the_storage(tmp_path, command):
    """Only the dashboard masked its title before opening the storage (itself only once the storage opened, at
    first): ps showed a sweep's password all the seconds it waited for a server that was down, until Ray started
    (never, where it stayed down)."""
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]  # nothing listens there once closed
    url = f"postgresql+psycopg://me:s3cretpass@127.0.0.1:{port}/sweeps"
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", *command, "--storage", url], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    shown = []
    while proc.poll() is None:
        with contextlib.suppress(OSError):  # it may end between poll and read
            shown.append(Path(f"/proc/{proc.pid}/cmdline").read_bytes())
        time.sleep(0.05)
    assert proc.returncode in (2, 75) and "cannot reach" in proc.stdout.read()
    assert any(b"me:***@" in title for title in shown), [t for t in shown if b"s3cretpass" in t][-1:]
