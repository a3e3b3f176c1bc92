"""What Ctrl-C and the other stop signals do to a running sweep: stop it, resumable, and never leave the driver
waiting on a Ray that is gone."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

_leaving = threading.Event()
_excepthook = threading.excepthook  # the one :func:`leaving` wraps
_hooking = threading.Lock()  # the watcher and the main thread may both be leaving


def _quiet_ray_threads(args: threading.ExceptHookArgs) -> None:
    """Passes over what ends a Ray thread (they are named ``ray_...``) while the process leaves; reports the rest."""
    if not (_leaving.is_set() and args.thread is not None and args.thread.name.startswith("ray_")):
        _excepthook(args)


def leaving() -> None:
    """The process is on its way out, writing what it queued: a second Ctrl-C or stop signal must not cut that
    short (the exit is bounded anyway), nor the exit itself. Ray says nothing more: the driver stops its processes
    as it leaves (a signal to the process group may have too, where they share it), and the ray.init that the main
    thread goes on with would log their deaths as errors ("Failed to start the dashboard, return code -15") under
    the driver's line saying the sweep was interrupted. Nor do Ray's threads: the one ray.init starts to hear the
    GCS's errors fails with a traceback where the GCS it subscribes to was just stopped."""
    global _excepthook
    logging.getLogger("ray").setLevel(logging.CRITICAL + 1)  # before _leaving: it lets the main thread go on
    with _hooking:
        if threading.excepthook is not _quiet_ray_threads:
            _excepthook, threading.excepthook = threading.excepthook, _quiet_ray_threads
    _leaving.set()


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a sweep as Ctrl-C does: SIGTERM (``kill``, ``docker stop``, Kubernetes, ``scancel``),
    SIGUSR1 (Slurm's ``--signal`` warning before the time limit; Ray Tune's own "stop") and SIGHUP (a closed
    terminal, a dropped ssh session), except where it is ignored: ``nohup`` must keep the sweep running. Their
    default actions would end the driver with its writes unwritten, or stop the local Ray under it."""
    hangup = () if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN else (signal.SIGHUP,)
    return (signal.SIGINT, signal.SIGTERM, signal.SIGUSR1, *hangup)


def ignore_stop_signals() -> None:
    """From now on the :func:`stop_signals` do nothing: for a process on its way out, once outside
    :func:`noting_interrupts` (whose handler already ignores them while :func:`leaving`), where the handlers it put
    back would raise KeyboardInterrupt in the middle of the exit. Only the main thread may set handlers."""
    if threading.current_thread() is threading.main_thread():
        for signum in stop_signals():
            signal.signal(signum, signal.SIG_IGN)


@contextlib.contextmanager
def noting_interrupts(flag: threading.Event, leave: Callable[[], Any] | None = None) -> Iterator[None]:
    """Ctrl-C raises KeyboardInterrupt as ever, and sets ``flag`` too: Python swallows an interrupt that lands in a
    finalizer ("Exception ignored in ..."), and a sweep must not train on after Ctrl-C.

    The other :func:`stop_signals` are a Ctrl-C too; otherwise Ray's SIGTERM handler aborts the driver with a stack
    dump, leaving what the writer had queued unwritten, Tune's SIGUSR1 handler ends the sweep as if it had finished
    (exit 0), and SIGHUP ends the process at once.

    ``leave``, where given, is called on a thread of its own as any of them arrives, and must end the process.
    Python runs a signal handler only between bytecodes, and a signal sent to the whole process group (``timeout``,
    Slurm's ``scancel``, Ctrl-C in a terminal) may also stop Ray's processes (a joined cluster's, or a local Ray's
    where they could not get a session of their own: :func:`sweeper.ray_runtime.processes_in_their_own_session`):
    the main thread may then sit for a minute in a call to them, until Ray's client ends the process with exit 1.

    With ``leave`` the main thread is not interrupted at all, only ``flag`` set: ``leave`` ends the process anyway,
    and a KeyboardInterrupt raised wherever the main thread happens to be can break what other threads need. One
    that lands in logging's at-fork hook as ray.init starts a process (Ray's processes start through
    ``preexec_fn``) is swallowed there ("Exception ignored in: <function _releaseLock>") and leaves logging's lock
    held for good: every other thread that logs, the watcher leaving included, then waits forever.
    """
    if threading.current_thread() is not threading.main_thread():  # only the main thread handles signals
        yield
        return

    in_handler = False  # Event.set holds a plain Lock: the handler run again inside it (a second signal) deadlocks

    def interrupt(signum: int, frame: Any) -> None:
        nonlocal in_handler
        if in_handler:  # the first signal's handler is setting the flag: it stands for this one too
            return
        in_handler = True
        try:
            flag.set()
        finally:
            in_handler = False
        if leave is None and not _leaving.is_set():
            signal.default_int_handler(signum, frame)

    _leaving.clear()

    handled = stop_signals()

    def watch(read_fd: int) -> None:  # the C-level handler writes each signal's number to the wakeup fd at once
        with os.fdopen(read_fd, "rb", buffering=0) as pipe:
            while received := pipe.read(16):
                if set(handled) & set(received):  # Tune takes SIGUSR1 back inside fit(): its number still comes
                    flag.set()
                    leave()

    previous = {signum: signal.signal(signum, interrupt) for signum in handled}
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
