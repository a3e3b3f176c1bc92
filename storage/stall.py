"""Cut a PostgreSQL connection whose statement the server never answers, so the outage policy can take over.

``statement_timeout`` is enforced by the server, and a frozen server (a paused VM, a hung disk, SIGSTOP) enforces
nothing; its kernel still acknowledges every packet, so neither TCP keepalives nor ``tcp_user_timeout`` notice.
Without this, the sweep's next write waits for as long as the freeze lasts, past any ``storage_timeout``.

One daemon thread looks at every open connection once a second. A connection that stays busy on a statement
for twice its ``statement_timeout`` plus :data:`STALL_MARGIN_S` has its socket shut down: psycopg raises "server
closed the connection", SQLAlchemy drops the connection, and the outage policy reconnects (``connect_timeout``
bounds that) and retries, or stops the sweep, resumable, once the outage outlasts its budget.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import weakref
from typing import Any

STALL_MARGIN_S = 5.0
POLL_S = 1.0

_logger = logging.getLogger(__name__)
_lock = threading.Lock()
_watched: weakref.WeakKeyDictionary[Any, _Watch] = weakref.WeakKeyDictionary()
_thread: threading.Thread | None = None


class _Watch:
    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self.busy_since: float | None = None


def watch(connection: Any, statement_timeout_s: float) -> None:
    """Watch a psycopg 3 connection from now until it is closed or garbage."""
    global _thread
    with _lock:
        _watched[connection] = _Watch(2 * statement_timeout_s + STALL_MARGIN_S)
        if _thread is None:
            _thread = threading.Thread(target=_watch_forever, name="sweeper-postgres-stall", daemon=True)
            _thread.start()


def _watch_forever() -> None:
    from psycopg.pq import TransactionStatus

    while True:
        time.sleep(POLL_S)
        with _lock:
            watched = list(_watched.items())
        now = time.monotonic()
        for connection, state in watched:
            try:
                if connection.closed or connection.pgconn.transaction_status != TransactionStatus.ACTIVE:
                    state.busy_since = None
                elif state.busy_since is None:
                    state.busy_since = now
                elif now - state.busy_since > state.limit_s:
                    _cut(connection, now - state.busy_since)
                    state.busy_since = None
            except Exception:  # closed meanwhile, by its own thread: nothing to watch; the watch must go on
                state.busy_since = None


def _cut(connection: Any, waited_s: float) -> None:
    _logger.warning("PostgreSQL at %s:%s has not answered a statement for %.0f s, twice its statement_timeout and "
                    "more: the server looks frozen, so sweeper closed that connection", connection.info.host,
                    connection.info.port, waited_s)
    duplicate = socket.socket(fileno=os.dup(connection.pgconn.socket))
    try:
        duplicate.shutdown(socket.SHUT_RDWR)  # wakes the thread waiting on it, which then fails
    finally:
        duplicate.close()


def _forget_in_child() -> None:
    """A forked child (a multiprocessing worker) shares none of its parent's connections or threads."""
    global _lock, _thread, _watched
    _lock, _thread, _watched = threading.Lock(), None, weakref.WeakKeyDictionary()


os.register_at_fork(after_in_child=_forget_in_child)
