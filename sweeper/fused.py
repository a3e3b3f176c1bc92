"""Fused sweeps (``resources: {fuse: K}``): up to K trials of one architecture train as one Ray trial.

The study cannot tell a fused sweep from an unfused one except by speed. Every member is its own Optuna trial,
asked (RUNNING) when its group starts, given an intermediate value every epoch, and told COMPLETE, PRUNED or
FAIL on its own, through the same :class:`StudyRecorder` code as a single trial. The pieces:

* :class:`FusedSearcher` asks ``StudySearcher`` for up to K trials per Ray trial; they must share
  ``trials.fused.group_key`` (data, architecture, batch size), so a trial of another shape starts the next group.
* :func:`run_fused_trial`, inside the Ray trial, runs ``trials.fused.run_group``; every report carries the
  member's trial number (:data:`MEMBER_KEY`), and each member checkpoints where it would alone, so a resumed
  sweep carries members on from their own checkpoints, in a group or alone.
* :class:`MemberScheduler` puts each member, not the group, before the sweep's scheduler (ASHA, median), and
  :class:`FusedRecorder` records each member's results as its own trial's. A member the scheduler stops is
  told PRUNED at once; :class:`Decisions` (a Ray actor) tells the worker, which drops it from the group.

A member is known to the scheduler and recorder by a stand-in, :class:`Member`: the Ray trial id plus ``/k``,
which is also the ``ray_trial_id`` attr of its Optuna trial.
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

import ray
from ray import tune
from ray.tune.schedulers import FIFOScheduler, TrialScheduler

from storage import attrs
from sweeper.console import recorded
from sweeper.folders import trial_checkpoint_dir, trial_output_file
from sweeper.recorder import StudyRecorder
from sweeper.searcher import StudySearcher, never_started
from sweeper.trainable import (
    DISK_KEY,
    FAILED_KEY,
    FINAL_FLAG,
    META_KEY,
    NODE_KEY,
    RESULT_KEYS,
    current_node,
    disk_problem,
    exit_when_orphaned,
    output_kept,
    without_meta,
)
from trials.config import ConfigError
from trials.entrypoint import working_in

log = logging.getLogger(__name__)

MEMBER_KEY = "sweeper_member"  # the Optuna trial number a fused trial's result belongs to
MEMBERS = "members"  # in a fused trial's META_KEY: each member's own trial config
DECISION_WAIT_S = 120.0  # a worker waits this long for the driver to judge an epoch, then trains on
DECISION_POLL_S = 0.01


# --- the searcher -------------------------------------------------------------------------------------------
class FusedSearcher(StudySearcher):
    """``StudySearcher`` whose every Ray trial is a group of up to ``resources.fuse`` Optuna trials.

    It also holds what the scheduler and the recorder share: the members the scheduler stopped, and the board
    that tells workers.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fuse = self.spec.resources.fuse
        self.waiting: tuple[str, dict[str, Any]] | None = None  # asked, but of another shape than its group
        self.stopped_members: set[str] = set()  # stand-in ids (see Member) the sweep's scheduler stopped
        self.decisions = Decisions.create()

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        members: list[dict[str, Any]] = []
        self.check_deadline()
        if self.waiting is not None and not self.stopped:  # stopped: it waits for drop_unstarted
            members.append(self._rekey(*self.waiting, f"{trial_id}/0"))
            self.waiting = None
        while len(members) < self.fuse:
            key = f"{trial_id}/{len(members)}"
            config = super().suggest(key)
            if not isinstance(config, dict):  # FINISHED, or None: "not now" (the storage is away)
                if not members:
                    return config
                break
            if members and group_of(config) != group_of(members[0]):
                self.trials["waiting"] = aside = self.trials.pop(key)  # under no group's prefix: it is in none yet
                self.writer.submit(lambda t=aside: t.set_user_attr(attrs.RAY_TRIAL_ID, None))  # nor in the study
                self.waiting = ("waiting", config)
                break
            members.append(config)
        return {META_KEY: {**members[0][META_KEY], MEMBERS: members, "decisions": self.decisions.name}}

    def drop_unstarted(self, *, at_target: bool = False) -> None:
        """The sweep ended before the trial set aside for the next group started. At a met target it never starts
        (else it was recorded as stopped with the sweep, "after epoch 0", in a group it was never in); otherwise
        (budget.time spent), or when a dead driver trained it before, it is handed back as a trial to run again is:
        the next run trains it first, or stops it at the met target with the epochs it has."""
        if self.waiting is not None:
            trial = self.trials.pop(self.waiting[0])
            self.waiting = None
            if at_target and trial.number not in self.carried_on:
                self.writer.submit(never_started(self.study, trial))  # as the recorder writes, in order
            else:
                self.reruns.append(trial)
        super().drop_unstarted(at_target=at_target)

    def _rekey(self, old: str, config: dict[str, Any], new: str) -> dict[str, Any]:
        """A waiting trial joins the next Ray trial: its stand-in id follows."""
        trial = self.trials.pop(old)
        self.writer.submit(lambda: trial.set_user_attr(attrs.RAY_TRIAL_ID, new))
        self.trials[new] = trial
        return config


def group_of(config: dict[str, Any]) -> Any:
    """The group a trial may join. One the core refuses (``min_lr`` above ``lr``: each param fine alone) joins none:
    it fails alone, as it would unfused, instead of raising in Tune's loop or failing its group."""
    from trials.fused import group_key

    try:
        return group_key(without_meta(config))
    except ConfigError:
        return ("refused", config[META_KEY]["number"])


# --- the worker ---------------------------------------------------------------------------------------------
class MemberStopped(Exception):
    """The sweep's scheduler stopped this member; it leaves its group (the study already says PRUNED)."""


def run_fused_trial(config: dict[str, Any]) -> None:
    """Tune function trainable of a group: ``run_trial``'s reports, once per member, tagged with its number; what
    the group's process prints goes to every member's output file (``trial-N.log``)."""
    exit_when_orphaned()
    meta = config[META_KEY]
    members = meta[MEMBERS]
    numbers = [m[META_KEY]["number"] for m in members]
    outputs = [trial_output_file(m[META_KEY]["checkpoints"], n) for m, n in zip(members, numbers, strict=True)]
    header = (f"[sweeper] trials {', '.join(map(str, numbers))} train as one fused group (its members "
              f"{', '.join(map(str, range(len(numbers))))}, in that order); its output follows\n")
    with output_kept(*outputs, header=header if len(numbers) > 1 else ""):  # each member's file, as a trial's alone
        _run_group(config, members, numbers)


def _run_group(config: dict[str, Any], members: list[dict[str, Any]], numbers: list[int]) -> None:
    from trials.fused import run_group
    from trials.train import NonFiniteLossError

    meta = config[META_KEY]
    node = current_node()
    decisions = Decisions.get(meta["decisions"])
    last = {n: {"epoch": 0, meta["metric"]: meta["worst"]} for n in numbers}

    def reporter(number: int):
        def report(metrics: dict[str, Any]) -> None:
            last[number].update(recorded(metrics))
            tune.report({**metrics, NODE_KEY: node, MEMBER_KEY: number})
            if decisions.wait(number, int(metrics["epoch"])):
                raise MemberStopped(f"trial {number} stopped by the scheduler after epoch {metrics['epoch']}")
        return report

    def failed(number: int, error: BaseException, **disk: str) -> None:  # disk: DISK_KEY, the member stays RUNNING
        tune.report({**last[number], NODE_KEY: node, MEMBER_KEY: number,
                     FAILED_KEY: f"{type(error).__name__}: {error}", **disk})

    def finished(index: int, outcome: Any) -> None:
        number = numbers[index]
        if isinstance(outcome, dict):
            tune.report({**last[number], **outcome, NODE_KEY: node, MEMBER_KEY: number, FINAL_FLAG: True,
                         RESULT_KEYS: sorted(outcome)})
        elif isinstance(outcome, NonFiniteLossError | ConfigError):  # fails alone, at once, as a single trial does
            failed(number, outcome)
        elif isinstance(outcome, Exception) and (disk := disk_problem(outcome, dirs[index])):
            failed(number, outcome, **{DISK_KEY: disk})
        elif not isinstance(outcome, MemberStopped):
            raise outcome

    dirs = [trial_checkpoint_dir(m[META_KEY]["checkpoints"], n) for m, n in zip(members, numbers, strict=True)]
    with working_in(meta.get("work_dir")):
        try:
            run_group([without_meta(m) for m in members], [reporter(n) for n in numbers], [str(d) for d in dirs],
                      finished=finished)
        except Exception as exc:  # a checkpoint of the group's that the disk took no room for: all stay RUNNING
            if not (disk := disk_problem(exc, dirs[0].parent)):
                raise
            for number in numbers:  # the recorder ignores members already recorded
                failed(number, exc, **{DISK_KEY: disk})


# --- decisions: from the driver's scheduler to the worker ---------------------------------------------------
@ray.remote(num_cpus=0)
class DecisionBoard:
    """Per member: the last epoch the driver has judged, and whether the member is stopped."""

    def __init__(self) -> None:
        self.judged: dict[int, tuple[int, bool]] = {}

    def judge(self, number: int, epoch: int, stop: bool) -> None:
        before, stopped = self.judged.get(number, (0, False))
        self.judged[number] = (max(before, epoch), stopped or stop)

    def decision(self, number: int, epoch: int) -> bool | None:
        """None while the driver has not judged ``epoch`` yet; else whether the member must stop."""
        judged, stopped = self.judged.get(number, (0, False))
        return stopped if stopped or judged >= epoch else None


class Decisions:
    """One sweep's board (a fresh one per driver: a resumed sweep judges every epoch again), found by name."""

    def __init__(self, board: Any, name: str) -> None:
        self.board, self.name = board, name

    @classmethod
    def create(cls) -> Decisions:
        name = f"sweeper-fused-decisions-{uuid.uuid4().hex[:12]}"
        return cls(DecisionBoard.options(name=name).remote(), name)

    @classmethod
    def get(cls, name: str) -> Decisions:
        return cls(ray.get_actor(name), name)

    def judge(self, number: int, epoch: int, stop: bool) -> None:
        self.board.judge.remote(number, epoch, stop)

    def wait(self, number: int, epoch: int) -> bool:
        """Whether the member must stop after ``epoch``, once the driver has judged it (or after a long wait)."""
        deadline = time.monotonic() + DECISION_WAIT_S
        while time.monotonic() < deadline:
            decision = ray.get(self.board.decision.remote(number, epoch))
            if decision is not None:
                return decision
            time.sleep(DECISION_POLL_S)
        log.warning("no decision on trial %d after epoch %d within %.0f s; it trains on", number, epoch,
                    DECISION_WAIT_S)
        return False


# --- the driver side: scheduler and recorder -----------------------------------------------------------------
@dataclass(eq=False)
class Member:
    """A member as the scheduler and the recorder see a trial: an id, its last result, its group's error files.

    Compared by identity, as Ray's trials are: the median rule keys each trial's history by the object, so the
    scheduler shows it one object per member.
    """

    trial_id: str
    last_result: dict[str, Any] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)  # the member's own trial config (its epochs, its number)
    pickled_error_file: str | None = None
    error_file: str | None = None
    retries_left: bool = False  # its group's: Ray ended it with retries unspent (see StudyRecorder.on_trial_error)
    num_failures: int = 0  # its group's, for StudyRecorder.on_trial_recover
    max_failures: int = 0

    def should_recover(self) -> bool:
        return self.retries_left


def member_id(searcher: StudySearcher, ray_trial_id: str, number: int) -> str | None:
    """The stand-in id of member ``number`` of a Ray trial, while its Optuna trial is running."""
    prefix = ray_trial_id + "/"
    return next((key for key, trial in searcher.trials.items() if key.startswith(prefix) and trial.number == number),
                None)


def config_of(trial: Any, number: int) -> dict[str, Any]:
    """Member ``number``'s own trial config, from its group's."""
    return next((m for m in trial.config[META_KEY][MEMBERS] if m[META_KEY]["number"] == number), {})


class MemberScheduler(TrialScheduler):
    """The sweep's scheduler, shown members instead of groups; a group runs until its function returns."""

    def __init__(self, inner: TrialScheduler, searcher: FusedSearcher) -> None:
        super().__init__()
        self.inner, self.searcher = inner, searcher
        self.stopped = searcher.stopped_members
        self.added: dict[str, Member] = {}  # the members shown to the inner scheduler and not yet taken back

    def set_search_properties(self, metric: str | None, mode: str | None, **spec: Any) -> bool:
        return self.inner.set_search_properties(metric, mode, **spec)

    @property
    def metric(self) -> str | None:
        return self.inner.metric

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        number = result.get(MEMBER_KEY)
        key = member_id(self.searcher, trial.trial_id, number) if number is not None else None
        if key is None or key in self.stopped:
            return TrialScheduler.CONTINUE
        if result.get(FINAL_FLAG):
            if key in self.added:
                self.inner.on_trial_complete(tune_controller, self.added.pop(key), result)
        elif result.get(FAILED_KEY):
            if key in self.added:
                self.inner.on_trial_remove(tune_controller, self.added.pop(key))
        else:
            if key not in self.added:
                self.added[key] = Member(key, config=config_of(trial, number))
                self.inner.on_trial_add(tune_controller, self.added[key])
            member = self.added[key]
            member.last_result = result
            # PAUSE (the median rule's "too few results yet to judge") cannot apply to a member: it trains on
            if self.inner.on_trial_result(tune_controller, member, result) == TrialScheduler.STOP:
                self.stopped.add(key)
                self.inner.on_trial_complete(tune_controller, self.added.pop(key), result)
        return TrialScheduler.CONTINUE

    def on_trial_add(self, tune_controller: Any, trial: Any) -> None:
        """Members are added on their first result."""

    def on_trial_error(self, tune_controller: Any, trial: Any) -> None:
        self._forget(tune_controller, trial)

    def on_trial_complete(self, tune_controller: Any, trial: Any, result: dict) -> None:
        self._forget(tune_controller, trial)

    def on_trial_remove(self, tune_controller: Any, trial: Any) -> None:
        self._forget(tune_controller, trial)

    def _forget(self, tune_controller: Any, trial: Any) -> None:
        for key in [k for k in self.added if k.startswith(trial.trial_id + "/")]:
            self.inner.on_trial_remove(tune_controller, self.added.pop(key))

    def choose_trial_to_run(self, tune_controller: Any) -> Any:
        return FIFOScheduler.choose_trial_to_run(self, tune_controller)

    def debug_string(self) -> str:
        return "fused: " + self.inner.debug_string()


class FusedRecorder(StudyRecorder):
    """``StudyRecorder`` for members: each member's results are recorded as its own trial's, by the same code."""

    def __init__(self, searcher: FusedSearcher, *args: Any, **kwargs: Any) -> None:
        super().__init__(searcher, *args, **kwargs)
        self.stopped, self.decisions = searcher.stopped_members, searcher.decisions
        self.last: dict[str, dict[str, Any]] = {}  # each running member's last result

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        number = result.get(MEMBER_KEY)
        key = member_id(self.searcher, trial.trial_id, number) if number is not None else None
        if key is None:  # not a member's result, or a member already told PRUNED or FAIL
            return
        member = Member(key, result, config=config_of(trial, number))
        self.last[key] = result
        if result.get(FINAL_FLAG) or result.get(FAILED_KEY):
            super().on_trial_complete(iteration, trials, member)
            return
        super().on_trial_result(iteration, trials, member, result, **info)
        stop = key in self.stopped
        if stop:  # PRUNED now, with this epoch's metrics, exactly as a single trial the scheduler stops
            super().on_trial_complete(iteration, trials, member)
        self.decisions.judge(number, int(result.get("epoch", 0) or 0), stop)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """The group returned or was stopped: members still running end as a stopped single trial would."""
        for member in self._members(trial):
            super().on_trial_complete(iteration, trials, member)

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        for member in self._members(trial):
            super().on_trial_error(iteration, trials, member)

    def on_trial_recover(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        """Ray runs the group again: each member says so, as a single trial does."""
        for member in self._members(trial):
            super().on_trial_recover(iteration, trials, member)

    def _members(self, trial: Any) -> list[Member]:
        """Stand-ins for the members of a Ray trial whose Optuna trials are still running."""
        prefix = trial.trial_id + "/"
        return [Member(key, self.last.get(key, {}), pickled_error_file=trial.pickled_error_file,
                       error_file=trial.error_file, retries_left=trial.should_recover(),
                       num_failures=trial.num_failures, max_failures=trial.max_failures)
                for key in list(self.searcher.trials) if key.startswith(prefix)]
