"""A throwaway PostgreSQL server for tests and bench/outage.py that stop, restart or cut it (never the shared one
on 5432).

It lives in a temporary folder, listens on a free port of 127.0.0.1 only, and trusts local connections. As
root, initdb and pg_ctl run as the ``postgres`` OS user (PostgreSQL refuses to run as root).
"""

from __future__ import annotations

import contextlib
import glob
import os
import random
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path


def recorded_epochs(url: str) -> int:
    """Intermediate values a study database holds; 0 while it is away or has no tables yet (creates none)."""
    import sqlalchemy

    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            return connection.execute(sqlalchemy.text("SELECT count(*) FROM trial_intermediate_values")).scalar()
    except sqlalchemy.exc.SQLAlchemyError:
        return 0
    finally:
        engine.dispose()


def free_port() -> int:
    """A free port that nothing else is handed while it stays free: one the kernel gives out (bind to port 0, as Ray
    does for every process it starts) can be taken by the other pytest worker between the pick and the server's
    bind, or while the test has the server stopped. So one below the kernel's ephemeral range, and above Ray's
    worker ports (10002-19999); port 0's where that range starts too low for it."""
    try:
        low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        low = 0
    for port in [*random.sample(range(20000, low), min(50, max(0, low - 20000))), 0]:
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return s.getsockname()[1]
    raise OSError("no free port")


def postgres_bin() -> Path | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


class PostgresServer:
    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.folder = Path(tempfile.mkdtemp(prefix="sweeper-pg-"))
        self.data = self.folder / "data"
        self.port = free_port()
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync")
        self.start()

    @property
    def url(self) -> str:
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.folder / "log"), "-w", "-o",
                  f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.folder} -c fsync=off", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")

    @contextlib.contextmanager
    def frozen(self) -> Iterator[None]:
        """The server's processes stopped (SIGSTOP) while its kernel still accepts and acknowledges packets: a
        paused VM or a hung disk, as a client sees it."""
        postmaster = int((self.data / "postmaster.pid").read_text().split()[0])
        children = subprocess.run(["pgrep", "-P", str(postmaster)], capture_output=True, text=True).stdout.split()
        pids = [postmaster, *map(int, children)]
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
        try:
            yield
        finally:
            for pid in pids:
                os.kill(pid, signal.SIGCONT)

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.folder, ignore_errors=True)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin_dir / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)


class CuttableProxy:
    """A TCP proxy on 127.0.0.1 that the test can cut: every connection dropped, new ones refused for a while."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self._cut_until = 0.0
        self._lock = threading.Lock()
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._lose_after: bytes | None = None  # see lose_answer
        self.lost = 0  # answers to COMMIT dropped so far
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self, seconds: float) -> None:
        with self._lock:
            self._cut_until = time.monotonic() + seconds
            sockets, self._sockets = self._sockets, []
        for sock in sockets:
            _close(sock)

    def refuse(self, seconds: float) -> None:
        """New connections refused for ``seconds``; those open are kept (a server at its connection limit, say)."""
        with self._lock:
            self._cut_until = time.monotonic() + seconds

    def lose_answer(self, statement: bytes) -> None:
        """Once: the COMMIT of the next transaction that sends ``statement`` (a piece of its SQL) reaches the server,
        which commits, but its answer never reaches the client: the connection is dropped instead, as a server, a
        network or pgbouncer failing between the two would. The write landed; the client cannot know."""
        self._lose_after = statement

    def close(self) -> None:
        self._closed = True
        self.cut(0)
        _close(self.listener)

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if time.monotonic() < self._cut_until:
                _close(client)
                continue
            try:
                server = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                _close(client)
                continue
            server.settimeout(None)
            with self._lock:
                self._sockets += [client, server]
            armed = threading.Event()  # this connection sent the statement whose commit's answer is lost
            threading.Thread(target=self._pump, args=(client, server, armed, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, armed, False), daemon=True).start()

    def _pump(self, source: socket.socket, sink: socket.socket, armed: threading.Event, upstream: bool) -> None:
        try:
            while data := source.recv(65536):
                if upstream and self._lose_after is not None and self._lose_after in data:
                    self._lose_after = None
                    armed.set()
                if not upstream and armed.is_set() and COMMIT_DONE in data:  # committed: the client never hears it
                    self.lost += 1
                    break
                sink.sendall(data)
        except OSError:
            pass
        _close(source)
        _close(sink)


COMMIT_DONE = b"C\x00\x00\x00\x0bCOMMIT\x00"  # the server's CommandComplete message for a COMMIT


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
