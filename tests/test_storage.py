"""The storage layer: URL precedence, validation and masking; SQLite tuned for a reader beside a writer; clear
connection errors; studies created, resumed, renamed and summarised, on SQLite and (when available) PostgreSQL.

PostgreSQL tests read SWEEPER_TEST_POSTGRES_URL. Unset: they skip. Set but unreachable: they skip, unless
SWEEPER_REQUIRE_POSTGRES=1 (CI), where they fail. Each uses its own study-name prefix and deletes its studies.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
import re
import shutil
import socket
import sqlite3
import struct
import subprocess
import sys
import textwrap
import threading
import time
import uuid
import warnings
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import optuna
import pytest
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from storage import attrs
from storage.engine import as_storage_error, close_storage, open_storage
from storage.environment import record_environment
from storage.errors import StorageError
from storage.studies import create_or_load_study, fresh_study_name, study_exists
from storage.urls import DEFAULT_STORAGE, mask_in_text, mask_url, resolve_storage_url, sqlite_path, validate_storage_url

optuna.logging.set_verbosity(optuna.logging.WARNING)

# --------------------------------------------------------------------------------------------------------------
# fixtures


@pytest.fixture
def prefix() -> str:
    """A study-name prefix no other test (or concurrent CI job on the shared database) uses."""
    return f"test-storage-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def storage(storage_url: str, prefix: str) -> Iterator[optuna.storages.RDBStorage]:
    opened = open_storage(storage_url)
    yield opened
    for study in opened.get_all_studies():
        if study.study_name.startswith(prefix):
            optuna.delete_study(study_name=study.study_name, storage=opened)
    close_storage(opened)


def finished_trial(study: optuna.Study, value: float | None, state: optuna.trial.TrialState) -> int:
    trial = study.ask()
    trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    study.tell(trial, value if state == optuna.trial.TrialState.COMPLETE else None, state=state)
    return trial.number


# --------------------------------------------------------------------------------------------------------------
# masking


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("postgresql+psycopg://user:secret@host/db", "postgresql+psycopg://user:***@host/db"),
        ("postgresql+psycopg://user:secret@host:5433/db?sslmode=require",
         "postgresql+psycopg://user:***@host:5433/db?sslmode=require"),
        ("postgresql://user:p%40ss%3Aw%2Frd@db.example.com/sweeps", "postgresql://user:***@db.example.com/sweeps"),
        ("postgresql+psycopg://user:p@ss@host/db", "postgresql+psycopg://user:***@host/db"),  # unescaped '@'
        ("postgresql+psycopg://user:pa/ss?#x@host/db", "postgresql+psycopg://user:***@host/db"),
        ("postgresql+psycopg://user:with space@host/db", "postgresql+psycopg://user:***@host/db"),
        ("postgresql+psycopg://user:secret@host/db?application_name=me@laptop",  # an '@' in the query
         "postgresql+psycopg://user:***@host/db?application_name=me@laptop"),
        ("postgresql+psycopg://:secret@host/db", "postgresql+psycopg://:***@host/db"),
        ("postgresql+psycopg://user:secret@[::1]:5432/db", "postgresql+psycopg://user:***@[::1]:5432/db"),
        ("postgresql+psycopg://user:@host/db", "postgresql+psycopg://user:***@host/db"),
        ("postgresql+psycopg://user@host/db?password=secret&sslmode=require",
         "postgresql+psycopg://user@host/db?password=***&sslmode=require"),
        ("postgresql+psycopg://user@host:5432/db", "postgresql+psycopg://user@host:5432/db"),
        # Azure's user@server: SQLAlchemy reads the user up to ':', and the password to the next '@'
        ("postgresql+psycopg://me@azure:Secr3tpw@host:5432/db", "postgresql+psycopg://me@azure:***@host:5432/db"),
        ("postgresql+psycopg://me@azure:pa/ss@host/db", "postgresql+psycopg://me@azure:***@host/db"),
        ("log: postgresql://me@azure:Secr3tpw@h/db failed", "log: postgresql://me@azure:***@h/db failed"),
        ("postgresql+psycopg://me@azure:Pa?ss 1234@host:5432/db", "postgresql+psycopg://me@azure:***@host:5432/db"),
        ("log: postgresql://me@azure:Pa?ss@h/db failed", "log: postgresql://me@azure:***@h/db failed"),
        # make_url reads the user up to the first ':', so here the password is "5432/db?application_name=me"
        ("postgresql://me@host:5432/db?application_name=me@laptop", "postgresql://me@host:***@laptop"),
        ("postgresql://me@host/db?application_name=me@laptop", "postgresql://me@host/db?application_name=me@laptop"),
        ("postgresql+psycopg://host:5432/db", "postgresql+psycopg://host:5432/db"),
        ("sqlite:///sweeps.db", "sqlite:///sweeps.db"),
        ("sqlite:////tmp/a:b/sweeps.db", "sqlite:////tmp/a:b/sweeps.db"),
        ("not a url at all", "not a url at all"),
        ("", ""),
        ("host=db.example.com password=secret dbname=x", "host=db.example.com password=*** dbname=x"),
        ("cannot open postgresql://u:secret@h/db: refused; retry postgresql://v:other@k/db",
         "cannot open postgresql://u:***@h/db: refused; retry postgresql://v:***@k/db"),
    ],
)
def test_mask_url(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_no_password_make_url_reads_survives_masking() -> None:
    """Whatever make_url takes for the password (what psycopg is sent) is hidden, however odd the URL."""
    checked = 0
    for user in ("me", "me@azure", "", "me.x-y"):
        for password in ("Zq7pw1234", "Pa?ss1234", "pa/ss1234", "p@ss:w0rd", "with space", "x#y%z1234", "a:b:c:d1"):
            for rest in ("host:5432/db", "host/db?application_name=me@laptop", "[::1]/db", "h/db?sslmode=require"):
                for text in (f"postgresql+psycopg://{user}:{password}@{rest}",
                             f"log: postgresql://{user}:{password}@{rest} ."):
                    url = text.split()[1] if text.startswith("log:") else text
                    try:
                        secret = make_url(url).password
                    except (ValueError, ArgumentError):
                        continue
                    if secret and (text == url or " " not in secret):  # in free text a URL ends at a space
                        checked += 1
                        assert secret not in mask_url(text), (text, mask_url(text))
    assert checked > 100


def test_mask_in_text_hides_the_literal_password_in_any_spelling() -> None:
    url = "postgresql+psycopg://alice:p%40ss%3Aword!@host/db"
    text = f"driver: auth failed for alice with p@ss:word! while opening {url}; raw p%40ss%3Aword!"
    masked = mask_in_text(text, url)
    assert "p@ss:word!" not in masked and "p%40ss%3Aword!" not in masked
    assert "postgresql+psycopg://alice:***@host/db" in masked
    assert mask_in_text("nothing secret here", None) == "nothing secret here"


def test_mask_in_text_leaves_short_passwords_alone_outside_urls() -> None:
    """A 2-letter password replaced everywhere would garble the message; inside the URL it is still masked."""
    url = "postgresql+psycopg://u:on@host/db"
    assert mask_in_text(f"connection refused on {url}", url) == "connection refused on postgresql+psycopg://u:***@host/db"


# --------------------------------------------------------------------------------------------------------------
# resolution and validation


@pytest.mark.parametrize(
    ("spec_url", "cli_url", "env", "expected"),
    [
        (None, None, {}, DEFAULT_STORAGE),
        ("sqlite:///yaml.db", None, {}, "sqlite:///yaml.db"),
        ("sqlite:///yaml.db", None, {"SWEEPER_STORAGE": "sqlite:///env.db"}, "sqlite:///env.db"),
        ("sqlite:///yaml.db", "sqlite:///cli.db", {"SWEEPER_STORAGE": "sqlite:///env.db"}, "sqlite:///cli.db"),
        (None, "sqlite:///cli.db", {}, "sqlite:///cli.db"),
        (None, None, {"SWEEPER_STORAGE": "sqlite:///env.db"}, "sqlite:///env.db"),
        ("", "sqlite:///cli.db", {"SWEEPER_STORAGE": ""}, "sqlite:///cli.db"),  # a blank one the flag overrides
        (" sqlite:///yaml.db\n", None, {}, "sqlite:///yaml.db"),
    ],
)
def test_resolve_precedence_cli_then_env_then_yaml_then_default(
    spec_url: str | None, cli_url: str | None, env: dict[str, str], expected: str
) -> None:
    assert resolve_storage_url(spec_url, cli_url, env=env) == expected


@pytest.mark.parametrize("blank", ["", "  "])
def test_a_blank_storage_flag_is_refused_not_taken_for_unset(blank: str) -> None:
    """``--storage "$URL"`` with URL unset would otherwise write to the default SQLite file unnoticed; so would
    ``export SWEEPER_STORAGE="$(cat ~/.sweeper-storage)"`` on a node without that file (docs/clusters.md)."""
    with pytest.raises(StorageError, match="--storage is empty; give a storage URL"):
        resolve_storage_url("sqlite:///yaml.db", blank, env={"SWEEPER_STORAGE": "sqlite:///env.db"})
    with pytest.raises(StorageError, match="SWEEPER_STORAGE is empty; give a storage URL"):  # the same in the env
        resolve_storage_url("sqlite:///yaml.db", None, env={"SWEEPER_STORAGE": blank})


def test_resolve_reads_the_process_environment_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SWEEPER_STORAGE", "sqlite:///from-env.db")
    assert resolve_storage_url("sqlite:///yaml.db", None) == "sqlite:///from-env.db"


@pytest.mark.parametrize(
    ("url", "normalised"),
    [
        ("postgresql://u:p@h/db", "postgresql+psycopg://u:p@h/db"),
        ("postgres://u:p@h:5433/db", "postgresql+psycopg://u:p@h:5433/db"),
        ("postgresql+psycopg://u:p%40x@h/db", "postgresql+psycopg://u:p%40x@h/db"),
        ("postgresql+psycopg:///db", "postgresql+psycopg:///db"),
        ("sqlite+pysqlite:///sweeps.db", "sqlite:///sweeps.db"),
        ("sqlite:///sweeps.db", "sqlite:///sweeps.db"),
        ("sqlite://", "sqlite://"),
        ("sqlite:///:memory:", "sqlite:///:memory:"),
        ("postgresql://u:p@h/db?application_name=me@laptop", "postgresql+psycopg://u:p@h/db?application_name=me@laptop"),
        # make_url read host 'laptop' here (user 'me@host', password '5432/db?application_name=me'); libpq: 'host'
        ("postgresql://me@host:5432/db?application_name=me@laptop",
         "postgresql+psycopg://me@host:5432/db?application_name=me%40laptop"),
        # a socket folder as the host, libpq's URI form: make_url kept '%2Fvar...', which psycopg took for a host name
        ("postgresql://me@%2Fvar%2Frun%2Fpostgresql/db", "postgresql+psycopg://me@/db?host=/var/run/postgresql"),
        ("postgresql+psycopg://me:p@%2ftmp:5433/db?sslmode=disable",
         "postgresql+psycopg://me:p@:5433/db?sslmode=disable&host=/tmp"),
        ("postgresql+psycopg://%2Ftmp/db", "postgresql+psycopg:///db?host=/tmp"),
        ("postgresql+psycopg://me@/db?host=/tmp", "postgresql+psycopg://me@/db?host=/tmp"),
        # a password with an unencoded '/' then '?k=': no port before the '/', so make_url's reading holds
        ("postgresql://u:pa/ss?k=v@h/db", "postgresql+psycopg://u:pa/ss?k=v@h/db"),
    ],
)
def test_validate_normalises_the_driver(url: str, normalised: str, monkeypatch: pytest.MonkeyPatch,
                                        tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    assert validate_storage_url(url) == normalised


@pytest.mark.parametrize("url", [
    "postgresql+psycopg://me@db.example.com:5433/sweeps?application_name=me@laptop&options=-cwork_mem=64MB",
    "postgresql+psycopg://db.example.com:5433/sweeps?application_name=me@laptop",  # no user: the host was the user
    "postgresql+psycopg://me@[::1]:5433/sweeps?application_name=me@laptop",
    "postgresql+psycopg://me:pw@db.example.com:5433/sweeps?application_name=me@laptop",  # make_url's reading held
])
def test_an_at_in_a_query_value_after_a_port_is_read_as_libpq_reads_it(url: str) -> None:
    """A user without a password, a port and an '@' in a query value: make_url took the user to the first ':' and
    the password to the '@' in the query, so psycopg was sent host 'laptop' (and the mask hid the port and db)."""
    parsed = make_url(validate_storage_url(url))
    assert (parsed.host, parsed.port, parsed.database) == (url.split("@")[-2].rpartition(":")[0].split("//")[-1]
                                                           .strip("[]"), 5433, "sweeps")
    assert parsed.query["application_name"] == "me@laptop" and parsed.password in (None, "pw")


def test_an_at_in_a_query_value_after_an_ipv6_host_without_a_port_is_read_as_libpq_reads_it() -> None:
    """[::1] holds the ':' make_url ends the user at: without a port it read user 'me@[', host 'laptop' too (read as
    libpq reads it before the misread-port sign asked for digits after the ':')."""
    parsed = make_url(validate_storage_url("postgresql+psycopg://me@[::1]/sweeps?application_name=me@laptop"))
    assert (parsed.username, parsed.host, parsed.port, parsed.database) == ("me", "::1", None, "sweeps")
    assert parsed.query["application_name"] == "me@laptop"


def test_an_at_in_a_query_value_before_a_path_in_another_is_read_as_libpq_reads_it() -> None:
    """A query value's '@' (application_name=a@b) before another value that holds a '/' (sslrootcert=/certs/ca.pem)
    is no password read as a port (u:1234/pa?ss=wd@host/db): the URL was refused as reading two ways."""
    url = "postgresql+psycopg://me@db.example:5433/sweeps?application_name=me@laptop&sslrootcert=/certs/ca.pem"
    parsed = make_url(validate_storage_url(url))
    assert (parsed.username, parsed.host, parsed.port, parsed.database) == ("me", "db.example", 5433, "sweeps")
    assert parsed.query == {"application_name": "me@laptop", "sslrootcert": "/certs/ca.pem"}


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("sweeps.db", "The storage 'sweeps.db' is a file path, not a URL: write sqlite:///sweeps.db for a SQLite"),
        ("/srv/runs/sweeps.db", "a file path, not a URL: write sqlite:////srv/runs/sweeps.db for"),
        ("sqlite//sweeps.db", "Cannot parse"),  # a URL that lost its ':', not a path to put after sqlite:///
        # the driver refused 99999 and -5 only when the sweep opened the storage (validate passed them), took 0
        ("postgresql+psycopg://u:hunter22@h:99999/db",
         "The port 99999 in 'postgresql+psycopg://u:***@h:99999/db' is out of range: a port is 1 to 65535"),
        ("postgresql+psycopg://u:hunter22@h:0/db", "The port 0 in 'postgresql+psycopg://u:***@h:0/db' is out of range"),
        ("postgresql+psycopg://u:hunter22@h:-5/db", "The port -5 in"),
        ("postgresql+psycopg://u:hunter22@h:notaport/db", "Cannot parse"),
        ("mysql://u:hunter22@h/db", "Unsupported storage 'mysql'"),
        ("postgresql+psycopg2://u:hunter22@h/db", "Unsupported storage 'postgresql+psycopg2'"),
        ("redis://localhost", "Unsupported storage 'redis'"),
        ("sqlite:////no/such/folder/sweeps.db", "'/no/such/folder' for the SQLite database"),
        ("sqlite://sweeps.db", "two slashes"),
        ("sqlite:///~/sweeps.db", "'~'"),
        ("postgresql+psycopg://u:hun@ter22@h/db", "%40"),
        # a '/' or '?' after the stray '@' makes SQLAlchemy read the rest of the password as a host and a database
        ("postgresql+psycopg://u:hun@ter22/2024@h/db", "%40"),
        ("postgresql+psycopg://u:hun@ter22?x@h/db", "%40"),
        ("postgresql+psycopg://u:hun@ter22:w/rd%@h:5432/db", "%40"),  # unparsable: the '@' is still what to fix
        # no '@' at all (a YAML comment cut `pw #x@host` short): the text after user: is hidden all the same
        ("postgresql+psycopg://u:hunter22", "postgresql+psycopg://u:***'"),
        ("postgresql+psycopg://u:hunter22/db", "a port is a number"),
        # no user: host:digits is a port, not a password cut short; shown 'db.example:***', the port's message hid it
        ("postgresql+psycopg://db.example:99999/sweeps", "The port 99999 in 'postgresql+psycopg://db.example:99999/sw"),
        ("postgresql+psycopg://[::1]:99999/sweeps", "The port 99999 in 'postgresql+psycopg://[::1]:99999/sweeps'"),
        ("mysql://db.example:3306/x", "Unsupported storage 'mysql' in 'mysql://db.example:3306/x'"),
        # an unencoded '/' then '?k=' in a password is no port: the part after the '/' was shown, as a database
        ("postgresql+psycopg://u:hun/ter22?x=1@h:99999/db", "The port 99999 in 'postgresql+psycopg://u:***@h:99999/db'"),
        # digits before the '/': read as host 'u', port 2022, the whole password printed in every message about 'u'
        ("postgresql+psycopg://u:2022/hunter22?x=1@h/db", "reads two ways: after the first ':' come digits then a '/'"),
        ("postgresql+psycopg://u:2022/hunter22?x=1@h:5432/db", "in a password, write '/' '?' '@' as %2F %3F %40"),
        # no database, a query after the host: its '/' was taken for a query value's, and the URL sent to host 'u'
        ("postgresql+psycopg://u:2022/hunter22?x=1@h?sslrootcert=/certs/ca.pem", "reads two ways"),
    ],
)
def test_validate_rejects_with_a_clear_message_and_no_password(url: str, message: str) -> None:
    with pytest.raises(StorageError, match=re.escape(message)) as caught:
        validate_storage_url(url)
    assert "hunter22" not in str(caught.value) and "ter22" not in str(caught.value)
    assert isinstance(caught.value, ValueError)


@pytest.mark.parametrize(("url", "path"), [
    ("sqlite:///sweeps.db", Path("sweeps.db")),
    ("sqlite:///sweeps.db?mode=memory", Path("sweeps.db")),  # without uri=true SQLite opens the file and ignores mode
    ("sqlite:///file:sweeps.db?mode=memory&uri=true", None),
    ("sqlite:///:memory:", None),
    ("sqlite://", None),
    ("postgresql+psycopg://u@h/db", None),
])
def test_sqlite_path_is_the_file_sqlite_opens(url: str, path: Path | None) -> None:
    assert sqlite_path(url) == path


def test_validate_rejects_a_folder_as_sqlite_file(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="is a folder"):
        validate_storage_url(f"sqlite:///{tmp_path}")


# --------------------------------------------------------------------------------------------------------------
# SQLite engine


def pragma(storage: optuna.storages.RDBStorage, name: str) -> object:
    with storage.engine.connect() as connection:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()


def test_sqlite_is_tuned_and_opening_writes_no_study(tmp_path: Path) -> None:
    path = tmp_path / "sweeps.db"
    storage = open_storage(f"sqlite:///{path}")
    try:
        assert pragma(storage, "journal_mode") == "wal"
        assert pragma(storage, "busy_timeout") == 10_000
        assert pragma(storage, "synchronous") == 1  # NORMAL
        assert storage.get_all_studies() == []
    finally:
        close_storage(storage)
    with sqlite3.connect(path) as plain:  # WAL is a property of the file: the dashboard's connections get it too
        assert plain.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert plain.execute("SELECT count(*) FROM studies").fetchone()[0] == 0


def test_sqlite_tuning_survives_pickling(tmp_path: Path) -> None:
    """Ray pickles OptunaSearch, storage included, into experiment checkpoints; the copy must be tuned too."""
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    copy = pickle.loads(pickle.dumps(storage))
    try:
        assert pragma(copy, "busy_timeout") == 10_000
        assert pragma(copy, "synchronous") == 1
    finally:
        close_storage(copy)
        close_storage(storage)


def test_open_without_create_refuses_a_missing_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(StorageError, match="no SQLite database"):
        open_storage(f"sqlite:///{path}", create=False)
    assert not path.exists()


@pytest.mark.parametrize(("query", "message"), [("timeout=abc", "could not convert string to float: 'abc'"),
                                              ("timeuot=30", "'timeuot' are not accepted by the pysqlite driver"),
                                              *((f"timeout={bad}", "timeout is the seconds a statement waits")
                                                for bad in ("-1", "nan", "inf", "1e9"))])  # SQLite would not wait
def test_open_rejects_a_sqlite_option_the_driver_cannot_read_or_would_ignore(tmp_path: Path, query: str,
                                                                             message: str) -> None:
    with pytest.raises(StorageError, match=re.escape(message)):
        open_storage(f"sqlite:///{tmp_path / 'x.db'}?{query}")
    assert not (tmp_path / "x.db").exists()
    close_storage(open_storage(f"sqlite:///{tmp_path / 'x.db'}?timeout=30"))


def test_open_rejects_a_missing_folder(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="does not exist"):
        open_storage(f"sqlite:///{tmp_path / 'missing' / 'sweeps.db'}")


def test_open_rejects_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_text("these are my notes, not a database" * 100)
    with pytest.raises(StorageError, match="not a SQLite database"):
        open_storage(f"sqlite:///{path}")


@pytest.mark.parametrize(("interval", "grace"), [(0, None), (-5, None), (None, 10), (10, 0), (1.5, None)])
def test_open_rejects_bad_heartbeat_settings(interval: object, grace: object, tmp_path: Path) -> None:
    with pytest.raises(StorageError):
        open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}", heartbeat_interval=interval, grace_period=grace)


READER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=0.1)
conn.execute("BEGIN")
before = conn.execute("SELECT count(*) FROM trials").fetchone()[0]
print("reading", flush=True)
sys.stdin.readline()  # hold the read transaction (and its lock) until the test says stop
during = conn.execute("SELECT count(*) FROM trials").fetchone()[0]
conn.execute("COMMIT")
after = conn.execute("SELECT count(*) FROM trials").fetchone()[0]
print(before, during, after, flush=True)
"""


class Reader:
    """Another process, like optuna-dashboard, inside a read transaction on the database file."""

    def __init__(self, path: Path) -> None:
        self.process = subprocess.Popen([sys.executable, "-c", READER, str(path)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, text=True)
        assert self.process.stdout is not None and self.process.stdout.readline().strip() == "reading"

    def finish(self) -> list[int]:
        out, _ = self.process.communicate("stop\n", timeout=30)
        assert self.process.returncode == 0
        return [int(n) for n in out.split()]


def test_a_reader_in_a_transaction_does_not_make_the_writer_fail(tmp_path: Path, prefix: str) -> None:
    path = tmp_path / "sweeps.db"
    storage = open_storage(f"sqlite:///{path}")
    reader = Reader(path)
    try:
        started = time.perf_counter()
        study, created = create_or_load_study(storage, prefix, "maximize", study_attrs={attrs.TARGETS: {"a": 1}})
        for i in range(20):
            trial = study.ask()
            trial.suggest_int("width", 8, 64)
            trial.report(0.1 * i, step=1)
            trial.set_user_attr(attrs.EPOCHS_RUN, 1)
            study.tell(trial, float(i))
        elapsed = time.perf_counter() - started
    finally:
        counts = reader.finish()
    assert created and len(study.trials) == 20
    assert elapsed < 30, "the writer waited for the reader instead of writing past it"
    # The reader saw a consistent snapshot for its whole transaction, then the new rows: it really was reading.
    assert counts == [0, 0, 20]
    close_storage(storage)


def test_without_wal_the_same_reader_does_make_the_writer_fail(tmp_path: Path, prefix: str) -> None:
    """Control for the test above: proves that the reader process really holds a lock that matters."""
    path = tmp_path / "plain.db"
    plain = optuna.storages.RDBStorage(f"sqlite:///{path}", engine_kwargs={"connect_args": {"timeout": 0.2}})
    with plain.engine.connect() as connection:
        assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "delete"
    reader = Reader(path)
    try:
        with pytest.raises(optuna.exceptions.StorageInternalError) as caught:
            study = optuna.create_study(storage=plain, study_name=prefix)
            for _ in range(5):
                study.tell(study.ask(), 1.0)
    finally:
        reader.finish()
        close_storage(plain)
    # Optuna's own message hides the cause ("invalid data in the commit"); ours names it.
    assert "database is locked" in str(caught.value.__cause__)
    assert "locked by another process" in str(as_storage_error(caught.value, f"sqlite:///{path}"))


WRITER = """
import sys
from storage.engine import open_storage
from storage.studies import create_or_load_study
storage = open_storage(sys.argv[1])
study, _ = create_or_load_study(storage, sys.argv[2], "minimize")
for i in range(int(sys.argv[3])):
    trial = study.ask()
    trial.suggest_float("x", 0, 1)
    study.tell(trial, float(i))
"""


def test_two_writer_processes_wait_for_each_other_instead_of_failing(tmp_path: Path, prefix: str) -> None:
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    close_storage(open_storage(url))
    writers = [subprocess.Popen([sys.executable, "-c", WRITER, url, prefix, "40"], stderr=subprocess.PIPE, text=True)
               for _ in range(3)]
    for writer in writers:
        _, err = writer.communicate(timeout=240)
        assert writer.returncode == 0, err
    storage = open_storage(url)
    assert len(optuna.load_study(study_name=prefix, storage=storage).trials) == 120
    close_storage(storage)


OPENER = """
import sys, time
from storage.engine import close_storage, open_storage
start, urls = float(sys.argv[1]), sys.argv[2:]
for i, url in enumerate(urls):  # every process opens each new database at the same moment
    time.sleep(max(0.0, start + 0.5 * i - time.time()))
    close_storage(open_storage(url))
"""


def test_drivers_opening_one_new_sqlite_file_at_once_all_open_it(tmp_path: Path) -> None:
    """The losers of the race to create Optuna's tables ("table studies already exists", "UNIQUE constraint failed:
    alembic_version") open the winner's tables instead of failing as bad input."""
    urls = [f"sqlite:///{tmp_path / f'new-{i}.db'}" for i in range(6)]
    start = str(time.time() + 5)
    openers = [subprocess.Popen([sys.executable, "-c", OPENER, start, *urls], stderr=subprocess.PIPE, text=True)
               for _ in range(4)]
    for opener in openers:
        _, err = opener.communicate(timeout=120)
        assert opener.returncode == 0, err


# --------------------------------------------------------------------------------------------------------------
# connection failures: one clear message, password masked


def test_unreachable_server(tmp_path: Path) -> None:
    with pytest.raises(StorageError) as caught:
        open_storage("postgresql+psycopg://sweeper:T0p%23Secret@127.0.0.1:1/sweeps")
    message = str(caught.value)
    assert "cannot reach a PostgreSQL server at 127.0.0.1:1" in message
    assert "postgresql+psycopg://sweeper:***@127.0.0.1:1/sweeps" in message
    assert "T0p" not in message and "Secret" not in message
    assert caught.value.__cause__ is None and caught.value.__suppress_context__  # no chained driver text
    with pytest.raises(StorageError, match=re.escape("server at [::1]:1:")):  # not ::1:1
        open_storage("postgresql+psycopg://sweeper@[::1]:1/sweeps")


def test_a_host_name_that_does_not_resolve_is_said_so(tmp_path: Path) -> None:
    """A mistyped or unresolvable host read "cannot reach a PostgreSQL server at nohost.invalid:5432: is it
    running, ...?", although no server was tried: the name itself is what to check."""
    with pytest.raises(StorageError) as caught:
        open_storage("postgresql+psycopg://sweeper:T0pSecret@nohost.invalid:5432/sweeps")  # RFC 2606: never resolves
    message = str(caught.value)
    assert message.startswith("Cannot open storage postgresql+psycopg://sweeper:***@nohost.invalid:5432/sweeps: the "
                              "host name 'nohost.invalid' does not resolve to an address: is it spelled right"), message
    assert "is it running" not in message and "T0pSecret" not in message


def test_a_host_name_from_pghost_that_does_not_resolve_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    """A URL without a host takes libpq's PGHOST: one that does not resolve was said as "the host name None" (the
    URL's, which it has none of)."""
    monkeypatch.setenv("PGHOST", "nohost.invalid")
    with pytest.raises(StorageError) as caught:
        open_storage("postgresql+psycopg://sweeper@/sweeps")
    assert ": the host name 'nohost.invalid' (PGHOST) does not resolve to an address" in str(caught.value)


def test_a_url_with_an_at_in_a_query_value_after_its_port_opens_the_server_it_names(postgres_url: str) -> None:
    """``postgresql+psycopg://postgres@127.0.0.1:5432/db?application_name=me@laptop``, as psql takes it: make_url
    read the host as 'laptop', which did not resolve."""
    url = f"{postgres_url}{'&' if '?' in postgres_url else '?'}application_name=me@laptop"
    storage = open_storage(url)
    try:
        with storage.engine.connect() as connection:
            assert connection.exec_driver_sql("SHOW application_name").scalar() == "me@laptop"
    finally:
        close_storage(storage)


def test_a_socket_folder_written_as_the_host_reaches_the_server_over_that_socket(postgres_url: str) -> None:
    """``postgresql+psycopg://postgres@%2Fvar%2Frun%2Fpostgresql/db``, as psql takes it: psycopg was sent the host
    '%2Fvar%2Frun%2Fpostgresql' undecoded, and failed to resolve it."""
    parsed = make_url(postgres_url)
    storage = open_storage(postgres_url)
    try:
        with storage.engine.connect() as connection:
            folders = connection.exec_driver_sql("SHOW unix_socket_directories").scalar()
    finally:
        close_storage(storage)
    folder = next((f.strip() for f in folders.split(",") if Path(f.strip(), f".s.PGSQL.{parsed.port or 5432}")
                   .exists()), None)
    if folder is None:
        pytest.skip(f"the server's sockets ({folders}) are not on this machine")
    url = parsed.set(host=quote(folder, safe="")).render_as_string(hide_password=False).replace("%25", "%")
    assert "@%2F" in url or "//%2F" in url, url
    storage = open_storage(url)
    try:
        with storage.engine.connect() as connection:  # no server address: a unix-socket connection
            assert connection.exec_driver_sql("SELECT inet_server_addr()").scalar() is None
    finally:
        close_storage(storage)


def test_read_only_connections_keep_the_urls_own_connection_options(postgres_url: str) -> None:
    """A team's schema given as ``?options=-csearch_path=...`` holds for ``status`` and ``report`` too."""
    import sqlalchemy

    from storage.engine import _engine_kwargs

    schema = f"sweeper_test_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).update_query_dict({"options": f"-csearch_path={schema}", "application_name": "team"})
    url = url.render_as_string(hide_password=False)
    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url, read_only=True))
    try:
        with engine.connect() as connection:
            shown = [connection.exec_driver_sql(f"SHOW {name}").scalar()
                     for name in ("search_path", "default_transaction_read_only", "application_name")]
    finally:
        engine.dispose()
    assert shown == [schema, "on", "team"]


def test_a_connection_gives_up_on_a_cut_network_instead_of_hanging(postgres_url: str) -> None:
    import sqlalchemy

    from storage.engine import _engine_kwargs

    engine = sqlalchemy.create_engine(postgres_url, **_engine_kwargs(postgres_url))
    try:
        with engine.connect() as connection:
            libpq = connection.connection.dbapi_connection.info.get_parameters()
    finally:
        engine.dispose()
    assert (libpq["keepalives"], libpq["keepalives_idle"], libpq["tcp_user_timeout"]) == ("1", "30", "60000")


@pytest.mark.parametrize("read_only", [False, True])
def test_a_statement_waits_a_minute_at_most_unless_the_url_says_otherwise(postgres_url: str, read_only: bool) -> None:
    """A lock another session holds on Optuna's tables cannot stall a sweep for good (tests/test_outage.py)."""
    def statement_timeout(url: str) -> str:
        storage = open_storage(url, read_only=read_only)
        try:
            with storage.engine.connect() as connection:
                return connection.exec_driver_sql("SHOW statement_timeout").scalar()
        finally:
            close_storage(storage)

    own = make_url(postgres_url).update_query_dict({"options": "-cstatement_timeout=5s"})
    assert statement_timeout(postgres_url) == "1min"
    assert statement_timeout(own.render_as_string(hide_password=False)) == "5s"


def test_missing_database(postgres_url: str) -> None:
    database = f"sweeper_missing_{uuid.uuid4().hex[:8]}"
    url = make_url(postgres_url).set(database=database, password="Sup3r:s3cret@!").render_as_string(False)
    with pytest.raises(StorageError) as caught:
        open_storage(url)
    message = str(caught.value)
    assert f"the database '{database}' does not exist" in message and f" {database})." in message
    assert "Sup3r" not in message and "s3cret" not in message and "***" in message


def test_a_missing_user_or_database_given_in_the_query_is_the_one_named(postgres_url: str) -> None:
    """psycopg connects with ?user= and ?dbname= over the URL's own (SQLAlchemy passes the query last): the message
    named the URL's user or database instead of the one the server refused."""
    base, suffix = make_url(postgres_url), uuid.uuid4().hex[:8]
    role, database = f"sweeper_norole_{suffix}", f"sweeper_missing_{suffix}"
    with pytest.raises(StorageError) as caught:
        open_storage(base.set(username="someone_else").update_query_dict({"user": role}).render_as_string(False))
    assert f"the user '{role}' does not exist" in str(caught.value), caught.value
    with pytest.raises(StorageError) as caught:
        open_storage(base.update_query_dict({"dbname": database}).render_as_string(False))
    assert f"the database '{database}' does not exist" in str(caught.value) and f" {database})." in str(caught.value)


def test_missing_databases_createdb_names_the_urls_server_and_user() -> None:
    """Pasted, a bare 'createdb sweeps' reached the local socket as the login user, not the URL's server."""
    error = Exception('connection failed: FATAL: database "my sweeps" does not exist')
    message = str(as_storage_error(error, "postgresql+psycopg://me:pw@db.lan:5433/my%20sweeps"))
    assert "create it first (createdb -h db.lan -p 5433 -U me 'my sweeps')." in message and "pw" not in message
    socket_dir = str(as_storage_error(error, "postgresql+psycopg:///my%20sweeps?host=/run/pg&user=me"))
    assert "(createdb -h /run/pg -U me 'my sweeps')." in socket_dir


def test_a_new_sqlite_database_is_refused_where_a_moved_ones_write_ahead_log_holds_trials(tmp_path: Path) -> None:
    """Moved away mid-sweep, the database left its trials in NAME.db-wal (SQLite had not folded the log into it);
    the next run started a new database there, and threw the log away."""
    from storage.engine import check_writable

    path = tmp_path / "sweeps.db"
    writer = sqlite3.connect(path)
    writer.execute("PRAGMA journal_mode=WAL")
    writer.execute("CREATE TABLE trials (x)")
    writer.execute("INSERT INTO trials VALUES (1)")
    writer.commit()
    path.rename(tmp_path / "moved.db")  # the log stays, by its name, while the writer holds it
    try:
        with pytest.raises(StorageError, match="holds a sweep's writes, but its database is gone"):
            check_writable(f"sqlite:///{path}")
    finally:
        writer.close()
    check_writable(f"sqlite:///{tmp_path / 'other.db'}")  # no log: a new database is fine


def test_a_url_naming_no_database_says_so(postgres_url: str) -> None:
    import psycopg

    admin = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    user = f"sweeper_nodb_{uuid.uuid4().hex[:8]}"  # a role with no database of its name: libpq's default database
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"CREATE ROLE {user} LOGIN")
    try:
        base = make_url(postgres_url)
        with pytest.raises(StorageError, match="the URL names no database") as caught:
            open_storage(f"postgresql+psycopg://{user}:pw@{base.host}:{base.port or 5432}")
        assert "'?'" not in str(caught.value) and "add /DBNAME" in str(caught.value)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f"DROP ROLE IF EXISTS {user}")


class FakePostgres:
    """Just enough of the PostgreSQL protocol to ask for a password and reject it, as a real server would.

    The test server trusts every local connection, so a wrong password cannot be provoked there.
    """

    def __init__(self) -> None:
        self.passwords: list[str] = []
        self.socket = socket.create_server(("127.0.0.1", 0))
        self.port = self.socket.getsockname()[1]
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.socket.accept()
            except OSError:
                return
            with connection, connection.makefile("rb") as incoming:
                while True:  # SSL / GSS encryption requests: answer "no", then the startup message follows
                    length, code = struct.unpack("!ii", incoming.read(8))
                    incoming.read(length - 8)
                    if code not in (80877103, 80877104):
                        break
                    connection.sendall(b"N")
                connection.sendall(b"R" + struct.pack("!ii", 8, 3))  # AuthenticationCleartextPassword
                incoming.read(1)
                (length,) = struct.unpack("!i", incoming.read(4))
                self.passwords.append(incoming.read(length - 4).rstrip(b"\0").decode())
                fields = b'SFATAL\0VFATAL\0C28P01\0Mpassword authentication failed for user "alice"\0\0'
                connection.sendall(b"E" + struct.pack("!i", 4 + len(fields)) + fields)

    def close(self) -> None:
        self.socket.close()


def test_wrong_password() -> None:
    password = "p@ss:w/rd?#%& x"
    server = FakePostgres()
    try:
        with pytest.raises(StorageError) as caught:
            open_storage(f"postgresql://alice:{quote(password, safe='')}@127.0.0.1:{server.port}/sweeps")
    finally:
        server.close()
    assert server.passwords and server.passwords[0] == password  # special characters reach the server intact
    message = str(caught.value)
    assert "authentication failed" in message and "check the user name and password" in message
    assert f"postgresql+psycopg://alice:***@127.0.0.1:{server.port}/sweeps" in message
    assert "p@ss" not in message and quote(password, safe="") not in message and "w/rd" not in message


# --------------------------------------------------------------------------------------------------------------
# studies, on SQLite and PostgreSQL


def test_create_then_resume_keeps_the_first_attrs(storage: optuna.storages.RDBStorage, prefix: str) -> None:
    first = {attrs.SPEC: {"epochs": 30}, attrs.TARGETS: {"test_top1": 0.6}}
    study, created = create_or_load_study(storage, prefix, "maximize", optuna.samplers.RandomSampler(seed=0),
                                          study_attrs=first)
    assert created and study.user_attrs == first and study_exists(storage, prefix)

    later = {attrs.SPEC: {"epochs": 99}, attrs.ENVIRONMENT: {"python": "3.x"}}
    again, created = create_or_load_study(storage, prefix, "maximize", None, study_attrs=later)
    assert not created and again.study_name == prefix
    assert again.user_attrs == {**first, attrs.ENVIRONMENT: {"python": "3.x"}}
    assert isinstance(again.sampler, optuna.samplers.TPESampler)  # sampler None: Optuna's default


def test_resume_with_the_opposite_direction_is_refused(storage: optuna.storages.RDBStorage, prefix: str) -> None:
    create_or_load_study(storage, prefix, "maximize")
    with pytest.raises(StorageError, match="optimises maximize, but this sweep asks to minimize"):
        create_or_load_study(storage, prefix, "minimize")


def test_attrs_that_are_not_json_create_nothing(storage: optuna.storages.RDBStorage, prefix: str) -> None:
    with pytest.raises(StorageError, match="'spec' cannot be stored"):
        create_or_load_study(storage, prefix, "maximize", study_attrs={attrs.SPEC: {"path": Path("x")}})
    assert not study_exists(storage, prefix)


@pytest.mark.parametrize("direction", ["sideways", "max", "", None])
def test_bad_direction(storage: optuna.storages.RDBStorage, prefix: str, direction: object) -> None:
    with pytest.raises(StorageError, match="direction"):
        create_or_load_study(storage, prefix, direction)


def test_racing_creators_create_once(storage_url: str, storage: optuna.storages.RDBStorage, prefix: str) -> None:
    results: list[bool] = []
    errors: list[BaseException] = []
    barrier = threading.Barrier(4)

    def create() -> None:
        own = open_storage(storage_url)
        try:
            barrier.wait()
            results.append(create_or_load_study(own, prefix, "minimize", study_attrs={"k": 1})[1])
        except BaseException as exc:
            errors.append(exc)
        finally:
            close_storage(own)

    threads = [threading.Thread(target=create) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not errors and sorted(results) == [False, False, False, True]


def test_fresh_study_name_never_reuses_a_name(storage: optuna.storages.RDBStorage, prefix: str) -> None:
    assert fresh_study_name(storage, prefix) == prefix
    create_or_load_study(storage, prefix, "maximize")
    assert fresh_study_name(storage, prefix) == f"{prefix}-2"
    create_or_load_study(storage, f"{prefix}-2", "maximize")
    assert fresh_study_name(storage, prefix) == f"{prefix}-3"
    create_or_load_study(storage, f"{prefix}-7", "maximize")  # a gap: go past the highest, not into the gap
    create_or_load_study(storage, f"{prefix}-x", "maximize")
    create_or_load_study(storage, f"{prefix}-20b", "maximize")
    assert fresh_study_name(storage, prefix) == f"{prefix}-8"
    assert fresh_study_name(storage, f"{prefix}-2") == f"{prefix}-2-2"
    assert study_exists(storage, prefix) and not study_exists(storage, f"{prefix}-3")


def test_heartbeat_fails_only_trials_that_recorded_a_heartbeat(storage_url: str, prefix: str) -> None:
    """Optuna 5 behaviour the driver relies on: with ask/tell nobody records heartbeats for you, and
    fail_stale_trials only fails RUNNING trials whose last heartbeat is older than grace_period."""
    storage = open_storage(storage_url, heartbeat_interval=1, grace_period=1)
    try:
        study, _ = create_or_load_study(storage, prefix, "maximize")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "Heartbeat ... supposed to be used with Study.optimize" / experimental
            beating = study.ask()
            silent = study.ask()
            storage.record_heartbeat(beating._trial_id)
            time.sleep(2.5)
            optuna.storages.fail_stale_trials(study)
        states = {t.number: t.state for t in study.get_trials(deepcopy=False)}
        assert states == {beating.number: optuna.trial.TrialState.FAIL, silent.number: optuna.trial.TrialState.RUNNING}
    finally:
        optuna.delete_study(study_name=prefix, storage=storage)
        close_storage(storage)


# --------------------------------------------------------------------------------------------------------------
# attrs, environment, imports


def test_attr_names_are_distinct() -> None:
    study_attrs = [attrs.SPEC, attrs.SPACE_FILE, attrs.TARGETS, attrs.BASELINE, attrs.OBJECTIVE, attrs.ENVIRONMENT,
                   attrs.SPACE_DIR]
    names = [*study_attrs, *attrs.TRIAL_ATTRS]
    assert len(names) == len(set(names))
    assert len({"completed", "early_stopping", attrs.STOP_PRUNED, attrs.STOP_DIVERGED, attrs.STOP_SWEEP_STOPPED}) == 5


def test_stop_reasons_read_back_from_an_exported_csv_as_themselves() -> None:
    """The diverged trials' reason was "nan", which pandas reads from `sweeper export`'s CSV as a missing value."""
    import io

    import pandas

    reasons = ["completed", "early_stopping", attrs.STOP_PRUNED, attrs.STOP_DIVERGED, attrs.STOP_SWEEP_STOPPED,
               attrs.STOP_NEVER_STARTED]
    assert pandas.read_csv(io.StringIO("\n".join(["stop_reason", *reasons]))).stop_reason.tolist() == reasons


def test_an_earlier_sweepers_nan_stop_reason_is_exported_as_diverged(tmp_path: Path) -> None:
    """A study an earlier sweeper wrote keeps its diverged trials' "nan": `sweeper export` of it still gave pandas a
    missing value (the rename only covered trials written since)."""
    import io

    import pandas

    from storage.export import trial_rows, write_rows
    from storage.reading import trials_with_last_values

    storage = open_storage(f"sqlite:///{tmp_path / 'old.db'}")
    study, _ = create_or_load_study(storage, "old", "maximize")
    trial = study.ask()
    trial.set_user_attr(attrs.STOP_REASON, "nan")  # as the sweeper before 2026-12-05 recorded a diverged trial
    study.tell(trial, state=optuna.trial.TrialState.FAIL)
    out = io.StringIO()
    write_rows(trial_rows(trials_with_last_values(storage, study)), "csv", out)
    assert pandas.read_csv(io.StringIO(out.getvalue())).stop_reason.tolist() == [attrs.STOP_DIVERGED]
    assert study.trials[0].user_attrs[attrs.STOP_REASON] == "nan"  # read as now, the study left as it was
    close_storage(storage)


def test_attr_builders() -> None:
    assert attrs.objective_attr("val_top3", "maximize") == {"metric": "val_top3", "direction": "maximize"}
    with pytest.raises(ValueError, match="direction"):
        attrs.objective_attr("val_top3", "max")  # type: ignore[arg-type]
    assert attrs.baseline_attr("paper", {"test_top1": 1}) == {"source": "paper", "metrics": {"test_top1": 1.0}}


def test_record_environment_outside_a_repository(tmp_path: Path) -> None:
    environment = record_environment(tmp_path)
    assert environment["python"] == ".".join(map(str, sys.version_info[:3]))
    assert environment["packages"]["optuna"] == optuna.__version__
    assert environment["git_commit"] is None
    assert set(environment) == {"python", "packages", "git_commit", "sweeper_commit"}
    assert pickle.loads(pickle.dumps(environment)) == environment


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_record_environment_in_a_repository(tmp_path: Path) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.com", "-c",
                               "commit.gpgsign=false", *args], cwd=tmp_path, check=True, capture_output=True,
                              text=True).stdout.strip()

    git("init", "-q")
    git("commit", "-q", "--allow-empty", "-m", "first")
    assert record_environment(tmp_path)["git_commit"] == git("rev-parse", "HEAD")
    # sweeper's own commit too, where it runs from a checkout (as here): its version is 0.1.0 from commit to commit
    checkout = Path(__file__).resolve().parents[1]
    if (checkout / ".git").exists():
        assert record_environment(tmp_path)["sweeper_commit"] == subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=checkout, capture_output=True, text=True, check=True).stdout.strip()


def test_storage_imports_neither_ray_nor_torch_nor_sibling_packages() -> None:
    """storage/ receives plain dicts; importing it (and recording versions) must stay cheap and independent."""
    code = (
        "import sys\n"
        "import storage.engine, storage.studies, storage.attrs, storage.urls, storage.errors, storage.environment\n"
        "storage.environment.record_environment()\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'ray', 'torch', 'sweeper', 'search_spaces'})\n"
        "print(bad)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_the_reading_commands_read_every_field_optuna_reads_and_the_last_of_each_curve(
        storage_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """storage.reading reads Optuna's tables itself (Optuna's own read of 5,000 trials of 200 epochs took 25 s and
    1.8 GB): it must read back what Optuna reads, on each database, or the schema moved under it. In a time zone
    other than UTC too: Optuna stores UTC and gives local time (status said -1 day, 16:00:17 in Los Angeles)."""
    import math

    monkeypatch.setenv("TZ", "America/Los_Angeles")
    time.tzset()

    from storage.reading import curve_lengths, trials_with_last_values, whole_curves

    storage = open_storage(storage_url)
    try:
        study = optuna.create_study(study_name=f"read-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize")
        other = optuna.create_study(study_name=f"other-{uuid.uuid4().hex[:8]}", storage=storage)
        other.optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=2)  # another study's trials stay out
        values = iter([0.5, math.inf, -math.inf, None, 0.25])
        for number in range(5):
            trial = study.ask()
            trial.suggest_float("lr", 1e-5, 1e-1, log=True)
            trial.suggest_int("layers", 1, 8, step=1)
            trial.suggest_categorical("size", ["small", None, 3, True])
            trial.set_user_attr("test_top3", 0.5 + number / 10)
            trial.set_user_attr("nested", {"a": [1, 2]})
            trial.storage.set_trial_system_attr(trial._trial_id, "ray_trial_id", f"r{number}")
            for step, value in enumerate([0.1, math.nan, math.inf, -math.inf, 0.2][: number + 1]):
                trial.report(value, step * 2)
            value = next(values)
            if number == 3:
                study.tell(trial, state=optuna.trial.TrialState.PRUNED)
            elif number < 4:
                study.tell(trial, value)
        study.enqueue_trial({"lr": 1e-3})
        study.ask()  # RUNNING, no reports
        full = study.get_trials(deepcopy=False)
        light = trials_with_last_values(storage, optuna.load_study(study_name=study.study_name, storage=storage))
        assert [t.number for t in light] == [t.number for t in full] == list(range(6))

        def same(a: object, b: object) -> bool:  # NaN is itself here
            return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))

        for ours, theirs in zip(light, full, strict=True):
            for field in ("state", "values", "datetime_start", "datetime_complete", "params", "distributions",
                          "user_attrs", "system_attrs", "_trial_id"):
                assert getattr(ours, field) == getattr(theirs, field), (ours.number, field)
            last = {max(theirs.intermediate_values): theirs.intermediate_values[max(theirs.intermediate_values)]} \
                if theirs.intermediate_values else {}
            assert list(ours.intermediate_values) == list(last) and all(
                same(ours.intermediate_values[k], v) for k, v in last.items()), ours.number
        assert curve_lengths(storage, study) == {t._trial_id: len(t.intermediate_values) for t in full
                                                 if t.intermediate_values}
        curves = whole_curves(storage, light[:5])
        assert all(list(curves[t._trial_id]) == list(t.intermediate_values) for t in full[:5])
    finally:
        close_storage(storage)
        monkeypatch.delenv("TZ")
        time.tzset()


def test_every_postgresql_session_is_in_utc_whatever_the_client_or_role_says(postgres_url: str,
                                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Optuna writes heartbeats with the server's now() into a column without a time zone: a driver whose session
    was in Los Angeles judged another's fresh heartbeats 8 hours old, and trained its live trials a second time."""
    import sqlalchemy

    monkeypatch.setenv("PGTZ", "America/Los_Angeles")
    for read_only in (False, True):
        storage = open_storage(postgres_url, read_only=read_only)
        try:
            with storage.engine.connect() as connection:
                assert connection.execute(sqlalchemy.text("SHOW TimeZone")).scalar() == "UTC"
        finally:
            close_storage(storage)


def test_a_write_to_a_trial_deleted_meanwhile_is_the_study_deleted(tmp_path: Path) -> None:
    """Deleted between the read and the write of a tell, the row's update matched nothing: Optuna raised its
    StorageInternalError (from SQLAlchemy's StaleDataError), and the sweep ended with a traceback, not one line."""
    from storage.errors import StudyDeleted

    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    try:
        study = optuna.create_study(study_name="gone", storage=storage)
        trial = study.ask()
        cached = study._storage  # a driver's study: Optuna's cache over the database
        optuna.delete_study(study_name="gone", storage=storage)
        with pytest.raises(Exception) as raised:  # deleted before the write: Optuna's KeyError
            cached.set_trial_state_values(trial._trial_id, optuna.trial.TrialState.COMPLETE, [1.0])
        assert StudyDeleted.explains(raised.value), repr(raised.value)
    finally:
        close_storage(storage)
    from sqlalchemy.orm.exc import StaleDataError

    # deleted between Optuna's read and its update, as a CI run caught it (a race no test can time)
    with pytest.raises(optuna.exceptions.StorageInternalError) as raced:
        try:
            raise StaleDataError("UPDATE statement on table 'trials' expected to update 1 row(s); 0 were matched.")
        except StaleDataError as exc:
            raise optuna.exceptions.StorageInternalError("An exception is raised during the commit.") from exc
    assert StudyDeleted.explains(raced.value)
    assert not StudyDeleted.explains(optuna.exceptions.StorageInternalError("a real bug"))


@pytest.mark.postgres
def test_a_driver_frozen_while_it_holds_the_postgres_trial_lock_holds_it_no_longer_than_a_statement(postgres_url):
    """A driver stopped (SIGSTOP, a lost network) in the milliseconds it holds the lock kept every other driver's
    asks waiting until the server dropped its connection, hours with default keepalives: its session now ends after
    statement_timeout idle in the lock's transaction (the URL's 1 s here), and the lock with it."""
    from storage.locks import creating_trials

    url = make_url(postgres_url).update_query_dict({"options": "-cstatement_timeout=1s"}).render_as_string(
        hide_password=False)
    name = f"frozen-lock-{uuid.uuid4().hex[:8]}"
    storages = [open_storage(url) for _ in range(2)]  # each driver with its own, as processes have
    studies = [create_or_load_study(storage, name, "maximize")[0] for storage in storages]
    held, frozen_error = threading.Event(), []

    def frozen_holder() -> None:
        try:
            with creating_trials(studies[0]):
                held.set()
                time.sleep(3)  # frozen: its transaction sits idle, past the 1 s
        except Exception as exc:  # its session was ended: the commit finds no connection
            frozen_error.append(exc)

    holder = threading.Thread(target=frozen_holder)
    holder.start()
    try:
        assert held.wait(30)
        time.sleep(0.5)
        started = time.monotonic()
        with creating_trials(studies[1]):  # without the idle limit: cancelled at its own statement_timeout (1 s)
            waited = time.monotonic() - started
        assert waited < 1.0, waited
        holder.join(10)
        assert frozen_error, "the frozen holder's session outlived its idle limit"
    finally:
        holder.join(10)
        for storage in storages:
            close_storage(storage)


@pytest.mark.postgres
def test_a_trial_lock_outlived_by_a_statement_waiting_on_a_locked_table_is_retried(postgres_url):
    """The lock's session ends after statement_timeout idle, the moment a statement under it that waits on a table
    another session locks (a migration, a VACUUM FULL) is cancelled: the driver got the session's end
    (idle_in_transaction_session_timeout, 25P03) as a bug and its sweep crashed, where the cancel alone is waited
    out; a frozen holder that thaws met the same."""
    import psycopg

    from storage.locks import creating_trials
    from storage.retry import is_transient

    url = make_url(postgres_url).update_query_dict({"options": "-cstatement_timeout=1s"}).render_as_string(
        hide_password=False)
    storage = open_storage(url)
    try:
        study = create_or_load_study(storage, f"locked-{uuid.uuid4().hex[:8]}", "maximize")[0]
        with psycopg.connect(make_url(postgres_url).set(drivername="postgresql").render_as_string(
                hide_password=False)) as holder:
            holder.execute("LOCK TABLE trials IN ACCESS EXCLUSIVE MODE")
            with pytest.raises(Exception) as raised, creating_trials(study):
                study.ask()  # cancelled at 1 s, as the lock's session ends
            holder.rollback()
        assert is_transient(raised.value), raised.value
        with creating_trials(study):  # the retry: a new session
            study.ask()
    finally:
        close_storage(storage)


def test_drivers_opening_a_sqlite_database_through_a_symlink_and_by_its_path_share_one_lock(tmp_path):
    """SQLite keeps its -wal and -shm beside the file a link points to: the trial-creation lock was beside the
    link, so a driver opening ~/project/sweeps.db (a link to the team's file) and one opening the file itself
    both held "the" lock at once, and created the budget's last trial twice."""
    from storage.locks import creating_trials

    (tmp_path / "shared").mkdir()
    (tmp_path / "project").mkdir()
    (tmp_path / "project" / "sweeps.db").symlink_to(tmp_path / "shared" / "sweeps.db")
    direct = open_storage(f"sqlite:///{tmp_path / 'shared' / 'sweeps.db'}")
    linked = open_storage(f"sqlite:///{tmp_path / 'project' / 'sweeps.db'}?timeout=0.2")
    try:
        study = optuna.create_study(study_name="shared", storage=direct)
        through_link = optuna.load_study(study_name="shared", storage=linked)
        with creating_trials(study), pytest.raises(sqlite3.OperationalError, match="locked"), \
                creating_trials(through_link):
            pass
        assert not (tmp_path / "project" / "sweeps.db-sweeper-lock").exists()
    finally:
        close_storage(direct)
        close_storage(linked)


def test_whoever_may_write_a_shared_sqlite_database_takes_its_lock_file_that_another_user_made():
    """SQLite gives its -wal and -shm the database's mode, so a team shares one group-writable sweeps.db; the lock
    file was opened for writing and made under the umask (0644), so a teammate's sweep crashed on PermissionError
    at its first trial. flock needs the file only open for reading."""
    import stat
    import tempfile

    from storage.locks import LOCK_SUFFIX, creating_trials

    folder = Path(tempfile.mkdtemp(prefix="sweeper-team-"))  # not under tmp_path: another user reaches it
    folder.chmod(0o755)
    database = folder / "sweeps.db"
    storage = open_storage(f"sqlite:///{database}")
    try:
        study = optuna.create_study(study_name="team", storage=storage)
        database.chmod(0o664)
        lock = folder / f"sweeps.db{LOCK_SUFFIX}"
        with creating_trials(study):
            pass
        assert stat.S_IMODE(lock.stat().st_mode) == 0o664  # the database's, whatever the umask
        lock.chmod(0o444)  # another user's file: this one may only read it
        # in a process of its own, as a user who may not write it: root writes any file (nobody cannot run this
        # Python, which may lie in root's home, so the child starts as root and then becomes nobody)
        take = ("import os\nfrom pathlib import Path\nfrom storage.locks import _file_lock\n"
                "if os.geteuid() == 0:\n    os.seteuid(65534)\n"
                f"with _file_lock(Path({str(database)!r}), 1):\n    pass\n")
        taken = subprocess.run([sys.executable, "-c", take], cwd=Path(__file__).parents[1], capture_output=True,
                               text=True, timeout=60)
        assert taken.returncode == 0, taken.stderr
    finally:
        close_storage(storage)
        shutil.rmtree(folder)


def test_the_sqlite_trial_lock_is_held_on_a_descriptor_open_for_writing_where_the_user_may_write(tmp_path: Path):
    """An NFS client emulates flock with a byte-range lock, whose exclusive kind needs the file open for writing
    (flock(2), "NFS details"): the lock file was always opened read-only, so on a project folder on NFS every sweep
    crashed with EBADF at its first trial (or its first enqueued row). Read-only stays the fallback for a lock file
    another user made (test above)."""
    import os

    from storage.locks import LOCK_SUFFIX, creating_trials

    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    lock = tmp_path / f"sweeps.db{LOCK_SUFFIX}"

    def access_modes() -> list[int]:  # of this process's descriptors open on the lock file
        fds = [fd for fd in os.listdir("/proc/self/fd") if os.path.realpath(f"/proc/self/fd/{fd}") == str(lock)]
        flags = [int(Path(f"/proc/self/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8) for fd in fds]
        return [f & os.O_ACCMODE for f in flags]

    try:
        study = optuna.create_study(study_name="nfs", storage=storage)
        for _ in range(2):  # made by this call, then found made
            with creating_trials(study):
                assert access_modes() == [os.O_RDWR]
    finally:
        close_storage(storage)


def test_a_sqlite_uri_that_opens_the_database_read_only_is_refused_before_a_sweep(tmp_path: Path) -> None:
    """``sqlite:///file:sweeps.db?mode=ro&uri=true`` (or ``immutable=1``) passed every check, and the sweep ended in
    Optuna's "An exception is raised during the commit" traceback (exit 1) at its first write, where a storage it
    may not write is exit 2 before anything starts."""
    from storage.engine import check_writable

    path = tmp_path / "sweeps.db"
    close_storage(open_storage(f"sqlite:///{path}"))
    for option in ("mode=ro", "immutable=1"):
        with pytest.raises(StorageError, match=f"its {option} opens the database read-only"):
            check_writable(f"sqlite:///file:{path}?{option}&uri=true")
    check_writable(f"sqlite:///file:{path}?mode=rw&uri=true")  # a URI that may write is fine


def test_a_uri_sqlite_path_without_file_prefix_writes_the_file_every_reader_reads(tmp_path: Path) -> None:
    """``sqlite:///sweeps.db?cache=private&uri=true``: SQLite reads URI options only from a ``file:`` name, so
    SQLAlchemy's ``sweeps.db?cache=private`` was a new file of that name; the sweep wrote its study there, while
    every check, lock and reader (``sweeper status``: "There is no SQLite database") took ``sweeps.db``."""
    for options in ("cache=private&uri=true", "mode=rwc&uri=true&timeout=5"):
        folder = tmp_path / options.partition("=")[0]
        folder.mkdir()
        url = f"sqlite:///{folder / 'sweeps.db'}?{options}"
        storage = open_storage(url)
        optuna.create_study(study_name="kept", storage=storage).add_trial(optuna.trial.create_trial(value=1.0))
        close_storage(storage)
        assert sorted(p.name for p in folder.iterdir() if not p.name.endswith(("-wal", "-shm"))) == ["sweeps.db"]
        reader = open_storage(url, read_only=True)
        assert [t.value for t in optuna.load_study(study_name="kept", storage=reader).trials] == [1.0]
        close_storage(reader)
    assert validate_storage_url("sqlite:///x.db?uri=true&timeout=5") == "sqlite:///x.db?uri=true&timeout=5"  # plain


def test_an_immutable_url_warns_that_it_leaves_out_what_the_wal_file_holds(tmp_path: Path, caplog) -> None:
    """SQLite reads an ``immutable=1`` database without its -wal file: a copy taken mid-sweep (the README says to
    copy both) or a killed driver's file showed a study without its newest trials, and said nothing."""
    path = tmp_path / "sweeps.db"
    writer = textwrap.dedent(f"""
        import os, optuna
        from storage.engine import open_storage
        storage = open_storage("sqlite:///{path}")
        study = optuna.create_study(study_name="s", storage=storage)
        study.add_trial(optuna.trial.create_trial(value=1.0))
        os._exit(0)  # as a kill -9: nothing folds the log into the file
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path(__file__).parent.parent)
    assert (tmp_path / "sweeps.db-wal").stat().st_size
    # here the log holds even Optuna's tables: the file alone is empty
    with caplog.at_level(logging.WARNING, logger="storage.engine"), contextlib.suppress(StorageError):
        close_storage(open_storage(f"sqlite:///file:{path}?immutable=1&uri=true", read_only=True))
    assert "sweeps.db-wal is not empty, and immutable=1 does not read it" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="storage.engine"):
        close_storage(open_storage(f"sqlite:///file:{path}?mode=ro&uri=true", read_only=True))  # mode=ro reads it
    assert "immutable" not in caplog.text
    close_storage(open_storage(f"sqlite:///{path}"))  # a writer's last close folds the log into the file
    assert not (tmp_path / "sweeps.db-wal").exists() or not (tmp_path / "sweeps.db-wal").stat().st_size
    with caplog.at_level(logging.WARNING, logger="storage.engine"):
        close_storage(open_storage(f"sqlite:///file:{path}?immutable=1&uri=true", read_only=True))
    assert "immutable" not in caplog.text  # nothing left out: nothing to say


def test_a_sweep_refuses_an_immutable_url_without_first_warning_of_its_unread_wal(tmp_path: Path, caplog) -> None:
    """sweeper run and resume read the study (create=False) before refusing a URL they cannot write: with
    ``immutable=1`` and a -wal file, they warned that the study may lack its newest trials ("read it there without
    immutable=1", as for a reader), then refused the URL for another reason."""
    from sweeper.driver import check_inputs
    from sweeper.preflight import SweepOptions

    path = tmp_path / "sweeps.db"
    writer = textwrap.dedent(f"""
        import os, sqlite3, optuna
        from storage.engine import open_storage
        study = optuna.create_study(study_name="s", storage=open_storage("sqlite:///{path}"))
        sqlite3.connect("{path}").execute("PRAGMA wal_checkpoint(PASSIVE)")  # the study is in the file
        study.add_trial(optuna.trial.create_trial(value=1.0))
        os._exit(0)  # as a kill -9: the trial stays in the -wal file
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path(__file__).parent.parent)
    assert (tmp_path / "sweeps.db-wal").stat().st_size
    space = tmp_path / "space.yaml"
    space.write_text("name: t\nparams:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    url = f"sqlite:///file:{path}?immutable=1&uri=true"
    for options in (SweepOptions(space=str(space), storage=url), SweepOptions(study="s", storage=url)):
        # resume's refusal was "holds no sweeper spec" (it read the study first); now the URL's, as run's
        with caplog.at_level(logging.WARNING, logger="storage.engine"), \
                pytest.raises(StorageError, match="its immutable=1 opens the database read-only"):
            check_inputs(options)
        assert "immutable=1 does not read it" not in caplog.text, options


def test_resume_refuses_an_immutable_url_whose_study_is_still_in_the_wal_file(tmp_path: Path) -> None:
    """A sweep killed before SQLite's first checkpoint leaves even Optuna's tables in the -wal file, which
    ``immutable=1`` does not read: ``sweeper resume NAME`` read the study first and said "There are no studies ...
    Run a sweep first", where run refuses the URL itself (it may not write)."""
    from sweeper.driver import check_inputs
    from sweeper.preflight import SweepOptions

    path = tmp_path / "sweeps.db"
    writer = textwrap.dedent(f"""
        import os, optuna
        from storage.engine import open_storage
        study = optuna.create_study(study_name="s", storage=open_storage("sqlite:///{path}"))
        study.add_trial(optuna.trial.create_trial(value=1.0))
        os._exit(0)  # as a kill -9: the study, its tables too, stays in the -wal file
    """)
    subprocess.run([sys.executable, "-c", writer], check=True, cwd=Path(__file__).parent.parent)
    url = f"sqlite:///file:{path}?immutable=1&uri=true"
    with pytest.raises(StorageError, match="its immutable=1 opens the database read-only, and a sweep writes"):
        check_inputs(SweepOptions(study="s", storage=url))


def test_an_immutable_url_reads_a_wal_database_on_a_read_only_mount(tmp_path: Path) -> None:
    """A sweep's SQLite file (WAL) on a read-only disk: a reading command cannot make its -shm, so ``mode=ro`` alone
    is "unable to open"; the URL's ``immutable=1``, SQLite's way to read it, was dropped for ``mode=ro``."""
    source, mounted = tmp_path / "source", tmp_path / "mounted"
    source.mkdir()
    mounted.mkdir()
    storage = open_storage(f"sqlite:///{source / 'sweeps.db'}")
    optuna.create_study(study_name="kept", storage=storage).add_trial(optuna.trial.create_trial(value=1.0))
    close_storage(storage)
    (source / "sweeps.db-shm").unlink(missing_ok=True)  # as a copy of the file alone has none
    if subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(mounted)], capture_output=True).returncode:
        pytest.skip("a read-only bind mount needs root (mount --bind -o ro)")
    try:
        subprocess.run(["mount", "-o", "remount,bind,ro", str(mounted)], check=True, capture_output=True)
        with pytest.raises(StorageError, match=re.escape(  # SQLite's own limit, not sweeper's; said with the way out
                f"its folder is read-only, and SQLite reads a WAL database (a sweep's) only with a -shm file beside "
                f"it: copy it to a folder you may write, or read it with sqlite:///file:{mounted / 'sweeps.db'}")):
            open_storage(f"sqlite:///{mounted / 'sweeps.db'}", read_only=True)
        storage = open_storage(f"sqlite:///file:{mounted / 'sweeps.db'}?immutable=1&uri=true", read_only=True)
        assert [t.value for t in optuna.load_study(study_name="kept", storage=storage).trials] == [1.0]
        close_storage(storage)
    finally:
        subprocess.run(["umount", str(mounted)], check=True)
