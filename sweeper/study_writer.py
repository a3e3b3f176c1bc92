"""Writes a sweep's records to the study on a thread of their own, in the order they happened.

Ray Tune's event loop calls the recorder; if the recorder waited on a database that is restarting, Tune would
stop collecting results and every trial would block at its next report. Instead each write (an epoch's value, a
trial's attrs, its tell) is queued here and written through the sweep's :class:`~storage.retry.OutagePolicy`:
during an outage the queue simply grows, trials train on, and the backlog is written in order once the
storage answers. Each write must be safe to repeat (a commit whose answer was lost is retried).
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from optuna.exceptions import UpdateFinishedTrialError

from storage.errors import StudyDeleted
from storage.retry import OutagePolicy, StorageUnavailable
from sweeper.console import err_console

_logger = logging.getLogger(__name__)


class StudyWriter:
    def __init__(self, policy: OutagePolicy) -> None:
        self.policy = policy
        self.error: BaseException | None = None  # the first write that failed for good; later writes are dropped
        self._queue: queue.Queue[Callable[[], Any] | None] = queue.Queue()
        self._taken: set[str] = set()  # trials another driver finished, as Optuna names them
        self._thread = threading.Thread(target=self._run, name="sweeper-study-writer", daemon=True)
        self._thread.start()

    def submit(self, write: Callable[[], Any]) -> None:
        self._queue.put(write)

    @property
    def pending(self) -> bool:
        """Whether writes wait (and so, during an outage, the writer probes the storage)."""
        return self._queue.unfinished_tasks > 0

    def fail(self, error: BaseException) -> None:
        """Stop writing: the sweep is ending on ``error``, and what is still queued stays unrecorded."""
        self.error = self.error or error

    def flush(self) -> None:
        """Wait until everything submitted is written, or a write failed for good (the outage budget ran out): then
        re-raise it at once, not after a write still hung on a frozen server."""
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and self.error is None:
                self._queue.all_tasks_done.wait(0.1)
        if self.error is not None:
            raise self.error

    def drain(self, timeout_s: float) -> None:
        """:meth:`flush` for a caller that must not wait long (a driver leaving anyway; Tune's loop before an ask):
        wait at most ``timeout_s``, and not while the storage is away; raise nothing."""
        # waited for on the queue's own condition (what join() waits on), not by a thread running join(): Tune asks
        # about every 0.1 s, and during an outage each such thread would live on until the storage answered
        deadline = time.monotonic() + timeout_s
        with self._queue.all_tasks_done:
            while self._queue.unfinished_tasks and not self.policy.in_outage:
                left = deadline - time.monotonic()
                if left <= 0:
                    return
                # woken by the last task_done(); at least every 0.1 s, to notice an outage that began meanwhile
                self._queue.all_tasks_done.wait(min(left, 0.1))

    def _run(self) -> None:
        while True:
            write = self._queue.get()
            try:
                if self.error is None and write is not None:
                    self.policy.call(write)
            except StorageUnavailable as exc:
                self.error = exc
            except UpdateFinishedTrialError as exc:  # not a bug: a trial this driver ran was taken from it
                if str(exc) not in self._taken:  # once per trial, not once per epoch
                    self._taken.add(str(exc))
                    err_console.print(f"[yellow]{exc}[/] Another driver carried it on while this one could not "
                                      "reach the storage, or judged this one gone: its record stands, and what this "
                                      "driver trained of it is dropped.", markup=True)
            except Exception as exc:  # a real bug, or a deleted study: the sweep stops and flush() raises it
                _logger.debug("study write failed", exc_info=True)
                self.error = self.error or (StudyDeleted() if StudyDeleted.explains(exc) else exc)
            finally:
                self._queue.task_done()
