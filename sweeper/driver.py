"""``sweeper run``: a spec and a storage in, a finished (or resumable) Optuna study out.

Order matters for "bad input writes nothing": the spec is validated and the storage URL checked before any
study is created or Ray is started.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna

from search_spaces import Spec, load_spec, resolve_space_path
from storage import attrs
from storage.engine import open_storage
from storage.environment import record_environment
from storage.studies import create_or_load_study
from storage.urls import mask_url, resolve_storage_url, validate_storage_url
from sweeper.console import console
from sweeper.progress import SweepPrinter

# Tune must not chdir trials into its results folder (relative data paths would break), nor take over
# Ctrl-C (we want KeyboardInterrupt, exit 130 and a resumable study), nor write its own loggers per trial.
RAY_ENV = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0 the legacy reporter prints nothing; our own lines say it all
}
QUIET_LOGGERS = ("ray.tune.analysis.experiment_analysis", "ray.tune.search.searcher", "ray.tune.tune")


@dataclass(frozen=True)
class SweepOptions:
    space: str
    overrides: tuple[str, ...] = ()
    quick: bool = False
    storage: str | None = None
    address: str | None = None
    results_dir: str = "sweeper_runs"
    max_failures: int = 2


def prepare(options: SweepOptions) -> tuple[Spec, str]:
    """Validate everything the user gave; raises SpecError/StorageError before anything is written."""
    spec = load_spec(resolve_space_path(options.space), options.overrides, quick=options.quick)
    url = validate_storage_url(resolve_storage_url(spec.storage, options.storage))
    return spec, url


def study_attrs(spec: Spec, space: str) -> dict[str, Any]:
    return {
        attrs.SPEC: spec.to_yaml_dict(),
        attrs.SPACE_FILE: space,
        attrs.TARGETS: dict(spec.targets),
        attrs.BASELINE: attrs.baseline_attr(spec.baseline.source, dict(spec.baseline.metrics))
        if spec.baseline else None,
        attrs.OBJECTIVE: attrs.objective_attr(spec.objective.metric, spec.direction),
        attrs.ENVIRONMENT: record_environment(),
    }


def start_ray(address: str | None = None) -> None:
    """Start (or join, with ``address``/``RAY_ADDRESS``) Ray once per process, with the environment Tune needs."""
    os.environ.update({k: v for k, v in RAY_ENV.items() if k not in os.environ})
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {k: os.environ[k] for k in RAY_ENV}} if address else None)


def run_sweep(options: SweepOptions) -> optuna.Study:
    started = time.perf_counter()
    spec, url = prepare(options)
    # Ray's start-up (seconds) overlaps opening the storage and importing Tune; both come after validation,
    # so bad input still starts nothing and writes nothing.
    with ThreadPoolExecutor(max_workers=1) as pool:
        opened = pool.submit(open_study, spec, url, options.space)
        start_ray(options.address)
        study, created = opened.result()
    from ray import tune

    from sweeper.recorder import StudyRecorder
    from sweeper.schedulers import SweepStopper, build_scheduler
    from sweeper.searcher import StudySearcher
    from sweeper.trainable import META_KEY, run_trial

    budget = min(spec.budget.trials, spec.grid_size()) if spec.sampler.type == "grid" else spec.budget.trials
    console.print(f"study [bold]{study.study_name}[/] in {mask_url(url)} ({'new' if created else 'resumed'}), "
                  f"{budget} trials, {spec.budget.max_concurrent} at a time")

    results_root = Path(options.results_dir).resolve()
    searcher = StudySearcher(study, spec, checkpoint_root=str(results_root / "checkpoints"), budget=budget)
    printer = SweepPrinter(spec)
    recorder = StudyRecorder(searcher, spec, printer.trial_finished)

    def stop_all() -> bool:
        timed_out = spec.budget.time_seconds is not None and time.perf_counter() - started > spec.budget.time_seconds
        if timed_out or (spec.budget.stop_on_target and recorder.target_reached):
            searcher.stopped = True  # no new trials; on a reached target the running ones stop too
        return spec.budget.stop_on_target and recorder.target_reached

    resources = {"cpu": spec.resources.cpu, "gpu": spec.resources.gpu}
    tuner = tune.Tuner(
        tune.with_resources(run_trial, resources),
        tune_config=tune.TuneConfig(
            search_alg=searcher, scheduler=build_scheduler(spec), num_samples=-1,
            max_concurrent_trials=spec.budget.max_concurrent, reuse_actors=True,
            trial_dirname_creator=lambda trial: f"trial-{trial.config[META_KEY]['number']:05d}",
            trial_name_creator=lambda trial: f"{study.study_name}#{trial.config[META_KEY]['number']}",
        ),
        run_config=tune.RunConfig(
            name=study.study_name, storage_path=str(results_root / "ray"), verbose=0,
            stop=SweepStopper(stop_all), callbacks=[recorder],
            failure_config=tune.FailureConfig(max_failures=options.max_failures),
            checkpoint_config=tune.CheckpointConfig(checkpoint_at_end=False),
        ),
    )
    tuner.fit()
    printer.final_table(study)
    return study


def open_study(spec: Spec, url: str, space: str) -> tuple[optuna.Study, bool]:
    """Create the study (with the seeds' enqueued points) or load it to continue."""
    storage = open_storage(url)
    attributes = {k: v for k, v in study_attrs(spec, space).items() if v is not None}
    study, created = create_or_load_study(storage, spec.name, spec.direction, spec.build_sampler(),
                                          study_attrs=attributes)
    if created:
        for point in spec.enqueue:
            study.enqueue_trial(point, skip_if_exists=True)
    return study, created


def kill_local_ray_before_exit() -> None:
    """Kill the Ray processes this process started, for a process about to ``os._exit``.

    Only for the end of a finished sweep, when every result is already committed to the study. The graceful
    ``ray.shutdown()`` costs seconds (a fixed sleep, then waiting on each process); a joined cluster is left alone.
    Nothing of Ray may be used afterwards: the driver's own connection is not closed, the process exits.
    """
    from ray._private import worker

    node = getattr(worker, "_global_node", None)
    if node is None or not node.is_head():
        return
    import psutil  # a Ray dependency

    processes = []
    for infos in node.all_processes.values():
        for info in infos:
            try:
                parent = psutil.Process(info.process.pid)
                processes += [*parent.children(recursive=True), parent]  # agents and workers the raylet started
            except psutil.Error:
                continue
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()
