"""``sweeper run`` end to end: real Ray (one instance for the session), real Optuna storage, real training."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import math
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from datetime import UTC, timedelta
from pathlib import Path

import optuna
import pytest
import sqlalchemy
from forked_cli import run_command, run_commands

from search_spaces.errors import SpecError
from search_spaces.loader import load_spec
from sweeper.driver import SweepOptions, run_sweep
from sweeper.errors import NothingFinished
from sweeper.interrupts import noting_interrupts
from sweeper.ray_runtime import local_gpus

FIXTURES = Path(__file__).parent / "fixtures"
TS = optuna.trial.TrialState


def scripted_space(tmp_path: Path, *, trials=8, extra="", target=0.99, training="{epochs: 6, sleep: 0.05}",
                   scheduler="{type: asha, grace_period: 1, reduction_factor: 2}", budget="") -> Path:
    path = tmp_path / "scripted.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: scripted-{uuid.uuid4().hex[:8]}
        entrypoint: scripted_train:train
        objective: {{metric: score, direction: maximize}}
        targets: {{final_score: {target}}}
        training: {training}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        sampler: {{type: tpe, seed: 1, n_startup_trials: 4}}
        scheduler: {scheduler}
        budget: {budget or f"{{trials: {trials}, max_concurrent: 2}}"}
        resources: {{cpu: 1}}
        """) + extra)
    (tmp_path / "scripted_train.py").write_text((FIXTURES / "scripted_train.py").read_text())
    return path


def load(url: str, name: str) -> optuna.Study:
    return optuna.load_study(study_name=name, storage=url)


def gated_space(tmp_path: Path) -> Path:
    """20 trials, two at a time, of tests/fixtures/resumable_train.py: trial #0 finishes at once, and the later ones
    wait after their first epoch until a file ``gate`` (never made) exists. A stop signal sent once #0 is COMPLETE
    and #1 waits (:func:`wait_at_the_gate`) meets a finished trial and one in flight, whatever the machine's load:
    no sleeps to outlast."""
    gate = json.dumps(str(tmp_path / "gate"))
    space = scripted_space(tmp_path, trials=20, scheduler="{type: none}",
                           training=f"{{epochs: 6, sleep: 0.0, gate: {gate}, gate_from: 1}}")
    space.write_text(space.read_text().replace("scripted_train:train", "resumable_train:train"))
    (tmp_path / "resumable_train.py").write_text((FIXTURES / "resumable_train.py").read_text())
    return space


def wait_at_the_gate(tmp_path: Path, timeout: float = 60) -> bool:
    """Until trial #1 of a :func:`gated_space` sweep checkpointed its first epoch (it then waits at the gate): whether
    it did in time. The caller stops its driver either way, then asserts it."""
    deadline = time.time() + timeout
    while not (held := bool(list(tmp_path.glob("sweeper_runs/checkpoints/*/trial-00001/state.json")))):
        if time.time() > deadline:
            break
        time.sleep(0.02)
    return held


@pytest.mark.slow
def test_user_entrypoint_sweep_records_complete_pruned_and_failed_trials(ray_session, tmp_path, monkeypatch,
                                                                         storage_url):
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=10, extra="enqueue:\n  - {x: 0.0}\n  - {x: 1.0}\n")
    study = run_sweep(SweepOptions(space=str(space), storage=storage_url, max_failures=0))
    trials = load(storage_url, study.study_name).get_trials()
    assert len(trials) == 10
    assert all(t.state in (TS.COMPLETE, TS.PRUNED, TS.FAIL) for t in trials)
    failed = [t for t in trials if t.state == TS.FAIL]
    assert [t.params["x"] for t in failed] == [0.0]
    assert "x must be positive" in failed[0].user_attrs["error"]
    complete = [t for t in trials if t.state == TS.COMPLETE]
    pruned = [t for t in trials if t.state == TS.PRUNED]
    assert complete and pruned, [(t.state, t.params) for t in trials]
    for t in complete:  # every epoch is an intermediate value; the value is the last epoch's objective
        assert sorted(t.intermediate_values) == list(range(1, 7))
        assert t.value == pytest.approx(t.params["x"])
        assert t.user_attrs["ray_trial_id"]
    for t in pruned:  # stopped by ASHA: fewer epochs, recorded as such, never COMPLETE with an early value
        assert 1 <= len(t.intermediate_values) < 6
        assert t.user_attrs["stop_reason"] == "pruned"
        assert t.user_attrs["epochs_run"] == max(t.intermediate_values)
    best = max(complete, key=lambda t: t.value)
    assert best.params["x"] == 1.0  # the enqueued best point ran first and survived
    attrs = load(storage_url, study.study_name).user_attrs
    # what the function printed, warned and logged, beside its trial's checkpoints (Ray kept it in /tmp/ray)
    output = (Path(attrs["checkpoints"]) / f"trial-{failed[0].number:05d}.log").read_text()
    assert all(line in output for line in ("x is 0.0", "about to fail", "x is 0", "no score without x")), output
    for trial in trials:  # a worker runs trial after trial: its handler's stream follows each (Tune reuses actors)
        output = (Path(attrs["checkpoints"]) / f"trial-{trial.number:05d}.log").read_text()
        assert all(f"{said} {trial.params['x']}" in output for said in ("x is", "logged x", "a subprocess of x")), \
            output
    assert attrs["targets"] == {"final_score": 0.99}
    assert attrs["objective"] == {"metric": "score", "direction": "maximize"}
    assert attrs["spec"]["params"]["x"]["high"] == 1.0
    assert "optuna" in attrs["environment"]["packages"]
    # the same command again: the budget is spent, so it prints the table and leaves, with nothing added
    again = run_sweep(SweepOptions(space=str(space), storage=storage_url, max_failures=0))
    assert again.study_name == study.study_name
    assert [(t.number, t.state) for t in load(storage_url, study.study_name).get_trials()] == \
        [(t.number, t.state) for t in trials]
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


@pytest.mark.slow
def test_budget_time_starts_no_new_trial_and_lets_the_scheduler_judge_the_running_ones(ray_session, tmp_path,
                                                                                       monkeypatch, capsys):
    """The time counts from the start of the run: a trial Tune asks for once it is spent never starts (Tune asks
    the searcher before the stopper, and two trials started after a 2 s budget.time, found by an exploratory test).
    The three enqueued trials start at once (a quarter CPU each: a sweep runs no more at once than the CPUs hold)
    and outlive the time (the first two score alike, so neither is pruned and frees its slot before it); the slow,
    poor third reaches its rung last, after the time."""
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=8, extra=(
        "enqueue:\n  - {x: 1.0, sleep: 0.6}\n  - {x: 1.0, sleep: 0.7}\n  - {x: 0.05, sleep: 3.2}\n"))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    started = time.perf_counter()
    sleeps = "params.sleep={type: categorical, choices: [0.6, 0.7, 3.2]}"
    study = run_sweep(SweepOptions(space=str(space), storage=url, overrides=(
        "budget.time=3s", "budget.max_concurrent=3", "resources.cpu=0.25", sleeps)))
    trials = load(url, study.study_name).get_trials()
    assert [t.params["x"] for t in trials] == [1.0, 1.0, 0.05]  # the three running when the time ran out
    assert [t.state for t in trials] == [TS.COMPLETE, TS.COMPLETE, TS.PRUNED]
    assert all(t.user_attrs["stop_reason"] == "pruned" for t in trials if t.state == TS.PRUNED)  # by ASHA
    assert "budget.time (3s) is spent: no trial started after it; the same command carries the sweep on towards " \
           "its 8 trials" in " ".join(capsys.readouterr().out.split())  # not a sweep that looks finished
    wall_start = started + time.time() - time.perf_counter()  # Optuna 5 records naive UTC
    assert all(t.datetime_start.replace(tzinfo=UTC).timestamp() < wall_start + 3 for t in trials)

    late = run_sweep(SweepOptions(space=str(space), storage=url, overrides=(  # spent before a trial could start
        "budget.time=0.01s", "budget.max_concurrent=3", "resources.cpu=0.25", sleeps)))
    assert len(load(url, late.study_name).get_trials()) == 3
    capsys.readouterr()
    with contextlib.suppress(NothingFinished):  # after --fresh the same command would start yet another study
        run_sweep(SweepOptions(space=str(space), storage=url, fresh=True, overrides=(
            "budget.time=0.01s", "budget.max_concurrent=3", "resources.cpu=0.25", sleeps)))
    assert f"is spent: no trial started after it; sweeper resume {study.study_name}-2 --storage " in \
        " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_a_grid_sweep_visits_every_point_once_and_ends_cleanly(ray_session, tmp_path, monkeypatch):
    """Optuna's GridSampler stops the study after its last point, which raises outside Study.optimize."""
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=10)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(space), storage=url, overrides=(
        "sampler={type: grid}", "scheduler={type: none}", "params.x={type: float, low: 0.5, high: 1.0, step: 0.25}",
        "training.epochs=2", "training.sleep=0")))
    trials = load(url, study.study_name).get_trials()
    assert sorted(t.params["x"] for t in trials) == [0.5, 0.75, 1.0]  # the budget of 10 capped at the grid's 3
    assert all(t.state == TS.COMPLETE for t in trials)


@pytest.mark.slow
def test_stop_on_target_ends_the_sweep_early(ray_session, tmp_path, monkeypatch, capsys):
    """#0 meets the target at once while #1 (slow) still runs: the sweep stops, #1 is PRUNED as sweep_stopped,
    and the study records when and after how much compute the target was met. (On SQLite alone: nothing checked
    here is the storage's own.)"""
    monkeypatch.chdir(tmp_path)
    storage_url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    space = scripted_space(tmp_path, trials=20, extra="enqueue:\n  - {x: 1.0, sleep: 0.05}\n  - {x: 0.5, sleep: 2.0}\n")
    slow_or_fast = "params.sleep={type: categorical, choices: [0.05, 2.0]}"
    study = run_sweep(SweepOptions(space=str(space), storage=storage_url, overrides=(
        "budget.stop_on_target=true", "scheduler={type: none}", slow_or_fast)))
    loaded = load(storage_url, study.study_name)
    trials = loaded.get_trials()
    assert len(trials) < 20
    assert trials[0].state == TS.COMPLETE and trials[0].user_attrs["final_score"] == 1.0
    assert trials[1].state == TS.PRUNED and trials[1].user_attrs["stop_reason"] == "sweep_stopped"
    assert 0 <= trials[1].user_attrs["epochs_run"] < 6
    out = capsys.readouterr().out  # why it stopped, and a line for the trial it stopped
    assert "the targets are met: the sweep stopped there (budget.stop_on_target)\n#1   PRUNED    stopped with the " \
           f"sweep after epoch {trials[1].user_attrs['epochs_run']}" in out
    assert not [t.number for t in trials if t.state == TS.RUNNING]
    record = loaded.user_attrs["target_met"]
    assert record["trial"] == 0 and record["trials"] == 2  # #0 and #1: not #2, started in #0's slot after
    assert record["trial_epochs"] >= 6 and 0 < record["wall_seconds"] < 60
    # a driver killed after the target, before it recorded a running trial as stopped: run again, and the sweep
    # records that trial as stopped and starts nothing, whatever budget is left
    from storage import attrs
    from storage.resume import Driver

    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghost = loaded.ask()
    ghost.set_user_attr(attrs.DRIVER, Driver(Driver.current().host, dead.pid, None).as_attr())
    capsys.readouterr()
    run_sweep(SweepOptions(space=str(space), storage=storage_url, overrides=(
        "budget.stop_on_target=true", "scheduler={type: none}", slow_or_fast)))
    again = load(storage_url, study.study_name).get_trials()
    assert len(again) == len(trials) + 1 and again[-1].state == TS.PRUNED
    assert again[-1].user_attrs["stop_reason"] == "sweep_stopped"
    out = capsys.readouterr().out  # said as it is: stopped, not carried on
    assert f"stopping 1 trial whose driver is gone, as the sweep stops at its target: #{ghost.number} (no epoch " \
           "recorded)" in out and "carrying on" not in out, out
    stopped_line = f"#{ghost.number:<3} PRUNED    stopped with the sweep after epoch 0"
    assert stopped_line in out and out.index(stopped_line) < out.index("nothing left to run"), out
    # a driver killed between recording #0 and recording target_met (two writes): the next run writes it, and
    # starts nothing
    engine = sqlalchemy.create_engine(storage_url)
    with engine.begin() as connection:
        connection.execute(sqlalchemy.text(
            "DELETE FROM study_user_attributes WHERE key = 'target_met' AND study_id = "
            "(SELECT study_id FROM studies WHERE study_name = :name)"), {"name": study.study_name})
    engine.dispose()
    assert "target_met" not in load(storage_url, study.study_name).user_attrs
    run_sweep(SweepOptions(space=str(space), storage=storage_url, overrides=(
        "budget.stop_on_target=true", "scheduler={type: none}", slow_or_fast)))
    recovered = load(storage_url, study.study_name)
    assert len(recovered.get_trials()) == len(again)
    assert recovered.user_attrs["target_met"]["trial"] == 0
    assert recovered.user_attrs["target_met"]["trials"] == record["trials"]


def one_trial_of(tmp_path: Path, module: str, code: str, targets: str = "") -> tuple[str, optuna.Study]:
    """One trial of a user's function ``module:fit`` (``code``), swept with no retries; the storage URL and study."""
    (tmp_path / f"{module}.py").write_text(textwrap.dedent(code))
    (tmp_path / f"{module}.yaml").write_text(textwrap.dedent(f"""\
        entrypoint: {module}:fit
        objective: {{metric: score, direction: maximize}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        scheduler: {{type: none}}
        budget: {{trials: 1, max_concurrent: 1}}
        resources: {{cpu: 1}}
        """) + targets)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    return url, run_sweep(SweepOptions(space=str(tmp_path / f"{module}.yaml"), storage=url, max_failures=0))


def test_a_trials_checkpoint_dir_is_a_folder_that_exists_when_the_function_starts(ray_session, tmp_path, monkeypatch):
    """README: "checkpoint_dir is a folder of its own per trial". It was only a path: a function that saved into it
    as README says (torch.save makes no parent folder) failed every trial, each retried twice."""
    monkeypatch.chdir(tmp_path)
    url, study = one_trial_of(tmp_path, "saves", """\
        import os

        def fit(config, report, checkpoint_dir):
            with open(os.path.join(checkpoint_dir, "state.txt"), "w") as f:  # no makedirs: README's folder
                f.write("1")
            report({"epoch": 1, "score": config["x"]})
            return {"score": config["x"]}
        """)
    [trial] = load(url, study.study_name).get_trials()
    assert trial.state == TS.COMPLETE, trial.user_attrs.get("error")
    assert list(tmp_path.glob("sweeper_runs/checkpoints/*/trial-00000/state.txt"))


def test_a_map_setting_whose_keys_mix_numbers_and_text_trains_with_them_as_text(ray_session, tmp_path, monkeypatch):
    """``opts: {1: a, b: c}``: Ray Tune sorts a trial's config to name it and stopped the sweep in a TypeError
    (1 < 'b'), with the study made; the keys are text now, as the stored spec gives a resumed trial (JSON's), in a
    fixed param too, and two keys that are one as text are refused."""
    monkeypatch.chdir(tmp_path)
    url, study = one_trial_of(tmp_path, "mixed_keys", """\
        def fit(config, report, checkpoint_dir):
            report({"epoch": 1, "score": config["x"]})
            return {"score": config["x"], "opts": repr(config["opts"])}

        fit.settings = {"x": 0.5, "opts": {"a": 0}}
        """, targets="training: {opts: {1: a, b: c, 2.5: [{true: d}]}}\n")
    [trial] = load(url, study.study_name).get_trials()
    assert trial.state == TS.COMPLETE and trial.user_attrs["opts"] == repr({"1": "a", "b": "c", "2.5": [{"true": "d"}]})
    space = str(tmp_path / "mixed_keys.yaml")
    assert load_spec(space, ["params.opts={type: fixed, value: {1: a, b: c}}"]).base_config()["opts"] == {
        "1": "a", "b": "c"}
    with pytest.raises(SpecError, match=r"params.opts.value: .* has keys that are one as text \(1 and '1'\)"):
        load_spec(space, ["params.opts={type: fixed, value: {1: a, '1': b}}"])


def test_a_returned_none_leaves_the_metrics_last_report_recorded(ray_session, tmp_path, monkeypatch):
    """{"test_acc": None}: no value, as the objective's None already was (its last report is the trial's value);
    for any other metric the None replaced its last report, so the trial recorded no test_acc and met no target
    on it, while sweeper train --seeds judged the objective's None as no value at all."""
    monkeypatch.chdir(tmp_path)
    url, study = one_trial_of(tmp_path, "nones", """\
        def fit(config, report, checkpoint_dir):
            report({"epoch": 1, "score": config["x"], "test_acc": 0.7})
            return {"score": None, "test_acc": None, "other": 1.0}
        """, targets="targets: {test_acc: 50%}\n")
    [trial] = load(url, study.study_name).get_trials()
    assert trial.state == TS.COMPLETE and trial.value == pytest.approx(trial.params["x"]), trial.user_attrs
    assert trial.user_attrs["test_acc"] == 0.7 and trial.user_attrs["other"] == 1.0
    assert load(url, study.study_name).user_attrs["target_met"]["trial"] == 0


def test_a_metric_reported_as_none_keeps_its_last_reported_value(ray_session, tmp_path, monkeypatch):
    """A report's None is no value for that epoch (the schedulers pass it over), but it replaced the metric's last
    value: a function that evaluates test_acc every other epoch recorded no test_acc and met no target on it."""
    monkeypatch.chdir(tmp_path)
    url, study = one_trial_of(tmp_path, "reported_nones", """\
        def fit(config, report, checkpoint_dir):
            report({"epoch": 1, "score": config["x"], "test_acc": 0.7})
            report({"epoch": 2, "score": config["x"], "test_acc": None})
        """, targets="targets: {test_acc: 50%}\n")
    [trial] = load(url, study.study_name).get_trials()
    assert trial.state == TS.COMPLETE and trial.user_attrs["test_acc"] == 0.7, trial.user_attrs
    assert load(url, study.study_name).user_attrs["target_met"]["trial"] == 0


def test_a_tensor_reported_or_returned_fails_the_trial_at_once_in_words(ray_session, tmp_path, monkeypatch):
    """Ray refuses a metric holding a torch tensor (per-class accuracies, a model) in its own words; each refusal was
    retried, the trial trained in full three times to fail with Ray's advice to call ray.train.report."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "tensors.py").write_text(textwrap.dedent("""\
        import torch

        def fit(config, report, checkpoint_dir):
            with open("calls.txt", "a") as f:
                f.write("1")
            extra = {"per_class": torch.tensor([0.4, 0.6])}
            if config["where"] == "reported":
                report({"epoch": 1, "score": torch.tensor(0.5), **extra})
            report({"epoch": 1, "score": torch.tensor(0.5)})  # a 0-d tensor is a number
            return {"score": 0.5, **extra}
        """))
    (tmp_path / "tensors.yaml").write_text(textwrap.dedent("""\
        entrypoint: tensors:fit
        objective: {metric: score, direction: maximize}
        params:
          where: {type: categorical, choices: [reported, returned]}
        scheduler: {type: none}
        budget: {trials: 2, max_concurrent: 1}
        enqueue: [{where: reported}, {where: returned}]
        resources: {cpu: 1}
        """))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    with pytest.raises(NothingFinished):
        run_sweep(SweepOptions(space=str(tmp_path / "tensors.yaml"), storage=url, max_failures=2))
    reported, returned = load(url, "tensors").get_trials()
    assert (tmp_path / "calls.txt").read_text() == "11", "a trial was retried"
    assert reported.state == returned.state == TS.FAIL
    assert reported.user_attrs["error"].startswith("TypeError: tensors:fit reported per_class = tensor([0.4000, "), \
        reported.user_attrs["error"]
    assert returned.user_attrs["error"].startswith("TypeError: tensors:fit returned per_class = tensor(")
    assert "holds a torch object: metrics are numbers (tensor.item())" in returned.user_attrs["error"]


def test_a_report_of_no_dict_fails_the_trial_at_once_in_words(ray_session, tmp_path, monkeypatch):
    """``report(loss)`` failed inside sweeper's own code (AttributeError: 'float' object has no attribute 'items',
    its frames in the traceback), and Ray ran the trial twice more to fail alike."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "scalar.py").write_text(textwrap.dedent("""\
        def fit(config, report, checkpoint_dir):
            with open("calls.txt", "a") as f:
                f.write("1")
            report(0.5)
        """))
    (tmp_path / "scalar.yaml").write_text(textwrap.dedent("""\
        entrypoint: scalar:fit
        objective: {metric: score, direction: maximize}
        params:
          x: {type: float, low: 0.0, high: 1.0}
        budget: {trials: 1}
        resources: {cpu: 1}
        """))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    with pytest.raises(NothingFinished):
        run_sweep(SweepOptions(space=str(tmp_path / "scalar.yaml"), storage=url, max_failures=2))
    [trial] = load(url, "scalar").get_trials()
    assert (tmp_path / "calls.txt").read_text() == "1", "the trial was retried"
    assert trial.state == TS.FAIL and trial.user_attrs["error"] == "TypeError: scalar:fit reported 0.5: report takes " \
        "a dict of metric name -> value (report({'epoch': 1, 'val_acc': 0.9}))", trial.user_attrs


@pytest.mark.slow
def test_nan_loss_fails_the_trial_fast_and_the_sweep_goes_on(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space="spaces/asl20.yaml", storage=url, quick=True, overrides=(
        "budget.trials=2", "params.lr.high=1e31", "enqueue.0.lr=1e30", "enqueue.1.lr=1e-3", "training.grad_clip=0",
        "scheduler={type: none}")))
    trials = load(url, study.study_name).get_trials()
    assert [t.state for t in trials] == [TS.FAIL, TS.COMPLETE]
    assert "non-finite loss" in trials[0].user_attrs["error"]
    assert trials[0].user_attrs["stop_reason"] == "diverged"


def test_a_sweep_whose_every_trial_failed_says_so(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=1, extra="enqueue:\n  - {x: 0.0}\n")
    options = SweepOptions(space=str(space), storage=f"sqlite:///{tmp_path / 's.db'}", max_failures=0)
    with pytest.raises(NothingFinished, match=r"every trial of scripted-\w+ failed .* --fresh"):
        run_sweep(options)
    with pytest.raises(NothingFinished, match="every trial") as again:  # run again, the budget is spent: no success
        run_sweep(options)
    # and that run printed no error: it says the last one's, not "their errors are above"
    assert "(none ran now; the last, #0: ValueError: x must be positive, got 0)" in str(again.value)


@pytest.mark.slow
def test_a_full_disk_stops_the_sweep_with_its_trials_running_for_the_next_run(ray_session, tmp_path, monkeypatch,
                                                                              capsys):
    """A full checkpoint disk failed every trial in turn (each retried first) and spent the budget on FAILs: a
    study no resume could carry on. It is the machine's problem: the sweep stops, exit 75, trials RUNNING."""
    import torch

    from storage import attrs
    from storage.resume import Driver
    from sweeper.errors import DiskUnavailable
    from sweeper.trainable import disk_problem

    with pytest.raises(OSError) as full, open("/dev/full", "wb") as device:
        device.write(b"x" * 65536)
        device.flush()
    assert disk_problem(full.value, tmp_path) == f"No space left on device: {tmp_path}"  # a real ENOSPC
    assert disk_problem(ValueError("a bug"), tmp_path) is None
    with pytest.raises(RuntimeError) as into_a_folder:  # the user's bug, in torch's words: not the disk's
        torch.save({"w": 1}, tmp_path)
    assert disk_problem(into_a_folder.value, tmp_path) is None
    try:  # the fixture's stand-in for a full disk
        torch.save({"w": 1}, "/dev/full")
    except RuntimeError:
        pass
    else:  # torch 2.3 to 2.9 at least (a really full disk they report: "unexpected pos", in TORCH_WRITE_FAILED)
        pytest.skip(f"torch {torch.__version__} writes to /dev/full without an error: no stand-in for a full disk")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "disk_train.py").write_text((FIXTURES / "disk_train.py").read_text())
    flag = tmp_path / "FULL"
    flag.touch()
    name = f"disk-{uuid.uuid4().hex[:8]}"
    (tmp_path / "disk.yaml").write_text(textwrap.dedent(f"""\
        name: {name}
        entrypoint: disk_train:train
        objective: {{metric: score, direction: maximize}}
        training: {{full_flag: {flag}}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        scheduler: {{type: none}}
        budget: {{trials: 3, max_concurrent: 1}}
        enqueue: [{{x: 0.1}}, {{x: 0.9}}, {{x: 0.2}}]
        """))
    url = f"sqlite:///{tmp_path / 's.db'}"
    options = SweepOptions(space=str(tmp_path / "disk.yaml"), storage=url)
    with pytest.raises(DiskUnavailable, match=r"disk took no more writes \(torch.save could not write") as full:
        run_sweep(options)
    assert "of a driver that is gone" not in capsys.readouterr().out  # its own trials, left RUNNING for the next run
    assert f"(sweeper clean {name} --storage {url} deletes finished trials' checkpoints, which are never read " \
        "again) and run the same command" in str(full.value)
    states = {t.number: t.state for t in load(url, name).get_trials()}
    assert states[0] == TS.COMPLETE and states[1] == TS.RUNNING and TS.FAIL not in states.values(), states
    # a dead driver's trial that a sweep stopped by the full disk never reached went unnamed; its own (#1) still is
    gone = Driver.current()
    (ghost := load(url, name).ask({"x": optuna.distributions.FloatDistribution(0.0, 1.0)})).set_user_attr(
        attrs.DRIVER, Driver(gone.host, gone.pid, -1).as_attr())
    space = tmp_path / "disk.yaml"
    space.write_text(space.read_text().replace("trials: 3", "trials: 4"))  # room in the budget for it
    with pytest.raises(DiskUnavailable):
        run_sweep(options)  # #1 first, on the full disk again
    out = " ".join(capsys.readouterr().out.split())
    assert f"1 trial of a driver that is gone is still RUNNING (#{ghost.number}): the same command carries it on" \
        in out, out
    flag.unlink()  # room again
    run_sweep(options)
    trials = load(url, name).get_trials()
    assert [t.state for t in trials if t.params["x"] in (0.1, 0.9, 0.2)] == [TS.COMPLETE] * 3, trials
    assert next(t for t in trials if t.number == 1).value == pytest.approx(1.8)  # carried on, not failed
    assert trials[ghost.number].state == TS.COMPLETE, trials


def test_ray_results_on_a_full_disk_are_one_line_not_a_traceback_at_each_save(ray_session, tmp_path, monkeypatch,
                                                                               caplog):
    """Ray's results folder on a full disk (the study's checkpoints elsewhere): each failed save of Tune's experiment
    state, which only a Tuner.restore reads, printed pyarrow's 25-line traceback into the sweep's output; now one
    line, once, and the sweep finishes every trial."""
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=2, scheduler="{type: none}")
    url = f"sqlite:///{tmp_path / 's.db'}"
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(tmp_path / "first")))
    space.write_text(space.read_text().replace("trials: 2", "trials: 6"))
    (full := tmp_path / "full").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(full)], capture_output=True).returncode:
        pytest.skip("a small disk of its own needs root (mount -t tmpfs)")
    try:
        caplog.clear()
        run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(full)))
    finally:
        subprocess.run(["umount", str(full)], check=True)
    (name,) = optuna.get_all_study_names(url)
    assert [t.state for t in load(url, name).get_trials()] == [optuna.trial.TrialState.COMPLETE] * 6
    said = [r for r in caplog.records if r.name == "ray.tune.execution.experiment_state"]
    assert len(said) == 1 and said[0].exc_info is None, said
    assert "No space left on device (Ray's own results, which a sweep never reads" in said[0].getMessage()


def test_a_checkpoint_dir_a_full_disk_kept_from_being_made_is_a_disk_problem(tmp_path):
    """The folder is made before the function starts, so a function that saves into it without making it (as README
    allows) meets a full disk only as "no such file or directory" (open) or "Parent directory ... does not exist"
    (torch.save): the trial failed, retried, instead of stopping the sweep for a resume. Real errors throughout: a
    write to /dev/full stands for the mkdir's ENOSPC."""
    import torch

    from sweeper.trainable import unmade_problem

    with pytest.raises(OSError) as full, open("/dev/full", "wb") as device:
        device.write(b"x" * 65536)
        device.flush()
    folder = tmp_path / "trial-00000"  # never made
    with pytest.raises(FileNotFoundError) as opened, open(folder / "state.txt", "w"):
        pass
    with pytest.raises(RuntimeError) as saved:
        torch.save({"w": 1}, folder / "state.pt")
    for missing in (opened.value, saved.value):
        assert unmade_problem(full.value, missing, folder) == f"No space left on device: {folder}"
        assert unmade_problem(None, missing, folder) is None  # the folder was made: the function's own error
    assert unmade_problem(full.value, ValueError("a bug"), folder) is None  # not about the folder: retried, FAIL


def test_local_trials_run_without_tunes_runtime_env_but_with_its_variables(ray_session, tmp_path, monkeypatch):
    """A local Ray's pre-started workers serve trial actors only if Tune's per-actor runtime env is gone; the
    variables it would set must still reach the trial (they come from the driver's environment instead)."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "worker_env_train.py").write_text((FIXTURES / "worker_env_train.py").read_text())
    (tmp_path / "env.yaml").write_text(textwrap.dedent(f"""\
        name: env-{uuid.uuid4().hex[:8]}
        entrypoint: worker_env_train:train
        objective: {{metric: score, direction: maximize}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        budget: {{trials: 2, max_concurrent: 2}}
        resources: {{cpu: 1}}
        """))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space="env.yaml", storage=url))
    trials = load(url, study.study_name).get_trials()
    assert [t.state for t in trials] == [TS.COMPLETE, TS.COMPLETE]
    for t in trials:
        assert t.user_attrs["runtime_env"] == "{}"
        assert (t.user_attrs["PL_DISABLE_FORK"], t.user_attrs["RAY_CHDIR_TO_TRIAL_DIR"]) == ("1", "0")


@pytest.mark.slow
def test_quick_asl20_sweep_records_everything(ray_session, tmp_path, monkeypatch):
    """The acceptance run: built-in asl20 --quick, real training, on the default storage, SQLite (the scripted sweep
    above runs on both storages: what is stored here is storage-blind). In a project with a trials.py of its own,
    which failed every trial as if it hid the core (it is the user's entrypoint's worry)."""
    storage_url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    monkeypatch.chdir(tmp_path)
    (tmp_path / "trials.py").write_text("raise SystemExit('the user trials.py was imported')\n")
    name = f"asl20-quick-{uuid.uuid4().hex[:8]}"
    study = run_sweep(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=storage_url,
                                   overrides=(f"name={name}",)))
    (tmp_path / "trials.py").unlink()  # `python -m sweeper.cli` below puts this folder first (`sweeper` does not)
    study = load(storage_url, name)
    trials = study.get_trials()
    assert len(trials) == 6 and all(t.state in (TS.COMPLETE, TS.PRUNED) for t in trials)
    for t in trials:
        assert set(t.params) >= {"label_smoothing", "warmup_epochs", "weight_decay", "dropout", "mixup_alpha", "lr"}
        assert t.intermediate_values, t.number
        if t.state == TS.COMPLETE:
            assert sorted(t.intermediate_values) == [1, 2, 3]
            for key in ("test_top1", "test_top3", "test_top5", "val_top3", "epochs_run", "wall_seconds", "device"):
                assert key in t.user_attrs, key
        else:
            assert t.user_attrs["epochs_run"] < 3
    # the seeds' default config was enqueued and ran first
    assert trials[0].params["lr"] == pytest.approx(1e-4) and trials[0].params["label_smoothing"] == 0.1
    assert study.user_attrs["baseline"]["metrics"]["test_top3"] == pytest.approx(0.7529)
    # and the inspection commands work on what the sweep wrote
    best = max((t for t in trials if t.state == TS.COMPLETE), key=lambda t: t.value)
    expected_of = {("status",): name, ("best", name): f"#{best.number}",
                   ("export", name, "--format", "json"): '"number": 5',
                   ("report", name, "-o", "report.html"): "report.html"}

    commands = [[*args, "--storage", storage_url] for args in expected_of]  # read-only: side by side, forked
    done = dict(zip(expected_of, run_commands(commands, tmp_path, {**os.environ, "COLUMNS": "300"}, len(commands)),
                    strict=True))
    for args, expected in expected_of.items():
        proc = done[args]
        shown = proc.stderr if args[0] == "report" else proc.stdout  # report's page is the file; stderr says where
        assert proc.returncode == 0 and expected in shown, (args, proc.stdout, proc.stderr)
        if args[0] == "best":  # where its weights lie (README: "Inspecting studies" loads them)
            weights = Path(study.user_attrs["checkpoints"]) / f"trial-{best.number:05d}" / "state.pt"
            assert f"weights: {weights} (its 'best_model' is epoch {best.user_attrs['best_epoch']}'s, 'config' " \
                "what trained it)" in " ".join(proc.stdout.split()), proc.stdout
    assert name in (tmp_path / "report.html").read_text()
    proc = run_command(["clean", name, "--keep", "1", "--storage", storage_url], tmp_path, dict(os.environ))
    folder = Path(study.user_attrs["checkpoints"])
    assert proc.returncode == 0 and "freed" in proc.stdout, proc.stderr
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [f"trial-{best.number:05d}"]
    assert (folder / f"trial-{best.number:05d}" / "state.pt").is_file()


BROKEN = {
    "unknown key": ("budgett: {trials: 3}\n", "budgett", "did you mean 'budget'"),
    "low >= high": ("params:\n  dropout: {type: float, low: 0.5, high: 0.1}\n", ":2:", "must be < high"),
    "log needs low > 0": ("params:\n  lr: {type: float, low: 0.0, high: 0.1, log: true}\n", ":2:", "log"),
    "empty choices": ("params:\n  model.size: {type: categorical, choices: []}\n", ":2:", "choices"),
    "param not a setting": ("params:\n  learning_rate: {type: float, low: 0.1, high: 0.2}\n", ":2:",
                            "learning_rate"),
    "target not a metric": ("targets: {test_top7: 0.8}\nparams:\n  lr: {type: fixed, value: 0.001}\n", ":1:",
                            "test_top7"),
    # Ray refuses less than its unit inside Tune's loop: a traceback, exit 1, the asked trials left RUNNING
    "resource below Ray's unit": ("resources: {cpu: 0.00004}\nparams:\n  lr: {type: float, low: 0.001, high: 0.01}\n",
                                  ":1: resources.cpu", "is 4e-05, below 0.0001"),
}


@pytest.mark.parametrize("case", list(BROKEN))
def test_broken_space_exits_2_with_file_line_and_writes_nothing(tmp_path, case):
    text, where, what = BROKEN[case]
    space = tmp_path / "broken.yaml"
    space.write_text(text if "params" in text else text + "params:\n  lr: {type: fixed, value: 0.001}\n")
    db = tmp_path / "sweeps.db"
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage", f"sqlite:///{db}"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "200"},
                          timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "broken.yaml" in proc.stderr and where in proc.stderr and what in proc.stderr, proc.stderr
    assert not db.exists()
    assert "Traceback" not in proc.stderr


def refused_placement(tmp_path: Path, resources: str, set_flag: str) -> list[str]:
    """stderr of a sweep whose trials a Ray of its own could never place, from the file and from --set: it must
    exit 2 before starting Ray or writing a byte (not even Optuna's tables in an empty database)."""
    db = tmp_path / "sweeps.db"
    db.touch()
    space = tmp_path / "place.yaml"
    space.write_text(f"params:\n  lr: {{type: float, low: 0.001, high: 0.01}}\nresources:\n  {resources}\n")
    errors = []
    for args in ([str(space)], ["spaces/asl20.yaml", "--quick", "--set", set_flag]):
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", *args, "--storage", f"sqlite:///{db}"],
                              capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "300"},
                              timeout=120)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "--address" in proc.stderr and "Traceback" not in proc.stderr
        assert not (tmp_path / "sweeper_runs").exists() and db.stat().st_size == 0
        errors.append(proc.stderr)
    return errors


@pytest.mark.skipif(local_gpus() > 0, reason="this machine has a GPU that Ray can use")
def test_a_sweep_asking_for_a_gpu_on_a_machine_without_one_exits_2_instead_of_waiting_forever(tmp_path):
    from_file, from_set = refused_placement(tmp_path, "gpu: 1", "resources.gpu=0.5")
    assert "place.yaml:4: resources.gpu: is 1, but this machine has no GPU that Ray can use" in from_file
    assert "asl20.yaml: --set resources.gpu=0.5: resources.gpu: is 0.5, but this machine has no GPU" in from_set
    assert "resources.on_gpu" in from_file and "resources.on_gpu" in from_set


def test_a_sweep_asking_for_resources_its_own_ray_lacks_exits_2_instead_of_waiting_forever(tmp_path):
    """A custom resource (declared only by `ray start --resources`) or more CPUs than the machine has."""
    from_file, from_set = refused_placement(tmp_path, "custom: {big_gpu: 1}", "resources.cpu=10000")
    assert "place.yaml:4: resources.custom.big_gpu: asks for a custom resource" in from_file
    assert "asl20.yaml: --set resources.cpu=10000: resources.cpu: is 10000, but this machine has" in from_set


def test_a_sweep_asking_for_more_gpus_than_its_ray_has_is_refused(tmp_path):
    """Tune would wait forever for a trial that needs 2 GPUs on a 1-GPU machine. Here the Ray is an embedding
    program's, started in the process with 1 GPU declared: what it offers counts, not the GPUs this machine has
    (none, or more: a Ray started with num_gpus=0 on a GPU machine left a gpu: 1 trial waiting forever)."""
    script = tmp_path / "embedding.py"
    script.write_text(textwrap.dedent("""
        import ray
        from search_spaces.errors import SpecError
        from search_spaces.loader import load_spec, resolve_space_path
        from sweeper.driver import fitted_to_ray
        from sweeper.ray_capacity import check_local_resources

        ray.init(address="local", num_cpus=1, num_gpus=1, include_dashboard=False, log_to_driver=False)
        for overrides in [("resources.on_gpu.gpu=2",), ("resources.on_gpu=null", "resources.gpu=2"),
                          ("resources.on_gpu.gpu=0.5",), ("resources.on_gpu=null", "resources.gpu=1")]:
            try:
                check_local_resources(load_spec(resolve_space_path("asl20"), overrides))
                print("placed")
            except SpecError as exc:
                print(str(exc).split(": ", 1)[1])
        # outside on_gpu too, no more trials at a time than its GPUs hold (4 asked at once trained one by one)
        spec = load_spec(resolve_space_path("asl20"), ("resources.on_gpu=null", "resources.cpu=0.25",
                                                       "resources.gpu=0.5", "budget.max_concurrent=4"))
        print(fitted_to_ray(spec, joining=False).budget.max_concurrent)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120,
                          env={**{k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"},  # conftest's
                               "RAY_USAGE_STATS_ENABLED": "0", "COLUMNS": "300"})  # "" would refuse a declared GPU
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines() == [
        f"--set {flag}: {field}: is 2, but this machine has 1 GPU for Ray: ask for at most 1, or join a cluster with "
        "--address" for flag, field in [("resources.on_gpu.gpu=2", "resources.on_gpu.gpu"),
                                        ("resources.gpu=2", "resources.gpu")]] + ["placed", "placed"] + [
        "budget.max_concurrent is 4, but this machine has 1 GPU for Ray and a trial takes 0.5 (resources.gpu): 2 at "
        "a time", "2"], proc.stdout


def test_as_many_fractional_gpu_trials_run_at_once_as_ray_places():
    from sweeper.ray_capacity import resource_slots

    assert [resource_slots(1, 0.2), resource_slots(1, 0.1), resource_slots(1, 0.3), resource_slots(2, 0.25),
            resource_slots(1, 1)] == [5, 10, 3, 8, 1]


def test_a_joined_cluster_none_of_whose_nodes_holds_a_trial_says_which_resource_falls_short():
    """Ray places a trial on one node: the first resource no node has enough of is named, by the key that asks for
    it; where each is on some node but never all on one, the whole ask is."""
    from search_spaces.loader import load_spec, resolve_space_path
    from sweeper.ray_capacity import no_node_holds

    def said(nodes: list[dict[str, float]], *overrides: str) -> str | None:
        spec = load_spec(resolve_space_path("asl20"), ("resources.on_gpu=null", *overrides))
        note = no_node_holds(spec, "resources", nodes)
        return None if note is None else note.split(" (", 1)[1].split("): ", 1)[0]

    one_cpu = [{"CPU": 1}, {"CPU": 1}]
    assert said(one_cpu, "resources.cpu=2") == "resources.cpu is 2, the largest node has 1 CPU"
    assert said([{"CPU": 0.5}], "resources.cpu=1") == "resources.cpu is 1, the largest node has 0.5 CPUs"
    assert said(one_cpu, "resources.gpu=1") == "resources.gpu is 1, no node has a GPU"
    assert said(one_cpu, "resources.custom.big=1") == "resources.custom.big is 1, no node has big"
    assert said([{"CPU": 1, "big": 0.5}], "resources.custom.big=1") == \
        "resources.custom.big is 1, the most a node has is 0.5"
    assert said([{"CPU": 1}, {"CPU": 0, "GPU": 1}], "resources.gpu=1") == "no node has 1 CPU and 1 GPU at once"
    assert said([{"CPU": 1, "GPU": 1}], "resources.gpu=1") is None
    assert said([{"CPU": 0.99995}], "resources.cpu=1") is None  # Ray counts in ten-thousandths
    fused = load_spec(resolve_space_path("asl20"), ("resources.on_gpu=null", "resources.fuse=4", "resources.cpu=2"))
    assert (no_node_holds(fused, "resources.on_gpu", one_cpu) or "").startswith(
        "no node of the cluster can hold a group of up to 4 trials now (resources.on_gpu.cpu is 2, ")


def test_a_ray_of_its_own_starts_workers_ahead_only_for_trials_that_fill_every_cpu():
    """Each worker a local Ray starts ahead of time (one per CPU) imports Tune and stays: only a sweep whose trials
    (fused: groups) take every CPU at once uses them all (the CLI's count of Ray's workers: test_cli.py)."""
    from ray._private.utils import get_num_cpus

    from search_spaces.loader import load_spec, resolve_space_path
    from sweeper.ray_capacity import fills_every_cpu

    def fills(*overrides: str) -> bool:
        return fills_every_cpu(load_spec(resolve_space_path("asl20"), ("resources.on_gpu=null", *overrides)))

    cpus = get_num_cpus()
    assert fills(f"budget.max_concurrent={cpus}", "resources.cpu=1")
    assert fills(f"budget.max_concurrent={2 * cpus}", "resources.cpu=0.5", "resources.fuse=3")
    assert not fills(f"budget.max_concurrent={cpus}", "resources.cpu=2")  # half of them at once
    assert not fills(f"budget.max_concurrent={2 * cpus}", "resources.cpu=0.5", "resources.gpu=1")  # no GPU here
    if cpus > 1:
        assert not fills(f"budget.max_concurrent={cpus - 1}", "resources.cpu=1")


def test_a_sweep_on_its_own_ray_runs_no_more_trials_at_once_than_its_cpus_hold(capsys):
    """A trial waiting for a CPU was sampled before any result and RUNNING while it waited, as a group waiting for
    a GPU would be: 4 at a time on 2 CPUs sampled 4 at once and trained 2 (found by an exploratory test)."""
    from search_spaces.loader import load_spec, resolve_space_path
    from sweeper.ray_capacity import within_local_ray

    def at_once(*overrides: str, gpus: float = 0) -> int:
        spec = load_spec(resolve_space_path("asl20"), overrides)
        return within_local_ray(spec, 2, gpus).budget.max_concurrent

    assert at_once("budget.max_concurrent=4") == 2
    assert "budget.max_concurrent is 4, but this machine has 2 CPUs for Ray and a trial takes 1 (resources.cpu): " \
           "2 at a time" in " ".join(capsys.readouterr().out.split())
    assert [at_once("budget.max_concurrent=4", "resources.cpu=0.5"), at_once("budget.max_concurrent=9",
            "resources.cpu=0.3"), at_once("budget.max_concurrent=2", "resources.cpu=2"), at_once()] == [4, 6, 1, 2]
    assert capsys.readouterr().out.count("at a time") == 2  # said only where it caps
    assert at_once("budget.max_concurrent=4", "resources.fuse=3") == 2  # groups: a group takes resources.cpu
    assert "and a group of up to 3 trials takes 1 (resources.cpu): 2 at a time" in \
        " ".join(capsys.readouterr().out.split())
    # gpu outside on_gpu (which with_gpu_resources fits): a trial waiting for the GPU was as blind, 4 asked for 2 GPUs
    assert [at_once("budget.max_concurrent=4", "resources.cpu=0.5", "resources.gpu=1", gpus=2),
            at_once("budget.max_concurrent=4", "resources.cpu=0.5", "resources.gpu=0.25", gpus=1)] == [2, 4]
    assert "budget.max_concurrent is 4, but this machine has 2 GPUs for Ray and a trial takes 1 (resources.gpu): " \
           "2 at a time" in " ".join(capsys.readouterr().out.split())


@pytest.mark.slow
def test_a_sweep_samples_no_trial_its_own_ray_has_no_cpu_for(ray_session, tmp_path, monkeypatch, capsys):
    """One more trial at a time than the CPUs hold: the last is sampled once a CPU is free, not at the start."""
    import ray

    monkeypatch.chdir(tmp_path)
    cpus = int(ray.cluster_resources()["CPU"])
    # trials of 1.8 s: sampled at the start, the last would begin well before any ended
    space = scripted_space(tmp_path, trials=cpus + 1, scheduler="{type: none}", training="{epochs: 6, sleep: 0.3}")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(space), storage=url, overrides=(f"budget.max_concurrent={cpus + 1}",)))
    assert f"{cpus + 1} trials, {cpus} at a time" in capsys.readouterr().out
    trials = load(url, study.study_name).get_trials()
    # the ended trial's tell is queued to the writer and may land just after the next ask: half a second's slack
    assert trials[-1].datetime_start >= min(t.datetime_complete for t in trials[:-1]) - timedelta(seconds=0.5)


@pytest.mark.slow
def test_the_header_says_no_more_at_a_time_than_the_trials_left(ray_session, tmp_path, monkeypatch, capsys):
    """"1 trial, 2 at a time" (and on resume "3 trials, 2 at a time" with one left) said more than could run."""
    from search_spaces.loader import load_spec
    from storage.studies import trials_counted
    from sweeper import driver
    from sweeper.driver import trials_to_run

    fused = load_spec("asl20", ["resources.fuse=16", "budget.max_concurrent=4"])
    assert [trials_to_run(fused, 40, left) for left in (40, 6, 1, 0)] == [
        "40 trials, 4 at a time (groups of up to 16)", "40 trials, 6 left, 4 at a time (groups of up to 6)",
        "40 trials, 1 left, 1 at a time", "40 trials"]
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=1, scheduler="{type: none}", training="{epochs: 2, sleep: 0}")
    options = SweepOptions(space=str(space), storage=f"sqlite:///{tmp_path / 'sweeps.db'}")
    run_sweep(options)
    assert "(new), 1 trial, 1 at a time\n" in capsys.readouterr().out
    run_sweep(dataclasses.replace(options, overrides=("budget.trials=2",)))
    assert "(resumed), 2 trials, 1 left, 1 at a time\n" in capsys.readouterr().out
    counted = []  # a resume counted the study's trials for the header, then again to find nothing left
    monkeypatch.setattr(driver, "trials_counted", lambda study: counted.append(study) or trials_counted(study))
    run_sweep(dataclasses.replace(options, overrides=("budget.trials=2",)))
    out = capsys.readouterr().out
    assert "(resumed), 2 trials\n" in out and "nothing left to run: the study has 2 trials" in out, out
    assert len(counted) == 1


def test_a_quick_set_without_quick_is_noted_where_the_run_starts(tmp_path, capsys):
    """--set quick.budget.trials=3 without --quick ran the full sweep, with no word that the --set did nothing."""
    from sweeper.preflight import prepare

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec, _ = prepare(SweepOptions(space="asl20", storage=url, overrides=("quick.budget.trials=3",)))
    assert spec.budget.trials == 40 and "note: --set quick.budget.trials=3 changes the quick profile, which only " \
        "--quick applies: this is the full sweep" in " ".join(capsys.readouterr().out.split())
    quick, _ = prepare(SweepOptions(space="asl20", storage=url, overrides=("quick.budget.trials=3",), quick=True))
    assert quick.budget.trials == 3 and "note" not in capsys.readouterr().out


def test_a_study_left_empty_is_run_with_the_budget_asked_now(tmp_path):
    """A study with no trials yet (an interrupt as Ray started) is as new, but its stored spec, which `sweeper
    resume` runs, kept the first run's budget."""
    from search_spaces.loader import load_spec, resolve_space_path
    from storage import attrs
    from sweeper.driver import open_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = load_spec(resolve_space_path("asl20"), ("enqueue=[]",))
    study, created = open_study(spec, url, "asl20", tmp_path)
    assert created and study.user_attrs[attrs.SPEC]["budget"]["trials"] == 40
    study, created = open_study(load_spec(resolve_space_path("asl20"), ("enqueue=[]", "budget.trials=50")), url,
                                "asl20", tmp_path)
    assert created and load(url, "asl20").user_attrs[attrs.SPEC]["budget"]["trials"] == 50


def test_two_drivers_creating_one_study_at_once_checkpoint_into_one_folder(tmp_path):
    """The one that finds the study created, with neither trials nor a folder yet, takes the folder its creator
    writes a moment later; were it to write its own, one driver's trials would resume from a folder not looked in."""
    from search_spaces.loader import load_spec, resolve_space_path
    from storage import attrs
    from sweeper.driver import open_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    optuna.create_study(study_name="asl20", storage=url, direction="maximize")  # the other driver, this moment
    creators_folder = str(tmp_path / "checkpoints" / "asl20-0123abcd")
    threading.Timer(0.5, lambda: load(url, "asl20").set_user_attr(attrs.CHECKPOINTS, creators_folder)).start()
    study, _ = open_study(load_spec(resolve_space_path("asl20")), url, "asl20", tmp_path)
    assert study.user_attrs[attrs.CHECKPOINTS] == creators_folder


def test_two_drivers_creating_one_study_at_once_enqueue_the_spaces_points_once(tmp_path):
    """Each checked that a point was not queued yet, then queued it: the budget went on each point twice."""
    from concurrent.futures import ThreadPoolExecutor

    from search_spaces.loader import load_spec, resolve_space_path
    from sweeper.driver import open_study

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = load_spec(resolve_space_path("asl20"))
    optuna.create_study(study_name="another", storage=url)  # Optuna's tables, made once before
    with ThreadPoolExecutor(2) as pool:
        opened = list(pool.map(lambda _: open_study(spec, url, "asl20", tmp_path), range(2)))
    assert sorted(created for _, created in opened) == [False, True]
    waiting = load(url, spec.name).get_trials(states=(TS.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == spec.enqueue and len(spec.enqueue) == 2


def test_a_sweep_refuses_a_sqlite_file_of_another_application_and_leaves_it_unchanged(tmp_path):
    """A mistyped --storage must not add Optuna's tables to another program's database, or switch it to WAL."""
    import sqlite3

    app = tmp_path / "app.db"
    with sqlite3.connect(app) as connection:
        connection.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    before = app.read_bytes()
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spaces/asl20.yaml", "--quick", "--storage",
                           f"sqlite:///{app}"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert f"sqlite:///{app} is not an Optuna study database: it holds the tables users" in proc.stderr
    assert app.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["app.db"]


@pytest.mark.slow
def test_a_trial_that_finds_bad_data_fails_at_once_in_a_line_without_retries(ray_session, tmp_path, monkeypatch,
                                                                           capsys):
    """Where a param samples the data (the driver then checks none before the sweep), a NaN in it is every trial's
    DataError, which a retry cannot mend. Ray retried each twice, printing its traceback each time. (An absolute
    path: the shared test Ray's workers run in another folder.)"""
    import numpy as np

    monkeypatch.chdir(tmp_path)
    x = np.random.default_rng(0).standard_normal((30, 8, 5, 2)).astype(np.float32)
    x[3, 2, 0, 0] = np.nan
    np.savez(tmp_path / "nan.npz", X=x, y=np.arange(30) % 5)
    with pytest.raises(NothingFinished):
        run_sweep(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=f"sqlite:///{tmp_path / 's.db'}",
                               max_failures=2, overrides=("dataset.name=npz", f"dataset.path={tmp_path / 'nan.npz'}",
                                                          "dataset.classes=5", "budget.trials=2",
                                                          "params.dataset.seed={type: int, low: 0, high: 9}")))
    out = capsys.readouterr()
    assert "Ray runs it again" not in out.err and "Traceback" not in out.err + out.out
    study = optuna.load_study(study_name="asl20-quick", storage=f"sqlite:///{tmp_path / 's.db'}")
    assert [t.state for t in study.trials] == [TS.FAIL, TS.FAIL]
    assert all(t.user_attrs["error"].startswith(f"DataError: {tmp_path / 'nan.npz'}: X[3] contains NaN")
               for t in study.trials), [t.user_attrs["error"] for t in study.trials]


@pytest.mark.slow
def test_a_failing_function_shows_its_own_frames_once_and_each_retry_in_a_line(tmp_path):
    """Not Ray's log of it: Ray's frames around the user's, raw colour codes, then "Trials did not complete"."""
    (tmp_path / "odd_train.py").write_text((FIXTURES / "odd_train.py").read_text())
    (tmp_path / "f.yaml").write_text("entrypoint: odd_train:train\nobjective: {metric: score, direction: maximize}\n"
                                     "params:\n  x: {type: float, low: 0.0, high: 0.01}\n"
                                     "  mode: {type: categorical, choices: [odd_exception]}\n"
                                     "budget: {trials: 2, max_concurrent: 2}\n")
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "f.yaml", "--max-failures", "1"],
                          capture_output=True, text=True, cwd=tmp_path, env={**os.environ, "COLUMNS": "300"},
                          timeout=180)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    for number in (0, 1):
        assert f"trial #{number} failed (ShapeError: got shape (2, 3), want (3, 2)); Ray runs it again, from its " \
               "last checkpoint where it saved one (retry 1 of 1)" in proc.stderr
        assert f"trial #{number} failed:\nTraceback (most recent call last):\n  File \"{tmp_path}/odd_train.py\", " \
               "line 25, in train\n    raise ShapeError((2, 3), (3, 2))\nodd_train.ShapeError: got shape (2, 3), " \
               "want (3, 2)\n" in proc.stderr
        assert f"#{number}   FAIL      error: ShapeError: got shape (2, 3), want (3, 2)" in proc.stdout
    assert proc.stderr.count("Traceback") == 2 and "\x1b[" not in proc.stderr, proc.stderr
    assert "ray/" not in proc.stderr and "Trials did not complete" not in proc.stderr, proc.stderr
    assert "best trials of" not in proc.stdout  # no targets, no baseline, nothing COMPLETE: no empty table


def test_bad_storage_url_exits_2_and_masks_the_password(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", "spaces/asl20.yaml", "--quick", "--storage",
                           "mysql://bob:hunter22@127.0.0.1/x"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=120)
    assert proc.returncode == 2
    assert "hunter22" not in proc.stderr and "mysql" in proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize(("signum", "group", "fresh"), [
    (signal.SIGINT, False, False), (signal.SIGTERM, False, False), (signal.SIGTERM, True, False),
    (signal.SIGINT, True, True), (signal.SIGUSR1, False, False), (signal.SIGUSR1, True, False)],
    # SIGHUP: test_a_closed_terminal_stops_the_sweep_as_ctrl_c_does
    ids=["Ctrl-C", "SIGTERM", "SIGTERM-to-the-group", "Ctrl-C-in-its-terminal-fresh", "SIGUSR1",
         "SIGUSR1-to-the-group"])
def test_ctrl_c_exits_130_and_keeps_finished_trials(tmp_path, signum, group, fresh):
    """SIGTERM is how kill, docker stop and Kubernetes stop the driver: not Ray's abort with a stack dump. Sent to the
    process group (timeout, Slurm's scancel) it stops the local Ray too, and the driver must not wait a minute on it
    (it sometimes did, in a call to Ray's dead GCS, then left with Ray's exit code 1). Run again, a --fresh sweep
    would start another study: its message names the command that carries it on. SIGUSR1 (Slurm's warning before
    its time limit) ended the sweep with Tune's handler as if it had finished, exit 0, or sent to the group left the
    driver a minute on the dead Ray."""
    space = gated_space(tmp_path)
    text = space.read_text()
    db = tmp_path / "sweeps.db"
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage", f"sqlite:///{db}",
                             *["--fresh"] * fresh], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group, holding the Ray it starts
    deadline = time.time() + 120
    for line in proc.stdout:  # wait for the first finished trial, #0 ...
        if "COMPLETE" in line or time.time() > deadline:
            break
    held = wait_at_the_gate(tmp_path)  # ... and #1 in flight
    os.killpg(proc.pid, signum) if group else proc.send_signal(signum)
    try:
        assert proc.wait(timeout=20) == 130
    finally:
        with contextlib.suppress(ProcessLookupError):  # what outlived a failed test: the driver, its Ray
            os.killpg(proc.pid, signal.SIGKILL)
    output, name = proc.stdout.read(), text.split("name: ")[1].split()[0]
    how = f"sweeper resume {name} --storage sqlite:///{db}" if fresh else "the same command"
    assert f"interrupted: the study keeps its finished trials; {how} carries it on" in output
    assert "SIGTERM received" not in output and "Traceback" not in output
    study = optuna.load_study(study_name=name, storage=f"sqlite:///{db}")
    states = [t.state for t in study.get_trials()]
    assert TS.COMPLETE in states and len(states) < 20
    # a worker stopped with the driver left its trial RUNNING, for a resume to carry on
    assert held and TS.FAIL not in states and TS.RUNNING in states


SIGNAL_AS_AN_ASK_TAKES_ITS_TRIAL = """
import os, signal, sys, time
from sweeper.searcher import StudySearcher

taking = StudySearcher._pop_waiting_trial_id

def take_and_stop(self):  # a SIGTERM lands as an ask has taken an enqueued trial, before it writes itself as owner
    trial_id = taking(self)
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(1)  # the exit goes on meanwhile
    return trial_id

StudySearcher._pop_waiting_trial_id = take_and_stop
sys.argv = ["sweeper", *sys.argv[1:]]
from sweeper.cli import main
main()
"""


@pytest.mark.slow
def test_a_stop_signal_as_an_ask_takes_an_enqueued_trial_leaves_it_to_the_next_run_at_once(tmp_path):
    """The exit on a stop signal cut short an ask that had taken an enqueued trial (RUNNING) but not yet written
    itself as its owner: a resume within a minute took the ownerless trial for a live driver's ("running in another
    live driver and counts against the budget") and ended without it, still RUNNING."""
    space = scripted_space(tmp_path, trials=2, extra="enqueue:\n  - {x: 0.5}\n")
    db = tmp_path / "sweeps.db"
    proc = subprocess.Popen([sys.executable, "-c", SIGNAL_AS_AN_ASK_TAKES_ITS_TRIAL, "run", str(space), "--storage",
                             f"sqlite:///{db}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)  # its own process group, holding the Ray it starts
    try:
        output, _ = proc.communicate(timeout=120)
    finally:
        with contextlib.suppress(ProcessLookupError):  # what outlived a failed test: the driver, its Ray
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 130, output
    from storage.resume import orphaned_trials

    study = load(f"sqlite:///{db}", space.read_text().split("name: ")[1].split()[0])
    [taken] = [t for t in study.get_trials() if t.state == TS.RUNNING]
    assert [t.number for t in orphaned_trials(study)] == [taken.number], taken.user_attrs  # carried on at once
    assert taken.params == {"x": 0.5}


@pytest.mark.slow
def test_a_closed_terminal_stops_the_sweep_as_ctrl_c_does(tmp_path):
    """The kernel's SIGHUP when a terminal closes: the driver's last words then meet EIO, which left the watcher
    thread dead with the exit lock held and the main thread waiting on it, for a minute or for good."""
    import pty

    space = gated_space(tmp_path)
    text = space.read_text()
    db = tmp_path / "sweeps.db"
    pid, terminal = pty.fork()
    if pid == 0:  # the sweep, in a session whose controlling terminal is the pty
        os.chdir(tmp_path)
        os.execv(sys.executable, [sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage",
                                  f"sqlite:///{db}"])
    seen, deadline = b"", time.time() + 120
    try:
        while b"COMPLETE" not in seen and time.time() < deadline:  # a first finished trial, #0, ...
            seen += os.read(terminal, 4096)
        held = wait_at_the_gate(tmp_path)  # ... and #1 in flight
        os.close(terminal)  # the terminal goes away: SIGHUP to its session
        ended = time.time() + 30
        while (status := os.waitpid(pid, os.WNOHANG))[0] == 0 and time.time() < ended:
            time.sleep(0.2)
        assert status[0] == pid and os.waitstatus_to_exitcode(status[1]) == 130, (status, seen[-2000:])
    finally:
        with contextlib.suppress(ProcessLookupError, PermissionError):  # a failed test's driver and its Ray
            os.killpg(pid, signal.SIGKILL)  # pty.fork made it a session leader: its group is its pid
    name = text.split("name: ")[1].split()[0]
    states = [t.state for t in optuna.load_study(study_name=name, storage=f"sqlite:///{db}").get_trials()]
    assert held and TS.COMPLETE in states and TS.FAIL not in states and TS.RUNNING in states and len(states) < 20


@pytest.mark.slow
def test_what_a_users_function_reports_or_returns_is_recorded_as_it_meant(ray_session, tmp_path, monkeypatch,
                                                                          capsys):
    """NumPy scalars are numbers; returning nothing records the last report, and a target's metric that is not
    returned is its last report; a last report of NaN fails the trial (not an earlier epoch's value in its place); a
    result that is no dict fails at once, in words; names Ray Tune sets in a result are the function's own as
    returned_NAME; an int past any float is infinity; an exception that pickle cannot rebuild is recorded in its own
    words, not as the TypeError of rebuilding it; a returned list, which no trial attr holds, is said to be left out
    (once), and a reported bool is no point of a learning curve."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "odd_train.py").write_text((FIXTURES / "odd_train.py").read_text())
    modes = ["numpy", "nothing", "nan_last", "not_a_dict", "own_names", "odd_exception", "score_only", "arrays",
             "best_nan", "best_list", "exits", "history", "bools", "bools_last", "ray_names", "huge"]
    (tmp_path / "odd.yaml").write_text(textwrap.dedent(f"""\
        name: odd-{uuid.uuid4().hex[:8]}
        entrypoint: odd_train:train
        objective: {{metric: score, direction: maximize}}
        targets: {{acc: 0.2}}
        params:
          mode: {{type: categorical, choices: {modes}}}
          x: {{type: float, low: 0.0, high: 0.01}}
        scheduler: {{type: none}}
        budget: {{trials: {len(modes)}, max_concurrent: 1}}
        enqueue: [{", ".join(f"{{mode: {m}, x: 0.0}}" for m in modes)}]
        """))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(tmp_path / "odd.yaml"), storage=url))
    numpy_trial, nothing, nan_last, not_a_dict, own_names, odd, score_only, arrays, best_nan, best_list, exits, \
        history, bools, bools_last, ray_names, huge = load(url, study.study_name).get_trials()
    assert numpy_trial.state == TS.COMPLETE and numpy_trial.value == pytest.approx(0.2)
    assert numpy_trial.intermediate_values == {1: pytest.approx(0.1), 2: pytest.approx(0.2)}
    assert numpy_trial.user_attrs["acc"] == pytest.approx(0.2)
    assert nothing.state == TS.COMPLETE and nothing.user_attrs["acc"] == pytest.approx(0.2)
    assert nan_last.state == TS.FAIL and nan_last.user_attrs["stop_reason"] == "diverged"
    assert "ended with score = nan" in nan_last.user_attrs["error"]
    assert not_a_dict.state == TS.FAIL and "must return a dict" in not_a_dict.user_attrs["error"]
    assert load(url, study.study_name).user_attrs["target_met"]["trial"] == 0  # judged on the recorded acc
    assert own_names.user_attrs["returned_error"] == 0.12 and own_names.user_attrs["returned_node"] == "mine"
    assert "error" not in own_names.user_attrs and own_names.user_attrs["node"] != "mine"  # sweeper's own
    assert odd.state == TS.FAIL and odd.user_attrs["error"] == "ShapeError: got shape (2, 3), want (3, 2)"
    assert score_only.user_attrs["acc"] == pytest.approx(0.2)  # a target's metric: its last report, if not returned
    # a 0-d array is a number (it was dropped, and the last report, 0.2, stood in for the best, 0.9)
    assert arrays.state == TS.COMPLETE and arrays.value == pytest.approx(0.9) and arrays.user_attrs["acc"] == 0.2
    assert best_nan.state == TS.FAIL and "ended with best_score = nan" in best_nan.user_attrs["error"]
    assert best_list.state == TS.FAIL and "returned best_score = [0.1, 0.2], not a number" in \
        best_list.user_attrs["error"]
    # the function's own exit fails its trial in words, not as Ray's "actor died" after every retry
    assert exits.state == TS.FAIL and exits.user_attrs["error"].startswith("SystemExit: odd_train:train exited (2)")
    assert history.state == TS.COMPLETE and history.value == 0.5  # a list beside best_score is no objective
    assert "score" not in history.user_attrs and " ".join(capsys.readouterr().out.split()).count(
        "result holds score (a list), which no trial attr records") == 1
    assert bools.state == TS.COMPLETE and bools.value == 0.4 and bools.intermediate_values == {}
    # returning None, its last report is the result: a bool there is what it last reported, not what it returned
    assert bools_last.state == TS.FAIL and "odd_train:train last reported score = True, not a number" in \
        bools_last.user_attrs["error"]
    # names Ray Tune sets itself are the function's own as returned_NAME: Ray's "done" had cut the trial to PRUNED
    assert ray_names.state == TS.COMPLETE and ray_names.intermediate_values == {1: 0.1, 2: pytest.approx(0.2)}
    assert {k: ray_names.user_attrs.get(f"returned_{k}") for k in ("done", "pid", "trial_id")} == \
        {"done": False, "pid": 3, "trial_id": "mine"}
    # an int past any float is infinity (Ray's float() of it ended the sweep), one within range stays as it is
    assert huge.state == TS.COMPLETE and huge.user_attrs["combos"] == -math.inf and huge.user_attrs["seen"] == 2**70


@pytest.mark.slow
def test_a_grid_search_with_enqueued_rows_still_visits_every_grid_point(ray_session, tmp_path, monkeypatch):
    """Enqueued rows take trials but no grid point: the budget makes room for them."""
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=10)
    study = run_sweep(SweepOptions(space=str(space), storage=f"sqlite:///{tmp_path / 's.db'}", overrides=(
        "sampler={type: grid, seed: 1}", "params.x={type: categorical, choices: [0.25, 0.5, 0.75, 1.0]}",
        "enqueue=[{x: 0.5}]", "scheduler={type: none}", "training.sleep=0")))
    xs = [t.params["x"] for t in load(f"sqlite:///{tmp_path / 's.db'}", study.study_name).get_trials()]
    assert len(xs) == 5 and xs[0] == 0.5 and sorted(xs[1:]) == [0.25, 0.5, 0.75, 1.0]


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # the swallowed interrupt
def test_a_ctrl_c_that_python_swallows_in_a_finalizer_still_stops_the_sweep() -> None:
    """Python prints "Exception ignored in ..." for a KeyboardInterrupt raised in a finalizer, and goes on; the
    flag the sweep's stopper reads is set all the same."""
    class Finalized:
        def __del__(self) -> None:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here, inside the finalizer

    flag = threading.Event()
    before = signal.getsignal(signal.SIGINT)
    with noting_interrupts(flag):
        Finalized()  # no KeyboardInterrupt leaves it
    assert flag.is_set()
    assert signal.getsignal(signal.SIGINT) is before
    with pytest.raises(KeyboardInterrupt), noting_interrupts(threading.Event()):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)


STUCK_IN_C = """
import os, signal, sqlite3, sys, threading
from sweeper.interrupts import noting_interrupts

holder = sqlite3.connect(sys.argv[1], isolation_level=None)
holder.execute("BEGIN EXCLUSIVE")
waiter = sqlite3.connect(sys.argv[1], timeout=60)  # SQLite's busy loop: a C call that retries through signals
with noting_interrupts(threading.Event(), leave=lambda: os._exit(130)):
    print("stuck", flush=True)
    waiter.execute("SELECT * FROM sqlite_master").fetchall()
"""


def test_an_interrupt_ends_a_driver_whose_main_thread_is_stuck_in_a_c_call(tmp_path) -> None:
    """Python runs a signal handler only between bytecodes: a main thread waiting in a Ray call that never returns
    (the GCS stopped by the same signal) would sit there, were it not for the watcher that calls ``leave``."""
    proc = subprocess.Popen([sys.executable, "-c", STUCK_IN_C, str(tmp_path / "locked.db")], stdout=subprocess.PIPE,
                            text=True)
    assert proc.stdout.readline().strip() == "stuck"
    time.sleep(0.5)
    proc.send_signal(signal.SIGTERM)
    try:
        assert proc.wait(timeout=10) == 130
    finally:
        proc.kill()


SECOND_SIGNAL_IN_THE_HANDLER = """
import os, signal, threading, time
from sweeper.interrupts import noting_interrupts

class SecondSignalInSet(threading.Event):  # Event.set, with a second SIGTERM arriving while it holds its lock
    def set(self):
        with self._cond:
            if not self.is_set() and threading.current_thread() is threading.main_thread():
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(0.05)  # the second signal's handler runs here, on the same thread
            self._flag = True
            self._cond.notify_all()

with noting_interrupts(SecondSignalInSet(), leave=lambda: os._exit(130)):
    os.kill(os.getpid(), signal.SIGTERM)
    threading.Event().wait(20)
"""


def test_a_second_signal_inside_the_first_ones_handler_still_ends_the_driver() -> None:
    """``timeout`` sends its SIGTERM to the driver, then to its process group: a second signal that came while the
    first one's handler set the flag ran the handler again, on the same thread, which waited for ever on the lock
    the first one held (the watcher too): ``sweeper run`` hung until a kill -9 (1 run in 5 of the registers-with-Ray
    scenario under ``setsid timeout``)."""
    try:
        proc = subprocess.run([sys.executable, "-c", SECOND_SIGNAL_IN_THE_HANDLER], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"hung: {exc}")
    assert proc.returncode == 130, proc.stderr


INTERRUPTED_IN_A_FORK = """
import _thread, functools, os, signal, subprocess, threading
# a C callable (no bytecode of its own to run the handler in), registered before logging's hook, so the signal's
# handler runs on the first bytecode of logging's _releaseLock: a Ctrl-C as ray.init starts one of its processes
os.register_at_fork(after_in_parent=functools.partial(_thread.interrupt_main, signal.SIGINT))
import logging  # noqa: E402
from sweeper.interrupts import leaving, noting_interrupts

def leave():
    leaving()  # sets the level of Ray's logger: takes logging's lock
    os._exit(130)

with noting_interrupts(threading.Event(), leave):
    subprocess.run(["true"], preexec_fn=lambda: None)  # Ray starts its processes with a preexec_fn: a fork
    threading.Event().wait(20)
"""


def test_an_interrupt_as_the_driver_forks_still_ends_it(tmp_path) -> None:
    """A KeyboardInterrupt that landed in logging's at-fork hook was swallowed there, logging's lock still held by
    the main thread: the watcher's leave, like every thread that logs, waited forever (``sweeper run`` hung on a
    Ctrl-C to its process group about 5 s in, as ray.init started Ray's processes)."""
    proc = subprocess.run([sys.executable, "-c", INTERRUPTED_IN_A_FORK], capture_output=True, text=True, timeout=60,
                          cwd=tmp_path)
    assert proc.returncode == 130, proc.stderr
    assert "Exception ignored" not in proc.stderr, proc.stderr


def interrupted_output(proc: subprocess.Popen, timeout: float) -> str:
    """The output of a ``sweeper run`` (its own session) that a stop signal ends: exit 130, saying how to go on."""
    try:
        code = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:  # where it hangs: py-spy is not here, but its output says how far it got
        code = None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    output = proc.stdout.read()
    assert code == 130, output
    assert "interrupted: the study keeps its finished trials; the same command carries it on" in output, output
    return output


@pytest.mark.slow
def test_a_sigterm_while_ray_starts_exits_130(tmp_path):
    """The study is opened while Ray starts. A SIGTERM then met Ray's own handler (exit code 15, or a minute's wait
    on a Ray the signal also stopped)."""
    space, db = scripted_space(tmp_path, trials=2), tmp_path / "sweeps.db"
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage", f"sqlite:///{db}"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 60
    while not db.exists() and time.time() < deadline and proc.poll() is None:  # the storage opens as Ray starts
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGTERM)
    output = interrupted_output(proc, timeout=30)
    # (a signal that lands in a finalizer is printed by Python as "Exception ignored in ...", and still counts)
    assert "Error" not in output.replace("Exception ignored", ""), output


SIGTERM_AS_THE_DRIVER_REGISTERS = """
import os, signal, sys
import ray._raylet

registers = ray._raylet.CoreWorker

def core_worker(*args, **kwargs):  # a SIGTERM to the group as the driver registers with its raylet
    os.killpg(os.getpgrp(), signal.SIGTERM)
    return registers(*args, **kwargs)  # holds the GIL: no thread of the driver runs until it returns

ray._raylet.CoreWorker = core_worker
sys.argv = ["sweeper", *sys.argv[1:]]
from sweeper.cli import main
main()
"""


@pytest.mark.slow
@pytest.mark.skipif(sys.platform != "linux", reason="Ray's processes end with the driver through Linux's prctl")
def test_a_sigterm_to_the_group_as_the_driver_registers_with_ray_exits_130(tmp_path):
    """ray.init registers the driver with its raylet in a call that holds the GIL. A SIGTERM to the process group
    then (``timeout``, ``scancel`` 3.5 to 4.5 s into ``sweeper run`` on an idle machine) also stopped the raylet:
    no thread of the driver could leave, and Ray's C++ ended it 13 s later with exit code 1 ("Failed to register
    worker to Raylet"). Ray's processes, in a session of their own, are stopped by the driver as it leaves."""
    space, db = scripted_space(tmp_path, trials=2), tmp_path / "sweeps.db"
    ray_tmp = Path(tempfile.mkdtemp(prefix="ray-", dir="/tmp"))  # short: Ray's socket paths; its processes name it
    proc = subprocess.Popen([sys.executable, "-c", SIGTERM_AS_THE_DRIVER_REGISTERS, "run", str(space), "--storage",
                             f"sqlite:///{db}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True, env={**os.environ, "RAY_TMPDIR": str(ray_tmp)})
    output = interrupted_output(proc, timeout=120)
    assert "Failed to register" not in output and "Traceback" not in output, output
    deadline = time.time() + 10
    while (left := ray_processes(ray_tmp)) and time.time() < deadline:
        time.sleep(0.2)
    assert not left, left
    shutil.rmtree(ray_tmp, ignore_errors=True)


def ray_processes(ray_tmp: Path) -> list[str]:
    """The live processes whose command line names ``ray_tmp`` (a Ray's session folder is under it)."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        with contextlib.suppress(OSError):
            if str(ray_tmp) in (proc / "cmdline").read_text() and \
                    (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                found.append(f"{proc.name}: {(proc / 'cmdline').read_text()[:80]}")
    return found


def test_ray_says_nothing_once_the_driver_is_leaving(caplog):
    """A stop signal to the process group also stops Ray's processes; where the driver's watcher began to leave
    first, the main thread's ray.init went on and logged the dashboard's death under the driver's "interrupted"
    line ("Failed to start the dashboard, return code -15": the SIGTERM test above, once in CI)."""
    from sweeper import interrupts

    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    try:
        interrupts.leaving()
        logging.getLogger("ray._private.services").error("Failed to start the dashboard , return code -15")
        assert not [record for record in caplog.records if "Failed to start" in record.getMessage()]
    finally:
        ray_logger.setLevel(level)
        interrupts._leaving.clear()


def test_ray_threads_fail_quietly_once_the_driver_is_leaving():
    """The driver stops its local Ray's processes as it leaves; ray.init's thread that subscribes to the GCS's
    errors, started just then, failed with a traceback ("RpcError: failed to connect to all addresses") under the
    driver's "interrupted" line (the SIGTERM test above, once in CI). A failing thread of our own still says so."""
    from sweeper import interrupts

    def fail() -> None:
        raise RuntimeError("the GCS is gone")

    def run_thread(name: str) -> None:
        thread = threading.Thread(target=fail, name=name)
        thread.start()
        thread.join()

    reported: list[str] = []
    hook, level = threading.excepthook, logging.getLogger("ray").level
    threading.excepthook = lambda args: reported.append(args.thread.name)  # what Python's own would print
    try:
        run_thread("ray_print_logs")  # before leaving: a Ray thread's failure is reported as any other
        interrupts.leaving()
        run_thread("ray_listen_error_messages")
        run_thread("sweeper-writer")
        assert reported == ["ray_print_logs", "sweeper-writer"]
    finally:
        threading.excepthook = hook
        logging.getLogger("ray").setLevel(level)
        interrupts._leaving.clear()


SLOW_OPEN = """
import sys, time
from pathlib import Path
from sweeper import driver

real_open, marker = driver.open_study, Path(sys.argv[1])

def slow_open(*args, **kwargs):  # Optuna creating its tables in a new file takes a moment: one an interrupt hits
    print("opening", flush=True)
    time.sleep(1.0)
    opened = real_open(*args, **kwargs)
    marker.write_text("opened")
    return opened

driver.open_study = slow_open
sys.argv = ["sweeper", *sys.argv[2:]]
from sweeper.cli import main
main()
"""


@pytest.mark.slow
def test_an_interrupt_while_the_study_is_created_lets_it_finish_first(tmp_path):
    """The watcher ended the driver at once, in the middle of Optuna creating its tables in a new SQLite file: the
    file, tables without their version stamp, could not be opened again ("not a complete Optuna study database")."""
    space, db, opened = scripted_space(tmp_path, trials=2), tmp_path / "sweeps.db", tmp_path / "opened"
    proc = subprocess.Popen([sys.executable, "-c", SLOW_OPEN, str(opened), "run", str(space), "--storage",
                             f"sqlite:///{db}"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "opening"
        # the driver alone: a SIGTERM to the group stops Ray's processes as it starts, and the thread that opens the
        # study can then be starved for longer than the exit waits for it (the open itself takes under a second)
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=60) == 130  # it waits up to 30 s for the study to be created
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    assert opened.exists(), (proc.stdout.read(), sorted(p.name for p in tmp_path.iterdir()))
    assert optuna.get_all_study_names(f"sqlite:///{db}") == [space.read_text().split("name: ")[1].split()[0]]


START_RAY_AS_THE_DRIVER = """
import ctypes, signal, sys, threading, time
from sweeper.ray_runtime import is_local_ray, start_ray

class Sigaction(ctypes.Structure):  # glibc's struct sigaction: what a signal runs, at the C level
    _fields_ = [("handler", ctypes.c_void_p), ("mask", ctypes.c_ulong * 16), ("flags", ctypes.c_int),
                ("restorer", ctypes.c_void_p)]

def c_handler():
    action = Sigaction()
    ctypes.CDLL(None).sigaction(signal.SIGTERM, None, ctypes.byref(action))
    return action.handler

assert not is_local_ray() and "ray" not in sys.modules  # asking imports nothing of Ray
signal.signal(signal.SIGTERM, signal.default_int_handler)
seen, ours, starting = {c_handler()}, set(), True
def watch():
    while starting:
        seen.add(c_handler())
        ours.add(signal.getsignal(signal.SIGTERM) is signal.default_int_handler)
        time.sleep(0.001)
threading.Thread(target=watch, daemon=True).start()
start_ray()
starting = False
print(signal.getsignal(signal.SIGTERM) is signal.default_int_handler, ours, len(seen), is_local_ray())
from ray._private import state
print(repr([job["Entrypoint"] for job in state.jobs()]))
print(repr(open("/proc/self/cmdline", "rb").read()))
"""


@pytest.mark.skipif(sys.platform != "linux", reason="reads glibc's struct sigaction and /proc")
def test_ray_start_keeps_the_drivers_sigterm_handler_and_no_password_in_its_job_or_ps(tmp_path):
    """ray.init installs a Python handler that exits with code 15 on SIGTERM, and for its last moments a C++ one
    that aborts the driver: the driver's own (a Ctrl-C) must hold throughout. And Ray records the driver's command
    line as its job's entrypoint, which anyone on a cluster can list: a --storage password must not be in it."""
    proc = subprocess.run([sys.executable, "-c", START_RAY_AS_THE_DRIVER, "run", "--storage",
                           "postgresql://me:S3cretPW9x@db/sweeps", "--set", "storage=postgresql://me:An0therPW@db/x",
                           "--storage=postgresql://me:Th1rd pw@db/y"],  # one argument, a space in its password
                          capture_output=True, text=True, cwd=tmp_path, timeout=120)
    handlers, entrypoints, cmdline = proc.stdout.splitlines()  # cmdline: what ps shows
    assert handlers.split() == ["True", "{True}", "1", "True"], proc.stdout + proc.stderr
    for shown in (entrypoints, cmdline):
        assert "postgresql://me:***@db/sweeps" in shown and "storage=postgresql://me:***@db/x" in shown, shown
        assert "--storage=postgresql://me:***@db/y" in shown, shown
    assert "S3cretPW9x" not in proc.stdout and "An0therPW" not in proc.stdout, proc.stdout + proc.stderr
    assert "Th1rd" not in proc.stdout, proc.stdout


GHOST_TRAIN = """
import os, signal
from pathlib import Path

def train(config, report, checkpoint_dir):
    pid_file = Path(config["kill_pid_in"])
    if pid_file.is_file():  # another driver on the study dies while this trial trains
        os.kill(int(pid_file.read_text()), signal.SIGKILL)
        pid_file.unlink()
    for epoch in (1, 2):
        report({"epoch": epoch, "score": config["x"]})
    return {"score": config["x"]}

train.settings = {"x": 0.5, "kill_pid_in": ""}
train.metrics = ["score"]
"""


@pytest.mark.slow
@pytest.mark.postgres
def test_a_driver_carries_on_the_trials_of_a_co_driver_that_died_while_it_ran(ray_session, tmp_path, monkeypatch,
                                                                             postgres_url):
    """Two drivers on one study: the other dies after this one started. Its RUNNING trial is no orphan at the start
    (its owner lives), but one at the end of the budget: carried on, not left RUNNING. On PostgreSQL, the storage
    drivers on several machines share (whose owner a driver tells by its host and pid, not by the storage)."""
    storage_url = postgres_url
    from storage import attrs
    from storage.resume import Driver, process_start_ticks

    monkeypatch.chdir(tmp_path)
    (tmp_path / "ghost_train.py").write_text(GHOST_TRAIN)
    pid_file = tmp_path / "co-driver.pid"
    (tmp_path / "ghost.yaml").write_text(textwrap.dedent(f"""\
        name: ghost-{uuid.uuid4().hex[:8]}
        entrypoint: ghost_train:train
        objective: {{metric: score, direction: maximize}}
        training: {{kill_pid_in: {pid_file}}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        scheduler: {{type: none}}
        budget: {{trials: 1, max_concurrent: 1}}
        """))
    study = run_sweep(SweepOptions(space="ghost.yaml", storage=storage_url))
    co_driver = subprocess.Popen(["sleep", "600"])
    threading.Thread(target=co_driver.wait, daemon=True).start()  # reaped as it dies: no zombie pid to look alive
    ghost = load(storage_url, study.study_name).ask()
    ghost.set_user_attr(attrs.DRIVER, Driver(Driver.current().host, co_driver.pid,
                                             process_start_ticks(co_driver.pid)).as_attr())
    pid_file.write_text(str(co_driver.pid))
    run_sweep(SweepOptions(space="ghost.yaml", storage=storage_url, overrides=("budget.trials=3",)))
    trials = load(storage_url, study.study_name).get_trials()
    assert co_driver.poll() is not None
    assert [t.state for t in trials] == [TS.COMPLETE] * 3
    assert trials[1].user_attrs[attrs.RESUMED] == 1
    optuna.delete_study(study_name=study.study_name, storage=storage_url)


@pytest.mark.slow
def test_time_to_target_counts_the_trials_started_before_the_winner_finished(ray_session, tmp_path, monkeypatch):
    """#0 meets the target while #1 runs; #2 starts in #0's slot as it finishes, and a slow database writes #0's
    tell after that: #2 is not part of what reaching the target cost."""
    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=3, extra="enqueue:\n  - {x: 1.0, sleep: 0.05}\n  - {x: 0.5, sleep: 1.0}\n"
                                                     "  - {x: 0.5, sleep: 0.05}\n")
    url = f"sqlite:///{tmp_path / 's.db'}"
    tell = optuna.Study.tell

    def slow_tell(self, *args, **kwargs):  # a slow database: the tell lands after Tune has filled the slot
        time.sleep(1.0)
        return tell(self, *args, **kwargs)

    monkeypatch.setattr(optuna.Study, "tell", slow_tell)
    study = run_sweep(SweepOptions(space=str(space), storage=url, overrides=(
        "scheduler={type: none}", "params.sleep={type: categorical, choices: [0.05, 1.0]}")))
    monkeypatch.undo()
    loaded = load(url, study.study_name)
    assert [t.state for t in loaded.get_trials()] == [TS.COMPLETE] * 3
    assert loaded.user_attrs["target_met"]["trial"] == 0 and loaded.user_attrs["target_met"]["trials"] == 2
    assert loaded.user_attrs["target_met"]["trial_epochs"] <= 6 + 6


def finished_trial_in(db: Path, timeout_s: float = 120) -> bool:
    """Wait until the SQLite file holds a finished trial, read only: Optuna's own storage creates its tables on
    opening, which would race with the sweep creating them."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(sqlite3.Error), contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) \
                as connection:
            if connection.execute("SELECT count(*) FROM trials WHERE state IN ('COMPLETE', 'PRUNED', 'FAIL')"
                                  ).fetchone()[0]:
                return True
        time.sleep(0.1)
    return False


def test_a_target_another_driver_on_the_study_met_stops_this_sweep_too(ray_session, tmp_path, monkeypatch, capsys):
    """budget.stop_on_target stopped only the driver whose trial met the targets: a second driver on the study
    ran its whole budget, and never said the targets were met."""
    from sweeper import driver

    monkeypatch.chdir(tmp_path)  # its results folder (./sweeper_runs) in the test's folder, not the checkout
    monkeypatch.setattr(driver, "HEARTBEAT_INTERVAL_S", 1)
    space = scripted_space(tmp_path, target=2.0, training="{epochs: 4, sleep: 0.5}", scheduler="{type: none}",
                           budget="{trials: 8, max_concurrent: 1, stop_on_target: true}")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = space.read_text().split("name: ")[1].split()[0]

    def another_driver_meets_them() -> None:  # as record_target_met writes it, for a trial of its own
        if finished_trial_in(tmp_path / "sweeps.db"):
            load(url, name).set_user_attr("target_met", {"trial": 99, "trial_epochs": 4, "wall_seconds": 1.0,
                                                         "trials": 1})

    threading.Thread(target=another_driver_meets_them, daemon=True).start()
    run_sweep(SweepOptions(space=str(space), storage=url))
    out = " ".join(capsys.readouterr().out.split())
    assert "trial #99 of another driver on the study met the targets" in out and "the targets are met" in out, out
    assert len(load(url, name).trials) < 8, out  # a heartbeat (1 s) after the first trial's 2 s, on a busy machine


def test_a_study_deleted_while_it_runs_stops_the_sweep_with_one_message(ray_session, tmp_path, monkeypatch):
    """Deleting the study (optuna-dashboard's Delete button) ended the driver with a KeyError traceback, exit 1."""
    from storage.errors import StudyDeleted

    monkeypatch.chdir(tmp_path)
    space = scripted_space(tmp_path, trials=6)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = space.read_text().split("name: ")[1].split()[0]

    def delete_after_the_first_trial() -> None:
        if finished_trial_in(tmp_path / "sweeps.db"):
            optuna.delete_study(study_name=name, storage=url)

    threading.Thread(target=delete_after_the_first_trial, daemon=True).start()
    with pytest.raises(StudyDeleted, match="deleted from its storage while this sweep ran"):
        run_sweep(SweepOptions(space=str(space), storage=url))
