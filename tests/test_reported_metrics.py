"""What a user's function reports, checked as it arrives: accuracies on a 0-100 scale, and reports a scheduler cannot
judge, each get one warning per sweep in the driver's output; and what a report writes besides its value. Real
sweeps: real Ray, real Optuna on SQLite."""

from __future__ import annotations

import textwrap
import uuid
from pathlib import Path

import optuna
import pytest

from sweeper.driver import SweepOptions, run_sweep

TS = optuna.trial.TrialState

FUNCTION = '''
import time


def fit(config, report, checkpoint_dir):
    for epoch in range(1, 3 if config["mode"] != "slow" else 5):
        if config["mode"] == "slow":
            time.sleep(0.8)
            report({"epoch": epoch, "val_acc": 0.4})
        elif config["mode"] == "percent":
            report({"epoch": epoch, "val_acc": 45.56})
        elif config["mode"] == "no_epoch":
            report({"step": epoch, "val_acc": 0.4})
    if config["mode"] == "percent":
        return {"test_acc": 45.56, "best_val_acc": 45.56}
    return {"test_acc": 0.4, "val_acc": 0.4}


fit.settings = {"mode": "percent", "x": 0.0}
fit.metrics = ["val_acc", "best_val_acc", "test_acc"]
'''


def sweep(tmp_path: Path, mode: str, extra: str) -> optuna.Study:
    (tmp_path / "pct.py").write_text(FUNCTION)
    (tmp_path / "pct.yaml").write_text(textwrap.dedent(f"""\
        name: pct-{uuid.uuid4().hex[:8]}
        entrypoint: pct:fit
        objective: {{metric: val_acc, direction: maximize}}
        targets: {{test_acc: 95%}}
        training: {{mode: {mode}}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        resources: {{cpu: 1}}
        """) + extra)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(tmp_path / "pct.yaml"), storage=url))
    return optuna.load_study(study_name=study.study_name, storage=url)


@pytest.mark.slow
def test_an_accuracy_reported_in_percent_is_warned_about_once_and_meets_no_target(ray_session, tmp_path, monkeypatch,
                                                                                   capsys):
    """val_acc 45.56 would "meet" a target of 95% (0.95): stop_on_target stopped after one trial."""
    monkeypatch.chdir(tmp_path)
    study = sweep(tmp_path, "percent", "scheduler: {type: none}\n"
                                          "budget: {trials: 3, max_concurrent: 1, stop_on_target: true}\n")
    out = capsys.readouterr().out
    assert [t.state for t in study.get_trials()] == [TS.COMPLETE] * 3  # not stopped after #0
    assert "target_met" not in study.user_attrs
    for metric in ("val_acc", "test_acc"):  # once each, for the sweep; best_val_acc is val_acc's
        assert out.count(f"warning: {metric} = 45.56 is outside 0-1; sweeper reads accuracies as fractions (a "
                         f"target of 95% is 0.95), so report {metric} / 100.") == 1
    assert out.count("warning:") == 2
    assert "test_acc 45.56 (target 95.00%, outside 0-1: not met)" in " ".join(out.split())
    assert "targets not met" in out


@pytest.mark.slow
@pytest.mark.parametrize(("mode", "words"), [
    ("no_epoch", "reported 2 times without an 'epoch' key (1, 2, ...)"),
    ("silent", "returned without a report of val_acc per epoch"),
])
def test_a_scheduler_that_cannot_judge_the_reports_is_warned_about_once(ray_session, tmp_path, monkeypatch, capsys,
                                                                        mode, words):
    monkeypatch.chdir(tmp_path)
    study = sweep(tmp_path, mode, "scheduler: {type: asha, grace_period: 1}\nbudget: {trials: 3, max_concurrent: 1}\n")
    out = " ".join(capsys.readouterr().out.split())
    assert [t.state for t in study.get_trials()] == [TS.COMPLETE] * 3
    assert all(not t.intermediate_values for t in study.get_trials())
    assert out.count("warning:") == 1
    assert (f"warning: trial #0 {words}; the asha scheduler compares trials at each report's epoch and val_acc, so "
            "without them it can prune no trial, and no learning curve is recorded.") in out


CARRIED_ON = '''
import json
import os


def fit(config, report, checkpoint_dir):
    """Returns None: its record is its reports'. As a run carried on from its checkpoint: an earlier one trained
    epochs 1 and 2, which it reports again, marked replayed, before it trains 3 and 4."""
    saved = os.path.join(checkpoint_dir, "saved.json")
    if not os.path.exists(saved):
        with open(saved, "w") as f:
            json.dump([{"epoch": 1, "val_acc": 0.1}, {"epoch": 2, "val_acc": 0.2}], f)
    with open(saved) as f:
        done = json.load(f)
    for metrics in done:
        report({**metrics, "replayed": True})
    for epoch in range(len(done) + 1, 5):
        report({"epoch": epoch, "val_acc": epoch / 10})
'''


def carried_on_space(tmp_path: Path) -> Path:
    (tmp_path / "carried.py").write_text(CARRIED_ON)
    space = tmp_path / "carried.yaml"
    space.write_text(textwrap.dedent(f"""\
        name: carried-{uuid.uuid4().hex[:8]}
        entrypoint: carried:fit
        objective: {{metric: val_acc, direction: maximize}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        scheduler: {{type: none}}
        resources: {{cpu: 1}}
        budget: {{trials: 1}}
        """))
    return space


def test_sweeper_train_resumed_and_trained_on_returns_no_replayed_mark(tmp_path: Path) -> None:
    """``replayed`` marks a report that repeats an epoch an earlier run trained; what ``sweeper train`` returns (a
    trial's record) kept it as each key's last value: ``replayed: True`` after epochs 3 and 4 trained now."""
    from sweeper.standalone import prepare, train

    run, base_dir = prepare(carried_on_space(tmp_path), [], [])
    result = train(run, base_dir, tmp_path / "ck")
    assert result == {"epoch": 4, "val_acc": 0.4}


@pytest.mark.slow
def test_a_trial_carried_on_and_trained_on_records_no_replayed_mark(ray_session, tmp_path, monkeypatch) -> None:
    """A function that returns None is recorded with its reports' last values: a trial carried on from its
    checkpoint kept the replays' mark among them, and the study recorded ``replayed: True`` on it."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(carried_on_space(tmp_path)), storage=url))
    [trial] = optuna.load_study(study_name=study.study_name, storage=url).get_trials()
    assert trial.state == TS.COMPLETE and trial.value == 0.4
    assert trial.user_attrs["epoch"] == 4 and "replayed" not in trial.user_attrs, trial.user_attrs
