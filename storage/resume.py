"""Who owns a RUNNING trial, and which RUNNING trials belong to a driver that is gone.

A ``sweeper run`` stopped by Ctrl-C, ``kill -9`` or a lost machine leaves its in-flight trials RUNNING in the
study: Optuna records no owner for them, so the stock integration keeps them as ghosts forever (or, with
``fail_stale_trials``, fails them and throws their epochs away). Here every trial a driver runs carries its owner
(the ``driver`` attr: host, pid, process start time) and a heartbeat the driver refreshes every
:data:`HEARTBEAT_INTERVAL_S`. A RUNNING trial is orphaned when

- its owner ran on this host and that process is gone (or its pid now belongs to another process), or
- its owner ran on another host, which we cannot ask, and its heartbeat is older than :data:`GRACE_PERIOD_S`.

A trial whose owner is alive elsewhere (two drivers sharing one PostgreSQL study) is never taken. Orphans are
carried on, not re-sampled: the next driver claims them with the same number and params, so the training
function finds its epoch checkpoints again (they are keyed by study and trial number).
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import optuna
from optuna.storages._heartbeat import BaseHeartbeat
from optuna.trial import FrozenTrial, TrialState

from storage import attrs

HEARTBEAT_INTERVAL_S = 10
GRACE_PERIOD_S = 60  # six missed heartbeats: a busy database or a long GC pause is not a dead driver
CLAIM_SETTLE_S = 0.25  # far longer than a read and a write of one attr take, short next to a trial


@dataclass(frozen=True)
class Driver:
    """A driver process, as recorded on the trials it owns."""

    host: str
    pid: int
    started: int | None  # the process's start time in clock ticks since boot (Linux), to tell a reused pid apart

    @classmethod
    def current(cls) -> Driver:
        return cls(socket.gethostname(), os.getpid(), process_start_ticks(os.getpid()))

    @classmethod
    def from_attr(cls, value: Any) -> Driver | None:
        if not isinstance(value, dict) or not isinstance(value.get("pid"), int):
            return None
        return cls(str(value.get("host", "")), value["pid"], value.get("started"))

    def as_attr(self) -> dict[str, Any]:
        return {"host": self.host, "pid": self.pid, "started": self.started}

    def alive(self) -> bool | None:
        """True or False for a driver on this host; None when it ran elsewhere and only a heartbeat can tell."""
        if self.host != socket.gethostname():
            return None
        if self == Driver.current():
            return True
        if not pid_exists(self.pid):
            return False
        return self.started is None or process_start_ticks(self.pid) in (None, self.started)


def pid_exists(pid: int) -> bool:
    if pid <= 0:  # no process's: kill(0 or -1, 0) asks of a group or of every process, and answers yes
        return False
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):  # an attr anyone may write: 2**70 is no pid either
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/PID/stat``; None where there is no procfs (then a live pid counts as the owner)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])  # fields after "(comm)" start at field 3


def orphaned_trials(study: optuna.Study, trials: Sequence[FrozenTrial] | None = None) -> list[FrozenTrial]:
    """The study's RUNNING trials whose driver is gone, oldest first (see the module docstring); among ``trials``
    where the caller read them already (``storage.reading``: Optuna's cache would load every curve)."""
    running = [t for t in trials if t.state == TrialState.RUNNING] if trials is not None else \
        study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
    if not running:
        return []
    storage = study._storage  # Optuna's cache wrapper forwards the heartbeat API of the RDB storage
    stale: set[int] = set()
    if isinstance(storage, BaseHeartbeat) and storage.get_heartbeat_interval():
        stale = set(storage._get_stale_trial_ids(study._study_id))
    orphans = []
    now = datetime.now()
    for trial in running:
        owner = Driver.from_attr(trial.user_attrs.get(attrs.DRIVER))
        alive = owner.alive() if owner is not None else False
        if attrs.DRIVER not in trial.user_attrs:  # an enqueued trial a driver took (RUNNING first): it owns it next
            ask = trial.system_attrs.get(attrs.ASK_TOKEN)
            asker = Driver.from_attr(ask.get("driver")) if isinstance(ask, dict) else None
            alive = asker.alive() if asker is not None else None  # a kill -9 just then: a dead asker's is an orphan
            if alive is None and trial.datetime_start is not None and \
                    (now - trial.datetime_start).total_seconds() < GRACE_PERIOD_S:
                continue  # taken this moment by a driver we cannot ask (another host, an older sweeper)
            alive = bool(alive)
        if alive is False or (alive is None and trial._trial_id in stale):
            orphans.append(trial)
    return sorted(orphans, key=lambda t: t.number)


def claim(study: optuna.Study, trial: FrozenTrial, driver: Driver) -> optuna.Trial | None:
    """Make ``driver`` the owner of an orphaned RUNNING trial and return it as a live ``optuna.Trial``; None when
    another driver carried it on or finished it since the orphans were listed (perhaps hours ago)."""
    now = study._storage.get_trial(trial._trial_id)
    if now.state != TrialState.RUNNING or now.user_attrs.get(attrs.DRIVER) not in (
            trial.user_attrs.get(attrs.DRIVER), driver.as_attr()):  # ours: a claim whose answer was lost
        return None
    live = optuna.Trial(study, trial._trial_id)
    live.set_user_attr(attrs.DRIVER, driver.as_attr())
    # Two drivers resumed at once may both have read the dead owner, and both written themselves: the storage has no
    # compare-and-set, so each reads back after both writes are in, and the one written last trains the trial
    time.sleep(CLAIM_SETTLE_S)
    if study._storage.get_trial(trial._trial_id).user_attrs.get(attrs.DRIVER) != driver.as_attr():
        return None
    resumed = trial.user_attrs.get(attrs.RESUMED)  # an attr anyone may write: a count, else none so far
    live.set_user_attr(attrs.RESUMED, (resumed if type(resumed) is int else 0) + 1)
    record_heartbeat(study, trial._trial_id)
    return live


def own(trial: optuna.Trial, driver: Driver) -> None:
    """Mark a newly asked trial as ``driver``'s, with a first heartbeat, so no other driver takes it."""
    trial.set_user_attr(attrs.DRIVER, driver.as_attr())
    record_heartbeat(trial.study, trial._trial_id)


def record_heartbeat(study: optuna.Study, trial_id: int) -> None:
    storage = study._storage
    if isinstance(storage, BaseHeartbeat):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            storage.record_heartbeat(trial_id)


def last_epoch(trial: FrozenTrial) -> int:
    """The last epoch the trial reported: where an orphan continues from, if its checkpoint survived."""
    return max(trial.intermediate_values, default=0)
