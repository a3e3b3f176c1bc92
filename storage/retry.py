"""One retry policy for every storage operation of a sweep, so a database restart or a dropped connection costs
a pause, never a crashed run.

Transient failures (connection refused or reset, the server shutting down or starting up, an admin shutdown,
a serialization failure, a deadlock, a statement past its timeout, SQLite's "database is locked") are retried
with exponential backoff and jitter until the outage budget runs out; anything else (bad input, a real bug) is
raised at once. A full disk under a SQLite database (:func:`fills_disk`) stops at once, resumable: no wait empties
it. SQLAlchemy's ``pool_pre_ping`` (see :mod:`storage.engine`) replaces the connections a restart
killed, so a retry is simply the same call again. Optuna's RDBStorage would retry trial creation itself, which
duplicated a trial whose commit landed unanswered; :class:`storage.engine.OneTryRDBStorage` leaves it to this policy.

An outage is shared by every thread that meets it: one line when it starts, one when it ends, and one deadline
counted from its first failure.
"""

from __future__ import annotations

import os
import random
import sqlite3
import threading
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import TypeVar

from storage.errors import StorageError

T = TypeVar("T")

# PostgreSQL error codes worth waiting out: serialization_failure, deadlock_detected, admin_shutdown,
# crash_shutdown, cannot_connect_now, too_many_connections, query_canceled (statement_timeout: a table another
# session locks, a stalled server), idle_in_transaction_session_timeout (the server ended the session of a
# trial-creation lock held past it: a dropped connection, which a retry replaces), and the connection_exception
# class (08...). 53100, disk full: an outage's wait rides it out once there is room, or ends resumable (exit 75).
TRANSIENT_SQLSTATES = frozenset({"40001", "40P01", "57P01", "57P02", "57P03", "25P03", "53100", "53300", "57014"})
# "current transaction is aborted": Optuna's get_all_trials retries a failed query in the same transaction
IN_FAILED_TRANSACTION = "25P02"
# Connection-time refusals that no wait will fix (psycopg gives them no SQLSTATE, only text); "invalid": a bad
# option in the URL (sslmode=bogus, keepalives=x, an unknown option).
PERMANENT_CONNECT_ERRORS = ("does not exist", "authentication failed", "no password supplied", "pg_hba.conf",
                            "password is required", "permission denied", "invalid ", "does not support ssl")


BRIEF_RETRY_S = 5.0  # what a one-shot command (status, report, the checks before a sweep) waits for a restart


class StorageUnavailable(StorageError):
    """The storage stayed unreachable for longer than the outage budget (``--storage-timeout``)."""


class Unreachable(Exception):
    """The storage is in an outage: :meth:`OutagePolicy.attempt` did not (or could not) do the operation now."""


def retry_briefly(operation: Callable[[], T], seconds: float = BRIEF_RETRY_S) -> T:
    """``operation()``, riding out a storage restart of up to ``seconds``; then its own error (a wrong host is
    still "cannot reach a PostgreSQL server at ..." and exit 2, not a wait of minutes)."""
    try:
        return OutagePolicy(seconds).call(operation)
    except StorageUnavailable as exc:
        raise (exc.__cause__ or exc) from None


def is_transient(exc: BaseException) -> bool:
    """Whether ``exc`` (an Optuna, SQLAlchemy or driver error) means "try again later" rather than "wrong".

    Every error in the chain that has a view must agree: a wrapped unique violation stays a bug even though
    SQLAlchemy wraps it like a dropped connection.
    """
    verdicts = [v for v in map(_verdict, error_chain(exc)) if v is not None]
    return bool(verdicts) and all(verdicts)


def _verdict(error: BaseException) -> bool | None:
    import sqlalchemy.exc

    sqlstate = getattr(error, "sqlstate", None)
    if sqlstate == IN_FAILED_TRANSACTION:
        return None  # the error that failed the transaction decides
    if isinstance(sqlstate, str):
        return sqlstate in TRANSIENT_SQLSTATES or sqlstate.startswith("08")
    if isinstance(error, sqlalchemy.exc.DBAPIError) and error.connection_invalidated:
        return True
    if isinstance(error, sqlalchemy.exc.TimeoutError):  # no pooled connection came free in time
        return True
    if isinstance(error, sqlite3.OperationalError):
        return any(word in str(error) for word in ("locked", "busy", "disk is full"))  # "database or disk is full"
    if isinstance(error, ConnectionError):
        return True
    if any(kind.__module__.startswith("psycopg") and kind.__name__ in ("OperationalError", "InterfaceError")
           for kind in type(error).__mro__):  # their subclasses too: ConnectionTimeout, from a server that hangs
        return not any(marker in str(error).lower() for marker in PERMANENT_CONNECT_ERRORS)
    return None


def fills_disk(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database or disk is full" (SQLITE_FULL). That disk is the sweep's own (in the
    default layout its checkpoints fill it): it stays full until someone makes room, so the sweep stops at once,
    resumable, rather than wait out --storage-timeout. A PostgreSQL server's full disk (53100) is its server's to
    clear: an outage, waited out."""
    return any(isinstance(error, sqlite3.OperationalError) and "disk is full" in str(error)
               for error in error_chain(exc))


def sqlite_temp_folder() -> Path | None:
    """Where SQLite on Unix writes its temporary files (big sorts, statement journals): the first writable folder of
    SQLITE_TMPDIR, TMPDIR, /var/tmp, /usr/tmp, /tmp and '.', as os_unix.c's unixTempFileDir picks it."""
    folders = (os.environ.get("SQLITE_TMPDIR"), os.environ.get("TMPDIR"), "/var/tmp", "/usr/tmp", "/tmp", ".")
    return next((Path(f) for f in folders if f and os.path.isdir(f) and os.access(f, os.W_OK | os.X_OK)), None)


def error_chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and everything it wraps (causes, contexts, SQLAlchemy's ``orig``)."""
    seen: list[BaseException] = []
    todo: list[BaseException | None] = [exc]
    while todo:
        error = todo.pop()
        if error is not None and not any(error is s for s in seen):
            seen.append(error)
            todo += [error.__cause__, error.__context__, getattr(error, "orig", None)]
    return seen


class OutagePolicy:
    """Retries transient storage failures for up to ``timeout_s`` seconds per outage.

    ``call`` blocks until the operation succeeds (for threads that may wait: the study writer, start-up);
    ``attempt`` tries at most once and raises :class:`Unreachable` instead of waiting (for Ray Tune's event loop,
    which must keep collecting results so trials train on). Past the budget both raise
    :class:`StorageUnavailable`, saying ``exhausted`` where given; so does the first failure that
    :func:`fills_disk`, saying what ``full()`` returns then where given. ``on_outage(since, reason)`` and
    ``on_recovered(seconds)`` are called once per outage, from whichever thread saw it begin or end.
    """

    def __init__(self, timeout_s: float, *, describe: Callable[[BaseException], str] = str,
                 on_outage: Callable[[datetime, str], None] | None = None,
                 on_recovered: Callable[[float], None] | None = None,
                 first_delay_s: float = 0.25, max_delay_s: float = 2.0, exhausted: str | None = None,
                 full: Callable[[], str] | None = None) -> None:
        self.timeout_s = timeout_s
        self.exhausted = exhausted  # what StorageUnavailable says; by default the budget and the last failure
        self.full = full  # what it says once the database's disk is full, worded then; by default that failure
        self.disk_full = False  # a failure that fills_disk was seen: the budget is spent at once, for good
        self.describe = describe
        self.on_outage = on_outage
        self.on_recovered = on_recovered
        self.first_delay_s = first_delay_s
        self.max_delay_s = max_delay_s
        self._lock = threading.Lock()
        self._since: float | None = None  # time.monotonic() of the outage's first failure
        self._failures = 0
        self._next_probe = 0.0
        self._last_reason = ""
        self._last_error: BaseException | None = None

    def call(self, operation: Callable[[], T]) -> T:
        while True:
            try:
                return self._try(operation)
            except Unreachable:
                time.sleep(self._delay())

    def attempt(self, operation: Callable[[], T]) -> T:
        with self._lock:
            waiting = self._since is not None and time.monotonic() < self._next_probe
        if waiting:
            self._check_deadline()
            raise Unreachable(self._last_reason)
        return self._try(operation)

    def overdue(self) -> bool:
        """Whether the current outage has outlasted the budget (the sweep should stop)."""
        with self._lock:
            return self.disk_full or (self._since is not None and time.monotonic() - self._since > self.timeout_s)

    @property
    def in_outage(self) -> bool:
        return self._since is not None

    def _try(self, operation: Callable[[], T]) -> T:
        self._check_deadline()
        try:
            result = operation()
        except Exception as exc:
            if not is_transient(exc):
                raise
            self._failed(exc)
            raise Unreachable(self._last_reason) from exc
        self._succeeded()
        return result

    def _failed(self, exc: BaseException) -> None:
        started = False
        with self._lock:
            self._last_reason, self._last_error = self.describe(exc), exc
            self.disk_full = self.disk_full or fills_disk(exc)
            if self._since is None:
                self._since, self._failures, started = time.monotonic(), 0, True
            self._failures += 1
            self._next_probe = time.monotonic() + self._backoff(self._failures)
        if started and not self.disk_full and self.on_outage is not None:  # not an outage: no "unreachable" line
            self.on_outage(datetime.now(), self._last_reason)
        self._check_deadline()

    def _succeeded(self) -> None:
        with self._lock:
            since, self._since = self._since, None
        if since is not None and self.on_recovered is not None:
            self.on_recovered(time.monotonic() - since)

    def _check_deadline(self) -> None:
        if self.overdue():
            raise StorageUnavailable(self.why_stopped()) from self._last_error

    def why_stopped(self) -> str:
        """What :class:`StorageUnavailable` says: the database's disk is full, or the outage outlasted its budget."""
        if self.disk_full:
            return self.full() if self.full else f"The disk under the database took no more writes " \
                                                  f"({self._last_reason})."
        return self.exhausted or f"The storage stayed unreachable for more than {self.timeout_s:g} s " \
                                 f"({self._last_reason})."

    def _backoff(self, failures: int) -> float:
        return min(self.max_delay_s, self.first_delay_s * 2 ** (failures - 1)) * random.uniform(0.5, 1.5)

    def _delay(self) -> float:
        with self._lock:
            return max(0.0, self._next_probe - time.monotonic())
