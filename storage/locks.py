"""A lock per study that the drivers sharing it take around "count the trials, then create one".

Optuna's storage has no compare-and-set on a study's trial count: two drivers that both counted N-1 trials of a
budget of N both created the N-th, and the study ended with N+1. Held by one driver at a time, whatever its
process or host, the count and the creation are one step.

PostgreSQL: an advisory lock, taken in a transaction of its own and released when that ends (or its connection
dies, or sits idle in it past statement_timeout). SQLite: ``flock`` on a file beside the database
(``sweeps.db-sweeper-lock``), never on the database itself, whose own locks it would disturb; the kernel releases
it when the process dies. A wait past the statement timeout (PostgreSQL) or the busy timeout (SQLite) fails as a
transient error, which the outage policy retries.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import sqlite3
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import optuna
import sqlalchemy

from storage.engine import sqlite_busy_timeout
from storage.urls import is_sqlite, sqlite_path

LOCK_CLASS = 0x73777072  # b"swpr": the first key of sweeper's advisory locks; the study's id is the second
LOCK_SUFFIX = "-sweeper-lock"


@contextlib.contextmanager
def creating_trials(study: optuna.Study) -> Iterator[None]:
    """Held while this driver counts ``study``'s trials and creates one: no other driver does both meanwhile."""
    storage = getattr(study._storage, "_backend", study._storage)  # Optuna wraps an RDBStorage in a cache
    if not isinstance(storage, optuna.storages.RDBStorage):  # in memory: this process alone
        yield
    elif is_sqlite(storage.url):
        path = sqlite_path(storage.url)
        # beside the file a symlink points to, as SQLite's -wal and -shm: a driver that opens the database through
        # a link and one that opens it by its own path must take one lock
        with contextlib.nullcontext() if path is None else _file_lock(path, sqlite_busy_timeout(storage.url)):
            yield
    else:
        with storage.engine.connect() as connection, connection.begin():
            # a holder that froze (SIGSTOP, a lost network) loses its session after statement_timeout idle in this
            # transaction, and the lock with it: the other drivers' asks wait no longer than for a stuck statement
            connection.execute(sqlalchemy.text("SELECT set_config('idle_in_transaction_session_timeout', "
                                               "current_setting('statement_timeout'), true)"))
            connection.execute(sqlalchemy.text("SELECT pg_advisory_xact_lock(:lock, :study)"),
                               {"lock": LOCK_CLASS, "study": study._study_id})
            yield


def lock_path(database: Path) -> Path:
    """The lock file of the SQLite database ``database``: beside the file itself, links resolved."""
    real = database.resolve()
    return real.with_name(real.name + LOCK_SUFFIX)


def _open_lock_file(path: Path, database: Path) -> int:
    """Opened for writing where this user may: an NFS client emulates ``flock`` with a byte-range lock, whose
    exclusive kind needs a writable descriptor (EBADF on a read-only one, and every sweep on the share crashed);
    else read-only, which a local ``flock`` takes, so whoever may write the database takes a lock file another user
    made. A new one gets the database's mode, past the umask, as SQLite gives its -wal and -shm."""
    try:
        mode = stat.S_IMODE(database.stat().st_mode) & 0o666 | 0o600
    except OSError:
        mode = 0o644
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_EXCL, mode)
    except FileExistsError:
        try:
            return os.open(path, os.O_RDWR)
        except OSError:  # not this user's to write (EACCES), or a read-only file system (EROFS)
            return os.open(path, os.O_RDONLY)
    with contextlib.suppress(OSError):
        os.fchmod(fd, mode)
    return fd


@contextlib.contextmanager
def _file_lock(database: Path, timeout_s: float) -> Iterator[None]:
    path = lock_path(database)
    with open(_open_lock_file(path, database), "rb") as file:  # closed, it is released
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(file, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:  # "locked": retried as SQLite's own busy database is
                    raise sqlite3.OperationalError(f"database is locked: another driver holds {path}") from None
                time.sleep(0.01)
        yield
