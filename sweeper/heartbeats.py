"""The heartbeat thread of a sweep: without fresh heartbeats, another driver on the study would take this one's
running trials for a dead driver's and carry them on twice (:mod:`storage.resume`)."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Iterator
from typing import Any

from storage.resume import HEARTBEAT_INTERVAL_S, record_heartbeat
from storage.retry import OutagePolicy, StorageUnavailable, Unreachable


@contextlib.contextmanager
def heartbeats(searcher: Any, policy: OutagePolicy, each_beat: Callable[[], None]) -> Iterator[None]:
    """Refresh the heartbeat of every trial this driver runs, so no other driver mistakes them for orphans; then
    call ``each_beat`` (what other drivers on the study did, read as often)."""
    stop = threading.Event()

    def beat() -> None:
        while not stop.wait(HEARTBEAT_INTERVAL_S):
            for trial in list(searcher.trials.values()):
                try:
                    policy.attempt(lambda trial=trial: record_heartbeat(searcher.study, trial._trial_id))
                except (Unreachable, StorageUnavailable):  # missed beats during an outage: the next one counts
                    break
                except Exception as exc:  # a trial finished meanwhile, or a bug: a missed beat ends nothing
                    logging.getLogger(__name__).warning("heartbeat of trial %d failed: %s", trial.number, exc)
            try:
                each_beat()
            except (Unreachable, StorageUnavailable):  # read at the next beat
                pass
            except Exception as exc:  # a bug: the beats, which keep other drivers off our trials, go on
                logging.getLogger(__name__).warning("reading the study beside the heartbeats failed: %s", exc)

    thread = threading.Thread(target=beat, name="sweeper-heartbeats", daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
