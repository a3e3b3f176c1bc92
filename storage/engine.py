"""Open an Optuna RDB storage that survives real use: a dashboard reading while a sweep writes, a server that is
down, a password that is wrong.

SQLite is tuned per connection (WAL journal, 10 s busy timeout, ``synchronous=NORMAL``) so a concurrent reader
such as optuna-dashboard never makes the sweep's writes fail. PostgreSQL gets ``pool_pre_ping`` so a connection
dropped during a long trial is replaced instead of failing the next write. Every failure to open becomes one
:class:`StorageError` with the URL masked.

Only the sweep creates Optuna's tables. Everything else opens an existing study database (``create=False``): a
database without Optuna's tables is refused before Optuna's constructor could create them, and a read-only open
(``read_only=True``: status, best, report, export) connects so that the server or SQLite itself refuses writes.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import logging
import os
import shlex
import sqlite3
import tempfile
import time
import warnings
from pathlib import Path
from typing import Any

import optuna
import sqlalchemy
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SAWarning, SQLAlchemyError

from storage import stall
from storage.errors import NotAStudyDatabase, StorageError
from storage.urls import is_sqlite, mask_in_text, mask_url, parse_url, sqlite_path, validate_storage_url

SQLITE_BUSY_TIMEOUT_S = 10  # then the sweep's storage.retry policy waits on, with a console line
# how long a driver leaving folds its WAL in: past it, a writer or reader holding the file keeps part of the log (safe)
FOLD_WAIT_S = 2.0
MAX_SQLITE_TIMEOUT_S = 2_147_483  # SQLite keeps it in milliseconds in a C int
POSTGRES_CONNECT_TIMEOUT_S = 10
POSTGRES_TCP_USER_TIMEOUT_MS = 60_000  # unacknowledged data this long: the connection is dead (libpq, Linux)
POSTGRES_STATEMENT_TIMEOUT_MS = 60_000  # sweeper's statements take milliseconds; this long: something holds them
# A database holding these is one Optuna wrote (alembic_version included: without it Optuna would stamp it).
OPTUNA_TABLES = ("studies", "trials", "version_info", "alembic_version")
CREATE_ATTEMPTS = 5  # opening a new database that another driver is creating at the same moment

_logger = logging.getLogger(__name__)


def _not_optunas_fallback_notice(record: logging.LogRecord) -> bool:
    """Optuna logs a failed trials query with its SQL, then retries it another way. In an outage that retry fails
    too, and the outage policy's one line says what happened; without an outage the retry works."""
    return not str(record.msg).startswith("Caught an error from sqlalchemy")


logging.getLogger("optuna.storages._rdb.storage").addFilter(_not_optunas_fallback_notice)


class OneTryRDBStorage(optuna.storages.RDBStorage):
    """Optuna's RDB storage, except that a trial is created in one try, not five.

    Optuna tries again on any failed commit of a new trial, but a commit whose answer alone was lost (the
    connection dropped as the server committed) did create it: the retry made a second trial, a RUNNING one that
    nobody ran, or a second WAITING copy of an enqueued point, trained twice. The sweep's outage policy retries
    instead, and its callers find what landed (the searcher's ask token, ``enqueue_trial(skip_if_exists=True)``).
    """

    def _create_new_trial(self, study_id: int, template_trial: optuna.trial.FrozenTrial | None = None
                          ) -> optuna.trial.FrozenTrial:
        from optuna.storages._rdb import models
        from optuna.storages._rdb.storage import _create_scoped_session

        with _create_scoped_session(self.scoped_session) as session:
            models.StudyModel.find_or_raise_by_id(study_id, session, for_update=True)  # numbers trials one at a time
            row = self._get_prepared_new_trial(study_id, template_trial, session)
            if template_trial is None:
                return optuna.trial.FrozenTrial(
                    number=row.number, state=row.state, value=None, datetime_start=row.datetime_start,
                    datetime_complete=None, params={}, distributions={}, user_attrs={}, system_attrs={},
                    intermediate_values={}, trial_id=row.trial_id)
            frozen = copy.deepcopy(template_trial)
            frozen.number, frozen.datetime_start, frozen._trial_id = row.number, row.datetime_start, row.trial_id
            return frozen


def open_storage(
    url: str,
    *,
    heartbeat_interval: int | None = None,
    grace_period: int | None = None,
    create: bool = True,
    read_only: bool = False,
) -> optuna.storages.RDBStorage:
    """Connect to the storage at ``url`` (validated first), creating Optuna's tables if they are missing.

    No study is written: the sweep opens its storage this way before it knows whether the study exists.

    ``create=False`` opens an existing Optuna database and nothing else: a SQLite file that does not exist, a
    database with no tables ("no studies") and one holding only other tables ("not an Optuna study database")
    are errors, and nothing is created, stamped or switched to WAL. ``read_only=True`` (implies ``create=False``)
    also makes every connection read-only: SQLite opens the file with ``mode=ro``, PostgreSQL sessions default to
    read-only transactions, so not a byte can change whatever Optuna tries.

    ``heartbeat_interval`` / ``grace_period`` (seconds) go to Optuna; an ask/tell driver records heartbeats and
    fails stale trials itself (https://optuna.readthedocs.io/en/stable/reference/generated/optuna.storages.RDBStorage.html).
    """
    url = validate_storage_url(url)
    check_sqlite_options(url)
    _check_positive("heartbeat_interval", heartbeat_interval)
    _check_positive("grace_period", grace_period)
    if grace_period is not None and heartbeat_interval is None:
        raise StorageError("grace_period only has an effect together with heartbeat_interval.")
    create = create and not read_only
    path = sqlite_path(url)
    if not create and path is not None and not path.is_file():
        raise StorageError(f"There is no SQLite database at {str(path.absolute())!r} ({mask_url(url)}).")
    if read_only:  # the readers; the dashboard, which writes notes, says it itself; run and resume refuse it
        warn_unread_wal(url)
    engine_kwargs = _engine_kwargs(url, tune=create, read_only=read_only)
    try:
        if not create:
            _check_optuna_tables(url, engine_kwargs)
        for attempt in range(1, CREATE_ATTEMPTS + 1):
            try:
                with warnings.catch_warnings():
                    # heartbeat_interval is "experimental" in Optuna 5; it tells the user nothing they can act on.
                    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                    return OneTryRDBStorage(url, engine_kwargs=engine_kwargs, skip_table_creation=not create,
                                            heartbeat_interval=heartbeat_interval, grace_period=grace_period)
            except (SQLAlchemyError, optuna.exceptions.StorageInternalError) as exc:
                failed = exc
            # two drivers creating one new database: the loser's CREATE TABLE or version stamp fails on the winner's,
            # and the tables it finds next time are complete. Looked for outside the except, so that a connection
            # dropped meanwhile does not carry the unique violation in its chain (the outage policy waits it out)
            if not (create and attempt < CREATE_ATTEMPTS and set(OPTUNA_TABLES) & _table_names(url, engine_kwargs)):
                raise failed
            time.sleep(0.1 * attempt)
    except ImportError:
        raise StorageError(
            f"Cannot open {mask_url(url)}: the PostgreSQL driver psycopg 3 is not installed; "
            "install it with pip install 'sweeper[postgres]' (or psycopg[binary])."
        ) from None
    except (SQLAlchemyError, optuna.exceptions.StorageInternalError, RuntimeError, sqlite3.Error) as exc:
        raise as_storage_error(exc, url) from None


def check_writable(url: str) -> None:
    """Refuse a storage the sweep could open but not write, before anything starts (Ray, the results folder): a
    SQLite file or folder that is read-only (SQLite writes its journal beside the file), a PostgreSQL role without
    CREATE on its schema (the tables are new) or INSERT on Optuna's trials. Raises StorageError."""
    url = validate_storage_url(url)
    if (path := sqlite_path(url)) is not None:
        if wal := _orphaned_wal(path):
            raise StorageError(f"{str(wal.absolute())!r} holds a sweep's writes, but its database is gone (moved or "
                               "deleted while the sweep wrote it), and a new one there would throw them away: put "
                               "the database back beside it, or remove the -wal file to start anew.")
        check_no_read_only_option(url)
        folder = path.absolute().parent
        try:  # and room for it: a full disk is bad input before the study is made, as for --results-dir, not an
            with tempfile.TemporaryFile(dir=folder) as probe:  # outage waited out for --storage-timeout
                probe.write(bytes(1 << 16))
                probe.flush()
                os.fsync(probe.fileno())
        except OSError as exc:
            raise StorageError(f"Cannot write {mask_url(url)}: no file can be created in {str(folder)!r} "
                               f"({exc.strerror or exc}), where SQLite keeps the database and its journal.") from None
        if path.is_file() and not os.access(path, os.W_OK):
            raise StorageError(f"Cannot write {mask_url(url)}: the file {str(path.absolute())!r} is read-only.")
        return
    if is_sqlite(url):
        return  # in memory
    engine = sqlalchemy.create_engine(url, **_engine_kwargs(url))
    try:
        with engine.connect() as connection:
            made = "trials" in sqlalchemy.inspect(connection).get_table_names()
            allowed = connection.execute(sqlalchemy.text(
                "SELECT has_table_privilege('trials', 'INSERT')" if made else
                "SELECT has_schema_privilege(current_schema(), 'CREATE')")).scalar()
    except (SQLAlchemyError, RuntimeError) as exc:
        raise as_storage_error(exc, url) from None
    finally:
        engine.dispose()
    if not allowed:
        raise StorageError(f"Cannot write {mask_url(url)}: the user may not " + (
            "add rows to Optuna's tables (GRANT INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ... TO it)." if made else
            "create tables in its schema (GRANT CREATE ON SCHEMA public TO it, or run the first sweep as the owner)."))


def check_no_read_only_option(url: str) -> None:
    """Refuse a SQLite URI whose ``mode=ro`` or ``immutable=1`` keeps a sweep from writing, from the URL alone: else
    Optuna's first write is a traceback, not exit 2, and ``sweeper resume NAME``, which reads the study first, said
    "There are no studies" of a study that ``immutable=1`` cannot see (a killed sweep's, still in its -wal file)."""
    if option := _sqlite_read_only_option(url):
        raise StorageError(f"Cannot write {mask_url(url)}: its {option} opens the database read-only, and a "
                           f"sweep writes its trials there: leave {option} out (the reading commands open it "
                           "read-only without it; on a read-only disk they keep immutable=1).")


def _sqlite_read_only_option(url: str) -> str | None:
    """The option of a SQLite URI (``?uri=true``) that opens the file read-only, ``mode=ro`` or ``immutable=1``."""
    query = make_url(url).query
    if not _true(query.get("uri")):
        return None  # without uri=true SQLite takes no such option (check_sqlite_options refuses the unknown ones)
    return "immutable=1" if _true(query.get("immutable")) else "mode=ro" if query.get("mode") == "ro" else None


def writable_url(url: str) -> str:
    """``url`` without the options that open a SQLite file read-only (:func:`_sqlite_read_only_option`), spelt as
    given otherwise: the URL a command that writes the study needs (``sweeper resume``), which :func:`check_writable`
    would refuse with them. Any other URL as it is."""
    if _sqlite_read_only_option(url) is None:
        return url
    base, _, query = url.partition("?")
    kept = [option for option in query.split("&") if not _opens_read_only(option)]
    return base + ("?" + "&".join(kept) if kept else "")  # uri=true stays


def _opens_read_only(option: str) -> bool:
    """Whether a URI query's ``key=value`` opens the file read-only, as :func:`_sqlite_read_only_option` reads it."""
    key, _, value = option.partition("=")
    return (key == "immutable" and _true(value)) or (key == "mode" and value == "ro")


def _true(value: Any) -> bool:
    return isinstance(value, str) and value.strip().lower() in ("1", "true", "yes", "on")


def check_sqlite_options(url: str) -> None:
    """Refuse a SQLite URL option that the driver cannot read (``?timeout=abc``: a traceback at the first connect)
    or would ignore (a misspelt one: a warning, and the setting silently off)."""
    if not is_sqlite(url):
        return
    parsed = make_url(url)
    with warnings.catch_warnings():
        warnings.simplefilter("error", SAWarning)
        try:
            parsed.get_dialect()().create_connect_args(parsed)
        except (SAWarning, ValueError, TypeError) as exc:
            raise StorageError(f"{mask_url(url)}: bad query option: {exc}".split(" (Background on")[0]) from None
    if not 0 <= sqlite_busy_timeout(url) <= MAX_SQLITE_TIMEOUT_S:  # past it (or NaN) SQLite waits for no lock at all
        raise StorageError(f"{mask_url(url)}: bad query option: timeout is the seconds a statement waits for another "
                           f"process's lock, from 0 to {MAX_SQLITE_TIMEOUT_S}")


def _table_names(url: str, engine_kwargs: dict[str, Any]) -> set[str]:
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        return set(sqlalchemy.inspect(engine).get_table_names())
    finally:
        engine.dispose()


def _has_rows(url: str, engine_kwargs: dict[str, Any], table: str) -> bool:
    engine = sqlalchemy.create_engine(url, **engine_kwargs)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None
    finally:
        engine.dispose()


def _check_optuna_tables(url: str, engine_kwargs: dict[str, Any]) -> None:
    """Refuse a database Optuna did not write, by its table names alone (reading them writes nothing)."""
    tables = _table_names(url, engine_kwargs)
    if not tables:
        raise NotAStudyDatabase(f"There are no studies in {mask_url(url)}: the database is empty (no tables at "
                                "all). Run a sweep first (sweeper run SPACE), or check the storage URL.", empty=True)
    missing = [table for table in OPTUNA_TABLES if table not in tables]
    if len(missing) == len(OPTUNA_TABLES):
        shown = ", ".join(sorted(tables)[:10]) + (f" (and {len(tables) - 10} more)" if len(tables) > 10 else "")
        raise NotAStudyDatabase(f"{mask_url(url)} is not an Optuna study database: it holds the tables {shown} and "
                                f"none of Optuna's ({', '.join(OPTUNA_TABLES)}). Check the storage URL; nothing was "
                                "changed.", empty=False)
    if missing == ["alembic_version"] and not _has_rows(url, engine_kwargs, "studies"):
        # Optuna creates its tables, then stamps their version: a driver killed between the two left no study
        raise NotAStudyDatabase(f"There are no studies in {mask_url(url)} yet: a sweep is creating it right now, or "
                                "its creation was cut short before any study was written (the next sweep completes "
                                "it).", empty=True)
    if missing:
        raise NotAStudyDatabase(f"{mask_url(url)} is not a complete Optuna study database: the tables "
                                f"{', '.join(missing)} are missing. Nothing was changed; open it with the Optuna "
                                "version that wrote it (optuna storage upgrade --storage URL brings it up to date).",
                                empty=False)


def close_storage(storage: optuna.storages.RDBStorage) -> None:
    """Return this thread's session and close pooled connections (PostgreSQL servers count them)."""
    storage.remove_session()
    storage.engine.dispose()


def _orphaned_wal(path: Path) -> Path | None:
    """``PATH-wal`` holding writes while ``PATH``, the database they belong to, is gone (moved or deleted mid-sweep)."""
    wal = path.with_name(path.name + "-wal")
    return wal if not path.exists() and wal.is_file() and wal.stat().st_size else None


def fold_sqlite_wal(url: str) -> None:
    """Move the committed trials of a SQLite study from its write-ahead log into the database file itself.

    Under WAL, commits sit in ``NAME.db-wal`` until a checkpoint, and a driver that leaves with ``os._exit`` never
    runs SQLite's last-connection checkpoint: a user who then copies or uploads only ``sweeps.db`` would carry
    an empty study. A reader still holding the file (a dashboard) may keep part of the log; nothing is lost then.
    At most :data:`FOLD_WAIT_S`, not the busy timeout: a driver leaving because another process held the file past
    --storage-timeout (exit 75), or on Ctrl-C while it did, waited that out once more, silent.
    """
    path = sqlite_path(url)
    if path is not None and (wal := _orphaned_wal(path)):
        _logger.warning("%s is gone, but %s holds this sweep's trials: the database was moved or deleted while the "
                        "sweep wrote it; put it back beside its -wal file (or copy both) to keep them", path, wal)
    if path is None or not path.exists():
        return
    connection = sqlite3.connect(path, timeout=min(sqlite_busy_timeout(url), FOLD_WAIT_S))
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except sqlite3.Error as exc:
        _logger.warning("Could not fold %s-wal into %s: %s (the trials are safe in the log)", path, path, exc)
    finally:
        connection.close()


def as_storage_error(exc: BaseException, url: str, action: str = "open") -> StorageError:
    """One clear, password-free :class:`StorageError` for a failure to talk to the database at ``url``.

    Public so the readers wrap errors that happen later the same way, e.g. a server that goes away mid-read:
    ``as_storage_error(exc, url, "read from")`` gives "Cannot read from storage ...: <reason> (driver said: ...)".
    Optuna wraps driver errors in ``StorageInternalError`` with a misleading message ("invalid data in the
    commit"); the real cause is dug out of the exception chain.
    """
    cause = exc
    while cause.__cause__ is not None and not hasattr(cause, "orig"):  # StorageInternalError wraps SQLAlchemy's
        cause = cause.__cause__
    driver = getattr(cause, "orig", None) or cause
    detail = mask_in_text(" ".join(str(driver).split()), url)
    reason = _reason(detail.lower(), url)
    message = f"Cannot {action} storage {mask_url(url)}"
    if reason:
        message = f"{message}: {reason}"
    return StorageError(f"{message} (driver said: {detail})")


def _reason(detail: str, url: str) -> str:
    """What the driver's message means for the user, in words they can act on; '' when we do not know."""
    where = _where(url)
    if "password authentication failed" in detail or "authentication failed" in detail:
        return f"authentication failed at {where}: check the user name and password."
    if "no password supplied" in detail:
        return f"the server at {where} wants a password and the URL has none."
    if "does not exist" in detail and "database" in detail:
        if not (database := _url_part(url, "database", "dbname")):  # libpq then opens the user's namesake
            return f"the URL names no database, and {where} has none named after the user: add /DBNAME to the URL."
        return f"the database {database!r} does not exist at {where}: create it first ({_createdb(url, database)})."
    if "role" in detail and "does not exist" in detail:
        return f"the user {_url_part(url, 'username', 'user')!r} does not exist at {where}."
    unresolved = ("failed to resolve host", "could not translate host name", "name or service not known",
                  "temporary failure in name resolution")
    if any(text in detail for text in unresolved) and not is_sqlite(url):  # not "is it running": no server was tried
        given, environment = _url_part(url, "host", "host"), os.environ.get("PGHOST")  # libpq's, where the URL has none
        host = f" {given!r}" if given else f" {environment!r} (PGHOST)" if environment else ""
        return f"the host name{host} does not resolve to an address: is it spelled right, and can this machine reach " \
               "its DNS?"
    unreachable = (
        "connection refused", "could not connect", "timeout expired", "timed out", "no route to host",
        "network is unreachable", "no such file or directory",
    )
    if any(text in detail for text in unreachable) and not is_sqlite(url):
        return f"cannot reach a PostgreSQL server at {where}: is it running, and are the host and port right?"
    if "unable to open database file" in detail:
        if (path := sqlite_path(url)) is not None and path.is_file() and not os.access(path.absolute().parent, os.W_OK):
            return f"its folder is read-only, and SQLite reads a WAL database (a sweep's) only with a -shm file " \
                   f"beside it: copy it to a folder you may write, or read it with sqlite:///file:{path.absolute()}" \
                   "?immutable=1&uri=true (which leaves out what its -wal file holds)."
        if path is not None and path.is_file() and not os.access(path, os.R_OK | os.W_OK):
            return f"SQLite cannot open the file {str(path.absolute())!r}: you may not read and write it " \
                   "(ls -l shows its owner and mode)."
        return "SQLite cannot open or create the file: check that the folder exists and is writable."
    if "database is locked" in detail:
        return f"the SQLite file stayed locked by another process for more than {sqlite_busy_timeout(url):g} s."
    if "statement timeout" in detail:
        return "a statement waited past statement_timeout: another session may hold a lock on Optuna's tables " \
               "(pg_locks shows it), or the server is stalled."
    if "server closed the connection" in detail or "connection reset" in detail or "terminating connection" in detail:
        return f"the server at {where} (or a proxy before it) cut the connection: it may be restarting."
    if "not a database" in detail:
        return "the file exists but is not a SQLite database."
    if "no longer compatible with the table schema" in detail:
        if "pip install -u optuna" in detail:  # a newer schema: `optuna storage upgrade` cannot read it either
            return "the database was written by a newer Optuna version than this one: install that version " \
                   "(pip install -U optuna) to read it."
        return f"the database was written by another Optuna version; upgrade it with optuna storage upgrade " \
               f"--storage '{mask_url(url)}' (after a backup), or use the matching optuna version."
    return ""


def _createdb(url: str, database: str) -> str:
    """The createdb command for the URL's server and user: a bare one reached the local socket as the login user."""
    parts = (("-h", "host", "host"), ("-p", "port", "port"), ("-U", "username", "user"))
    flags = [f"{flag} {shlex.quote(value)}" for flag, attribute, option in parts
             if (value := _url_part(url, attribute, option))]
    return " ".join(["createdb", *flags, shlex.quote(database)])


def _where(url: str) -> str:
    """host:port of a PostgreSQL URL, for messages (never the user or password)."""
    if parse_url(url) is None:
        return "the server"
    host = _url_part(url, "host", "host")
    host = f"[{host}]" if host and ":" in host else host  # IPv6: [::1]:5432
    return f"{host}:{_url_part(url, 'port', 'port') or 5432}" if host else "the local socket"


def _url_part(url: str, attribute: str, option: str) -> str | None:
    """A part of the URL as libpq gets it: the query's option (``?host=db&user=me``) wins over the URL's own, as
    SQLAlchemy passes the query last."""
    parsed = parse_url(url)
    value = (parsed.query.get(option) if parsed is not None else None) or getattr(parsed, attribute, None)
    return str(value[0] if isinstance(value, tuple) else value) if value else None


def _engine_kwargs(url: str, *, tune: bool = True, read_only: bool = False) -> dict[str, Any]:
    """SQLAlchemy ``create_engine`` arguments for ``url``.

    They must be picklable: Ray pickles ``OptunaSearch`` (storage included) into its experiment checkpoints,
    and ``RDBStorage.__setstate__`` rebuilds the engine from these kwargs. That is why the SQLite tuning is a
    module-level function given as ``pool_events`` (attached before the first connection, which Optuna opens
    inside ``RDBStorage.__init__``) rather than a listener added to the engine afterwards.

    ``tune=False`` leaves SQLite's journal mode alone: switching to WAL rewrites the file's header, which only
    the sweep that writes the file may do (a file sweeper made is in WAL mode already).
    """
    if is_sqlite(url):
        path = sqlite_path(url)
        if read_only and path is not None:
            immutable = _sqlite_read_only_option(url) == "immutable=1"  # kept: how a read-only disk opens
            return {"creator": functools.partial(_connect_sqlite_read_only, path, sqlite_busy_timeout(url), immutable)}
        if not tune:
            return {"connect_args": {"timeout": sqlite_busy_timeout(url)}}
        return {
            "connect_args": {"timeout": sqlite_busy_timeout(url)},
            "pool_events": [(_tune_sqlite_connection, "connect")],
        }
    query = make_url(url).query  # what the URL sets wins: connect_args would silently replace it
    connect_args: dict[str, Any] = {key: value for key, value in {
        "connect_timeout": POSTGRES_CONNECT_TIMEOUT_S, "application_name": "sweeper",
        # a cut network fails a connection within a minute instead of hanging: keepalives probe an idle one,
        # tcp_user_timeout bounds a query whose packets go unacknowledged (else the kernel retries ~15 minutes)
        "keepalives": 1, "keepalives_idle": 30, "keepalives_interval": 10, "keepalives_count": 3,
        "tcp_user_timeout": POSTGRES_TCP_USER_TIMEOUT_MS,
    }.items() if key not in query}
    if read_only:  # added to the URL's own options (e.g. -csearch_path=...), never instead of them
        connect_args["options"] = " ".join(filter(None, (query.get("options"), "-c default_transaction_read_only=on")))
    # pool_pre_ping: a connection a server restart killed is replaced before use, not failed;
    # pool_recycle: renewed before firewalls and proxies drop idle connections silently.
    return {"pool_pre_ping": True, "pool_recycle": 1800, "connect_args": connect_args,
            "pool_events": [(_limit_statement_time, "connect")]}


def _limit_statement_time(dbapi_connection: Any, _connection_record: object) -> None:
    """SQLAlchemy ``connect`` listener: no statement waits longer than POSTGRES_STATEMENT_TIMEOUT_MS, unless the
    URL (``?options=-cstatement_timeout=...``), the role or the database set a limit of their own.

    A table that another session locks (a migration, a ``VACUUM FULL``, a transaction left open) would otherwise
    stall the sweep silently and for good; cancelled by the server, the statement is retried by the outage
    policy, which says so on the console. A SET rather than a startup option: connection poolers such as
    PgBouncer refuse unknown startup options. A server too frozen to cancel anything is :mod:`storage.stall`'s.

    Every session is in UTC too, whatever PGTZ or the role say: Optuna writes heartbeats with the server's now()
    into a column without a time zone, and a driver in another zone would take another's live trials for dead.
    """
    with dbapi_connection.cursor() as cursor:
        cursor.execute("SET TIME ZONE 'UTC'")
        limit_ms = int(cursor.execute("SELECT setting FROM pg_settings WHERE name = 'statement_timeout'").fetchone()[0])
        if limit_ms == 0:
            limit_ms = POSTGRES_STATEMENT_TIMEOUT_MS
            cursor.execute(f"SET statement_timeout = {limit_ms}")
    dbapi_connection.commit()
    stall.watch(dbapi_connection, limit_ms / 1000)


def warn_unread_wal(url: str) -> None:
    """SQLite opened with ``immutable=1`` reads the database file alone: what its -wal file holds (a sweep's newest
    trials, where it was copied mid-sweep or its driver killed) is silently left out, so the reading commands and
    the dashboard would show a study without them. Nothing for another URL. Only the -wal's size is read, hence
    "may": one whose writes a checkpoint already folded into the file keeps its size."""
    path = sqlite_path(url)
    if path is None or _sqlite_read_only_option(url) != "immutable=1":
        return
    wal = path.with_name(path.name + "-wal")
    with contextlib.suppress(OSError):
        if wal.stat().st_size:
            _logger.warning("%s is not empty, and immutable=1 does not read it: the study may lack its newest trials. "
                            "Copy the database with its -wal file to a folder this user may write, and read it there "
                            "without immutable=1.", wal)


def _connect_sqlite_read_only(path: Path, timeout: float, immutable: bool) -> sqlite3.Connection:
    """A connection SQLite itself keeps from writing the file (``mode=ro``); it still sees a live sweep's WAL.
    ``immutable`` (the URL's ``immutable=1``) reads without locks or the -shm file, which a WAL database on a
    read-only disk (a ro mount or volume, an archive) cannot get: ``mode=ro`` alone is "unable to open" there."""
    options = "mode=ro" + "&immutable=1" * immutable
    return sqlite3.connect(f"{path.absolute().as_uri()}?{options}", uri=True, timeout=timeout, check_same_thread=False)


def sqlite_busy_timeout(url: str) -> float:
    """Seconds a SQLite statement waits out another process's lock: the URL's ``?timeout=`` (SQLAlchemy's and
    Python's name for it), else 10; past it the sweep's outage policy waits on, with a console line."""
    value = make_url(url).query.get("timeout")
    return float(value) if isinstance(value, str) else SQLITE_BUSY_TIMEOUT_S


def _tune_sqlite_connection(dbapi_connection: sqlite3.Connection, _connection_record: object) -> None:
    """SQLAlchemy ``connect`` listener: settings that let a reader and a writer share one SQLite file.

    WAL lets readers keep reading while the sweep commits, instead of a reader's shared lock making the writer's
    commit fail with "database is locked"; it is stored in the file, so setting it again is a no-op.
    The connection's busy timeout (``_engine_kwargs``) makes two writers (the sweep and a dashboard note) wait for
    each other instead of failing.
    ``synchronous=NORMAL`` is WAL's recommended durability: a power cut may lose the last commits, never corrupt.
    """
    cursor = dbapi_connection.cursor()
    try:
        mode = _switch_to_wal(cursor)
        cursor.execute("PRAGMA synchronous = NORMAL")
    finally:
        cursor.close()
    if str(mode).lower() not in ("wal", "memory"):
        # Network filesystems (NFS, SMB) cannot share WAL's memory map; the sweep still works, with rollback locks.
        _logger.warning("SQLite kept journal_mode=%s instead of WAL; readers may delay writes.", mode)


def _switch_to_wal(cursor: sqlite3.Cursor) -> str:
    """``PRAGMA journal_mode = WAL``, waiting out another driver that is creating the same new file.

    SQLite answers this pragma "database is locked" at once, without its busy handler, while another connection
    holds the new file; two drivers started together on one new study database would fail on it.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_S
    while True:
        try:
            return cursor.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.05)


def _check_positive(name: str, value: int | None) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
        raise StorageError(f"{name} must be a whole number of seconds > 0, not {value!r}.")
