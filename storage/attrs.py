"""The names under which a sweep's facts live in the study, so the driver, reports and exports agree.

Optuna keeps free-form JSON "user attrs" on studies and trials. The study in the database is the source of truth
(Ray's results folder may be gone), so everything a report needs is written under keys named here (and
``storage.target``'s ``target_met``). Values must be JSON-serialisable (plain dicts, lists, strings, numbers,
booleans, None).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path, PurePath
from typing import Any, Literal, TypedDict

# --- study user attrs -------------------------------------------------------------------------------------------
SPEC = "spec"  # the resolved spec as a plain dict (after overrides), what the sweep actually ran
SPACE_FILE = "space_file"  # path of the YAML the spec came from, as the user gave it
TARGETS = "targets"  # {metric: value} the sweep is trying to reach, e.g. {"test_top1": 0.62}
BASELINE = "baseline"  # {"source": str, "metrics": {metric: value}}: what we compare against
OBJECTIVE = "objective"  # {"metric": "val_top3", "direction": "maximize"}: what the sampler optimises
ENVIRONMENT = "environment"  # storage.environment.record_environment(): versions and git commit
# the first run's is ENVIRONMENT; each later run whose environment differs from the last recorded adds
# {"from_trial": N, "unfinished": [numbers], **environment}: trials #N on, and those unfinished at its start, ran it
ENVIRONMENTS = "environments"
SPACE_DIR = "space_dir"  # absolute folder of the space file: where `sweeper resume` finds a user's entrypoint
# absolute folder of the trials' checkpoints, named STUDY-KEY: a resume run from another folder finds them, and a
# study of the same name in another storage never reads or deletes them
CHECKPOINTS = "checkpoints"
# absolute folder the study's first run started in: its trials read relative paths (a space's dataset.path) from
# there, wherever a resume runs from
WORK_DIR = "work_dir"
# "sha256:..." of the data the first run's trials read (an npz file; a WLASL split file and its videos' sizes): a
# resume on a file replaced under the same path would compare trials trained on two datasets
DATA = "data"
# the settings defaults the entrypoint declared (fit.settings; the core's) as the spec stored beside it ran: a
# setting the space leaves out trains at its default, so a resume at changed defaults would mix two experiments
DEFAULTS = "defaults"
# absolute path of the SQLite file the folders above were recorded with: where another file holds the study (a
# copied or moved project), its folders are the copy's (sweeper/folders.py relocated)
DATABASE = "database"

# --- trial user attrs -------------------------------------------------------------------------------------------
# The core's recorded metrics (its result keys: the best epoch's val_*, test_*) are stored under their own names,
# one attr each, so a report can read trial.user_attrs["test_top1"] without knowing who wrote it.
RECORDED_METRICS = ("test_loss", "test_top1", "test_top3", "test_top5", "val_loss", "val_top1", "val_top3", "val_top5")
BEST_EPOCH = "best_epoch"  # epoch whose weights were tested
EPOCHS_RUN = "epochs_run"  # epochs actually trained (fewer than planned when stopped early)
WALL_SECONDS = "wall_seconds"  # the run time of the run that finished the trial (a carried-on trial: since then)
DEVICE = "device"  # "cpu", "cuda:0", ...
NODE = "node"  # "IP/node-id-prefix" of the Ray node the trial last ran on (which machine, on a cluster)
PARAMETERS = "parameters"  # model parameter count
THREADS = "threads"  # the core's torch threads: a retrain on as many repeats its float rounding (sweeper best)
ERROR = "error"  # why a FAIL trial failed: one line, e.g. "RuntimeError: CUDA out of memory"
STOP_REASON = "stop_reason"  # why training ended: see the stop reasons below
RAY_TRIAL_ID = "ray_trial_id"  # joins the study to Ray's results folder while it exists
DRIVER = "driver"  # {"host", "pid", "started"} of the `sweeper run` process that owns a RUNNING trial
RESUMED = "resumed"  # how many times the trial was carried on by a later driver after its own driver died
# system attr {"token", "driver"} of a trial a driver asked for: its retry finds the trial after a lost answer, and
# an enqueued trial, RUNNING a moment before its DRIVER attr, is told from a dead asker's (storage.resume)
ASK_TOKEN = "sweeper:ask"

# trial attrs only sweeper writes: a training function's value under one of these names is recorded as returned_NAME
SWEEPER_ONLY = (ERROR, NODE, RAY_TRIAL_ID, DRIVER, RESUMED)
# the keys Ray Tune sets in every result (ray.tune.result's AUTO_RESULT_KEYS and the few beside them): a function's
# value under one would be Ray's instead, and its "done" would end the trial, so it too becomes returned_NAME
RAY_RESULT_KEYS = ("done", "trial_id", "experiment_tag", "should_checkpoint", "training_iteration", "time_total_s",
                   "time_this_iter_s", "timestamp", "date", "pid", "hostname", "node_ip", "config", "episodes_total",
                   "timesteps_total", "time_since_restore", "timesteps_since_restore", "iterations_since_restore",
                   "checkpoint_dir_name")

TRIAL_ATTRS = (*RECORDED_METRICS, BEST_EPOCH, EPOCHS_RUN, WALL_SECONDS, DEVICE, NODE, PARAMETERS, THREADS, ERROR,
               STOP_REASON, RAY_TRIAL_ID, DRIVER, RESUMED)

# --- stop reasons -----------------------------------------------------------------------------------------------
# The training core returns its own ("completed", "early_stopping"; trials/ knows nothing of storage); the driver
# records these when it, not the core, ended the trial.
STOP_PRUNED = "pruned"  # the scheduler (ASHA, median...) stopped it as unpromising
STOP_DIVERGED = "diverged"  # the loss or the final objective became NaN/inf; the trial is recorded as FAIL
STOP_SWEEP_STOPPED = "sweep_stopped"  # the sweep stopped at its met targets (budget.time lets trials finish)
# asked for as the sweep stopped (a held ask; at a met target, a trial set aside for a fused group, which otherwise
# stays RUNNING for the next run)
STOP_NEVER_STARTED = "never_started"
# what an earlier sweeper wrote, as read now: "nan" (before 2026-12-05), which pandas reads from a CSV as missing
LEGACY_STOP_REASONS = {"nan": STOP_DIVERGED}
# A trial that failed otherwise (it raised, its config was refused, its data was bad, it returned neither a dict
# nor None) is FAIL with no stop reason: its ``error`` says why.

Direction = Literal["maximize", "minimize"]


class Objective(TypedDict):
    """Shape of the study attr ``objective``."""

    metric: str
    direction: Direction


class Baseline(TypedDict):
    """Shape of the study attr ``baseline``."""

    source: str
    metrics: dict[str, float]


def objective_attr(metric: str, direction: Direction) -> Objective:
    """The ``objective`` study attr, checked, so a typo in the direction fails here rather than in a report."""
    if direction not in ("maximize", "minimize"):
        raise ValueError(f"direction must be 'maximize' or 'minimize', not {direction!r}")
    return {"metric": metric, "direction": direction}


def baseline_attr(source: str, metrics: dict[str, Any]) -> Baseline:
    """The ``baseline`` study attr: where the numbers come from (a paper, a previous study) and the numbers."""
    return {"source": source, "metrics": {name: float(value) for name, value in metrics.items()}}


def defaults_attr(settings: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """The ``defaults`` study attr: the entrypoint's declared defaults as JSON keeps them (else as text)."""
    return None if settings is None else json.loads(json.dumps(dict(settings), default=str))


def defaults_here(found: Mapping[str, Any], space_dir: str | None, declared: Any = None) -> Any:
    """The ``defaults`` attr with a path under the study's recorded space folder moved under ``space_dir``: a
    function declaring a path of its own folder (``str(Path(__file__).parent / "data")``) in a copied or moved
    project (``cp -a``, ``mv``), or in another checkout sharing a server's study, declares the same data there.
    A path that ``declared`` (the defaults attr of the function here) still holds as recorded stays: one written out
    (``'/srv/a/data'``) names that folder in any copy, and moved it was refused as a default changed."""
    ran, then = found.get(DEFAULTS), found.get(SPACE_DIR)
    if not isinstance(ran, dict) or not isinstance(then, str) or not isinstance(space_dir, str) or not space_dir \
            or Path(then) == Path(space_dir):
        return ran
    declared = declared if isinstance(declared, dict) else {}
    return {k: str(Path(space_dir, Path(v).relative_to(then))) if isinstance(v, str) and Path(v).is_absolute()
            and Path(v).is_relative_to(then) and declared.get(k) != v else v for k, v in ran.items()}


def spec_as_ran(stored: dict[str, Any]) -> dict[str, Any]:
    """The stored ``SPEC`` without its ``quick:`` section: a --quick run's profile is applied in it already, so
    applying it again (or checking it against an overridden section) would describe another sweep."""
    return {k: v for k, v in stored.items() if k != "quick"}


def space_file(found: Mapping[str, Any]) -> str | None:
    """The study's space file as a path that names it from any folder: ``SPACE_FILE`` is as typed (``fail.yaml``,
    ``spaces/asl20.yaml``: relative to the first run's folder, or a built-in), ``SPACE_DIR`` where it lay.

    The one helper here that looks at the disk (which of ``NAME`` and ``NAME.yaml`` is a file): it lives with the
    keys because the HTML report (:mod:`storage.report`) shows it as ``status`` does, and storage/ imports nothing
    from sweeper/, where the study's other files are found (:mod:`sweeper.folders`)."""
    typed, folder = found.get(SPACE_FILE), found.get(SPACE_DIR)
    if not isinstance(typed, str) or not isinstance(folder, str):
        return typed if isinstance(typed, str) else None
    path = Path(folder) / PurePath(typed).name
    # a built-in typed as NAME or spaces/NAME was read from NAME.yaml (search_spaces.loader.resolve_space_path)
    named = path.with_name(f"{path.stem if path.suffix in ('.yaml', '.yml') else path.name}.yaml")
    return str(named if not path.is_file() and named.is_file() else path)
