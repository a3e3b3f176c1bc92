"""Ray Tune searcher that asks the Optuna study for every trial.

Asking the study (rather than keeping a private Optuna study as the stock ``OptunaSearch`` does) makes each
in-flight trial a RUNNING trial in storage from its first second: TPE's constant liar sees it, the dashboard
shows it, and a resumed sweep knows it existed. Results go back to the study through ``StudyRecorder``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future
from datetime import datetime
from typing import Any

import optuna
from ray.tune.search import Searcher

from search_spaces.schema import Spec
from storage import attrs
from storage.errors import StudyDeleted
from storage.locks import creating_trials
from storage.resume import Driver, claim, orphaned_trials, own
from storage.retry import OutagePolicy, Unreachable
from storage.studies import trials_counted
from storage.target import TargetMet, target_met
from sweeper.console import console, err_console
from sweeper.driver_only import DriverOnly
from sweeper.folders import trial_checkpoint_dir, trial_output_file
from sweeper.schedulers import ray_mode
from sweeper.study_writer import StudyWriter
from sweeper.trainable import META_KEY, stopped_note, worst_value
from trials.entrypoint import with_torch_threads

TS = optuna.trial.TrialState
TELL_WAIT_S = 2.0  # how long an ask waits for queued tells (commits take milliseconds; a slow database, seconds)
ASK_WAIT_S = TELL_WAIT_S + 1.0  # how long Tune's loop waits for an ask before it goes on without a new trial


class StudySearcher(DriverOnly, Searcher):
    def __init__(self, study: optuna.Study, spec: Spec, *, checkpoints: str, budget: int, driver: Driver,
                 policy: OutagePolicy, writer: StudyWriter, orphans: list[optuna.trial.FrozenTrial] = ()) -> None:
        super().__init__(metric=spec.objective.metric, mode=ray_mode(spec))
        self.study = study
        self.spec = spec
        self.checkpoints = checkpoints
        self.budget = budget
        self.driver = driver
        self.policy = policy
        self.writer = writer
        self.orphans = list(orphans)  # RUNNING trials of a dead driver: carried on before anything new is asked
        self.distributions = spec.distributions()
        self.trials: dict[str, optuna.Trial] = {}  # Ray trial id -> Optuna trial
        self.stopped = False
        self.timed_out = False  # stopped by budget.time
        self.deadline: float | None = None  # time.perf_counter() past which budget.time starts no trial
        # set on Ctrl-C or a stop signal: where the CLI's watcher leaves, Tune's loop runs on while the queued
        # writes drain, and would ask for trials that nobody runs (RUNNING, for a resume to carry on)
        self.interrupted = threading.Event()
        self.unbroken = threading.Lock()  # held by an ask as it takes its trial; the driver's leaves after it
        self.carried_on: set[int] = set()  # dead drivers' trials this one carries on (their curves may be complete)
        self.reruns: list[optuna.Trial] = []  # trials Ray gave up on with retries left: asked again, first
        self.handed_back: set[int] = set()  # trials this driver left RUNNING for the next run, and said so
        self.finished = False  # FINISHED was answered: Tune asks for no trial again
        self.met_elsewhere: TargetMet | None = None  # with stop_on_target: another driver met the targets first
        work_dir = policy.call(lambda: study.user_attrs).get(attrs.WORK_DIR)  # where trials read relative paths
        self.work_dir = work_dir if isinstance(work_dir, str) else None  # else where the driver runs
        self.driver_dir = os.getcwd()  # where the driver found the entrypoint (after the space's folder)
        # An ask cut short by the storage resumes where it stopped (see _next_trial).
        self._pending: optuna.Trial | None = None
        self._unconfirmed_id: int | None = None
        self._ask_token: dict[str, Any] | None = None
        self._reread = False  # the pending trial's params are read again from the study before the next try
        self._asking: Future[optuna.Trial | None] | None = None  # the ask under way on a thread of its own

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """The next trial's config; ``None`` ("not now") while the storage is away or slow, so Tune's loop goes on."""
        config = self._suggest(trial_id)
        self.finished |= config == Searcher.FINISHED  # Tune asks no more after it
        return config

    def check_deadline(self) -> None:
        """budget.time spent: no trial starts after it (Tune asks the searcher before the stopper's stop_all)."""
        if self.deadline is not None and time.perf_counter() > self.deadline:
            self.stopped = self.timed_out = True

    def _suggest(self, trial_id: str) -> dict[str, Any] | None:
        self.check_deadline()
        if self.stopped or self.interrupted.is_set() or self.policy.overdue():
            return Searcher.FINISHED
        if self._asking is None:
            if self.policy.in_outage and self.writer.pending:
                # the writer probes the storage already; a probe here would only wait beside it
                return None
            self._asking = self._ask()
            waited = ASK_WAIT_S
        else:
            waited = 0.0  # Tune's loop came back: the ask it left goes on, and is not waited for again
        # A write the storage holds (a SQLite file another process locked: 10 s a try, tried again by the outage
        # policy) must not hold Tune's loop, which also collects results and ends the sweep at
        # --storage-timeout: the ask runs on, and a later call takes its trial
        asking = self._asking
        try:
            trial = asking.result(timeout=waited)
        except (TimeoutError, Unreachable):
            return None
        except KeyError as exc:
            if not StudyDeleted.explains(exc):
                raise
            self.writer.fail(StudyDeleted())  # the sweep ends on it
            return Searcher.FINISHED
        finally:
            if asking.done():
                self._asking = None
        if trial is None:
            return Searcher.FINISHED
        self.writer.submit(lambda: trial.set_user_attr(attrs.RAY_TRIAL_ID, trial_id))
        self.trials[trial_id] = trial
        config = with_torch_threads(self.spec.trial_config(trial.params), self.spec.entrypoint,
                                    self.spec.resources.cpu)
        config[META_KEY] = {
            "number": trial.number,
            "study": self.study.study_name,
            "entrypoint": self.spec.entrypoint,
            "base_dir": self.spec.base_dir,
            "checkpoints": self.checkpoints,
            "work_dir": self.work_dir,
            "driver_dir": self.driver_dir,
            "metric": self.spec.objective.metric,
            "worst": worst_value(self.spec.direction),
        }
        return config

    def _ask(self) -> Future[optuna.Trial | None]:
        asking: Future[optuna.Trial | None] = Future()

        def ask() -> None:
            try:
                # the trial that freed this slot was told on the writer's thread: the sampler must see its result
                # (else TPE's constant liar counts it as a bad one), so give the queue a moment; not an outage
                self.writer.drain(TELL_WAIT_S)
                asking.set_result(self.policy.attempt(self._next_trial))
            except BaseException as exc:  # Unreachable, StorageUnavailable or a bug: raised in suggest
                asking.set_exception(exc)

        threading.Thread(target=ask, name="sweeper-ask", daemon=True).start()
        return asking

    def _next_trial(self) -> optuna.Trial | None:
        """A dead driver's trial to carry on, else a new one; None when the budget is spent.

        Safe to repeat after a failure at any step: the trial claimed or created so far is kept and finished,
        never left behind as a RUNNING trial nobody runs. Whole under ``unbroken``, which the driver's exit on an
        interrupt waits for: cut short, it left an enqueued trial RUNNING before its owner was written, which the
        next run took for a live driver's (:data:`storage.resume.GRACE_PERIOD_S`) and ended without. Once a stop
        signal came, an ask with nothing half-taken takes no trial and not the lock either: asks after asks kept
        taking it while the exit waited (30 s, once, beside a SQLite file another process held).
        """
        if self._pending is None and not self.reruns and self.interrupted.is_set():
            return None
        with self.unbroken:
            return self._take_trial()

    def _take_trial(self) -> optuna.Trial | None:
        if self._pending is None and self.reruns:
            self._pending = self.reruns.pop(0)
        if self._pending is None and self.interrupted.is_set():  # it came as this ask waited for the tells
            return None
        self._claim_orphan()
        if self._pending is None:
            with creating_trials(self.study):  # else two drivers that both counted N-1 trials both create the N-th
                trial_id = self._new_trial_id()
            if trial_id is None and self.met_elsewhere is not None:
                return None
            if trial_id is None:  # another driver on this study died since this began?
                self.orphans = record_stopped(self.study, orphaned_trials(self.study), self.checkpoints)
                self._claim_orphan()
                if self._pending is None:
                    return None
            else:
                trial = optuna.Trial(self.study, trial_id)
                own(trial, self.driver)
                # a new trial resumes nothing: a checkpoint here is a deleted study's trial of the same number. Moved
                # aside, never deleted: the folder is a study attr, which anyone who may write the database sets
                aside = f".stale-{uuid.uuid4().hex[:8]}"
                for stale in (trial_checkpoint_dir(self.checkpoints, trial.number),
                              trial_output_file(self.checkpoints, trial.number)):  # its output too: it is new
                    with contextlib.suppress(OSError):
                        stale.rename(stale.with_name(stale.name + aside))
                self._pending = trial
        trial = self._pending
        if self._reread:  # a param whose write landed but whose answer was lost is not in this copy of it; the
            # same Trial keeps its relative sample (TPE's multivariate, QMC, CMA-ES): one joint draw, not two mixed
            trial._cached_frozen_trial = self.study._storage.get_trial(trial._trial_id)
            self._reread = False
        try:
            for name, distribution in self.distributions.items():  # a no-op for params the trial already has
                trial._suggest(name, distribution)
        except ValueError as exc:
            if name not in (enqueued := trial._cached_frozen_trial.system_attrs.get("fixed_params") or {}):
                self._reread = True
                raise
            # a value its param cannot take ('abc' for a float), enqueued by hand: it stayed RUNNING, and every run
            # after raised the same, for good; it fails in words, and the sweep goes on
            message = f"ValueError: enqueued {name}={enqueued[name]!r}, which its param cannot take ({exc})"
            trial.set_user_attr(attrs.ERROR, message)
            self.study.tell(trial, state=TS.FAIL, skip_if_finished=True)
            err_console.print(f"trial #{trial.number} failed: {message}")
            self._pending = self._unconfirmed_id = self._ask_token = None
            return self._take_trial()
        except Exception:
            # else the retry drew that param anew: the trial trained on the new draw, the study kept the first
            self._reread = True
            raise
        self._pending = self._unconfirmed_id = self._ask_token = None
        return trial

    def run_again(self, trial: optuna.Trial) -> bool:
        """Ask ``trial`` again, as it stands, before anything new: it carries on from its checkpoint as a new Ray
        trial. For a trial Tune ended although its retries were not spent (see ``StudyRecorder.on_trial_error``).
        False once Tune asks for no more trials (the budget is spent, the sweep stopping): nothing will run it."""
        if self.finished:
            return False
        self.carried_on.add(trial.number)  # its curve may be partly recorded, and a stopped sweep leaves it RUNNING
        self.reruns.append(trial)
        return True

    def _claim_orphan(self) -> None:
        while self._pending is None and self.orphans:  # counted in the budget: RUNNING when their driver died
            self._pending = claim(self.study, self.orphans[0], self.driver)
            if self._pending is not None:  # else another driver carried it on, or finished it
                self.carried_on.add(self.orphans[0].number)
            self.orphans.pop(0)

    def _budget_spent(self) -> bool:
        """The study has its trials (a dead driver's RUNNING ones included)."""
        return trials_counted(self.study) >= self.budget

    def _target_met_elsewhere(self) -> bool:
        """With ``stop_on_target``, another driver on the study met the targets: no trial starts after that. Read
        here, as each trial is created, not only beside the heartbeats: between two beats (10 s) this driver would
        start trial after trial that the stop then prunes."""
        if self.spec.budget.stop_on_target and self.met_elsewhere is None:
            self.met_elsewhere = target_met(self.study.user_attrs)
        return self.met_elsewhere is not None

    def _new_trial_id(self) -> int | None:
        """An enqueued trial, else a new one; None when the budget is spent. Either is marked with this ask's token
        first, so that when the answer to its commit is lost the retry finds it instead of leaving it RUNNING with
        nobody to run it."""
        self._asked_trial_id()
        # counted once no trial of this ask is found: a retry whose trial was never written counts again, as
        # another driver may have taken the budget's last one meanwhile
        if self._unconfirmed_id is None and (self._budget_spent() or self._target_met_elsewhere()):
            return None
        self._ask_token = self._ask_token or {"token": uuid.uuid4().hex, "driver": self.driver.as_attr()}
        if self._unconfirmed_id is None:
            self._unconfirmed_id = self._pop_waiting_trial_id()
        if self._unconfirmed_id is None:
            template = optuna.trial.FrozenTrial(
                number=-1, state=TS.RUNNING, value=None, datetime_start=datetime.now(), datetime_complete=None,
                params={}, distributions={}, user_attrs={attrs.DRIVER: self.driver.as_attr()},
                system_attrs={attrs.ASK_TOKEN: self._ask_token}, intermediate_values={}, trial_id=-1)
            self._unconfirmed_id = self.study._storage.create_new_trial(self.study._study_id, template_trial=template)
        return self._unconfirmed_id

    def _asked_trial_id(self) -> int | None:
        """The trial this ask made or popped so far, found by the ask's token where the answer to its commit was
        lost; None when it made none."""
        if self._unconfirmed_id is None and self._ask_token is not None:
            for trial in self.study.get_trials(deepcopy=False, states=(TS.RUNNING,)):
                owner = Driver.from_attr(trial.user_attrs.get(attrs.DRIVER))  # None: popped, not owned yet
                if trial.system_attrs.get(attrs.ASK_TOKEN) == self._ask_token and owner in (None, self.driver):
                    self._unconfirmed_id = trial._trial_id
        return self._unconfirmed_id

    def _pop_waiting_trial_id(self) -> int | None:
        """Take an enqueued (WAITING) trial for this ask and make it RUNNING; None when none is left. It is marked
        with the ask's token first, so a retry after a lost answer finds it (see :meth:`_new_trial_id`); one that
        another driver takes first is passed over."""
        storage = self.study._storage
        for trial in self.study.get_trials(deepcopy=False, states=(TS.WAITING,)):
            try:
                storage.set_trial_system_attr(trial._trial_id, attrs.ASK_TOKEN, self._ask_token)
                if storage.set_trial_state_values(trial._trial_id, TS.RUNNING):  # False: another driver took it
                    return trial._trial_id
            except optuna.exceptions.UpdateFinishedTrialError:
                continue
        return None

    def drop_unstarted(self, *, at_target: bool = False) -> None:
        """Call after the sweep (``at_target``: it stopped at its met targets): a trial asked for as it ended (the
        storage held the ask) is started by nobody, and is recorded so, not left RUNNING for a resume to carry on; but
        past budget.time it is the next run's to train (else one trial fewer trained)."""
        asking, self._asking = self._asking, None
        trial = None
        if asking is not None:
            with contextlib.suppress(Exception):  # failed: what it made so far is _pending
                # as long as the writer's backlog may take; not at all past the outage budget (nothing is written)
                trial = asking.result(timeout=0 if self.writer.error is not None else self.policy.timeout_s)
        # a dead driver's trial stays its own (RUNNING): the next run carries it on, or stops it at a met target.
        # Past budget.time one is handed back for the next run to train first: recorded never started, it counted
        # in budget.trials untrained (an ask the storage held as the time ran out: an enqueued config was lost)
        hand_back = self.timed_out and not at_target
        for made in (trial, self._pending):
            if made is not None and made.number not in self.carried_on:
                if hand_back:
                    self.reruns.append(made)
                else:
                    self.writer.submit(never_started(self.study, made))
        if trial is None and self._pending is None and self._ask_token is not None:
            # the ask failed after it made its trial, before it took it
            self.writer.submit(lambda: self._drop_asked(hand_back=hand_back))
        self.handed_back.update(t.number for t in self.reruns)
        for made in self.reruns:  # a trial to run again that the sweep ended before: RUNNING, for the next run
            self.writer.submit(lambda made=made: made.set_user_attr(attrs.DRIVER, None))
        if numbers := [t.number for t in self.reruns]:  # the final summary names a gone driver's only
            # said after the trials that ended before, as they are written
            self.writer.submit(lambda: say_left_running(numbers))
        self._pending, self.reruns = None, []

    def _drop_asked(self, *, hand_back: bool) -> None:
        """Record the trial a failed ask made (if it made one) as never started, or hand it back (no driver) for the
        next run to train: else it stayed RUNNING, owned by a driver that has exited."""
        if (trial_id := self._asked_trial_id()) is not None:
            trial = optuna.Trial(self.study, trial_id)
            if hand_back:
                trial.set_user_attr(attrs.DRIVER, None)
                self.handed_back.add(trial.number)
                say_left_running([trial.number])
            else:
                never_started(self.study, trial)()

    def save(self, checkpoint_path: str) -> None:
        """The study is the searcher's state; nothing to write next to Ray's results."""

    def restore(self, checkpoint_path: str) -> None:
        """See ``save``: a resumed sweep reads the study."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Bookkeeping happens in ``StudyRecorder``, which also sees the error text; nothing to do here."""


def say_left_running(numbers: list[int]) -> None:
    """Say which trials this driver leaves RUNNING for the next run (the final summary names a gone driver's only).
    Not "did not start": a trial to run again, or a dead driver's carried on, trained before."""
    left, one = ", ".join(f"#{n}" for n in numbers), len(numbers) == 1
    console.print(f"trial{'' if one else 's'} {left} {'was' if one else 'were'} still waiting to run when the sweep "
                  f"ended; {'it stays' if one else 'they stay'} RUNNING for the next run to carry on")


def never_started(study: optuna.Study, trial: optuna.Trial) -> Callable[[], None]:
    """The write that records a trial that no Ray trial ran: PRUNED after no epoch."""
    def prune() -> None:
        try:
            trial.set_user_attr(attrs.STOP_REASON, attrs.STOP_NEVER_STARTED)
            trial.set_user_attr(attrs.EPOCHS_RUN, 0)
            trial.set_user_attr(attrs.RAY_TRIAL_ID, None)  # a Ray trial that asked for it ran without it
        except optuna.exceptions.UpdateFinishedTrialError:
            return  # this tell, whose answer was lost, did commit: not "another driver carried it on"
        study.tell(trial, state=TS.PRUNED, skip_if_finished=True)

    return prune


def record_stopped(study: optuna.Study, orphans: list[optuna.trial.FrozenTrial], checkpoints: str
                   ) -> list[optuna.trial.FrozenTrial]:
    """Record PRUNED the orphans their driver stopped, but could not tell the study before its storage went away
    for good (see :func:`sweeper.trainable.note_stopped`); returns the orphans left to carry on."""
    left = []
    for trial in orphans:
        note = stopped_note(checkpoints, trial.number)
        if note is None:
            left.append(trial)
            continue
        live = optuna.Trial(study, trial._trial_id)
        try:
            for key, value in note.items():
                live.set_user_attr(key, value)
            study.tell(live, state=TS.PRUNED, skip_if_finished=True)
        except optuna.exceptions.UpdateFinishedTrialError:
            continue  # another driver, resumed at the same moment, recorded it
        console.print(f"#{trial.number} PRUNED, recorded now: its driver stopped it after epoch "
                      f"{note.get(attrs.EPOCHS_RUN, '?')} ({note.get(attrs.STOP_REASON)}), and did not write that "
                      "before it ended (a storage away, or an exit cut short)")
    return left
