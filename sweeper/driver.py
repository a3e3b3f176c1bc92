"""``sweeper run``: a spec and a storage in, a finished (or resumable) Optuna study out.

Order matters for "bad input writes nothing": :mod:`sweeper.preflight` validates the spec, checks the storage URL,
the data and the results folder before any study is created or Ray is started.

The functions below :func:`run_sweep` are its steps, in the order it takes them. What they lean on has modules of
its own: :mod:`sweeper.ray_capacity` (how many trials a Ray holds), :mod:`sweeper.resume_summary`,
:mod:`sweeper.interrupt_exit` (the way out on Ctrl-C), :mod:`sweeper.outage_lines`, :mod:`sweeper.stop_messages` (what a
sweep that its storage stopped says) and :mod:`sweeper.heartbeats`.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Collection, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
from rich.markup import escape

from search_spaces.schema import Spec
from storage import attrs
from storage.engine import as_storage_error, check_writable, fold_sqlite_wal, open_storage
from storage.environment import environment_fields, record_environment
from storage.errors import StorageError
from storage.locks import creating_trials
from storage.resume import (
    GRACE_PERIOD_S,
    HEARTBEAT_INTERVAL_S,
    Driver,
    last_epoch,
    orphaned_trials,
)
from storage.retry import OutagePolicy, StorageUnavailable, retry_briefly
from storage.studies import create_or_load_study, spec_changes, trials_counted
from storage.target import TargetMet, prune_stopped, recover_target_met, target_met
from storage.urls import ENV_VAR, mask_url, sqlite_path
from sweeper.console import console, count_trials
from sweeper.errors import BadInput, DiskUnavailable, NothingFinished
from sweeper.folders import RESULTS_DIR, check_folder_name, checkpoint_folder, kept_checkpoint, relocated
from sweeper.heartbeats import heartbeats
from sweeper.interrupt_exit import INTERRUPT_DRAIN_S, SAME_COMMAND, Interrupts
from sweeper.outage_lines import OutageLines
from sweeper.preflight import (
    SweepOptions,
    check_same_data,
    check_spec,
    checked_data,
    clean_command,
    prepare,
    resume_command,
    spec_attr,
    with_defaults,
    writable_results_folder,
)
from sweeper.progress import SweepPrinter
from sweeper.ray_capacity import (
    check_local_resources,
    fills_every_cpu,
    no_node_holds,
    with_gpu_resources,
    within_local_ray,
)
from sweeper.ray_runtime import (
    check_ray_address,
    check_ray_temp_folder,
    environment_without,
    joins_cluster,
    start_ray,
    trial_actors_on_prestarted_workers,
)
from sweeper.resume_summary import print_resume_summary
from sweeper.samplers import build_sampler, cmaes_note
from sweeper.stop_messages import database_full_message, outage_message
from sweeper.study_writer import StudyWriter

# a study found without its checkpoint folder: the driver creating it writes that last, well within a second on an
# idle machine, past one on a loaded one
CREATOR_WAIT_S = 3.0


def run_sweep(options: SweepOptions, *, exit_on_interrupt: Callable[[str], Any] | None = None) -> optuna.Study:
    """Run (or carry on) a sweep; Ctrl-C and SIGTERM raise KeyboardInterrupt once queued writes are written.

    ``exit_on_interrupt(how)`` is for a program that leaves on Ctrl-C anyway (the CLI), and must end the process: it
    is called then, by a watcher thread as the signal arrives (the main thread, not interrupted, may be inside a call
    to Ray), or by the main thread where it sees the signal first. ``how`` carries the sweep on (:func:`carry_on`):
    "the same command", or after --fresh ``sweeper resume NAME`` once that study is made.
    """
    started = time.perf_counter()
    spec, url, data, results_root = check_inputs(options)
    joining = joins_cluster(options.address)  # a Ray that others started, which check_inputs joined
    outages = OutageLines()  # they count the running trials once there is a searcher
    timeout_s = options.storage_timeout or spec.budget.storage_timeout_seconds  # --storage-timeout beats the space
    how = carry_on(spec, options, url)
    policy = OutagePolicy(
        timeout_s,
        # open_storage's own errors say it already: wrapped again, the reason read twice, nested
        describe=lambda exc: str(exc if isinstance(exc, StorageError) else as_storage_error(exc, url, "reach")),
        on_outage=outages.outage, on_recovered=outages.recovered,
        # the same words wherever the sweep stands: an outage past the budget as the study was opened or taken stock
        # of said neither --storage-timeout nor that the same command carries the sweep on. Until the study is
        # opened, the same command: a --fresh study not made yet has no NAME that sweeper resume would find
        exhausted=outage_message(timeout_s, url, SAME_COMMAND), full=database_full_message(url, SAME_COMMAND),
    )
    writer = StudyWriter(policy)
    interrupts = Interrupts(writer, url, exit_on_interrupt, how)
    study, created = start_ray_and_open_study(spec, url, options, results_root, data, joining, policy, interrupts)
    policy.exhausted = outage_message(timeout_s, url, how)
    policy.full = database_full_message(url, how, clean_command(spec, options, url), results_root)
    try:  # from here a Ctrl-C names what carries this study on (carry_on), not the CLI's "the same command"
        spec = fitted_to_ray(spec, joining)
        trial_actors_on_prestarted_workers()
        orphans = [] if created else policy.call(lambda: orphaned_trials(study))
        budget = trial_budget(spec, lambda: policy.call(lambda: study.get_trials(deepcopy=False)))
        # a resumed study runs what its budget has left and the dead driver's trials it carries on (the stock taken
        # below records orphans PRUNED, which leaves this count as it is)
        counted = 0 if created else policy.call(lambda: trials_counted(study))
        left = budget if created else max(0, budget - counted) + len(orphans)
        console.print(f"study [bold]{escape(study.study_name)}[/] in {escape(mask_url(url))} "
                      f"({'new' if created else 'resumed'}), {trials_to_run(spec, budget, left)}", markup=True)
        # every read of the study from here on rides out an outage (one right after Ray's start crashed the sweep)
        checkpoints = checkpoint_folder(policy.call(lambda: study.user_attrs), study.study_name, results_root)
        if not created and not checkpoints.resolve().is_relative_to(results_root.resolve()):  # said, not silent
            console.print(f"checkpoints stay in the study's folder {checkpoints}; --results-dir "
                          f"{options.results_dir} holds Ray's results only", markup=False)
        due: list[optuna.trial.FrozenTrial] = []  # orphans whose final result alone is missing (see result_due)
        if not created:
            orphans, due = take_stock_on_resume(study, spec, orphans, checkpoints, policy)
        history = [] if created else policy.call(lambda: study.get_trials(deepcopy=False))
        printer = SweepPrinter(spec, history)
        if not created and nothing_left(study, spec, budget, [t for t in orphans if t not in due], policy, printer,
                                        counted=counted, due=bool(due)):
            return study
        if due:  # met targets: only the trials whose results are due run, from their last checkpoints
            orphans, budget = due, policy.call(lambda: trials_counted(study))  # no trial starts after them
            spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"stop_on_target": False})})

        searcher, recorder = searcher_and_recorder(study, spec, str(checkpoints), budget, orphans, policy, writer,
                                                   printer)
        outages.searcher = searcher
        searcher.interrupted, searcher.unbroken = interrupts.flag, interrupts.unbroken
        if spec.budget.time_seconds is not None:
            searcher.deadline = started + spec.budget.time_seconds
        tuner = build_tuner(spec, study.study_name, searcher, recorder, history,
                            lambda: should_stop(spec, started, interrupts.flag, searcher, recorder, policy, writer),
                            results_root, options.max_failures)
        with heartbeats(searcher, policy, lambda: read_target_met_elsewhere(spec, study, recorder, policy)), \
                interrupts.noted():
            fit(tuner, recorder)
        if interrupts.flag.is_set():
            raise KeyboardInterrupt
        searcher.drop_unstarted(at_target=spec.budget.stop_on_target and recorder.target_reached)
        writer.flush()  # the backlog of an outage that ended late; raises StorageUnavailable past the budget
        record_early_end(study, spec, budget, searcher, recorder, policy, printer, how)
        # in the try: a Ctrl-C as its reads wait out an outage names what carries this study on, not the same command
        trials = final_summary(study, policy, printer, how, said=searcher.handed_back)
    except StorageUnavailable:  # an outage past the budget, or a full disk under the database
        raise StorageUnavailable(policy.why_stopped()) from None
    except KeyboardInterrupt:  # write the epochs and tells queued at Ctrl-C; an unreachable storage is not awaited
        interrupts.leave()
        writer.drain(INTERRUPT_DRAIN_S)
        raise
    except Exception:
        if not interrupts.flag.is_set():
            raise
        interrupts.leave()  # what broke as Ctrl-C landed (a commit it cut short) is the interrupt
        writer.drain(INTERRUPT_DRAIN_S)
        raise KeyboardInterrupt from None
    finally:  # the CLI leaves with os._exit, which skips SQLite's own checkpoint at the last close
        fold_sqlite_wal(url)

    if recorder.disk_problem:
        raise DiskUnavailable(f"the sweep stopped: a trial's disk took no more writes ({recorder.disk_problem}); "
                              f"make room under {checkpoints} ({clean_command(spec, options, url)} deletes "
                              f"finished trials' checkpoints, which are never read again) and run {how}: "
                              "it carries the trials on")
    check_something_finished(trials, study.study_name)
    return study


def check_inputs(options: SweepOptions) -> tuple[Spec, str, str | None, Path]:
    """The spec, the storage URL, the data's fingerprint (None on a cluster, whose nodes hold the data) and the results
    folder, each checked before any study is created or Ray is started, so that bad input writes nothing."""
    joining = joins_cluster(options.address)
    spec, url = prepare(options)
    check_folder_name(spec.name)
    retry_briefly(lambda: check_writable(url))  # before Ray and the results folder: found out only after them
    data = None if joining else checked_data(spec, url, options)
    check_spec(spec)  # what validate refuses too: a fuse that cannot be, a metric under a name the sweep takes
    check_ray_address(options.address)
    if joining:  # a cluster that turns this driver away (a wrong token) must leave nothing behind
        start_ray(options.address)
    else:
        check_ray_temp_folder()
        check_local_resources(spec)
    return spec, url, data, writable_results_folder(options.results_dir)


def carry_on(spec: Spec, options: SweepOptions, url: str) -> str:
    """What carries this sweep on once stopped: the same command, but not after ``--fresh``, which would start yet
    another study and leave this one's trials RUNNING: ``sweeper resume NAME`` then. What exit 75, a full disk, a
    spent budget.time, a gone driver's trials and Ctrl-C all say (the CLI's Ctrl-C had a copy of this rule)."""
    return resume_command(spec, options, url) if options.fresh else SAME_COMMAND


def start_ray_and_open_study(spec: Spec, url: str, options: SweepOptions, results_root: Path, data: str | None,
                             joining: bool, policy: OutagePolicy, interrupts: Interrupts) -> tuple[optuna.Study, bool]:
    """Start a Ray of sweeper's own (a cluster was joined by :func:`check_inputs`) while another thread opens the
    study and a third imports Tune: Ray's start-up takes seconds, mostly waiting on its processes. Both come after
    validation (the --address too), so bad input still starts nothing and writes nothing."""
    import ray  # noqa: F401  # first, so the threads never import the same Ray modules at once

    # Ctrl-C or SIGTERM while Ray starts: its processes may already be gone (a signal to the process group), and
    # ray.init would wait a minute on them
    try:
        with interrupts.noted(), ThreadPoolExecutor(max_workers=2) as pool:
            opened = pool.submit(open_study_whole, interrupts, policy, spec, url, options.space, results_root, data,
                                 options.fresh)
            imported = pool.submit(import_tune_side)
            if not joining:
                with environment_without(ENV_VAR):  # a local Ray's processes inherit our environment; not this
                    start_ray(options.address, workers_ahead=fills_every_cpu(spec))
            study, created = opened.result()
            imported.result()
        if interrupts.flag.is_set():  # the handler raises nothing where the watcher leaves: it ends the process
            raise KeyboardInterrupt
    except KeyboardInterrupt:  # the pool's own wait for the study may be what the interrupt cut short
        interrupts.leave()
        raise
    return study, created


def import_tune_side() -> None:
    """Import what the sweep needs once Ray is up (Tune alone takes a second), while ``ray.init`` waits."""
    from ray import tune  # noqa: F401

    import sweeper.recorder
    import sweeper.schedulers
    import sweeper.searcher
    import sweeper.trainable  # noqa: F401


def open_study_whole(interrupts: Interrupts, policy: OutagePolicy, spec: Spec, url: str, space: str | None,
                     results_root: Path, data: str | None, fresh: bool = False) -> tuple[optuna.Study, bool]:
    """:func:`open_study`, riding out an outage, each try while holding ``interrupts.unbroken``: an interrupt waits
    for a try to finish, not for the outage to end (between tries nothing is half-written: a Ctrl-C then waited
    STUDY_OPEN_WAIT_S, silent, with further signals ignored). A try that opens it marks ``interrupts.opened``
    under the lock: an exit before that named ``sweeper resume NAME`` of a --fresh study not made yet. ``fresh``:
    the first try refuses a study that exists (another --fresh run took the name); a retry may find the one its own
    lost answer created, and carries it on."""
    tries = []
    made: set[int] = set()  # the study an earlier try created: a retry finding it is not a resume

    def one_try() -> tuple[optuna.Study, bool]:
        with interrupts.unbroken:
            tries.append(None)
            opened = open_study(spec, url, space, results_root, data, fresh=fresh and len(tries) == 1, made=made)
            interrupts.opened = True
            return opened

    return policy.call(one_try)


def open_study(spec: Spec, url: str, space: str | None, results_root: Path = Path(RESULTS_DIR),
               data: str | None = None, *, fresh: bool = False, made: set[int] | None = None
               ) -> tuple[optuna.Study, bool]:
    """Create the study or load it to continue (``fresh``: create it, or raise StorageError); either way the space's
    ``enqueue`` rows it lacks are added, within ``budget.trials`` (they run first).

    The storage records heartbeats, so a driver on another machine can tell our trials from a dead driver's.
    On resume the stored spec is brought up to date (a larger budget is how a finished sweep is extended, and
    ``sweeper resume`` must then see it); ``prepare`` already refused any change to what is being searched.
    ``made``: the ids of studies that earlier tries of this same open created, kept by the caller across retries:
    one whose answer to an enqueued row was lost holds that row, and is still new (not resumed: its seed stays).
    """
    storage = open_storage(url, heartbeat_interval=HEARTBEAT_INTERVAL_S, grace_period=GRACE_PERIOD_S)
    # written with the study (a driver that finds it waits for them); to an earlier sweeper's study, where missing
    attributes = {k: v for k, v in {**study_attrs(spec, space), attrs.DATA: data}.items() if v is not None}
    study, created = create_or_load_study(storage, spec.name, spec.direction, build_sampler(spec),
                                          study_attrs=attributes, only_new=fresh)
    if created and made is not None:
        made.add(study._study_id)
    created = created or study._study_id in (made or ())
    if not created:  # a driver creating it this moment enqueues its rows, then writes the folder: wait for both
        deadline = time.monotonic() + CREATOR_WAIT_S
        while attrs.CHECKPOINTS not in study.user_attrs and time.monotonic() < deadline:
            time.sleep(0.1)
        # prepare compared the spaces before this, but then the study may not have been there: a driver of another
        # space that created it since would have its trials mixed with this one's
        stored = study.user_attrs.get(attrs.SPEC)
        ran = attrs.defaults_here(study.user_attrs, spec.base_dir, attributes.get(attrs.DEFAULTS))
        if isinstance(stored, dict) and (changes := spec_changes(with_defaults(stored, spec, ran),
                                                                 with_defaults(attributes[attrs.SPEC], spec))):
            raise StorageError(f"Study {spec.name!r} was made a moment ago by another sweep, from a different space "
                               f"({'; '.join(changes)}); running this one into it would mix two experiments. Give "
                               "this space another name, or run it again with --fresh for a study of its own.")
        check_same_data(spec, study.user_attrs.get(attrs.DATA), data)  # run_sweep checked before it was made
    found = study.get_trials(deepcopy=False)
    held = len(found)
    created = created or not held  # new: this very call may have created it before a lost answer, and been retried
    ran = any(t.state != optuna.trial.TrialState.WAITING for t in found)
    if ran and attrs.CHECKPOINTS not in study.user_attrs:
        check_legacy_checkpoints_here(spec.name, results_root)
    for point in spec.enqueue:  # on resume too: rows added since; those already there (run or waiting) are skipped
        # a row at a time under the study's lock: two drivers resuming at once would each add a row the other was
        # adding, and the lock's session may sit idle no longer than a statement may run (a big study's reads)
        with creating_trials(study):
            if len(study.get_trials(deepcopy=False)) >= spec.budget.trials:
                break  # a row past the budget would wait in the study for good; a resume with a larger one adds it
            study.enqueue_trial(point, skip_if_exists=True)
    if attrs.CHECKPOINTS not in study.user_attrs:
        # a trial that ran with no folder recorded is from before the attr: its checkpoints are where they always were
        folder = spec.name if ran else f"{spec.name}-{secrets.token_hex(4)}"
        study.set_user_attr(attrs.CHECKPOINTS, str(results_root.resolve() / "checkpoints" / folder))
    if attrs.WORK_DIR not in study.user_attrs:  # a study of an earlier sweeper: from now on, this folder
        study.set_user_attr(attrs.WORK_DIR, str(Path.cwd()))
    for key, value in (relocated(study.user_attrs, url, results_root) or {}).items():  # a copied or moved project
        study.set_user_attr(key, value)
    if attrs.DATABASE not in study.user_attrs and (database := sqlite_path(url)) is not None and (
            created or database.resolve().parent.is_relative_to(work := Path(study.user_attrs[attrs.WORK_DIR]))
            or work.is_relative_to(database.resolve().parent)):
        # an earlier sweeper's study is this file's where the file lies in its project (else a copy's, unless told)
        study.set_user_attr(attrs.DATABASE, str(database.resolve()))
    if not created:
        study.sampler = build_sampler(spec, resumed_after=held)
        record_changed_environment(study, found)
    ran_attr = study.user_attrs.get(attrs.DEFAULTS)
    # the spec and its defaults together (found without trials, as an interrupt left it; a resumable change), and
    # what reports compare with; a path of this space's folder as one of the study's (another checkout's, on a server)
    attributes[attrs.DEFAULTS] = attrs.defaults_here({**attributes, attrs.SPACE_DIR: spec.base_dir},
                                                     study.user_attrs.get(attrs.SPACE_DIR), ran_attr)
    for key in (attrs.SPEC, attrs.DEFAULTS, attrs.BASELINE):
        if study.user_attrs.get(key) != attributes.get(key):
            study.set_user_attr(key, attributes.get(key))
    return study, created


def check_legacy_checkpoints_here(name: str, results_root: Path) -> None:
    """Refuse to carry on an earlier sweeper's study (no ``checkpoints`` attr) whose trials ran but whose folder is
    not under this run's ``--results-dir``: its first run was given another one (or ran elsewhere), and recording
    this one would start its interrupted trials over and leave its weights where ``best`` and ``clean`` never look."""
    folder = results_root / "checkpoints" / name
    if not folder.is_dir():
        raise BadInput(f"study {name} was made by an earlier sweeper, which did not record where its checkpoints are, "
                       f"and {folder} does not exist: run this with the --results-dir its first run had (from the "
                       f"folder it ran in, for a relative one); if its checkpoints are gone, create {folder} and its "
                       "interrupted trials start over")


def study_attrs(spec: Spec, space: str | None) -> dict[str, Any]:
    """The attrs a study is created with: the study, not Ray's results folder, is what ``status``, ``best``, the
    report and a later resume read, so what they need of the spec is written with it (:mod:`storage.attrs`)."""
    return {
        attrs.SPEC: spec_attr(spec),
        attrs.DEFAULTS: attrs.defaults_attr(spec.entrypoint_info.settings if spec.entrypoint_info else None),
        attrs.SPACE_FILE: space,
        attrs.SPACE_DIR: spec.base_dir,
        attrs.TARGETS: dict(spec.targets),
        attrs.BASELINE: attrs.baseline_attr(spec.baseline.source, dict(spec.baseline.metrics))
        if spec.baseline else None,
        attrs.OBJECTIVE: attrs.objective_attr(spec.objective.metric, spec.direction),
        attrs.ENVIRONMENT: record_environment(),
    }


def record_changed_environment(study: optuna.Study, found: Sequence[optuna.trial.FrozenTrial]) -> None:
    """Add this run's environment to the study's ``environments`` where it differs from the last recorded (a
    ``git pull``, a torch upgrade between runs), and say so: ``environment`` is the first run's alone, so the trials
    this one trains would otherwise be taken for that code's. ``found``: the trials the study held at its start.
    The git commit is the study's work folder's, as the first run's was (its working directory): a resume run from
    another folder trains the same code, and noted 'git 2c535bbd21a6 -> None', then the reverse from the project."""
    work = study.user_attrs.get(attrs.WORK_DIR)
    now = record_environment(work if isinstance(work, str) and Path(work).is_dir() else None)
    later = study.user_attrs.get(attrs.ENVIRONMENTS)
    later = later if isinstance(later, list) else []  # another program's value is no list of ours to add to
    last = later[-1] if later else study.user_attrs.get(attrs.ENVIRONMENT)
    if not isinstance(last, dict):  # an earlier sweeper's study recorded none
        return
    was = {k: v for k, v in last.items() if k not in ("from_trial", "unfinished")}
    if was == now:
        return
    unfinished = sorted(t.number for t in found if not t.state.is_finished())
    study.set_user_attr(attrs.ENVIRONMENTS, [*later, {"from_trial": len(found), "unfinished": unfinished, **now}])
    flat = [environment_fields(e) for e in (was, now)]
    changes = ", ".join(f"{k} {str(flat[0].get(k))[:12]} -> {str(v)[:12]}" for k, v in flat[1].items()
                        if flat[0].get(k) != v)
    console.print(f"note: this run's code differs from what the study's trials so far ran with ({changes}): trials "
                  f"from #{len(found)} on{' and those unfinished' * bool(unfinished)} are recorded as trained with "
                  "it (study attr environments)", markup=False)


def fitted_to_ray(spec: Spec, joining: bool) -> Spec:
    """The spec with what the started Ray offers: ``resources.on_gpu`` where it has GPUs, and no more trials at a
    time than a Ray of sweeper's own has CPUs and GPUs for (a cluster may gain nodes, an autoscaler's: where none of
    its nodes can hold a trial now, this says so and the sweep waits)."""
    import ray

    place = "resources"
    if spec.resources.on_gpu is not None and (gpus := ray.cluster_resources().get("GPU", 0)) > 0:
        spec, place = with_gpu_resources(spec, gpus), "resources.on_gpu"
    if joining:
        if note := no_node_holds(spec, place, [n["Resources"] for n in ray.nodes() if n["Alive"]]):
            console.print(note, markup=False)
    else:
        offered = ray.cluster_resources()
        spec = within_local_ray(spec, offered.get("CPU", 0), offered.get("GPU", 0))
    return spec


def trial_budget(spec: Spec, trials: Callable[[], Sequence[optuna.trial.FrozenTrial]]) -> int:
    """``budget.trials``, or fewer for a grid that has fewer points: the study's enqueued rows take trials but no
    grid point, so the grid still has all its points to give. The rows are counted in the study, not in ``enqueue:``:
    one the study already held (a repeated row, or one added on resume that the grid had run) is not queued again,
    and counting it asked the spent grid for one more trial, which re-ran a point. ``trials``: the study's, read for
    a grid only (a large study's read costs seconds)."""
    if spec.sampler.type == "grid":
        rows = sum("fixed_params" in t.system_attrs and "grid_id" not in t.system_attrs for t in trials())
        return min(spec.budget.trials, spec.grid_size() + rows)
    return spec.budget.trials


def trials_to_run(spec: Spec, budget: int, left: int) -> str:
    """``40 trials, 2 at a time``: no more at a time, nor in a fused group, than the ``left`` trials (1 trial said
    4 at a time); none left says no more (the study has nothing to run: the next line says why). A group may hold
    fewer than ``fuse`` (one of another shape starts the next), so ``max_concurrent`` groups may run up to ``left``."""
    said = count_trials(budget) + (f", {left} left" if 0 < left < budget else "")
    group = min(spec.resources.fuse, left)
    return said + (f", {min(spec.budget.max_concurrent, left)} at a time" if left else "") + \
        (f" (groups of up to {group})" if group > 1 else "")


def take_stock_on_resume(study: optuna.Study, spec: Spec, orphans: list[optuna.trial.FrozenTrial], checkpoints: Path,
                         policy: OutagePolicy) -> tuple[list[optuna.trial.FrozenTrial], list[optuna.trial.FrozenTrial]]:
    """A resumed study brought up to date, and said what it keeps: the orphans the last run stopped without telling
    the study are recorded PRUNED, a target met then is recorded if it was not. Returns the orphans to carry on and,
    where the targets are met and the sweep stops there, those of them whose final result alone is due."""
    from sweeper.recorder import meets_targets  # after Ray's start: they import Tune
    from sweeper.searcher import record_stopped

    orphans = policy.call(lambda: record_stopped(study, orphans, str(checkpoints)))
    if spec.targets:
        policy.call(lambda: recover_target_met(study, lambda t: meets_targets(spec, t.user_attrs, t.value)))
    at_target = spec.budget.stop_on_target and target_met(policy.call(lambda: study.user_attrs)) is not None
    due = [t for t in orphans if result_due(spec, t, checkpoints)] if at_target else []
    policy.call(lambda: print_resume_summary(study, orphans, checkpoints, stopping=at_target, due=due))
    return orphans, due


def result_due(spec: Spec, trial: optuna.trial.FrozenTrial, checkpoints: Path) -> bool:
    """Whether a dead driver's ``trial`` recorded its last epoch (its config's ``epochs``) and checkpointed, so that
    only its final result (the test split on its best weights) is missing: a sweep stopping at its target waits for
    it (``StudyRecorder.results_due``: a fused group's members finish together), and a resume that finds the
    targets met carries it on for that result, which its checkpoint gives without training again (a function that
    keeps none would train it all again: it is stopped)."""
    epochs = spec.trial_config(trial.params).get("epochs")
    return isinstance(epochs, int) and not isinstance(epochs, bool) and last_epoch(trial) >= epochs and \
        kept_checkpoint(str(checkpoints), trial.number)


def nothing_left(study: optuna.Study, spec: Spec, budget: int, orphans: list[optuna.trial.FrozenTrial],
                 policy: OutagePolicy, printer: SweepPrinter, *, counted: int, due: bool = False) -> bool:
    """A resumed study with no trial to run (its targets met and ``stop_on_target``, or its budget spent): its
    table is printed, and Tune is not started (it would read the last run's results). Met targets with results
    ``due`` (:func:`result_due`): the other ``orphans`` are stopped, and Tune runs those. ``counted``: the study's
    :func:`~storage.studies.trials_counted` as the header read them (a large study's read costs seconds)."""
    if spec.budget.stop_on_target and target_met(policy.call(lambda: study.user_attrs)):
        # the last run stopped at its target, maybe before it could record its running trials as stopped
        stopped = policy.call(lambda: prune_stopped(study, [optuna.Trial(study, t._trial_id) for t in orphans]))
        if stopped:  # each in a line, as a sweep that stops at its target prints them
            by_number = {t.number: t for t in policy.call(lambda: study.get_trials(deepcopy=False))}
            for number in stopped:
                printer.trial_finished(by_number[number])
        if due:
            return False
        console.print("nothing left to run: the study met its targets and budget.stop_on_target is true "
                      "(--set budget.stop_on_target=false runs on)")
        policy.call(lambda: printer.final_table(study))
        return True
    if not orphans and counted >= budget:
        spent = f"budget.trials is {budget} (raise it for more: --set budget.trials=N)" \
            if budget == spec.budget.trials else f"its grid and enqueued rows make {budget}"
        console.print(f"nothing left to run: the study has {count_trials(counted)}, and {spent}")
        policy.call(lambda: printer.final_table(study))
        check_something_finished(policy.call(lambda: study.get_trials(deepcopy=False)), study.study_name,
                                 shown=False)
        return True
    return False


def searcher_and_recorder(study: optuna.Study, spec: Spec, checkpoints: str, budget: int,
                          orphans: list[optuna.trial.FrozenTrial], policy: OutagePolicy, writer: StudyWriter,
                          printer: SweepPrinter) -> tuple[Any, Any]:
    """The searcher that asks the study for trials and the recorder that writes their results to it; with
    ``resources.fuse``, up to that many trials of one shape train as one Ray trial."""
    from sweeper.recorder import StudyRecorder  # after Ray's start: they import Tune
    from sweeper.searcher import StudySearcher

    searcher_type, recorder_type = StudySearcher, StudyRecorder
    if spec.resources.fuse > 1:
        from sweeper import fused

        searcher_type, recorder_type = fused.FusedSearcher, fused.FusedRecorder
    searcher = searcher_type(study, spec, checkpoints=checkpoints, budget=budget,
                             driver=Driver.current(), policy=policy, writer=writer, orphans=orphans)
    return searcher, recorder_type(searcher, spec, printer.trial_finished, writer)


def build_tuner(spec: Spec, name: str, searcher: Any, recorder: Any, history: list[optuna.trial.FrozenTrial],
                stop_all: Callable[[], bool], results_root: Path, max_failures: int) -> Any:
    """Ray Tune's ``Tuner`` over the searcher, the recorder and the space's scheduler. What Tune pickles (these
    lambdas, the run config) holds the study's name, never the study."""
    from ray import tune

    from sweeper.schedulers import SweepStopper, build_scheduler
    from sweeper.trainable import META_KEY, run_trial

    trainable, scheduler = run_trial, build_scheduler(spec, history)
    if idle := spec.idle_scheduler():  # refused in a full sweep's space
        console.print(f"note: scheduler.{idle[0]}: {idle[1]}", markup=False)
    if note := cmaes_note(spec):
        console.print(note, markup=False)
    if spec.resources.fuse > 1:  # the scheduler judges each member; a group runs until its function returns
        from sweeper import fused

        trainable, scheduler = fused.run_fused_trial, fused.MemberScheduler(scheduler, searcher)
    return tune.Tuner(
        tune.with_resources(trainable, spec.resources.ray_resources()),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=scheduler, num_samples=-1,
            max_concurrent_trials=spec.budget.max_concurrent, reuse_actors=True,
            trial_dirname_creator=lambda trial: f"trial-{trial.config[META_KEY]['number']:05d}",
            trial_name_creator=lambda trial: f"{name}#{trial.config[META_KEY]['number']}",
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=str(results_root / "ray"), verbose=0,
            stop=SweepStopper(stop_all), callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=max_failures),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )


def should_stop(spec: Spec, started: float, interrupted: threading.Event, searcher: Any, recorder: Any,
                policy: OutagePolicy, writer: StudyWriter) -> bool:
    """Whether Tune ends the whole sweep now (it asks after every event). On the way, what starts no more trials
    (``searcher.stopped``): budget.time spent, a target met with ``stop_on_target``, an outage past its budget, a
    full disk, a swallowed Ctrl-C."""
    if interrupted.is_set():  # a Ctrl-C that Python swallowed: stop as the KeyboardInterrupt would have
        searcher.stopped = True
        return True
    timed_out = spec.budget.time_seconds is not None and time.perf_counter() - started > spec.budget.time_seconds
    if searcher.met_elsewhere is not None:  # seen as a trial was to be created
        stop_at_target_met_elsewhere(recorder, searcher.met_elsewhere)
    if timed_out or (spec.budget.stop_on_target and recorder.target_reached):
        searcher.stopped = True  # no new trials; on a reached target the running ones stop too
        searcher.timed_out |= timed_out
    if policy.overdue() and writer.error is None:  # running trials stay RUNNING: a resume carries them on
        writer.fail(StorageUnavailable(f"{len(searcher.trials)} trials unfinished"))
    if writer.error is not None or recorder.disk_problem:  # the running trials stay RUNNING for a resume
        searcher.stopped = True
        return True
    # the trials that trained their last epoch send their results first (a fused group's, one by one)
    return spec.budget.stop_on_target and recorder.target_reached and not recorder.results_due()


def read_target_met_elsewhere(spec: Spec, study: optuna.Study, recorder: Any, policy: OutagePolicy) -> None:
    """Another driver on the study met the targets: with ``stop_on_target`` this one stops there too. Read beside
    each heartbeat."""
    if spec.budget.stop_on_target and not recorder.target_reached and \
            (met := target_met(policy.attempt(lambda: study.user_attrs))) is not None:
        stop_at_target_met_elsewhere(recorder, met)


def stop_at_target_met_elsewhere(recorder: Any, met: TargetMet) -> None:
    """Stop at the targets another driver met (once: the heartbeats and the searcher may both see them)."""
    if not recorder.target_reached:
        console.print(f"trial #{met['trial']} of another driver on the study met the targets")
        recorder.target_reached = True


def fit(tuner: Any, recorder: Any) -> None:
    """Tune's ``fit``, but a trial's full disk is the recorder's to report (exit 75, resumable), not a crash: Tune
    fails reading the error files that disk cut short."""
    try:
        tuner.fit()
    except EOFError:  # Tune reads its error pickles for results sweeper never uses; a full disk cut them
        if not recorder.disk_problem:
            raise


def record_early_end(study: optuna.Study, spec: Spec, budget: int, searcher: Any, recorder: Any,
                     policy: OutagePolicy, printer: SweepPrinter, how: str) -> None:
    """A sweep that ended before its budget says why: at a met target (``stop_on_target``), its running trials are
    recorded PRUNED and printed; with ``budget.time`` spent, ``how`` (:func:`carry_on`) carries it on."""
    if spec.budget.stop_on_target and recorder.target_reached:  # Tune ends them without telling anyone
        stopped = policy.call(lambda: prune_stopped(study, list(searcher.trials.values())))
        console.print("the targets are met: the sweep stopped there (budget.stop_on_target)")
        trials = policy.call(lambda: study.get_trials(deepcopy=False))
        for trial in (t for t in trials if t.number in stopped):
            printer.trial_finished(trial)
    elif searcher.timed_out and policy.call(lambda: trials_counted(study)) < budget:
        console.print(f"budget.time ({spec.budget.time}) is spent: no trial started after it; {how} "
                      f"carries the sweep on towards its {count_trials(budget)}")


def final_summary(study: optuna.Study, policy: OutagePolicy, printer: SweepPrinter, how: str, *,
                  said: Collection[int] = ()) -> list[optuna.trial.FrozenTrial]:
    """The final table, and the trials of another driver that died meanwhile; returns the study's trials. Every
    trial is recorded by now: an outage costs the summary only, and says so as any outage does (the policy's
    ``exhausted``). ``how`` (:func:`carry_on`) carries such trials on: "sweeper run again" would start yet another
    --fresh study."""
    policy.call(lambda: printer.final_table(study))
    # not those this driver left for the next run (``said``: StudySearcher.drop_unstarted, the recorder said so, a
    # full disk's too); one another driver, or an earlier run, left without a driver attr is named, as a dead driver's
    if left := [t for t in policy.call(lambda: orphaned_trials(study)) if t.number not in said]:
        one = len(left) == 1
        console.print(f"{count_trials(len(left))} of a driver that is gone {'is' if one else 'are'} still RUNNING "
                      f"({', '.join(f'#{t.number}' for t in left)}): {how} carries {'it' if one else 'them'} on",
                      markup=False)
    return policy.call(lambda: study.get_trials(deepcopy=False))


def check_something_finished(trials: list[optuna.trial.FrozenTrial], name: str, *, shown: bool = True) -> None:
    """Refuse a study whose every trial failed with :class:`NothingFinished` (exit 1): a script that runs the
    sweep must not read success, on this run or on the next one, which finds the budget spent. ``shown``: this run
    printed their errors; a run that found the budget spent ran none, so it names the last one's."""
    if trials and all(t.state == optuna.trial.TrialState.FAIL for t in trials):
        last = max(trials, key=lambda t: t.number)
        error = str(last.user_attrs.get(attrs.ERROR) or "no error recorded").strip().splitlines() or [""]
        said = "their errors are above" if shown else f"none ran now; the last, #{last.number}: {error[0][:200]}"
        raise NothingFinished(f"every trial of {name} failed ({said}); fix the cause and start over with --fresh "
                              "(failed trials count in a study's budget)")
