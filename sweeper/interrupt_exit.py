"""A sweep's way out on Ctrl-C or another stop signal (:mod:`sweeper.interrupts` notes them): it waits, each for a
bounded time, for the study being opened and the queued writes, then leaves the way the CLI asks, naming what
carries the sweep on."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable
from typing import Any

from storage.engine import fold_sqlite_wal
from sweeper.interrupts import ignore_stop_signals, leaving, noting_interrupts
from sweeper.study_writer import StudyWriter

SAME_COMMAND = "the same command"  # what carries a stopped sweep on (see sweeper.driver.carry_on)
INTERRUPT_DRAIN_S = 10.0  # Ctrl-C waits this long at most for queued writes; what is left runs again on resume
# Ctrl-C waits this long for a study being created (cut short, a new SQLite file cannot be opened again): on a loaded
# machine, Ray starting beside it, it may take more than INTERRUPT_DRAIN_S
STUDY_OPEN_WAIT_S = 30.0


class Interrupts:
    """Ctrl-C and the other stop signals during a sweep: each is noted in ``flag`` (Python may swallow the
    KeyboardInterrupt), and a program that leaves on them (``exit_on_interrupt``) leaves through :meth:`leave`."""

    def __init__(self, writer: StudyWriter, url: str, exit_on_interrupt: Callable[[str], Any] | None,
                 how: str) -> None:
        self.flag = threading.Event()
        # held while the study is created or loaded, or a trial asked, which an exit must not cut short (a new SQLite
        # file left with Optuna's tables but not their version cannot be opened again; see StudySearcher._next_trial):
        # leaving takes it, and keeps it
        self.unbroken = threading.Lock()
        self.writer = writer
        self.url = url
        self.exit_on_interrupt = exit_on_interrupt
        self.how = how  # what carries the sweep on (sweeper.driver.carry_on)
        self.opened = False  # the study is made (set under unbroken): until then there is no NAME to resume

    def noted(self) -> contextlib.AbstractContextManager[None]:
        """Interrupts noted in ``flag`` for the block; with an exit, a watcher thread leaves even while the main
        thread is stuck (see :func:`sweeper.interrupts.noting_interrupts`)."""
        return noting_interrupts(self.flag, self.leave if self.exit_on_interrupt else None)

    def leave(self) -> None:
        """With an exit: wait for the study being opened or a trial asked, and the queued writes (each for a bounded
        time), then call it, which ends the process. Without one, nothing: the caller raises KeyboardInterrupt."""
        if not self.exit_on_interrupt:
            return
        leaving()  # a second signal while the writes drain would lose them
        ignore_stop_signals()  # the main thread leaves after noted(), whose handlers are gone: the CLI's would raise
        self.unbroken.acquire(timeout=STUDY_OPEN_WAIT_S)
        self.writer.drain(INTERRUPT_DRAIN_S)
        fold_sqlite_wal(self.url)
        self.exit_on_interrupt(self.how if self.opened else SAME_COMMAND)
