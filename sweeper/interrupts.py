"""What Ctrl-C and SIGTERM do to a running sweep: stop it, and never leave the driver waiting on a Ray that is gone."""

from __future__ import annotations

import contextlib
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any


@contextlib.contextmanager
def noting_interrupts(flag: threading.Event, leave: Callable[[], Any] | None = None) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as ever, and sets ``flag`` too: Python swallows an interrupt that lands in a
    finalizer ("Exception ignored in ..."), and a sweep must not train on after Ctrl-C.

    SIGTERM (``kill``, ``docker stop``, Kubernetes) is a Ctrl-C too; otherwise Ray's handler aborts the driver
    with a stack dump, leaving what the writer had queued unwritten.

    ``leave``, where given, is called on a thread of its own as either signal arrives, and must end the process.
    Python runs a signal handler only between bytecodes, and a signal sent to the whole process group (``timeout``,
    Slurm's ``scancel``, Ctrl-C in a terminal) also stops the local Ray: the main thread may then sit for a minute
    in a call to it, until Ray's client gives up and terminates the process with exit code 1.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return

    def interrupt(signum: int, frame: Any) -> None:
        flag.set()
        signal.default_int_handler(signum, frame)

    def watch(read_fd: int) -> None:  # the C-level handler writes each signal's number to the wakeup fd at once
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while received := pipe.read(16):
                if {signal.SIGINT, signal.SIGTERM} & set(received):
                    flag.set()
                    leave()

    previous = {signum: signal.signal(signum, interrupt) for signum in (signal.SIGINT, signal.SIGTERM)}
    if leave is not None:
        read_fd, write_fd = os.pipe()
        os.set_blocking(write_fd, False)
        previous_fd = signal.set_wakeup_fd(write_fd, warn_on_full_buffer=False)
        threading.Thread(target=watch, args=(read_fd,), name="sweeper-interrupt-watcher", daemon=True).start()
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        if leave is not None:
            signal.set_wakeup_fd(previous_fd)
            os.close(write_fd)  # the watcher reads the end of the pipe and stops
