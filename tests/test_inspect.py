"""The inspection commands as a user types them: ``sweeper status``, ``report``, ``export`` and ``best`` read a
study the way the driver writes it, on SQLite and PostgreSQL; bad names and storages are one message and exit 2.

Studies are built with Optuna's ask/tell and the driver's study and trial attrs (no Ray), then each backend's
commands run as processes of their own side by side, forked by a parent that paid the libraries' imports once
(tests/forked_cli.py; the machine has 2 cores). Every test below checks one part of their output. PostgreSQL
studies get uuid names and are deleted afterwards.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import math
import os
import re
import shlex
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
import uuid
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import optuna
import pytest
from forked_cli import run_command, run_commands
from sqlalchemy.engine import make_url

from search_spaces.errors import SpecError
from search_spaces.loader import load_spec, resolve_space_path, spec_from_dict
from search_spaces.schema import Spec
from storage import attrs
from storage.engine import close_storage, open_storage
from storage.errors import StorageError
from storage.report import build_report
from storage.studies import load_existing_study
from storage.view import study_view
from sweeper.best import best_summary, reproduce_command, show_best, yaml_scalar
from sweeper.console import format_value
from sweeper.inspection import study_summary, view_of
from sweeper.overrides import read_set_flags
from sweeper.standalone import prepare

optuna.logging.set_verbosity(optuna.logging.WARNING)
TS = optuna.trial.TrialState

# The best trial's params: exact floats that only survive a round trip when written with every digit.
BEST_PARAMS = {"label_smoothing": 0.1 + 0.07, "warmup_epochs": 1.0, "weight_decay": 0.00012345678901234567,
               "dropout": 0.1, "mixup_alpha": 0.0, "lr": 0.0029999999999999996}
COMPLETE = 6  # trials 0..5; trial BEST is the best and the only one meeting test_top3 >= 80%
BEST = 4


def parse_set_flags(pairs: list[str]) -> dict:
    """``["epochs=3", "training.model.size=large"]`` -> ``{"epochs": 3, "model.size": "large"}``, as train reads."""
    return {key: value for key, value, _ in read_set_flags(pairs)}


# --------------------------------------------------------------------------------------------------------------
# a study as the driver leaves it
def make_study(url: str, name: str, *, complete: int = COMPLETE, extra_states: bool = True) -> None:
    """``complete`` COMPLETE trials (value 0.50, 0.53, ...; trial ``BEST`` 0.90 with test_top3 85%), then one each
    of PRUNED (after 1 epoch), FAIL, RUNNING and WAITING (enqueued), with the driver's study and trial attrs."""
    spec = load_spec(resolve_space_path("spaces/asl20.yaml"), (f"name={name}",), quick=True)
    storage = open_storage(url)
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize",
                                sampler=optuna.samplers.RandomSampler(seed=3))
    for key, value in {
        attrs.SPEC: spec.to_yaml_dict(),
        attrs.SPACE_FILE: "spaces/asl20.yaml",
        attrs.TARGETS: dict(spec.targets),
        attrs.BASELINE: attrs.baseline_attr(spec.baseline.source, dict(spec.baseline.metrics)),
        attrs.OBJECTIVE: attrs.objective_attr(spec.objective.metric, spec.direction),
        attrs.ENVIRONMENT: {"python": "3.11", "packages": {"optuna": optuna.__version__}, "git_commit": None},
    }.items():
        study.set_user_attr(key, value)
    distributions = spec.distributions()
    for i in range(complete):
        if i == BEST:
            study.enqueue_trial(BEST_PARAMS)
        trial = study.ask(distributions)
        value = 0.9 if i == BEST else 0.5 + 0.03 * i
        for epoch in (1, 2, 3):
            trial.report(value * epoch / 3, epoch)
        metrics = {"test_top1": value - 0.3, "test_top3": 0.85 if i == BEST else value - 0.1, "test_top5": value,
                   "test_loss": 2.5 - value, "val_top1": value - 0.2, "val_top3": value, "val_top5": value + 0.05,
                   "val_loss": 2.4 - value}
        for key, metric in {**metrics, attrs.BEST_EPOCH: 3, attrs.EPOCHS_RUN: 3, attrs.WALL_SECONDS: 1.5 + i,
                            attrs.DEVICE: "cpu", attrs.PARAMETERS: 159636, attrs.STOP_REASON: "completed",
                            attrs.RAY_TRIAL_ID: f"ray{i:04d}"}.items():
            trial.set_user_attr(key, metric)
        study.tell(trial, value)
    if extra_states:
        pruned = study.ask(distributions)
        pruned.report(0.2, 1)
        pruned.set_user_attr(attrs.STOP_REASON, attrs.STOP_PRUNED)
        pruned.set_user_attr(attrs.EPOCHS_RUN, 1)
        study.tell(pruned, state=TS.PRUNED)
        failed = study.ask(distributions)
        failed.set_user_attr(attrs.ERROR, "RuntimeError: <boom> & \"quotes\"")
        failed.set_user_attr(attrs.STOP_REASON, attrs.STOP_DIVERGED)
        study.tell(failed, state=TS.FAIL)
        study.ask(distributions).set_user_attr(attrs.DRIVER, None)  # RUNNING, its driver gone
        study.enqueue_trial({"lr": 1.0e-3})  # WAITING
    close_storage(storage)


def delete_studies(url: str, names: Sequence[str]) -> None:
    storage = open_storage(url)
    for name in names:
        optuna.delete_study(study_name=name, storage=storage)
    close_storage(storage)


# --------------------------------------------------------------------------------------------------------------
# the command line
def env(**extra: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    return {**base, "COLUMNS": "200", **extra}


# Each command holds up to two PostgreSQL connections: the 18 of a module's fixture at once held 34, and with the
# other pytest worker's fixture and both workers' idle pools came near the server's max_connections (100 by default)
AT_ONCE = 6


def sweeper(*args: str, cwd: Path, **extra_env: str) -> subprocess.CompletedProcess[str]:
    """``sweeper ARGS`` as a process of its own, forked by a parent that imported the libraries once for this pytest
    worker (tests/forked_cli.py); ``extra_env`` over :func:`env`."""
    return run_command(list(args), cwd, env(**extra_env))


def run_all(commands: dict[str, list[str]], cwd: Path) -> dict[str, subprocess.CompletedProcess[str]]:
    """Run every ``sweeper`` command, ``AT_ONCE`` side by side, wait for all: read-only commands do not disturb each
    other. Each is a process of its own; the libraries' imports are paid once (tests/forked_cli.py)."""
    return dict(zip(commands, run_commands(list(commands.values()), cwd, env(), AT_ONCE), strict=True))


@dataclass
class Backend:
    url: str
    name: str  # the full study
    small: str  # a second study: 2 COMPLETE trials, nothing else
    folder: Path
    out: dict[str, subprocess.CompletedProcess[str]] = field(default_factory=dict)
    unchanged: bool = False  # the SQLite file is byte for byte what it was before the commands ran

    def ok(self, key: str) -> subprocess.CompletedProcess[str]:
        proc = self.out[key]
        assert proc.returncode == 0, f"{key}: exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
        return proc


def new_database(server_url: str, name: str) -> str:
    """A new, empty database ``name`` on the server of ``server_url``; its URL."""
    import sqlalchemy

    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_database(server_url: str, name: str) -> None:
    import sqlalchemy

    admin = sqlalchemy.create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


# Where a command writes its output (a folder, stdout, a refused suffix) is the same whatever the storage: these run on
# SQLite alone, and the tests that read them with it (one_backend)
OUTPUT_PATHS = ("report_dir", "report_new_dir", "json_dir", "json_dash", "report_stdout", "report_dash", "xlsx",
                "report_csv")
one_backend = pytest.mark.parametrize("backend", ["sqlite"], indirect=True)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    """Both studies on one backend (like conftest's ``storage_url``, once per module) and every command's result."""
    folder = tmp_path_factory.mktemp(request.param)
    tag = uuid.uuid4().hex[:10]
    if request.param == "sqlite":
        url = f"sqlite:///{folder / 'sweeps.db'}"
    else:  # a database of its own: status lists every study, and other tests' studies (long names) would be there
        server = request.getfixturevalue("postgres_url")
        url = new_database(server, f"inspect_{tag}")
        request.addfinalizer(lambda: drop_database(server, f"inspect_{tag}"))
    found = Backend(url, f"inspect-{tag}", f"inspect-small-{tag}", folder)
    make_study(url, found.name)
    make_study(url, found.small, complete=2, extra_states=False)
    try:
        storage = ["--storage", url]
        before = digest(folder) if request.param == "sqlite" else None
        (folder / "reports").mkdir()
        commands = {
            "status": ["status", *storage],
            "status_one": ["status", found.name, *storage],
            "report": ["report", found.name, "-o", str(folder / "report.html"), *storage],
            "report_small": ["report", found.small, "-o", str(folder / "small.html"), *storage],
            "report_dir": ["report", found.small, "-o", str(folder / "reports"), *storage],
            "report_new_dir": ["report", found.small, "-o", f"{folder / 'new' / 'reports'}/", *storage],
            "csv": ["export", found.name, "--format", "csv", *storage],
            "json": ["export", found.name, "-o", str(folder / "trials.json"), *storage],
            "json_dir": ["export", found.small, "--format", "json", "-o", f"{folder / 'exports'}/", *storage],
            "json_dash": ["export", found.small, "--format", "json", "-o", "-", *storage],
            "report_stdout": ["report", found.small, "-o", "/dev/stdout", *storage],
            "report_dash": ["report", found.small, "-o", "-", *storage],
            "best": ["best", found.name, *storage],
            "typo": ["best", found.name[:-2], *storage],
            "status_json": ["status", "--format", "json", *storage],
            "status_one_json": ["status", found.name, "--format", "json", *storage],
            "best_json": ["best", found.name, "--format", "json", *storage],
            "xlsx": ["export", found.name, "-o", str(folder / "trials.xlsx"), *storage],
            "report_csv": ["report", found.name, "-o", str(folder / "report.csv"), *storage],
        }
        if request.param != "sqlite":
            commands = {key: command for key, command in commands.items() if key not in OUTPUT_PATHS}
        found.out = run_all(commands, folder)
        found.unchanged = before is None or digest(folder) == before
        yield found
    finally:
        delete_studies(url, [found.name, found.small])


def digest(folder: Path) -> str:
    """The SHA-256 of the study database (the read-only open may add empty -shm/-wal files, never change it)."""
    return hashlib.sha256((folder / "sweeps.db").read_bytes()).hexdigest()


def rows_of(table: str, starts: Callable[[list[str]], bool] = lambda cells: bool(cells[0])) -> list[str]:
    """A rich table's rows, each row's wrapped lines joined (continuation lines have an empty first cell; where the
    first cell folds, they are the lines that do not ``start`` a row)."""
    rows: list[list[list[str]]] = []
    for line in table.splitlines():
        if not line.startswith("│"):
            continue
        cells = [c.strip() for c in line.strip("│").split("│")]
        if starts(cells) or not rows:
            rows.append([[c] for c in cells])
        else:
            for parts, cell in zip(rows[-1], cells, strict=False):
                parts.append(cell)
    return [" | ".join(" ".join(p for p in parts if p) for parts in row) for row in rows]


def status_rows(table: str) -> list[str]:
    """``rows_of`` for status, whose study names fold in a narrow console: a row starts with its first trial's date."""
    return rows_of(table, lambda cells: re.match(r"\d{4}-\d\d-\d\d", cells[-1]) is not None)


# --------------------------------------------------------------------------------------------------------------
# status
def test_status_lists_every_study_with_states_best_and_target(backend: Backend) -> None:
    rows = rows_of(backend.ok("status").stdout)
    full = next(r for r in rows if r.startswith(backend.name + " "))
    small = next(r for r in rows if r.startswith(backend.small + " "))
    for count in (f"{COMPLETE} COMPLETE", "1 PRUNED", "1 FAIL", "1 RUNNING", "1 WAITING"):
        assert count in full
    assert f"90.00% (#{BEST})" in full  # the best value, as a percentage, and its trial
    assert "| test_top3 80.00% (85.00%) first met by #4 |" in full  # target, best reached, then whether met
    assert "2 COMPLETE" in small and "53.00% (#1)" in small and "| test_top3 80.00% (43.00%) not met |" in small


def test_status_shows_a_duration_and_what_the_study_is_doing(backend: Backend) -> None:
    rows = rows_of(backend.ok("status").stdout)
    full = next(r for r in rows if r.startswith(backend.name + " "))
    small = next(r for r in rows if r.startswith(backend.small + " "))
    header = backend.ok("status").stdout
    assert re.search(r"┃\s*duration\s*┃", header) and not re.search(r"┃\s*running\s*┃", header)
    assert full.endswith("(interrupted)")  # its RUNNING trial has no live driver
    last = small.rsplit("|", 1)[1].strip()  # a finished study: its first trial's start, how long its trials took
    assert re.fullmatch(r"\d{4}-\d\d-\d\d \d\d:\d\d \d+:\d\d:\d\d", last), small


def test_status_json_has_stable_keys(backend: Backend) -> None:
    data = json.loads(backend.ok("status_json").stdout)
    assert data["storage"] == backend.url or data["storage"].startswith("postgresql")
    studies = {s["name"]: s for s in data["studies"]}
    full, small = studies[backend.name], studies[backend.small]
    for study in (full, small):
        assert set(study) == STATUS_KEYS
    assert full["state"] == "interrupted" and small["state"] == "finished"
    assert full["trials"] == {"RUNNING": 1, "WAITING": 1, "COMPLETE": COMPLETE, "PRUNED": 1, "FAIL": 1}
    assert full["n_trials"] == COMPLETE + 4 and full["interrupted_trials"] == [COMPLETE + 2]
    assert full["best"] == {"number": BEST, "value": 0.9, "params": BEST_PARAMS}
    assert full["objective"] == {"metric": "val_top3", "direction": "maximize"}
    assert full["targets"] == {"test_top3": {"target": 0.8, "best": 0.85}}
    assert full["target_met"] is True and full["target_met_by"] == BEST and small["target_met"] is False
    assert small["duration_seconds"] >= 0 and small["first_trial_start"] <= small["last_trial_end"]
    one = json.loads(backend.ok("status_one_json").stdout)
    assert [s["name"] for s in one["studies"]] == [backend.name] and one["studies"][0] == full | {
        "duration_seconds": one["studies"][0]["duration_seconds"]}


def test_target_met_by_is_the_first_trial_to_meet_the_targets_not_the_best() -> None:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8})
    for value, top3 in ((0.5, 0.5), (0.6, 0.81), (0.9, 0.95)):  # #1 meets first, #2 is best
        trial = study.ask()
        trial.set_user_attr("test_top3", top3)
        study.tell(trial, value)
    view = view_of(study)
    assert view.best_meeting_targets().number == 2 and view.first_meeting_targets().number == 1
    assert study_summary(view)["target_met_by"] == 1 and study_summary(view)["best_meeting_targets"] == 2


def test_best_says_which_trials_met_the_targets_where_the_best_objective_did_not(capsys) -> None:
    """The best validation Top-3 (#2) misses the test target that #1 and #3 met: best printed #2's "not met" and
    its command, and never that the study had met its targets, nor with which trials."""
    from sweeper.best import best_summary, show_best

    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8})
    study.set_user_attr(attrs.OBJECTIVE, attrs.objective_attr("val_top3", "maximize"))
    for value, top3 in ((0.5, 0.5), (0.6, 0.81), (0.9, 0.7), (0.7, 0.85)):
        trial = study.ask()
        trial.set_user_attr("test_top3", top3)
        study.tell(trial, value)
    view = view_of(study)
    show_best(view)
    out = capsys.readouterr().out
    assert "targets first met by #1; best trial meeting them: #3 (#2 does not meet them)\n" in out
    summary = best_summary(view)
    assert summary["number"] == 2 and summary["targets"]["test_top3"]["met"] is False
    assert summary["target_met_by"] == 1 and summary["best_meeting_targets"] == 3
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.9})
    show_best(view_of(study))
    assert "targets not met\n" in capsys.readouterr().out
    assert best_summary(view_of(study))["target_met_by"] is None



def test_best_shows_every_metric_a_users_function_returned(capsys) -> None:
    """A function's returned f1 was in best --format json's metrics but not in best's table, which showed only the
    objective, the targets, the baseline and the core's metric names."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_acc": 0.9})
    study.set_user_attr(attrs.OBJECTIVE, attrs.objective_attr("val_acc", "maximize"))
    trial = study.ask()
    for name, value in (("test_acc", 0.5), ("f1", 0.25), (attrs.EPOCHS_RUN, 3), (attrs.RESUMED, 1)):
        trial.set_user_attr(name, value)
    study.tell(trial, 0.6)
    show_best(view_of(study))
    rows = {line.split()[1] for line in capsys.readouterr().out.splitlines() if line.startswith("│")}
    assert set(best_summary(view_of(study))["metrics"]) == {"val_acc", "test_acc", "f1"} == rows


def quick_asl20_study(*overrides: str) -> tuple[Spec, optuna.Study]:
    """An in-memory study of ``asl20 --quick`` with ``overrides``, holding the spec and objective a driver stores."""
    spec = load_spec(resolve_space_path("spaces/asl20.yaml"), overrides, quick=True)
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.SPEC, spec.to_yaml_dict())
    study.set_user_attr(attrs.OBJECTIVE, attrs.objective_attr("val_top3", "maximize"))
    return spec, study


@pytest.mark.parametrize(("device", "threads"), [("cpu", 2), ("cuda:0", 3)])
def test_best_trains_on_the_threads_the_trial_ran_with(device: str, threads: int) -> None:
    """The driver gives a core trial torch threads as its resources.cpu (on_gpu's on a GPU). best's command left them
    out, so it trained on torch's default, a thread per core, whose float rounding is not the trial's (after 3 epochs
    on 2 cores, val_loss 3.0040858 against the trial's 3.0040861; with the trial's threads, every bit the same)."""
    spec, study = quick_asl20_study("resources.cpu=2", "resources.on_gpu.cpu=3")
    study.enqueue_trial(BEST_PARAMS)
    trial = study.ask(spec.distributions())
    trial.set_user_attr(attrs.DEVICE, device)
    study.tell(trial, 0.5)
    data = best_summary(view_of(study))
    assert data["config"] == {**spec.trial_config(BEST_PARAMS), "threads": threads}
    assert parse_set_flags(shlex.split(data["reproduce"])[3::2]) == data["config"]


@pytest.mark.parametrize(("ray_trial_id", "fused"), [("a51a7c22/1", True), ("a51a7c22", False)])
def test_best_says_a_fused_members_retrain_repeats_its_numbers_only_approximately(
        ray_trial_id: str, fused: bool, capsys: pytest.CaptureFixture[str]) -> None:
    """A trial trained as a member of a fused group (ray id ``GROUP/K``) got "reproduce it:" as if the command
    repeated its numbers, but sweeper train trains it alone: on CPU 3 quick epochs gave val_loss 2.9969842 as a
    member and 2.9969845 alone (sums in another order); on CUDA the group draws dropout and mixup for all members."""
    spec, study = quick_asl20_study("resources.fuse=3")
    study.enqueue_trial(BEST_PARAMS)
    trial = study.ask(spec.distributions())
    trial.set_user_attr(attrs.RAY_TRIAL_ID, ray_trial_id)
    study.tell(trial, 0.5)
    data = best_summary(view_of(study))
    assert data["reproduce"] is not None and parse_set_flags(shlex.split(data["reproduce"])[3::2]) == data["config"]
    assert (data["note"] is not None) == fused
    show_best(view_of(study))
    out = capsys.readouterr().out
    assert ("note: #0 trained in a fused group" in out) == fused
    if fused:
        assert "float rounding" in data["note"] and "dropout" in data["note"]


def test_best_trains_on_the_threads_a_trial_recorded_not_on_a_resumes_resources() -> None:
    """best took the threads from the stored spec's resources, which a resume with --set resources.cpu=2 rewrites:
    trial #4 of a study run at resources.cpu 1 got --set threads=2, whose retrain ended with val_loss 3.0040858 where
    the trial recorded 3.0040861. The core now returns its threads, which the trial records, and best uses those."""
    import torch

    from trials import run

    threads = torch.get_num_threads()  # the core sets them for the whole process: these leave it as it is
    result = run({"dataset.classes": 6, "dataset.samples_per_class": 4, "epochs": 1, "threads": threads})
    assert result[attrs.THREADS] == threads
    spec, study = quick_asl20_study("resources.cpu=2")  # as resumed
    for recorded in (1, None):  # None: a trial of a sweeper that recorded no threads: its resources, as before
        study.enqueue_trial(BEST_PARAMS)
        trial = study.ask(spec.distributions())
        trial.set_user_attr(attrs.DEVICE, "cpu")
        if recorded:
            trial.set_user_attr(attrs.THREADS, recorded)
        study.tell(trial, 0.9 if recorded else 0.95)
        data = best_summary(view_of(study))
        assert data["config"]["threads"] == (recorded or 2)
        assert parse_set_flags(shlex.split(data["reproduce"])[3::2]) == data["config"]
        assert data["metrics"].keys() == {"val_top3"}  # an attr of how it ran, not a metric
        assert data["attrs"] == {"device": "cpu", **({attrs.THREADS: recorded} if recorded else {})}


def test_a_data_path_under_home_needs_no_cd_to_the_studys_first_folder(tmp_path: Path) -> None:
    """best prefixed ``cd FIRST &&`` to a trial that read ``~/data.npz``, which every folder reads alike, and to a
    WLASL trial with an absolute root, whose split file and landmarks folder are read inside that root."""
    from sweeper.best import in_work_dir

    study = optuna.create_study()
    study.set_user_attr(attrs.WORK_DIR, str(tmp_path))
    assert in_work_dir(view_of(study), {"dataset.path": "~/data.npz"}, "sweeper train") == "sweeper train"
    assert in_work_dir(view_of(study), {"dataset.path": "data.npz"}, "sweeper train") == \
        f"cd {tmp_path} && sweeper train"
    wlasl = {"dataset.name": "wlasl", "dataset.path": str(tmp_path / "wl"), "dataset.split_file": "nslt_3.json"}
    assert in_work_dir(view_of(study), wlasl, "sweeper train") == "sweeper train"  # read inside dataset.path

STATUS_KEYS = {"name", "state", "trials", "n_trials", "objective", "best", "targets", "target_met", "target_met_by",
               "best_meeting_targets", "baseline", "first_trial_start", "last_trial_end", "duration_seconds",
               "interrupted_trials", "space_file"}


def test_status_tells_a_dead_driver_on_another_host_from_a_live_one(storage_url: str, tmp_path: Path) -> None:
    """Another host's process cannot be asked: only its heartbeat says whether it still runs its trials."""
    import sqlalchemy
    from optuna.storages._rdb.models import TrialHeartbeatModel as Beat

    from storage.resume import GRACE_PERIOD_S, Driver, own

    name = f"remote-{uuid.uuid4().hex[:8]}"
    storage = open_storage(storage_url, heartbeat_interval=10, grace_period=GRACE_PERIOD_S)
    study = optuna.create_study(storage=storage, study_name=name)
    study.set_user_attr(attrs.SPEC, {"name": name})  # sweeper's study
    for _ in range(2):
        trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
        own(trial, Driver("another-host", 4242, None))

    def status() -> dict[str, Any]:
        proc = sweeper("status", name, "--format", "json", "--storage", storage_url, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)["studies"][0]

    try:
        assert status()["state"] == "running"  # heartbeats just recorded: its driver is alive
        with storage.engine.begin() as connection:  # the driver's last heartbeat: an hour ago, by the database's clock
            now = connection.execute(sqlalchemy.select(sqlalchemy.func.now())).scalar()
            connection.execute(sqlalchemy.update(Beat).values(heartbeat=now - timedelta(hours=1)))
        gone = status()
        assert gone["state"] == "interrupted" and gone["interrupted_trials"] == [0, 1], gone
        assert gone["last_trial_end"] is None, gone  # no trial has ended; a start is no end
    finally:
        close_storage(storage)
        delete_studies(storage_url, [name])


def test_status_does_not_call_another_tools_running_trials_interrupted(tmp_path: Path) -> None:
    """A plain Optuna study on the same storage records no driver: sweeper took its live trials for a dead
    driver's, and told the user to `sweeper resume` a study it cannot resume."""
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    study = optuna.create_study(storage=url, study_name="foreign")
    study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    proc = sweeper("status", "foreign", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 0 and "interrupted" not in proc.stdout and "sweeper resume" not in proc.stdout, \
        proc.stdout + proc.stderr
    proc = sweeper("status", "--format", "json", "--storage", url, cwd=tmp_path)
    [summary] = json.loads(proc.stdout)["studies"]
    assert summary["state"] == "running" and summary["interrupted_trials"] == [], summary


def test_status_of_one_study_adds_its_details(backend: Backend) -> None:
    out = backend.ok("status_one").stdout
    assert backend.name in out and backend.small not in out
    assert "objective: val_top3 (maximize)" in out
    assert "baseline: test_top1 42.47%, test_top3 75.29%" in out
    assert f"best trial #{BEST}: label_smoothing=0.17" in out
    # its RUNNING trial trained no epoch and kept no checkpoint: not "from its checkpoints"
    assert f"interrupted: #{COMPLETE + 2} was running when its driver stopped; sweeper resume " in out
    assert "runs it from the start (it trained no epoch)" in " ".join(out.split()), out


# --------------------------------------------------------------------------------------------------------------
# report
class Page(HTMLParser):
    """Sections, figure divs, embedded figure data, script sources and table rows of the report."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.sections: dict[str, str] = {}
        self.divs: list[str] = []
        self.figures: dict[str, dict[str, Any]] = {}
        self.script_srcs: list[str] = []
        self.inline_scripts = 0
        self.trial_rows: list[int] = []
        self._section: str | None = None
        self._script: dict[str, str | None] | None = None
        self._text: list[str] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attributes: list[tuple[str, str | None]]) -> None:
        found = dict(attributes)
        if tag == "section":
            self._section = found["id"]
            self.sections[self._section or ""] = ""
        elif tag == "div" and found.get("class") == "plot":
            self.divs.append(found["id"] or "")
        elif tag == "script":
            if found.get("src"):
                self.script_srcs.append(found["src"] or "")
            self._script, self._text = found, []
        elif tag == "tr" and found.get("data-trial"):
            self.trial_rows.append(int(found["data-trial"] or -1))

    def handle_data(self, data: str) -> None:
        if self._script is not None:
            self._text.append(data)
        elif self._section is not None:
            self.sections[self._section] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "section":
            self._section = None
        elif tag == "script" and self._script is not None:
            if self._script.get("data-figure"):
                self.figures[self._script["data-figure"] or ""] = json.loads("".join(self._text))
            elif self._script.get("type") is None:
                self.inline_scripts += 1
            self._script = None


@pytest.fixture(scope="module")
def page(backend: Backend) -> Page:
    assert "report.html" in backend.ok("report").stderr
    return Page((backend.folder / "report.html").read_text(encoding="utf-8"))


def test_report_is_self_contained_with_every_section(page: Page) -> None:
    assert page.script_srcs == []  # plotly.js is inline: the file works offline
    assert page.inline_scripts == 2  # plotly.js once, then the script that draws the figures
    assert list(page.sections) == ["summary", "history", "parallel-coordinates", "importances", "learning-curves",
                                   "slices", "top-trials"]
    assert set(page.divs) == set(page.figures)  # every figure has its data, every data its div
    assert "RUNNING" in page.sections["summary"]
    assert "targets metfirst met by #4\n" in page.sections["summary"]  # th, td
    # its RUNNING trial has no live driver: the page of an interrupted sweep read as a finished one's
    assert "stateinterrupted: its RUNNING trials lost their driver; sweeper resume carries them on\n" in \
        page.sections["summary"]


def test_report_history_draws_target_and_baseline_lines(page: Page) -> None:
    figure = page.figures["fig-history-test_top3"]
    lines = {trace["name"]: trace["y"] for trace in figure["data"] if trace.get("meta")}
    assert lines == {"target 80.00%": [0.8, 0.8], "baseline 75.29%": [0.7529, 0.7529]}
    points = next(t for t in figure["data"] if t["name"] == "test_top3")
    assert points["x"] == list(range(COMPLETE)) and 0.85 in points["y"]
    objective = page.figures["fig-history-val_top3"]
    best_so_far = next(t for t in objective["data"] if t["name"] == "best so far")["y"]
    assert best_so_far[BEST:] == [0.9] * (COMPLETE - BEST)


def test_report_has_optuna_plots_and_learning_curves(page: Page) -> None:
    assert "label_smoothing" in json.dumps(page.figures["fig-parallel-coordinates"])
    importances = page.figures["fig-importances"]["data"][0]
    assert importances["type"] == "bar" and set(importances["y"]) == set(BEST_PARAMS)
    assert len(page.figures["fig-slices"]["data"]) >= len(BEST_PARAMS)
    curves = [t for t in page.figures["fig-learning-curves"]["data"] if not t.get("meta")]
    assert len(curves) == COMPLETE and curves[0]["name"].startswith(f"#{BEST} ")
    assert curves[0]["x"] == [1, 2, 3] and curves[0]["y"][-1] == pytest.approx(0.9)


def test_report_table_ranks_top_trials_against_targets(page: Page) -> None:
    assert page.trial_rows == [BEST, 5, 3, 2, 1, 0]  # COMPLETE trials, best first
    table = page.sections["top-trials"]
    assert "target" in table and "80.00%" in table and "baseline" in table and "75.29%" in table
    assert "85.00%" in table and "seeds/000" in table


@one_backend
def test_report_into_a_folder_takes_the_usual_file_name(backend: Backend) -> None:
    path = backend.folder / "reports" / f"{backend.small}-report.html"
    assert f"wrote {path} (2 trials, " in backend.ok("report_dir").stderr and path.is_file()
    assert not backend.ok("report_dir").stdout
    assert "statefinished\n" in Page(path.read_text(encoding="utf-8")).sections["summary"]


@one_backend
def test_report_into_a_folder_named_with_a_slash_makes_the_folder(backend: Backend) -> None:
    """-o new/reports/ is a folder even before it exists (it was written as an HTML file named reports)."""
    path = backend.folder / "new" / "reports" / f"{backend.small}-report.html"
    assert f"wrote {path} (2 trials, " in backend.ok("report_new_dir").stderr and path.is_file()


@one_backend
def test_export_into_a_folder_named_with_a_slash_writes_the_study_name_in_it(backend: Backend) -> None:
    """-o exports/ was written as a file named exports, and the next export overwrote it."""
    path = backend.folder / "exports" / f"{backend.small}.json"
    assert f"wrote 2 trials to {path}" in backend.ok("json_dir").stderr
    assert len(json.loads(path.read_text(encoding="utf-8"))) == 2


@one_backend
def test_export_and_report_to_stdout_write_the_data_alone(backend: Backend) -> None:
    """The "wrote" line went to stdout after the data: jq failed on it, and a redirected CSV began with it."""
    assert len(json.loads(backend.ok("json_dash").stdout)) == 2 and not (backend.folder / "-").exists()
    page = backend.ok("report_stdout").stdout
    assert page.lstrip().lower().startswith("<!doctype html") and page.rstrip().endswith("</html>")


@one_backend
def test_report_to_a_dash_writes_the_page_to_stdout(backend: Backend) -> None:
    """``report NAME -o -`` wrote a file named "-", where export's -o - is stdout."""
    page = backend.ok("report_dash").stdout
    assert page.lstrip().lower().startswith("<!doctype html") and page.rstrip().endswith("</html>")
    assert not (backend.folder / "-").exists()


def test_report_of_a_small_study_explains_missing_importances(backend: Backend) -> None:
    backend.ok("report_small")
    small = Page((backend.folder / "small.html").read_text(encoding="utf-8"))
    assert "fig-importances" not in small.figures
    assert "at least 3 COMPLETE trials" in small.sections["importances"]
    assert small.trial_rows == [1, 0]


def test_report_best_so_far_skips_a_metric_that_was_nan() -> None:
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8})
    for value, top3 in ((0.5, math.nan), (0.6, 0.7), (0.4, 0.6)):
        trial = study.ask()
        trial.set_user_attr("test_top3", top3)
        study.tell(trial, value)
    figure = Page(build_report(view_of(study), url="sqlite:///:memory:")).figures["fig-history-test_top3"]
    assert next(t for t in figure["data"] if t["name"] == "best so far")["y"] == [None, 0.7, 0.7]


def test_report_table_counts_the_epochs_a_users_function_reported() -> None:
    """A function of one's own returns no epochs_run: its row said "-" for epochs it had reported."""
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    for epoch in (1, 2, 3):
        trial.report(0.1 * epoch, epoch)
    study.tell(trial, 0.3)
    row = re.search(r'<tr data-trial="0">.*?</tr>', build_report(view_of(study), url="sqlite:///:memory:"))
    assert row and re.findall(r"<td[^>]*>([^<]*)</td>", row[0])[-3:-1] == ["-", "3"], row  # stop reason, epochs


def test_report_table_shows_the_best_trial_meeting_the_targets_beneath_the_top_ones() -> None:
    """The final table of a run shows the best trial meeting the targets beneath its top ones; the report's table,
    whose summary names that trial, left it out where --top (or a long study) did not reach it."""
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8})
    for value, top3 in ((0.9, 0.5), (0.8, 0.6), (0.5, 0.85), (0.4, 0.9)):
        # a param of #2's alone (a conditional one) has a column too
        trial = study.ask({"width": optuna.distributions.IntDistribution(1, 64)} if top3 == 0.85 else {})
        trial.set_user_attr("test_top3", top3)
        study.tell(trial, value)
    page = build_report(view_of(study), url="sqlite:///:memory:", top=2)
    assert Page(page).trial_rows == [0, 1, 2]  # #2: the best of the two meeting them (#3 meets them too)
    assert re.search(r'<tr data-trial="2"><td>3</td><td>#2</td>', page)  # with its rank among COMPLETE trials
    width = study.trials[2].params["width"]
    assert "<th>width</th>" in page and re.search(rf'<tr data-trial="2">.*<td title="{width}">{width}</td></tr>', page)
    assert Page(build_report(view_of(study), url="sqlite:///:memory:", top=3)).trial_rows == [0, 1, 2]


def test_export_of_a_mistyped_study_makes_no_folder(tmp_path: Path) -> None:
    """``export NOPE -o DIR/`` made DIR before it found no study NOPE: an exit 2 that wrote something."""
    from storage.errors import StorageError
    from sweeper.inspection import export

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "there", complete=1, extra_states=False)
    storage = open_storage(url, read_only=True)
    try:
        with pytest.raises(StorageError, match="No study named 'nope'"):
            export(storage, url, "nope", None, f"{tmp_path / 'exports'}/")
    finally:
        close_storage(storage)
    assert not (tmp_path / "exports").exists()


def test_export_into_a_folder_that_is_a_file_is_one_message(tmp_path: Path) -> None:
    """``export NAME -o FILE/`` (FILE a file, or a folder under it) was a FileExistsError traceback; ``report NAME -o
    FILE/r.html`` said the folder FILE did not exist, which sends one looking."""
    from sweeper.errors import BadInput
    from sweeper.inspection import export, report

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "there", complete=1, extra_states=False)
    (tmp_path / "taken").write_text("mine", encoding="utf-8")
    storage = open_storage(url, read_only=True)
    try:
        for to in ("taken/", "taken/sub/"):  # mkdir's "File exists" / "Not a directory" said nothing of taken
            with pytest.raises(BadInput, match=r"Cannot write to '.*taken/.*there\.csv': '.*/taken' is a file, not a "
                                               r"folder\.$"):
                export(storage, url, "there", None, f"{tmp_path}/{to}")
            with pytest.raises(BadInput, match=r"'.*/taken' is a file, not a folder\.$"):
                report(storage, url, "there", f"{tmp_path}/{to}", 10)
        with pytest.raises(BadInput, match=r"'.*taken' is a file, not a folder\.$"):
            report(storage, url, "there", f"{tmp_path}/taken/r.html", 10)
        with pytest.raises(BadInput, match=r"'.*/taken' is a file, not a folder\.$"):  # said 'taken/sub' is missing
            report(storage, url, "there", f"{tmp_path}/taken/sub/r.html", 10)
        with pytest.raises(BadInput, match=r"'.*taken' is a file, not a folder\.$"):
            export(storage, url, "there", None, f"{tmp_path}/taken/t.csv")
        with pytest.raises(BadInput, match=r"the folder '.*gone' does not exist\.$"):
            export(storage, url, "there", None, f"{tmp_path}/gone/t.csv")
    finally:
        close_storage(storage)
    assert (tmp_path / "taken").read_text(encoding="utf-8") == "mine"


def test_report_and_export_that_fail_halfway_leave_the_earlier_file_whole(tmp_path: Path) -> None:
    """A disk that filled up as they wrote (exit 2) left a truncated report or export over the earlier one: a page
    that ended in the middle of its plots, a table cut mid-row. A file size limit stands in for the full disk."""
    import resource

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "there", complete=1, extra_states=False)
    storage = open_storage(url)
    study = optuna.load_study(study_name="there", storage=storage)
    study.add_trial(optuna.trial.create_trial(value=0.5, user_attrs={"note": "x" * 1_500_000}))  # a CSV > 1 MB
    close_storage(storage)

    def limited() -> None:  # the report is about 5 MB
        resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    for command, name in (("report", "there.html"), ("export", "there.csv")):
        (tmp_path / name).write_text("the earlier one", encoding="utf-8")
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", command, "there", "-o", str(tmp_path / name),
                               "--storage", url], cwd=tmp_path, env=env(), text=True, capture_output=True,
                              timeout=240, preexec_fn=limited)
        assert proc.returncode == 2 and "File too large" in proc.stderr, proc.stderr
        assert (tmp_path / name).read_text(encoding="utf-8") == "the earlier one"
    # nothing half-written beside them (a reader's open adds the database's empty -shm and -wal)
    assert {p.name for p in tmp_path.iterdir() if not p.name.startswith("sweeps.db")} == {"there.html", "there.csv"}


WRITE_AS_A_USER = """
import os, sys
from pathlib import Path
from sweeper.inspection import write_whole
if os.geteuid() == 0:  # root writes any file
    os.seteuid(65534)
try:
    write_whole(Path(sys.argv[1]), lambda out: out.write("the new one"))
except PermissionError as exc:
    sys.exit(f"refused: {exc.strerror}")
"""


def test_report_and_export_write_a_file_as_writing_it_in_place_would() -> None:
    """The temporary file renamed over the target replaced a read-only file, made a private one readable by all,
    and was refused where the folder takes no new file though the file there may be written (a shared folder)."""
    import shutil
    import stat
    import tempfile

    user = 65534 if os.geteuid() == 0 else os.geteuid()  # as WRITE_AS_A_USER writes
    folder = Path(tempfile.mkdtemp(prefix="sweeper-write-"))  # not under tmp_path: another user reaches it
    shared, own = folder / "shared", folder / "own"
    try:
        folder.chmod(0o755)
        files = {"mine in shared": shared / "r.html", "read-only": own / "r.csv", "private": own / "p.csv"}
        for path, mode in (("mine in shared", 0o644), ("read-only", 0o444), ("private", 0o600)):
            files[path].parent.mkdir(exist_ok=True)
            files[path].write_text("the earlier one")
            os.chown(files[path], user, -1)
            files[path].chmod(mode)
        os.chown(own, user, -1)
        shared.chmod(0o555)  # the user may add no file to it, but may write its own file there
        results = {what: subprocess.run([sys.executable, "-c", WRITE_AS_A_USER, str(path)], capture_output=True,
                                        cwd=Path(__file__).parents[1], text=True, timeout=60)
                   for what, path in files.items()}
        written = {what: (path.read_text(), stat.S_IMODE(path.stat().st_mode)) for what, path in files.items()}
        assert written == {"mine in shared": ("the new one", 0o644), "read-only": ("the earlier one", 0o444),
                           "private": ("the new one", 0o600)}, {w: r.stderr[-300:] for w, r in results.items()}
        assert results["read-only"].stderr.strip() == "refused: Permission denied"
        assert {p.name for p in own.iterdir()} == {"r.csv", "p.csv"}  # no temporary file left
    finally:
        if shared.exists():
            shared.chmod(0o755)
        shutil.rmtree(folder)


def test_a_file_whose_name_fills_the_file_systems_limit_is_written(tmp_path: Path) -> None:
    """The temporary file beside it was named after it, and longer: past 255 bytes, 'File name too long'."""
    from sweeper.inspection import write_whole

    path = tmp_path / ("é" * 120 + ".csv")  # 244 bytes
    write_whole(path, lambda out: out.write("a,b\n"))
    assert path.read_text() == "a,b\n" and [p.name for p in tmp_path.iterdir()] == [path.name]


def test_status_of_a_storage_holding_only_studies_it_skips_says_so(tmp_path: Path, capsys) -> None:
    """A storage of multi-objective studies alone printed "skipped: Study 'pareto' ..." and then "There are no
    studies in ... yet: run a sweep first", one line contradicting the other."""
    from storage.errors import StorageError
    from sweeper.inspection import status

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    storage = open_storage(url)
    optuna.create_study(storage=storage, study_name="pareto", directions=["minimize", "maximize"])
    try:
        with pytest.raises(StorageError) as failed:
            status(storage, url, None)
    finally:
        close_storage(storage)
    assert "skipped: Study 'pareto' has 2 objectives" in " ".join(capsys.readouterr().err.split())
    assert str(failed.value) == f"No study in {url} that sweeper can read: 1 study skipped (above)."


def test_report_escapes_text_and_notes_single_params() -> None:
    study = optuna.create_study(direction="minimize", study_name="<b>x</b>")
    study.set_user_attr(attrs.OBJECTIVE, {"metric": "loss", "direction": "minimize"})
    for x in (0.1, 0.2, 0.3, 0.4):
        study.enqueue_trial({"x": x})
        study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2, n_trials=1)
    page = build_report(study_view(study, format_value, lambda m: "minimize"), url="sqlite:///:memory:")
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "Only one parameter varies (x)" in Page(page).sections["importances"]


def test_report_draws_no_importances_where_every_trial_scored_the_same() -> None:
    """A quick sweep whose trials all reached 14.29% drew importances of 1/6 each, bars saying every param mattered
    as much as the others, where nothing could tell them apart."""
    study = optuna.create_study(direction="maximize")
    for x, y in ((0.1, 0.4), (0.2, 0.3), (0.3, 0.2), (0.4, 0.1)):
        study.enqueue_trial({"x": x, "y": y})
    study.optimize(lambda t: 0.1429 + 0 * t.suggest_float("x", 0, 1) * t.suggest_float("y", 0, 1), n_trials=4)
    page = Page(build_report(view_of(study), url="sqlite:///:memory:"))
    assert "fig-importances" not in page.figures
    assert "Every COMPLETE trial with a finite value has the same one" in page.sections["importances"]


def test_report_plots_a_study_holding_an_enqueued_value_out_of_its_range() -> None:
    """Optuna keeps an enqueued value that the objective's range then leaves out (it warns): the plots drew it from
    the stored study, and a copy made by add_trials refused it, a ValueError's traceback and no report."""
    study = optuna.create_study(direction="minimize")
    study.enqueue_trial({"x": 5.0})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna's "Fixed parameter 'x' with value 5.0 is out of range"
        study.optimize(lambda t: t.suggest_float("x", 0, 1) ** 2 + t.suggest_int("y", 0, 3), n_trials=4)
    page = Page(build_report(study_view(study, format_value, lambda m: "minimize"), url="sqlite:///:memory:"))
    assert {"fig-parallel-coordinates", "fig-slices"} <= set(page.figures)


# --------------------------------------------------------------------------------------------------------------
# export
EXPECTED_COLUMNS = {"number", "state", "value", "datetime_start", "datetime_complete", "duration_seconds",
                    "n_intermediate_values", *(f"params_{p}" for p in BEST_PARAMS), *attrs.RECORDED_METRICS,
                    "best_epoch", "epochs_run", "wall_seconds", "stop_reason", "error"}


def test_export_csv_has_one_row_per_trial(backend: Backend) -> None:
    rows = list(csv.DictReader(io.StringIO(backend.ok("csv").stdout)))
    assert [int(r["number"]) for r in rows] == list(range(COMPLETE + 4))
    assert set(rows[0]) >= EXPECTED_COLUMNS
    assert [r["state"] for r in rows[COMPLETE:]] == ["PRUNED", "FAIL", "RUNNING", "WAITING"]
    best = rows[BEST]
    assert float(best["value"]) == 0.9 and float(best["test_top3"]) == 0.85
    assert {p: float(best[f"params_{p}"]) for p in BEST_PARAMS} == BEST_PARAMS  # every digit survives
    assert float(best["duration_seconds"]) >= 0 and best["n_intermediate_values"] == "3"
    assert rows[COMPLETE]["epochs_run"] == "1" and rows[COMPLETE + 1]["error"].startswith("RuntimeError: <boom>")
    assert rows[COMPLETE + 2]["datetime_complete"] == "" and rows[COMPLETE + 2]["duration_seconds"] == ""


@one_backend
def test_export_refuses_a_file_named_for_another_format(backend: Backend) -> None:
    proc = backend.out["xlsx"]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    message = " ".join(proc.stderr.split())
    assert "trials.xlsx" in message and "writes csv or json, not 'xlsx'" in message
    assert not (backend.folder / "trials.xlsx").exists()
    report = backend.out["report_csv"]  # an HTML page, whatever the name says
    assert report.returncode == 2 and "it is an HTML page; name the file .html" in " ".join(report.stderr.split())
    assert not (backend.folder / "report.csv").exists()


def test_export_json_is_a_list_of_objects(backend: Backend) -> None:
    assert "wrote" in backend.ok("json").stderr  # -o trials.json: the format follows the suffix
    rows = json.loads((backend.folder / "trials.json").read_text(encoding="utf-8"))
    assert len(rows) == COMPLETE + 4 and all(set(r) == set(rows[0]) for r in rows)
    assert set(rows[0]) >= EXPECTED_COLUMNS
    assert rows[BEST]["value"] == 0.9 and rows[BEST]["params_lr"] == BEST_PARAMS["lr"]
    assert rows[BEST]["wall_seconds"] == 1.5 + BEST and rows[BEST]["state"] == "COMPLETE"
    assert rows[-1]["state"] == "WAITING" and rows[-1]["value"] is None


# --------------------------------------------------------------------------------------------------------------
# best
def test_best_prints_params_metrics_and_a_command_that_reproduces_the_config(backend: Backend) -> None:
    out = backend.ok("best").stdout
    assert f"best trial of {backend.name}: #{BEST}, val_top3 90.00%" in out
    assert repr(BEST_PARAMS["weight_decay"]) in out  # exact params
    metrics = rows_of(out.split("metrics", 1)[1])
    assert any(r.startswith("test_top3 | 85.00% | 80.00% | met | 75.29% | beats by 9.71 pts") for r in metrics)
    lines = out.splitlines()
    command = next(line for line in lines if line.startswith("sweeper train "))
    assert lines[lines.index(command) + 1].startswith("the same with --seeds 1,2,3 trains it once per seed")
    words = shlex.split(command)
    flags = [words[i + 1] for i, word in enumerate(words) if word == "--set"]
    assert len(flags) * 2 + 2 == len(words)
    storage = open_storage(backend.url, create=False)
    try:
        study = optuna.load_study(study_name=backend.name, storage=storage)
        ran = spec_from_dict(study.user_attrs[attrs.SPEC]).trial_config(study.trials[BEST].params)
        expected = {**ran, "threads": 1}  # the driver's, from resources.cpu
    finally:
        close_storage(storage)
    parsed = parse_set_flags(flags)
    assert parsed == expected and list(parsed) == list(expected)
    assert {k: type(v) for k, v in parsed.items()} == {k: type(v) for k, v in expected.items()}
    assert parsed["epochs"] == 3 and parsed["dataset.samples_per_class"] == 8  # the quick profile it ran with


def test_best_in_a_narrow_terminal_folds_values_and_cuts_none(backend: Backend) -> None:
    """At 40 columns (a CI log's are 80) rich cut the exact column, whose point is every digit, to 0.02575084…"""
    proc = sweeper("best", backend.name, "--storage", backend.url, cwd=backend.folder, COLUMNS="40")
    assert proc.returncode == 0 and "…" not in proc.stdout, proc.stdout
    assert repr(BEST_PARAMS["weight_decay"]) in "".join(re.split(r"\s*[│|]\s*|\n", proc.stdout))


@pytest.mark.parametrize("columns", [80, 60])
def test_status_in_a_narrow_log_fits_and_at_80_splits_no_name_metric_or_date(backend: Backend, columns: int) -> None:
    """The table printed 105 wide at 80 columns (a CI log's, a terminal's default), and a terminal wraps every line
    of a table wider than itself: no line but the title (the storage URL, whole to copy) is wider than the console.
    At 80 a study's name, a metric's and a date stay whole; at 60 they may fold, and nothing is left out."""
    proc = sweeper("status", "--storage", backend.url, cwd=backend.folder, COLUMNS=str(columns))
    assert proc.returncode == 0 and "…" not in proc.stdout, proc.stdout
    title, *lines = proc.stdout.splitlines()
    assert title.startswith("studies in ") and max(map(len, lines)) <= columns, proc.stdout
    rows = {row.split(" | ")[0].replace(" ", ""): row.replace(" ", "") for row in status_rows(proc.stdout)}
    full, small = rows[backend.name], rows[backend.small]  # the words of each cell, with the folds undone
    for count in (f"{COMPLETE}COMPLETE", "1PRUNED", "1FAIL", "1RUNNING", "1WAITING", f"90.00%(#{BEST})",
                  "test_top380.00%(85.00%)firstmetby#4", "(interrupted)"):
        assert count in full, proc.stdout
    assert "2COMPLETE|53.00%(#1)|test_top380.00%(43.00%)notmet|" in small, proc.stdout
    assert all(re.search(r"\|\d{4}-\d\d-\d\d\d\d:\d\d\d+:\d\d:\d\d", row) for row in (full, small)), proc.stdout
    if columns == 80:  # whole: a study's name (to copy), a target's metric, a date
        cells = re.split(r"\s*[│|]\s*|\n", proc.stdout)
        assert {backend.name, backend.small, "test_top3"} <= set(cells), proc.stdout
        assert any(re.fullmatch(r"\d{4}-\d\d-\d\d( \d\d:\d\d)?", cell) for cell in cells), proc.stdout


def test_status_of_a_long_name_and_several_targets_fits_80_columns(tmp_path: Path) -> None:
    """A long name beside a built-in space's quick study, and three targets (one a minimised metric), all met."""
    url = "sqlite:///sweeps.db"
    long = "landmarks-ablation-of-label-smoothing-with-a-long-study-name"
    make_study(f"sqlite:///{tmp_path / 'sweeps.db'}", long)
    make_study(f"sqlite:///{tmp_path / 'sweeps.db'}", "asl20-quick", complete=2, extra_states=False)
    study = optuna.load_study(study_name=long, storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8, "test_top1": 0.55, "val_loss": 1.6})
    proc = sweeper("status", "--storage", url, cwd=tmp_path, COLUMNS="80")
    assert proc.returncode == 0 and max(map(len, proc.stdout.splitlines())) <= 80, proc.stdout
    rows = {row.split(" | ")[0].replace(" ", ""): row for row in status_rows(proc.stdout)}
    assert set(rows) == {long, "asl20-quick"}, proc.stdout  # the long name folds, and its parts are all there
    assert ("| test_top3 80.00% (85.00%) test_top1 55.00% (60.00%) val_loss 1.6 (1.5) first met by #4 |"
            in rows[long]), proc.stdout
    assert rows[long].endswith("(interrupted)") and "asl20-quick | 2 COMPLETE | 53.00% (#1) |" in rows["asl20-quick"]


def test_best_json_has_stable_keys(backend: Backend) -> None:
    data = json.loads(backend.ok("best_json").stdout)
    assert set(data) == {"study", "number", "objective", "value", "params", "metrics", "targets", "target_met_by",
                         "best_meeting_targets", "baseline", "attrs", "entrypoint", "config", "reproduce", "note",
                         "checkpoint"}
    assert data["study"] == backend.name and data["number"] == BEST and data["value"] == 0.9
    assert data["checkpoint"] is None  # a study made by hand: no trial checkpointed here
    assert data["params"] == BEST_PARAMS and data["metrics"]["test_top3"] == 0.85
    assert data["targets"] == {"test_top3": {"target": 0.8, "value": 0.85, "met": True}}
    assert data["target_met_by"] == BEST and data["best_meeting_targets"] == BEST
    assert data["baseline"] == pytest.approx({"test_top1": 0.4247, "test_top3": 0.7529})
    assert data["attrs"]["best_epoch"] == 3 and data["attrs"]["wall_seconds"] == 1.5 + BEST
    assert not {"best_epoch", "wall_seconds", "epochs_run", "parameters"} & set(data["metrics"])  # attrs, not metrics
    assert data["entrypoint"] == "trials:run" and data["note"] is None
    assert parse_set_flags(shlex.split(data["reproduce"])[3::2]) == data["config"]
    assert data["reproduce"] in backend.ok("best").stdout  # the same command as the table prints


def test_best_of_a_user_entrypoint_prints_its_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    spec = load_spec(resolve_space_path("spaces/asl20.yaml"), quick=True).to_yaml_dict()
    spec["entrypoint"] = "nosuchpkg.train:fit"  # not importable here: the stored spec cannot be validated
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.SPEC, spec)
    study.set_user_attr(attrs.OBJECTIVE, {"metric": "val_top3", "direction": "maximize"})
    study.enqueue_trial(BEST_PARAMS)
    study.optimize(lambda t: sum(t.suggest_float(p, 0, 1) for p in BEST_PARAMS) / 10, n_trials=1)
    show_best(view_of(study))
    out = capsys.readouterr().out
    assert not any(line.startswith("sweeper train") for line in out.splitlines())  # no command that would lie
    assert "sweeper train runs it only from its space file, which is not here" in out
    assert "note: the stored spec does not validate here" in out and "nosuchpkg" in out
    assert "  dataset.samples_per_class: 8" in out and f"  lr: {BEST_PARAMS['lr']!r}" in out
    (tmp_path / "space.yaml").write_text("entrypoint: nosuchpkg.train:fit\n", encoding="utf-8")  # there, not here
    study.set_user_attr(attrs.SPACE_DIR, str(tmp_path))
    study.set_user_attr(attrs.SPACE_FILE, "space.yaml")
    show_best(view_of(study))
    out = capsys.readouterr().out
    assert "sweeper train runs it only from its space file, which is outside this folder" in out
    assert f"the study's space folder {tmp_path} is not in this folder" in " ".join(out.split())


def test_best_of_an_earlier_sweepers_study_without_its_weights_here_says_where_they_may_be(
        capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A study of a sweeper before the ``checkpoints`` attr whose first run had --results-dir out: best said the
    weights were removed by sweeper clean or trained elsewhere, and nothing of the folder it never recorded."""
    monkeypatch.chdir(tmp_path)
    study = optuna.create_study(direction="maximize", storage=f"sqlite:///{tmp_path / 'old.db'}")
    study.set_user_attr(attrs.SPEC, load_spec(resolve_space_path("spaces/asl20.yaml"), quick=True).to_yaml_dict())
    study.set_user_attr(attrs.OBJECTIVE, {"metric": "val_top3", "direction": "maximize"})
    study.enqueue_trial(BEST_PARAMS)
    study.optimize(lambda t: sum(t.suggest_float(p, 0, 1) for p in BEST_PARAMS) / 10, n_trials=1)
    (tmp_path / "out" / "checkpoints" / study.study_name / "trial-00000").mkdir(parents=True)  # the first run's
    show_best(view_of(study))
    out = " ".join(capsys.readouterr().out.split())
    assert "weights: none on this machine" in out and "an earlier sweeper made this study and recorded no " \
        "checkpoint folder: a first run given --results-dir DIR kept them in DIR/checkpoints/NAME" in out
    study.set_user_attr(attrs.CHECKPOINTS, str(tmp_path / "runs" / "checkpoints" / study.study_name))
    show_best(view_of(study))
    assert "earlier sweeper" not in capsys.readouterr().out  # a folder recorded: no guess to explain


def test_best_of_a_study_sweeper_did_not_write_prints_its_params(capsys: pytest.CaptureFixture[str]) -> None:
    study = optuna.create_study()
    study.optimize(lambda t: t.suggest_float("x", 0.25, 0.25), n_trials=1)
    show_best(view_of(study))
    out = capsys.readouterr().out
    assert "note: the study has no stored spec" in out and "the trial's params:\n  x: 0.25\n" in out
    assert "?" not in out


def test_best_of_a_study_with_only_running_trials_says_how_it_goes_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """After a Ctrl-C before any trial finished, best said "no COMPLETE trial yet (2 RUNNING)" and no more: not that
    their driver is gone, nor the sweeper resume that carries them on. Trials a live driver runs are not called
    interrupted (storage.resume tells them apart)."""
    from storage.resume import Driver, orphaned_trials, own
    from sweeper.errors import BadInput
    from sweeper.resume_summary import print_resume_summary

    monkeypatch.delenv("SWEEPER_STORAGE", raising=False)
    url = f"sqlite:///{tmp_path / 'cut.db'}"
    study = optuna.create_study(storage=url, study_name="cut short")
    study.set_user_attr(attrs.SPEC, {"name": "cut short"})  # sweeper's study
    distributions = {"x": optuna.distributions.FloatDistribution(0, 1)}
    own(study.ask(distributions), Driver.current())  # this process: a live driver
    with pytest.raises(BadInput) as live:
        show_best(view_of(study), url=url)
    assert str(live.value) == "Study 'cut short' has no COMPLETE trial yet (1 RUNNING). Their driver still seems to " \
        "be running them (its process on this host, or a fresh heartbeat): try again once one finishes."
    gone = Driver.current()
    own(study.ask(distributions), Driver(gone.host, gone.pid, -1))  # its pid now another process's: that driver died
    resume = f"sweeper resume 'cut short' --storage {shlex.quote(url)}"
    with pytest.raises(BadInput) as cut:
        best_summary(view_of(study), url)  # --format json
    assert str(cut.value) == "Study 'cut short' has no COMPLETE trial yet (2 RUNNING). #1 was running when its " \
        f"driver stopped (Ctrl-C, a kill, a lost machine): {resume} runs it from the start (it trained no epoch)."
    optuna.Trial(study, study.trials[1]._trial_id).report(0.5, 1)  # it trained an epoch: its checkpoints carry it on
    # handed back as it waited to run when its sweep ended: no epoch, no checkpoint
    study.ask(distributions).set_user_attr(attrs.DRIVER, None)
    proc = sweeper("best", "cut short", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and f"(3 RUNNING). #1, #2 were running when their driver stopped (Ctrl-C, a kill, " \
        f"a lost machine): {resume} carries them on from their checkpoints (#2 from the start: no epoch trained)." \
        in " ".join(proc.stderr.split()), proc.stderr
    default = sweeper("best", "cut short", cwd=tmp_path, SWEEPER_STORAGE=url)
    assert "sweeper resume 'cut short' carries them on" in " ".join(default.stderr.split()), default.stderr
    # the study's folder is here, without #1's checkpoint (checkpoint_every): resume runs it from the start and says
    # so; best and status said "carries them on from their checkpoints", as if an epoch on record were one
    folder = Path("sweeper_runs", "checkpoints", "cut short")
    (tmp_path / folder).mkdir(parents=True)

    def said(command: str) -> str:
        proc = sweeper(command, "cut short", "--storage", url, cwd=tmp_path)
        return " ".join((proc.stdout + proc.stderr).split())

    anew = f"{resume} runs them from the start (none kept a checkpoint in {folder})"
    assert anew in said("best") and anew in said("status")
    print_resume_summary(study, orphaned_trials(study, study.trials), tmp_path / folder)
    assert f"#1 (none in {tmp_path / folder}: from the start)" in capsys.readouterr().out
    (tmp_path / folder / "trial-00001").mkdir()
    (tmp_path / folder / "trial-00001" / "state.pt").write_bytes(b"")
    assert f"{resume} carries them on from their checkpoints (#2 from the start: no epoch trained)" in said("best")


def test_the_resume_that_best_and_status_suggest_leaves_out_a_read_only_option(tmp_path: Path) -> None:
    """Given ``immutable=1`` or ``mode=ro`` (as the README says for a database on a read-only disk), best and status
    suggested ``sweeper resume NAME --storage`` with that very URL, which resume refuses (its option opens the
    database read-only): the suggestion leaves the option out, as resume's refusal says to."""
    from storage.engine import check_writable
    from storage.resume import Driver, own
    from sweeper.errors import BadInput

    path = tmp_path / "cut.db"
    study = optuna.create_study(storage=f"sqlite:///{path}", study_name="cut")
    study.set_user_attr(attrs.SPEC, {"name": "cut"})  # sweeper's study
    gone = Driver.current()
    own(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), Driver(gone.host, gone.pid, -1))  # died
    writable = f"sqlite:///file:{path}?uri=true"
    resume = f"sweeper resume cut --storage {shlex.quote(writable)} runs it from the start"  # it trained no epoch
    for option in ("immutable=1", "mode=ro"):
        reading = f"sqlite:///file:{path}?{option}&uri=true"
        with pytest.raises(BadInput) as cut:
            best_summary(view_of(study), reading)
        assert resume in str(cut.value), cut.value
        proc = sweeper("status", "cut", "--storage", reading, cwd=tmp_path)
        said = " ".join(proc.stdout.split())
        assert proc.returncode == 0 and resume in said, proc.stdout
    check_writable(writable)  # what resume checks first


@pytest.mark.parametrize("value", [1e-05, 1e20, 0.1 + 0.2, 5e-324, -0.0, 3, True, False, None, "true", "1.0",
                                   "", "a b", "it's", "null", "~", "x: y", "#", "01", "1e-5"])
def test_set_values_parse_back_exactly(value: Any) -> None:
    words = shlex.split(reproduce_command({"key": value}))
    parsed = parse_set_flags([words[-1]])["key"]
    assert parsed == value and type(parsed) is type(value)
    if isinstance(value, float):
        assert math.copysign(1, parsed) == math.copysign(1, value)  # -0.0 stays negative
    assert words[-1] == f"key={yaml_scalar(value)}"


OWN_FIT = """
def fit(config, report, checkpoint_dir):
    return {"acc": 0.5}


fit.settings = {"epochs": 2, "lr": 0.1, "width": 8}
fit.metrics = ["acc"]
"""
OWN_SPACE = "entrypoint: {entry}\nobjective: {{metric: acc, direction: maximize}}\ntraining: {training}\n" \
            "params:\n  lr: {{type: float, low: 0.001, high: 1.0}}\n"


def own_study(tmp_path: Path) -> tuple[optuna.Study, Path]:
    """A finished study of a user entrypoint, with the attrs the driver writes, on SQLite; and its space file."""
    (tmp_path / "best_fit.py").write_text(OWN_FIT)  # a module name of its own: imported modules stay imported
    space = tmp_path / "own.yaml"
    space.write_text(OWN_SPACE.format(entry="best_fit:fit", training="{epochs: 2}"))
    spec = load_spec(space)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'own.db'}", study_name="own", direction="maximize")
    for key, value in {attrs.SPEC: spec.to_yaml_dict(), attrs.SPACE_FILE: str(space), attrs.SPACE_DIR: str(tmp_path),
                       attrs.OBJECTIVE: attrs.objective_attr("acc", "maximize")}.items():
        study.set_user_attr(key, value)
    study.enqueue_trial({"lr": 0.25})
    study.optimize(lambda t: t.suggest_float("lr", 0.001, 1.0), n_trials=1)
    return study, space


def trained_by(command: str) -> dict[str, Any]:
    words = shlex.split(command)
    return prepare(Path(words[2]), words[4::2])[0].config


def test_best_of_a_user_entrypoint_reproduces_the_trial_after_its_space_file_changed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The command runs the space file as it is now: a key added to it since is set back to the function's default
    (the trial ran without it, i.e. with that default), a changed value is reset, and the note names the added key."""
    monkeypatch.chdir(tmp_path)
    study, space = own_study(tmp_path)
    ran = {"epochs": 2, "lr": 0.25}
    data = best_summary(view_of(study))
    assert data["config"] == ran and data["note"] is None and trained_by(data["reproduce"]) == ran
    space.write_text(OWN_SPACE.format(entry="best_fit:fit", training="{epochs: 5, width: 32}"))
    data = best_summary(view_of(study))
    assert trained_by(data["reproduce"]) == {**ran, "width": 8}  # not epochs 5, not width 32
    assert data["note"] == (f"the space file {space} now sets width, which the trial's config did not have: the "
                            "command sets it to best_fit:fit's default, which the trial ran with")


def test_best_prints_no_command_when_the_space_file_names_another_entrypoint(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    study, space = own_study(tmp_path)
    (tmp_path / "best_other.py").write_text(OWN_FIT)
    space.write_text(OWN_SPACE.format(entry="best_other:fit", training="{epochs: 2}"))
    data = best_summary(view_of(study))
    assert data["reproduce"] is None and data["config"] == {"epochs": 2, "lr": 0.25}
    assert data["note"] == (f"the space file {space} now names entrypoint best_other:fit, but the trial ran "
                            f"best_fit:fit: sweeper train {space} would call the other function")
    show_best(view_of(study))
    out = capsys.readouterr().out
    assert not any(line.startswith("sweeper train") for line in out.splitlines())
    assert f"note: {data['note']}" in out and "no sweeper train command reproduces it" in out and "  lr: 0.25" in out


@pytest.mark.usefixtures("optuna_deprecates_prior_weight")
def test_best_and_train_take_the_space_file_of_a_study_that_ran_with_a_deprecated_sampler_option(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``sweeper run SPACE`` carries on a study that ran with a sampler option Optuna has since deprecated, from that
    very file: ``best`` said the file "no longer loads" and printed no command, and ``sweeper train SPACE`` (and
    ``dashboard SPACE``) exited 2 on the option, which one training run never uses."""
    monkeypatch.chdir(tmp_path)
    study, space = own_study(tmp_path)
    space.write_text(space.read_text() + "sampler: {type: tpe, prior_weight: 2.0}\n")  # as the study ran it
    with pytest.raises(SpecError, match="prior_weight: is deprecated by Optuna"):
        load_spec(space)  # what a new study is still told
    data = best_summary(view_of(study))
    assert data["note"] is None and trained_by(data["reproduce"]) == {"epochs": 2, "lr": 0.25}


def test_control_characters_from_the_database_print_escaped(tmp_path: Path) -> None:
    """A study name (anyone's who may write the database) held escape sequences that set the reader's terminal
    title and hid the rest of the table."""
    url = f"sqlite:///{tmp_path / 'esc.db'}"
    name = "team\x1b]0;pwned\x07\x1b[8mhidden"
    optuna.create_study(study_name=name, storage=url).optimize(lambda t: t.suggest_float("x", 0, 1), n_trials=1)
    shown = sweeper("status", "--storage", url, cwd=tmp_path)
    assert shown.returncode == 0 and "\x1b" not in shown.stdout, shown.stdout
    assert "team\\x1b]0;pwned" in shown.stdout and "\\x1b[8mhidden" in shown.stdout


def test_best_imports_no_code_from_a_folder_a_study_attr_names_outside_this_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Anyone who may write a shared database sets a study's attrs: best, a reading command, imported (ran) the
    module of the space_dir attr's folder."""
    study, _ = own_study(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "best_evil.py").write_text(f"open({str(tmp_path / 'ran')!r}, 'w')\n" + OWN_FIT)
    spec = {**study.user_attrs[attrs.SPEC], "entrypoint": "best_evil:fit"}
    study.set_user_attr(attrs.SPEC, spec)
    study.set_user_attr(attrs.SPACE_DIR, str(elsewhere))
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    data = best_summary(view_of(study))
    assert not (tmp_path / "ran").exists() and data["reproduce"] is None
    assert data["config"] == {"epochs": 2, "lr": 0.25} and "imports no code from elsewhere" in data["note"]


# --------------------------------------------------------------------------------------------------------------
# bad names and storages: one message, exit 2, no password
def test_unknown_study_suggests_the_closest_name(backend: Backend) -> None:
    proc = backend.out["typo"]
    assert proc.returncode == 2, proc.stderr
    assert f"No study named {backend.name[:-2]!r}" in proc.stderr
    assert "did you mean" in proc.stderr and backend.name in proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout


def test_a_study_name_in_another_case_gets_did_you_mean(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'case.db'}"
    storage = open_storage(url)
    try:
        optuna.create_study(study_name="allfail", storage=storage)
        with pytest.raises(StorageError, match="did you mean 'allfail'"):
            load_existing_study(storage, "ALLFAIL", url)
    finally:
        close_storage(storage)


def test_the_space_file_is_shown_where_it_lies_not_as_typed_in_the_first_runs_folder(tmp_path: Path) -> None:
    """``sweeper run fail.yaml`` in /proj/pkg: status, its JSON and the report name /proj/pkg/fail.yaml, which a
    reader in another folder can open (best finds it there too)."""
    url = f"sqlite:///{tmp_path / 'space.db'}"
    storage = open_storage(url)
    try:
        study = optuna.create_study(study_name="typed", storage=storage)
        study.set_user_attr(attrs.SPACE_FILE, "fail.yaml")
        study.set_user_attr(attrs.SPACE_DIR, str(tmp_path / "pkg"))
        view = view_of(study)
        where = str(tmp_path / "pkg" / "fail.yaml")
        assert study_summary(view)["space_file"] == where
        assert f"<th>space file</th><td>{where}</td>" in build_report(view, url=url)
    finally:
        close_storage(storage)


@pytest.mark.parametrize("typed", ["asl20", "spaces/asl20", "asl20.yaml"])
def test_a_builtin_space_named_without_its_file_is_shown_as_the_file_it_was_read_from(typed: str, tmp_path: Path):
    """``sweeper run asl20`` read search_spaces/spaces/asl20.yaml, and status and the report named .../asl20, which
    is no file (before, they showed "asl20" as typed)."""
    from sweeper.driver import study_attrs

    url = f"sqlite:///{tmp_path / 'space.db'}"
    storage = open_storage(url)
    try:
        study = optuna.create_study(study_name="builtin", storage=storage)
        for key, value in study_attrs(load_spec(resolve_space_path(typed), quick=True), typed).items():
            study.set_user_attr(key, value)
        assert study_summary(view_of(study))["space_file"] == str(resolve_space_path("asl20").resolve())
    finally:
        close_storage(storage)


@pytest.fixture(scope="module")
def failures(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """Commands against storages that are missing, empty or unreachable, all at once, in the folder FOLDER."""
    folder = tmp_path_factory.mktemp("failures")
    open_storage(f"sqlite:///{folder / 'empty.db'}").engine.dispose()
    unreachable = "postgresql+psycopg://postgres:s3cretpw@127.0.0.1:1/test"
    mixed = f"sqlite:///{folder / 'mixed.db'}"  # a plain study beside a multi-objective one, as in shared storages
    optuna.create_study(study_name="single", storage=mixed).optimize(lambda t: t.suggest_float("x", 0, 1), 2)
    optuna.create_study(study_name="pareto", storage=mixed, directions=["maximize", "minimize"]).optimize(
        lambda t: (t.suggest_float("x", 0, 1), 1.0), 2)
    commands = {
        **{f"multi_{cmd}": [cmd, "pareto", "--storage", mixed] for cmd in ("status", "best", "report")},
        "mixed_status": ["status", "--storage", mixed],
        "multi_export": ["export", "pareto", "--format", "csv", "--storage", mixed],
        "missing": ["status"],  # the default sqlite:///sweeps.db, which is not in this folder
        "empty": ["best", "asl20", "--storage", f"sqlite:///{folder / 'empty.db'}"],
        "unreachable": ["export", "asl20", "--storage", unreachable],
    }
    postgres = os.environ.get("SWEEPER_TEST_POSTGRES_URL", "").strip()
    if postgres:
        base = make_url(postgres)
        commands["no_role"] = ["status", "--storage", base.set(username="nosuchrole_sweeper").render_as_string(False)]
        commands["no_db"] = ["report", "x", "--storage", base.set(database="nosuchdb_sweeper").render_as_string(False)]
    return {**run_all(commands, folder), "folder": folder}  # type: ignore[dict-item]


def failed(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 2, f"exit {proc.returncode}\n{proc.stdout}\n{proc.stderr}"
    assert "Traceback" not in proc.stderr and proc.stderr.count("error:") == 1
    return " ".join(proc.stderr.split())


def test_missing_sqlite_file_is_not_created(failures: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "There is no SQLite database at" in failed(failures["missing"])
    assert not (failures["folder"] / "sweeps.db").exists()  # type: ignore[operator]  # nothing was created


def test_a_multi_objective_study_is_refused_in_words_and_skipped_in_listings(
        failures: dict[str, subprocess.CompletedProcess[str]]) -> None:
    for cmd in ("status", "best", "report"):
        assert "'pareto' has 2 objectives; sweeper reads single-objective studies" in failed(failures[f"multi_{cmd}"])
    listing = failures["mixed_status"]
    assert listing.returncode == 0 and "Traceback" not in listing.stderr, listing.stderr
    assert "single" in listing.stdout and "pareto" not in listing.stdout
    assert "skipped: Study 'pareto' has 2 objectives" in " ".join(listing.stderr.split())
    exported = list(csv.DictReader(io.StringIO(failures["multi_export"].stdout)))  # export keeps every objective
    assert len(exported) == 2 and all(r["value"] == "" and r["values_1"] == "1.0" for r in exported)
    assert all(float(r["values_0"]) == float(r["params_x"]) for r in exported)


def test_empty_storage_says_so(failures: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "There are no studies in sqlite:///" in failed(failures["empty"])


def test_unreachable_server_masks_the_password(failures: dict[str, subprocess.CompletedProcess[str]]) -> None:
    message = failed(failures["unreachable"])
    assert "cannot reach a PostgreSQL server at 127.0.0.1:1" in message
    assert "postgres:***@127.0.0.1:1" in message
    assert "s3cretpw" not in failures["unreachable"].stderr + failures["unreachable"].stdout


@pytest.mark.postgres
def test_unknown_role_and_database_on_a_real_server(postgres_url: str,
                                                    failures: dict[str, subprocess.CompletedProcess[str]]) -> None:
    assert "the user 'nosuchrole_sweeper' does not exist" in failed(failures["no_role"])
    assert "the database 'nosuchdb_sweeper' does not exist" in failed(failures["no_db"])


# --------------------------------------------------------------------------------------------------------------
# read-only commands never write: not a table, not a byte
READ_ONLY = {
    "status": ["status"],
    "best": ["best", "app"],
    "report": ["report", "app", "-o", "report.html"],
    "export": ["export", "app", "-o", "trials.csv"],
    "dashboard": ["dashboard", "--port", "0"],
}


@pytest.mark.parametrize("backend", ["sqlite"], indirect=True)  # bytes of a file; PostgreSQL's tables are counted below
def test_read_only_commands_leave_the_study_file_byte_for_byte(backend: Backend) -> None:
    assert backend.unchanged  # status, report, export, best (twelve commands) ran on it


def test_read_only_commands_refuse_a_foreign_sqlite_file_and_leave_it_unchanged(tmp_path: Path) -> None:
    app = tmp_path / "app.db"
    with sqlite3.connect(app) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
        connection.execute("INSERT INTO users (name) VALUES ('ada')")
    (tmp_path / "empty.db").touch()
    before = {path.name: path.read_bytes() for path in tmp_path.iterdir()}
    procs = run_all({**{f"app-{k}": [*args, "--storage", f"sqlite:///{app}"] for k, args in READ_ONLY.items()},
                     **{f"empty-{k}": [*args, "--storage", "sqlite:///empty.db"] for k, args in READ_ONLY.items()}},
                    tmp_path)
    for key, proc in procs.items():
        message = failed(proc)
        if key.startswith("app-"):
            assert f"sqlite:///{app} is not an Optuna study database: it holds the tables users" in message, key
        else:
            assert "There are no studies in sqlite:///empty.db: the database is empty" in message, key
    assert {path.name: path.read_bytes() for path in tmp_path.iterdir()} == before  # no new file, not a byte


@pytest.mark.postgres
def test_read_only_commands_create_no_tables_in_an_empty_postgres_database(postgres_url: str, tmp_path: Path) -> None:
    import sqlalchemy

    name = f"sweeper_empty_{uuid.uuid4().hex[:10]}"
    url = new_database(postgres_url, name)
    database = sqlalchemy.create_engine(url)
    try:
        empty = run_all({k: [*args, "--storage", url] for k, args in READ_ONLY.items()}, tmp_path)
        assert sqlalchemy.inspect(database).get_table_names() == []
        with database.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE accounts (id integer)")
        foreign = run_all({k: [*READ_ONLY[k], "--storage", url] for k in ("status", "export")}, tmp_path)
        assert sqlalchemy.inspect(database).get_table_names() == ["accounts"]
    finally:
        database.dispose()
        drop_database(postgres_url, name)
    for key, proc in empty.items():
        assert "There are no studies in postgresql" in failed(proc) and "the database is empty" in failed(proc), key
    for key, proc in foreign.items():
        assert "is not an Optuna study database: it holds the tables accounts" in failed(proc), key


def test_a_reproduce_command_runs_settings_named_like_a_space_section(tmp_path: Path) -> None:
    """A function that declares no settings may take ``name`` or ``budget``: the command says training.name."""
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'acc': 1.0}\n")
    (tmp_path / "own.yaml").write_text("entrypoint: own:fit\nobjective: {metric: acc, direction: maximize}\n"
                                       "params:\n  budget: {type: int, low: 1, high: 3}\n")
    config = {"name": "run-7", "budget": 2, "lr": 0.1}
    words = shlex.split(reproduce_command(config, tmp_path / "own.yaml"))
    assert words[4::2] == ["training.name=run-7", "training.budget=2", "lr=0.1"]
    assert prepare(Path(words[2]), words[4::2])[0].config == config


def test_clean_deletes_the_checkpoints_of_finished_trials_but_the_best_and_never_an_unfinished_ones(
        tmp_path: Path) -> None:
    """Every trial's state.pt stays when it ends (350 MB each for nslt1000's model): `sweeper clean` deletes those
    of COMPLETE, PRUNED and FAIL trials, which are never read again, but the best N's and the ones that met the
    targets (a regression check found --keep 1 deleting the trial the status named); the study is only read."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"clean-{uuid.uuid4().hex[:8]}"
    make_study(url, name)  # 0-5 COMPLETE (#4 the best, then #5), 6 PRUNED, 7 FAIL, 8 RUNNING, 9 WAITING
    study = optuna.load_study(study_name=name, storage=url)
    study.add_trial(optuna.trial.create_trial(value=0.95))  # 10: the best value; the target met only by #4
    folder = tmp_path / "runs" / "checkpoints" / f"{name}-0123abcd"
    study.set_user_attr(attrs.CHECKPOINTS, str(folder))
    for number in range(11):
        (folder / f"trial-{number:05d}").mkdir(parents=True)
        (folder / f"trial-{number:05d}" / "state.pt").write_bytes(bytes(1000))
        (folder / f"trial-{number:05d}.log").write_text("output\n")
    before = digest(tmp_path)

    def clean(*flags: str, cwd: Path = tmp_path) -> subprocess.CompletedProcess[str]:
        return sweeper("clean", name, "--storage", url, *flags, cwd=cwd)

    def said(*flags: str) -> str:
        proc = clean(*flags)
        assert proc.returncode == 0, proc.stderr
        return " ".join(proc.stdout.split())

    def left() -> list[int]:
        return sorted(int(p.name[6:]) for p in folder.iterdir() if p.is_dir())

    out = said("--keep", "2", "--dry-run")
    assert f"would delete {folder / 'trial-00006'}" in out and left() == list(range(11))
    assert f"would free 7.0 KB: the checkpoints of 7 finished trials of {name} in {folder}; kept the best 2 (#10, " \
        "#4), every unfinished trial's" in out
    out = said("--keep", "1")
    assert left() == [4, 8, 9, 10] and len(list(folder.glob("*.log"))) == 11
    assert f"freed 7.0 KB: the checkpoints of 7 finished trials of {name} in {folder}; kept the best 1 (#10), " \
        "the first to meet the targets (#4), every unfinished trial's" in out
    assert said("--keep", "1").startswith(f"nothing to delete in {folder}: kept the best 1 (#10)")

    def best() -> str:
        proc = sweeper("best", name, "--storage", url, cwd=tmp_path)
        assert proc.returncode == 0, proc.stderr
        return " ".join(proc.stdout.split())

    assert f"weights: {folder / 'trial-00010' / 'state.pt'} (its 'best_model'" in best()
    said("--keep", "0")
    assert left() == [4, 8, 9] and digest(tmp_path) == before
    # the best trial's weights are gone: said so, not a line left out
    assert f"weights: none on this machine (not in {folder / 'trial-00010'}: removed by sweeper clean, or trained " \
        "elsewhere)" in best()
    typo = sweeper("clean", name[:-1], "--storage", url, cwd=tmp_path)
    assert typo.returncode == 2 and "did you mean" in typo.stderr
    (tmp_path / "elsewhere").mkdir()  # the folder is a study attr, which anyone who may write the database sets
    for made in (4, 5):
        (folder / f"trial-{made:05d}").mkdir(exist_ok=True)
    away = clean("--keep", "0", cwd=tmp_path / "elsewhere")
    assert away.returncode == 2 and f"which is neither in this folder nor under --results-dir sweeper_runs: sweeper " \
        f"clean deletes only there; give the run's results folder (--results-dir {tmp_path / 'runs'})" in \
        " ".join(away.stderr.split())
    assert left() == [4, 5, 8, 9]
    # a results folder outside the project (docker/compose.yaml's /results) or behind a symlink: as the run gave it
    assert clean("--keep", "0", "--results-dir", str(tmp_path / "runs"), cwd=tmp_path / "elsewhere").returncode == 0
    assert left() == [4, 8, 9]
    shutil.rmtree(folder)  # deleted by hand, or trained on another machine: said so, not "kept the best 1 (#10)"
    assert said("--keep", "1") == f"nothing to delete: {folder}, where {name} keeps its checkpoints, does not exist " \
        "(deleted or moved, or the study trained on another machine)"


def test_clean_of_an_earlier_sweepers_study_whose_checkpoint_folder_is_missing_names_that_folder(
        tmp_path: Path) -> None:
    """A study without the ``checkpoints`` attr keeps them in RESULTS/checkpoints/NAME, a guess: where that folder
    was missing (another --results-dir, or another folder to run from), clean said "nothing to delete in ...: kept
    the best 3", exit 0, as if it had looked at the checkpoints; it deletes there once it is given the folder."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"clean-{uuid.uuid4().hex[:8]}"
    make_study(url, name)  # an earlier sweeper's: no checkpoints attr
    assert attrs.CHECKPOINTS not in optuna.load_study(study_name=name, storage=url).user_attrs
    proc = sweeper("clean", name, "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and not proc.stdout, proc.stdout + proc.stderr
    assert f"error: study '{name}' was made by an earlier sweeper, which did not record where its checkpoints are, " \
           f"and sweeper_runs/checkpoints/{name} does not exist: give the --results-dir its first run had" in \
           " ".join(proc.stderr.split()), proc.stderr
    folder = tmp_path / "runs" / "checkpoints" / name
    (folder / "trial-00006").mkdir(parents=True)
    proc = sweeper("clean", name, "--storage", url, "--results-dir", "runs", cwd=tmp_path)
    assert proc.returncode == 0 and not (folder / "trial-00006").exists(), proc.stderr


def test_clean_of_checkpoints_it_may_not_delete_says_so_in_one_line(tmp_path: Path) -> None:
    """Checkpoints on a read-only disk (an archive's mount) or in another user's folder: shutil.rmtree's OSError was
    a traceback, exit 1; now one line naming the folder and how many went before it, exit 2."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"clean-{uuid.uuid4().hex[:8]}"
    make_study(url, name)  # 0-5 COMPLETE, 6 PRUNED, 7 FAIL: --keep 0 deletes all but #4's (it met the targets)
    source, folder = tmp_path / "source", tmp_path / "runs" / "checkpoints" / name
    optuna.load_study(study_name=name, storage=url).set_user_attr(attrs.CHECKPOINTS, str(folder))
    for number in range(8):
        (source / f"trial-{number:05d}").mkdir(parents=True)
        (source / f"trial-{number:05d}" / "state.pt").write_bytes(bytes(1000))
    folder.mkdir(parents=True)
    if os.geteuid() == 0:  # root deletes in any folder it may not write: a read-only bind mount stops it
        subprocess.run(["mount", "--bind", "-o", "ro", str(source), str(folder)], check=True, capture_output=True)
        subprocess.run(["mount", "-o", "remount,bind,ro", str(folder)], check=True, capture_output=True)
    else:
        folder.rmdir()
        source.rename(folder)
        for trial in folder.iterdir():
            trial.chmod(0o555)
    try:
        proc = sweeper("clean", name, "--storage", url, "--keep", "0", cwd=tmp_path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["umount", str(folder)], check=True)
        else:
            for trial in folder.iterdir():
                trial.chmod(0o755)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert f"error: cannot delete {folder / 'trial-00000'}: " in proc.stderr
    assert "it deleted 0 of the 7 folders before it" in " ".join(proc.stderr.split()), proc.stderr


def test_two_cleans_of_one_study_at_once_skip_what_the_other_deleted(tmp_path: Path) -> None:
    """Two ``sweeper clean``s of one study at once (two terminals, a cron job): the one that came to a folder the
    other had deleted, or deleted part of, said "cannot delete ...: No such file or directory", exit 2. The first is
    stopped mid-way (SIGSTOP) while the second deletes the rest: both succeed, each counting what it deleted."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"clean-{uuid.uuid4().hex[:8]}"
    make_study(url, name)  # 0-5 COMPLETE, 6 PRUNED, 7 FAIL: --keep 0 deletes all but #4's (it met the targets)
    folder = tmp_path / "runs" / "checkpoints" / name
    optuna.load_study(study_name=name, storage=url).set_user_attr(attrs.CHECKPOINTS, str(folder))
    for number in range(8):
        (folder / f"trial-{number:05d}").mkdir(parents=True)
        for shard in range(3000):  # deleting takes a while: time to stop it
            (folder / f"trial-{number:05d}" / f"shard-{shard}").touch()
    command = [sys.executable, "-m", "sweeper.cli", "clean", name, "--storage", url, "--keep", "0"]
    first = subprocess.Popen(command, cwd=tmp_path, env=env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
    deadline = time.monotonic() + 120
    while (folder / "trial-00000").exists() and first.poll() is None and time.monotonic() < deadline:
        time.sleep(0.001)  # until the first has deleted #0 and is on to the next ones
    os.kill(first.pid, signal.SIGSTOP)
    try:
        assert (folder / "trial-00007").is_dir(), "the first clean was stopped too late"
        second = subprocess.run(command, cwd=tmp_path, env=env(), capture_output=True, text=True, timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, err = first.communicate(timeout=120)
    assert second.returncode == 0 and first.returncode == 0, second.stderr + err
    assert sorted(p.name for p in folder.iterdir()) == ["trial-00004"]
    assert "more went meanwhile: another sweeper clean, or a user, deleted them" in " ".join(out.split()), out


def test_clean_given_a_results_dir_it_cannot_write_in_judges_the_study_not_the_folder(tmp_path: Path) -> None:
    """clean deletes, it makes no folder: ``--results-dir /proc`` said "cannot make a folder in /proc: No such file
    or directory", a check of run's that fits no clean; the folder is judged as clean judges it, a file refused."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"clean-{uuid.uuid4().hex[:8]}"
    (folder := tmp_path / "runs" / "checkpoints" / name).mkdir(parents=True)
    optuna.create_study(study_name=name, storage=url).set_user_attr(attrs.CHECKPOINTS, str(folder))
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "taken").write_text("a file")
    said = {folder: sweeper("clean", name, "--storage", url, "--results-dir", folder, cwd=tmp_path / "elsewhere")
            for folder in ("/proc", "taken/sub")}
    assert said["/proc"].returncode == 2 and "cannot make a folder" not in said["/proc"].stderr
    assert "which is neither in this folder nor under --results-dir /proc" in " ".join(said["/proc"].stderr.split())
    assert said["taken/sub"].returncode == 2 and "taken is a file, not a folder" in said["taken/sub"].stderr


def _status_at(url: str, columns: int, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> str:
    from sweeper import inspection
    from sweeper.console import console

    monkeypatch.setattr(console, "width", columns)
    storage = open_storage(url, create=False)
    try:
        inspection.status(storage, url, None)
    finally:
        close_storage(storage)
    return capsys.readouterr().out


@pytest.mark.parametrize("columns", [22, 53, 55, 80])
def test_status_keeps_every_name_and_fits_control_characters(tmp_path: Path, columns: int, monkeypatch,
                                                             capsys) -> None:
    """A name in CJK with an emoji printed nothing in a column 1 wide (53 and 55 columns, and narrower), and a
    control character, printed escaped (4 columns), ran each line of the table past the terminal."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "landmarks-ablation-of-label-smoothing-with-a-long-study-name", complete=3)
    wide = "手話認識の実験スタディ🙂"
    for name in (wide, "ctrl\x1b[31mred"):
        study = optuna.create_study(storage=url, study_name=name, direction="maximize")
        study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    out = _status_at(url, columns, monkeypatch, capsys)
    assert max(map(len, out.splitlines()[1:])) <= columns, out
    names = "".join(line.split("│")[1].strip() for line in out.splitlines() if line.startswith("│"))
    for name in ("landmarks-ablation-of-label-smoothing-with-a-long-study-name", wide, "ctrl\\x1b[31mred"):
        assert name in names, out


def test_status_at_80_keeps_whole_a_name_that_fits_beside_a_long_one(tmp_path: Path, monkeypatch, capsys) -> None:
    """A name longer than 80 columns leave folds; a shorter one beside it that fits stays whole (it folded at 14)."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "landmarks-ablation-of-label-smoothing-with-a-long-study-name", complete=3)
    make_study(url, "asl20-label-smoothing-v2", complete=2, extra_states=False)
    out = _status_at(url, 80, monkeypatch, capsys)
    assert max(map(len, out.splitlines()[1:])) <= 80, out
    assert "│ asl20-label-smoothing-v2 │" in out, out
    cells = re.split(r"\s*[│|]\s*|\n", out)
    assert {"test_top3", "(interrupted)"} <= set(cells) and any(re.fullmatch(r"\d{4}-\d\d-\d\d", c) for c in cells)


@pytest.mark.parametrize("name", ["-lr-test", "ctl\x1b[31mred\x07", "my study [v2]"])
def test_status_of_one_study_suggests_a_command_bash_runs_on_that_study(name: str, tmp_path: Path, capsys) -> None:
    """Pasted as printed: ``sweeper best my study [v2]`` ran ``best`` on a study "my", a name that starts with '-'
    read as an option (``No such option: -l``), and one with a control character, printed escaped inside '...',
    named another study."""
    import shutil
    import subprocess

    from sweeper import inspection
    from sweeper.cli import app

    bash = shutil.which("bash") or pytest.skip("no bash")
    url = f"sqlite:///{tmp_path / 'my sweeps.db'}"
    study = optuna.create_study(storage=url, study_name=name, direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    storage = open_storage(url, create=False)
    try:
        inspection.status(storage, url, name)
    finally:
        close_storage(storage)
    line = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("see it in full: "))
    command = line.removeprefix("see it in full: ")
    words = subprocess.run([bash, "-c", f'printf "%s\\0" {command}'], capture_output=True, check=True).stdout
    args = words.decode().split("\0")[:-1]
    assert args[:2] == ["sweeper", "best"] and name in args, (command, args)
    assert args[args.index("--storage") + 1] == url, (command, args)  # a path with a space: one word
    app(args[1:], standalone_mode=False)  # what the pasted command runs: bad usage or another study raises
    assert "best trial of" in capsys.readouterr().out


def test_a_program_whose_stdout_is_text_alone_gets_the_rows_and_the_json(tmp_path: Path) -> None:
    """A program running a command in-process with stdout an io.StringIO (redirect_stdout; a Jupyter notebook's has
    no bytes beneath it either): export and --format json wrote to sys.stdout.buffer, an AttributeError, where the
    tables of status printed."""
    import contextlib

    from sweeper.cli import app

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    for command, said in ((["export", "s"], "number,state,value,params_x"), (["best", "s", "--format", "json"],
                                                                            '"number": 0')):
        with contextlib.redirect_stdout(io.StringIO()) as out:
            app([*command, "--storage", url], standalone_mode=False)
        assert said in out.getvalue(), (command, out.getvalue())


@pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full (Linux)")
def test_a_command_run_in_process_after_one_whose_stdout_failed_prints_and_succeeds(tmp_path: Path) -> None:
    """A program running commands in-process, one of them with its stdout on a full disk: every later command, its
    stdout fine, printed nothing and failed with "Cannot write to stdout", the first one's failure kept."""
    import contextlib

    from sweeper.cli import app
    from sweeper.errors import BadInput

    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="s", direction="maximize")
    study.tell(study.ask({"x": optuna.distributions.FloatDistribution(0, 1)}), 0.5)
    with open("/dev/full", "w") as full, contextlib.redirect_stdout(full), pytest.raises(BadInput):
        app(["status", "s", "--storage", url], standalone_mode=False)
    with contextlib.redirect_stdout(io.StringIO()) as out:
        app(["status", "s", "--storage", url], standalone_mode=False)
    assert "best trial #0" in out.getvalue()


def test_an_export_over_a_hard_linked_file_writes_through_the_link(tmp_path: Path) -> None:
    """A temporary file renamed over a hard-linked one cut the link: the other name kept the old table."""
    from sweeper.inspection import write_whole

    (tmp_path / "a.csv").write_text("old", encoding="utf-8")
    os.link(tmp_path / "a.csv", tmp_path / "b.csv")
    write_whole(tmp_path / "b.csv", lambda out: out.write("new"))
    assert (tmp_path / "a.csv").read_text(encoding="utf-8") == "new"
    assert (tmp_path / "b.csv").stat().st_nlink == 2


def test_an_export_over_a_group_shared_file_keeps_its_group(tmp_path: Path) -> None:
    """A temporary file renamed over a file of another group (a team's, mode 0660) gave it the writer's own group:
    the team lost the file it shared, though the mode was kept."""
    from sweeper.inspection import write_whole

    other = 65534 if os.geteuid() == 0 else next((g for g in os.getgroups() if g != os.getegid()), None)
    if other is None:
        pytest.skip("no group other than one's own to give the file")
    (tmp_path / "shared.csv").write_text("old", encoding="utf-8")
    os.chown(tmp_path / "shared.csv", -1, other)
    write_whole(tmp_path / "shared.csv", lambda out: out.write("new"))
    assert (tmp_path / "shared.csv").read_text(encoding="utf-8") == "new"
    assert (tmp_path / "shared.csv").stat().st_gid == other


def test_read_commands_take_sweepers_attr_names_holding_another_type(tmp_path: Path) -> None:
    """Another tool, or a function of one's own, may store values of other types under the names sweeper reads: a
    stop_reason map, a wall_seconds text, a PRUNED trial's epochs_run text, a study's checkpoints number, and
    SQLite's NULL for a COMPLETE trial's NaN. export, best, report and clean each raised a traceback (exit 1)."""
    url = f"sqlite:///{tmp_path / 'odd.db'}"
    lr = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)}
    study = optuna.create_study(study_name="odd", storage=url, direction="maximize")
    for key, value in {attrs.CHECKPOINTS: 42, attrs.TARGETS: {"test_top3": 0.8},
                       attrs.OBJECTIVE: attrs.objective_attr("val_top3", "maximize")}.items():
        study.set_user_attr(key, value)
    study.add_trial(optuna.trial.create_trial(
        value=0.9, params={"lr": 1e-3}, distributions=lr, intermediate_values={1: 0.5, 2: 0.9},
        user_attrs={attrs.STOP_REASON: {"why": "timeout"}, attrs.WALL_SECONDS: "12s", "test_top3": 0.6}))
    study.add_trial(optuna.trial.create_trial(
        state=TS.PRUNED, value=0.3, params={"lr": 2e-3}, distributions=lr, intermediate_values={1: 0.3},
        user_attrs={attrs.EPOCHS_RUN: "early", "test_top3": 0.5}))
    storage = study._storage
    nan_trial = storage.create_new_trial(study._study_id)
    storage.set_trial_state_values(nan_trial, TS.COMPLETE, [math.nan])  # SQLite keeps NULL
    with sqlite3.connect(tmp_path / "odd.db") as db:
        assert db.execute("SELECT value FROM trial_values WHERE trial_id = ?", (nan_trial,)).fetchall() == [(None,)]
    out = run_all({"csv": ["export", "odd", "--storage", url, "-o", "odd.csv"],
                   "json": ["export", "odd", "--storage", url, "-o", "odd.json"],
                   "best": ["best", "odd", "--storage", url],
                   "report": ["report", "odd", "--storage", url, "-o", "odd.html"],
                   "clean": ["clean", "odd", "--storage", url, "--dry-run"]}, tmp_path)
    for key, proc in out.items():
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, (key, proc.stderr)
    rows = list(csv.DictReader(io.StringIO((tmp_path / "odd.csv").read_text(encoding="utf-8"))))
    assert json.loads(rows[0][attrs.STOP_REASON]) == {"why": "timeout"} and rows[1][attrs.EPOCHS_RUN] == "early"
    assert json.loads((tmp_path / "odd.json").read_text(encoding="utf-8"))[0][attrs.STOP_REASON] == {"why": "timeout"}
    assert "wall_seconds 12s" in out["best"].stdout
    assert "#1 PRUNED at epoch 1" in (tmp_path / "odd.html").read_text(encoding="utf-8")
    assert f"nothing to delete: sweeper_runs{os.sep}checkpoints{os.sep}odd, where odd keeps" in out["clean"].stdout


def test_best_of_a_core_trial_whose_stored_spec_does_not_validate_keeps_its_objective_and_threads() -> None:
    """Read from the stored spec as written (an unknown key: an older or newer sweeper's), the command left out the
    objective and the torch threads the driver gave the trial: a retrain on the machine's thread count does not repeat
    its float rounding, and another objective picks another epoch's weights."""
    spec = load_spec(resolve_space_path("spaces/asl20.yaml"), quick=True).to_yaml_dict()
    study = optuna.create_study(direction="maximize")
    study.set_user_attr(attrs.SPEC, spec)
    study.set_user_attr(attrs.OBJECTIVE, {"metric": "val_top3", "direction": "maximize"})
    study.enqueue_trial(BEST_PARAMS, user_attrs={attrs.THREADS: 3})
    study.optimize(lambda t: sum(t.suggest_float(p, 0, 1) for p in BEST_PARAMS) / 10, n_trials=1)
    intact = best_summary(view_of(study))
    study.set_user_attr(attrs.SPEC, {**spec, "from_a_later_sweeper": True})
    damaged = best_summary(view_of(study))
    assert intact["note"] is None and damaged["note"].startswith("the stored spec does not validate here (")
    assert damaged["note"].endswith("): the config is read from it as written")
    assert damaged["config"]["objective"] == "val_top3" and damaged["config"]["threads"] == 3
    assert damaged["config"] == intact["config"]
    assert parse_set_flags(shlex.split(damaged["reproduce"])[3::2]) == intact["config"]


def test_best_and_clean_of_another_programs_study_do_not_call_it_an_earlier_sweepers(
        capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A study without a sweeper spec was called one of an earlier sweeper, whose checkpoints a --results-dir finds."""
    url = f"sqlite:///{tmp_path / 'foreign.db'}"
    study = optuna.create_study(study_name="foreign", storage=url)
    study.optimize(lambda t: t.suggest_float("x", -1, 1) ** 2, n_trials=2)
    show_best(view_of(study))
    out = " ".join(capsys.readouterr().out.split())
    assert "another program made this study (it holds no sweeper spec) and recorded no checkpoint folder" in out
    assert "earlier sweeper" not in out
    proc = sweeper("clean", "foreign", "--storage", url, cwd=tmp_path)
    assert proc.returncode == 2 and not proc.stdout, proc.stdout + proc.stderr
    assert "error: study 'foreign' holds no sweeper spec: another program made it, and recorded no checkpoint " \
           "folder for sweeper clean to delete in" in " ".join(proc.stderr.split()), proc.stderr


def test_studies_whose_names_differ_in_characters_a_file_name_cannot_hold_get_files_of_their_own(
        tmp_path: Path) -> None:
    """"with space" and "with_space" were both written to with_space.csv, the second over the first."""
    url = f"sqlite:///{tmp_path / 'names.db'}"
    for name in ("with space", "with_space"):
        study = optuna.create_study(study_name=name, storage=url)
        study.optimize(lambda t, name=name: len(name) + t.suggest_float("x", 0, 1), n_trials=1)
    out = run_all({name: ["export", name, "--storage", url, "-o", "out/"] for name in ("with space", "with_space")},
                  tmp_path)
    assert all(proc.returncode == 0 for proc in out.values()), [proc.stderr for proc in out.values()]
    digest = hashlib.sha256(b"with space").hexdigest()[:8]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [f"with_space-{digest}.csv", "with_space.csv"]
