"""``sweeper dashboard``: optuna-dashboard on a sweep's storage, on 127.0.0.1 unless told otherwise.

optuna-dashboard's own ``run_server`` serves one request at a time and opens the storage with default engine
settings; here it gets the storage from ``storage.engine.open_storage`` (with a busy timeout, so reading while a
sweep writes never makes a trial fail; nothing created or migrated) and a threaded WSGI server, since the page
fetches several API routes at once.
"""

from __future__ import annotations

import errno
import signal
import socket
import socketserver
import threading
from collections.abc import Callable, Container, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from optuna.storages import RDBStorage
from optuna.storages._cached_storage import _CachedStorage
from optuna.storages._rdb.models import TrialModel
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.orm import Session

from storage.engine import close_storage, open_storage, warn_unread_wal
from storage.retry import retry_briefly
from storage.urls import mask_url
from sweeper.console import console
from sweeper.errors import BadInput

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080


class _ThreadingWSGIServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _ThreadingWSGIServer6(_ThreadingWSGIServer):
    address_family = socket.AF_INET6  # ::1, ::


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        """One line per request would bury the URL the user needs; errors still reach stderr."""


def _with_accept_encoding(app: Callable) -> Callable:
    """optuna-dashboard 0.21 reads Accept-Encoding unguarded for its static files: a request without one (curl,
    a proxy that strips it) got a 500 and a traceback on stderr instead of the page's script."""

    def served(environ: dict, start_response: Callable) -> Iterable[bytes]:
        environ.setdefault("HTTP_ACCEPT_ENCODING", "")
        return app(environ, start_response)

    return served


def serve_dashboard(url: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT) -> None:
    """Serve until Ctrl-C. A SQLite file that does not exist is an error, not a new empty database."""
    host = host.strip().removeprefix("[").removesuffix("]")  # [::1], as an IPv6 address is written in a URL
    if not host:  # the wildcard address, every interface, spelt as nothing
        raise BadInput("--host is empty: give an address to listen on, e.g. 127.0.0.1 (this machine only).")
    warn_unread_wal(url)  # opened as given, not read-only (notes are written): open_storage does not say it
    storage = retry_briefly(lambda: open_storage(url, create=False))
    try:
        _serve(dashboard_app(storage), url, host, port)
    finally:
        close_storage(storage)  # served in a program's own process, its connections end with the server


def dashboard_app(storage: RDBStorage) -> Callable:
    """optuna-dashboard's WSGI app on ``storage``, read through Optuna's trial cache.

    The page polls a study's trials, and optuna-dashboard reads them all again every 10 s (2 s under 100 trials):
    from an RDBStorage that is every trial with its whole learning curve, each time (2 to 4 s of CPU for 2,000
    trials of 50 epochs, beside the sweep it shows; longer than the 10 s for a study of 5,000 trials of 200). Optuna
    reads every study it loads through ``_CachedStorage`` (the sweep's driver too), which fetches only the trials
    unfinished or new since its last read: a finished trial no longer changes."""
    from optuna_dashboard import wsgi
    from optuna_dashboard._rdb_migration import register_rdb_migration_route

    app = wsgi(_StudyCheckedCache(storage))
    # its check of the schema at each page load (and its page for one this Optuna cannot read) skips a storage that
    # is not an RDBStorage, such as the cache: given the storage itself, it sees a schema changed under it
    register_rdb_migration_route(app, storage)
    # but not its page's Migrate button, which would upgrade the database in place on any POST (a page the browser
    # opened can send one): a schema is changed by `optuna storage upgrade`, after a backup
    app.post("/incompatible-rdb-schema", callback=_no_migration)
    return _with_accept_encoding(app)


def _no_migration() -> str:
    import bottle

    bottle.response.status = 403
    bottle.response.content_type = "text/plain; charset=utf-8"
    return "sweeper dashboard changes no schema: back the database up, then run optuna storage upgrade --storage URL.\n"


class _StudyCheckedCache(_CachedStorage):
    """Optuna's trial cache, which keys a study's trials on its id: SQLite gives a deleted study's id (and its trials'
    ids) to the next study created, and a dashboard that had shown the deleted study showed its finished trials as
    the new one's (another program's ``optuna delete-study``, then a new sweep). Its trial #0 still stored, with the
    same start, is the same study; else what is cached of it is dropped and read again."""

    def get_all_trials(self, study_id: int, deepcopy: bool = True,
                       states: Container[TrialState] | None = None) -> list[FrozenTrial]:
        with self._lock:
            cached = self._studies.get(study_id)
            first = cached.trials.get(0) if cached is not None else None
        if cached is not None and (first is None or not self._still_stored(study_id, first)):
            with self._lock:
                if self._studies.get(study_id) is cached:  # else another poll's thread dropped it (and read it again)
                    del self._studies[study_id]
                    for number, trial in cached.trials.items():  # as delete_study forgets it
                        self._trial_id_to_study_id_and_number.pop(trial._trial_id, None)
                        self._study_id_and_number_to_trial_id.pop((study_id, number), None)
        return super().get_all_trials(study_id, deepcopy, states)

    def _still_stored(self, study_id: int, trial: FrozenTrial) -> bool:
        """Its number and start only: loading the trial would read its whole learning curve at every poll."""
        with Session(self._backend.engine) as session:
            stored = session.get(TrialModel, trial._trial_id)
            return stored is not None and (stored.study_id, stored.number, stored.datetime_start) == (
                study_id, trial.number, trial.datetime_start)


def _serve(app: Any, url: str, host: str, port: int) -> None:
    try:
        server = make_server(host, port, app, handler_class=_QuietHandler,
                             server_class=_ThreadingWSGIServer6 if ":" in host else _ThreadingWSGIServer)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise BadInput(f"Port {port} on {host} is in use: choose another with --port.") from None
        if exc.errno == errno.EACCES:  # a port below 1024 without root (the image runs as uid 10001)
            raise BadInput(f"Port {port} on {host} needs root (ports below 1024 are privileged): choose "
                           "another with --port.") from None
        if isinstance(exc, socket.gaierror) or exc.errno == errno.EADDRNOTAVAIL:
            raise BadInput(f"Cannot listen on {host!r}: not an address of this machine.") from None
        raise
    # SIGTERM stops it as Ctrl-C does: as a container's PID 1 (compose's dashboard) a signal without a handler is
    # ignored, and `docker stop` waited 10 s to kill it. The caller's handler is put back when it stops (served in a
    # test's or a program's own process, that process kept ours); off the main thread Python sets none (it raised)
    on_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, signal.default_int_handler) if on_main_thread else None
    try:
        shown = f"[{host}]" if ":" in host else host
        console.print(f"optuna-dashboard for {mask_url(url)} on http://{shown}:{server.server_port}/dashboard/ "
                      "(Ctrl-C stops it)", markup=False)
        if host not in (DEFAULT_HOST, "localhost", "::1"):
            console.print(f"note: listening on {host}, not only this machine; the dashboard has no login.",
                          markup=False)
        server.serve_forever()
    finally:
        server.server_close()
        if previous is not None:  # None: a handler set outside Python, which cannot be put back from here
            signal.signal(signal.SIGTERM, previous)
