"""How a finished trial is recorded: which failures are "nan", a final objective that is not finite, and which trials
meet the targets. The recorder's own tests feed it the results the trainable reports, on a real SQLite study; the
last one runs a real sweep (real Ray, real Optuna on SQLite) through the trainable."""

from __future__ import annotations

import math
import textwrap
import uuid
from pathlib import Path
from types import SimpleNamespace

import optuna
import pytest

from search_spaces.loader import load_spec
from storage.engine import close_storage, open_storage
from storage.retry import OutagePolicy
from storage.target import target_met
from sweeper.recorder import StudyRecorder
from sweeper.study_writer import StudyWriter
from sweeper.trainable import FAILED_KEY, FINAL_FLAG, NO_OBJECTIVE_KEY, RESULT_KEYS

TS = optuna.trial.TrialState


@pytest.fixture
def recorded(tmp_path):
    """``(study, recorder, writer)``: asl20's spec (objective val_top3, target test_top3 80%), stop_on_target on."""
    spec = load_spec("spaces/asl20.yaml", ("budget.stop_on_target=true",))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(study_name="outcomes", storage=storage, direction="maximize")
    writer = StudyWriter(OutagePolicy(30))
    searcher = SimpleNamespace(study=study, trials={}, carried_on=set(), checkpoints=str(tmp_path / "checkpoints"))
    yield study, StudyRecorder(searcher, spec, lambda frozen: None, writer), writer
    close_storage(storage)


def finish(recorder: StudyRecorder, trial: optuna.Trial, result: dict) -> None:
    """What Tune calls when the trial's function is done, its last report being ``result``."""
    recorder.searcher.trials[f"ray-{trial.number}"] = trial
    recorder.on_trial_complete(0, [], SimpleNamespace(trial_id=f"ray-{trial.number}", last_result=result))


def test_only_a_diverged_loss_is_recorded_with_stop_reason_diverged(recorded):
    """A refused config (a --set training.device=cuda on a CPU machine), bad data or a bad return value was
    recorded with a diverged loss's stop reason too."""
    study, recorder, writer = recorded
    errors = ["ConfigError: device='cuda': this machine has 0 CUDA device(s) (CUDA is not available here)",
              "DataError: data/train.csv: row 3 has 5 columns, want 4",
              "TypeError: fit must return a dict of metric name -> value or None, not float",
              "NonFiniteLossError: non-finite loss (nan) at step 12"]
    for error in errors:  # as the trainable reports them: the last epoch's metrics (none here) and the error
        finish(recorder, study.ask(), {"epoch": 0, "val_top3": -math.inf, FAILED_KEY: error})
    writer.flush()
    trials = study.get_trials()
    assert [t.state for t in trials] == [TS.FAIL] * 4
    assert [t.user_attrs["error"] for t in trials] == errors
    assert [t.user_attrs.get("stop_reason") for t in trials] == [None, None, None, "diverged"]


@pytest.mark.parametrize("epoch", [math.nan, math.inf, "two", 2.0])
def test_a_stopped_trial_whose_last_epoch_is_no_whole_number_is_recorded_pruned(recorded, epoch):
    """A function of one's own may report any epoch: a NaN one, stopped by the scheduler, raised ValueError in Tune's
    loop and left the trial RUNNING in a sweep that ended with exit 0."""
    study, recorder, writer = recorded
    finish(recorder, trial := study.ask(), {"epoch": epoch, "val_top3": 0.3})
    writer.flush()
    stopped = study.get_trials()[trial.number]
    assert stopped.state == TS.PRUNED and stopped.user_attrs["stop_reason"] == "pruned"
    assert stopped.user_attrs["epochs_run"] == (2 if epoch == 2.0 else 0)


@pytest.mark.parametrize("last", [math.inf, -math.inf, math.nan])
def test_a_final_objective_that_is_not_finite_fails_the_trial(recorded, last):
    """A last epoch of inf was recorded COMPLETE with the epoch before it, 0.4; only NaN failed the trial."""
    study, recorder, writer = recorded
    trial = study.ask()
    trial.report(0.4, 1)
    finish(recorder, trial, {"epoch": 2, "val_top3": last, "test_top3": 0.9, FINAL_FLAG: True,
                             RESULT_KEYS: ["test_top3"], NO_OBJECTIVE_KEY: False})
    writer.flush()
    trial = study.trials[0]
    assert trial.state == TS.FAIL and trial.value is None
    assert trial.user_attrs["stop_reason"] == "diverged"
    assert trial.user_attrs["error"] == f"the training function ended with val_top3 = {last}"
    assert not recorder.target_reached and target_met(study.user_attrs) is None


def test_a_trial_recorded_fail_meets_no_target(recorded):
    """A function that returns its test metrics without ever reporting the objective is recorded FAIL; its
    test_top3 of 0.9 still "met" the 80% target, and with stop_on_target the sweep stopped ("the targets are
    met") while its table said they were not."""
    study, recorder, writer = recorded
    finish(recorder, study.ask(), {"epoch": 0, "val_top3": -math.inf, "test_top3": 0.9, FINAL_FLAG: True,
                                   RESULT_KEYS: ["test_top3"], NO_OBJECTIVE_KEY: True})
    assert not recorder.target_reached
    writer.flush()
    trial = study.trials[0]
    assert trial.state == TS.FAIL
    assert trial.user_attrs["error"] == "the training function returned without reporting 'val_top3'"
    assert "stop_reason" not in trial.user_attrs  # the worst value stood in for Tune: it is no NaN or inf
    assert not recorder.target_reached and target_met(study.user_attrs) is None


def test_a_carried_on_trial_that_returns_without_reporting_is_worth_its_last_recorded_epoch(recorded):
    """Its last epochs were reported before its driver died; the stand-in for its objective fails nothing."""
    study, recorder, writer = recorded
    trial = study.ask()
    trial.report(0.7, 1)
    trial.report(0.85, 2)
    recorder.searcher.carried_on.add(trial.number)
    finish(recorder, trial, {"epoch": 0, "val_top3": -math.inf, "test_top3": 0.9, FINAL_FLAG: True,
                             RESULT_KEYS: ["test_top3"], NO_OBJECTIVE_KEY: True})
    writer.flush()
    trial = study.trials[0]
    assert trial.state == TS.COMPLETE and trial.value == 0.85 and "stop_reason" not in trial.user_attrs
    assert recorder.target_reached and target_met(study.user_attrs)["trial"] == 0


def test_a_returned_best_objective_of_none_leaves_the_returned_last_one_the_value(recorded, tmp_path, monkeypatch):
    """{"best_val_top3": None, "val_top3": 0.85}: the trainable checked val_top3 and sweeper train judged 0.85, but
    the recorder read best_val_top3 for being there and recorded the last reported epoch (0.5) instead."""
    from sweeper import trainable

    study, recorder, writer = recorded
    trial = study.ask()
    trial.report(0.5, 1)
    finish(recorder, trial, {"epoch": 1, "val_top3": 0.85, "best_val_top3": None, "test_top3": 0.9, FINAL_FLAG: True,
                             RESULT_KEYS: ["best_val_top3", "test_top3", "val_top3"], NO_OBJECTIVE_KEY: False})
    writer.flush()
    assert study.trials[0].state == TS.COMPLETE and study.trials[0].value == 0.85
    # a function that returned only a None best reported no objective: its stand-in is no diverged value
    sent: list[dict] = []
    monkeypatch.setattr(trainable, "tune", SimpleNamespace(report=sent.append))
    monkeypatch.setattr(trainable, "current_node", lambda: "node")
    meta = {"checkpoints": str(tmp_path), "number": 0, "entrypoint": "m:fit", "metric": "val_top3", "worst": -math.inf}
    trainable._run_trial({trainable.META_KEY: meta}, lambda config, report, checkpoint_dir: {"best_val_top3": None})
    [final] = sent
    assert final[NO_OBJECTIVE_KEY] is True
    finish(recorder, study.ask(), final)
    writer.flush()
    assert study.trials[1].state == TS.FAIL
    assert study.trials[1].user_attrs["error"] == "the training function returned without reporting 'val_top3'"


FUNCTION = '''
import math

from trials.config import ConfigError
from trials.train import NonFiniteLossError


def fit(config, report, checkpoint_dir):
    mode = config["mode"]
    if mode == "refused":
        raise ConfigError("device='cuda': this machine has 0 CUDA device(s)", "device")
    if mode == "diverged":
        raise NonFiniteLossError("non-finite loss (nan) at step 3")
    if mode == "no_objective":  # test metrics only: the target on test_acc looks met
        return {"test_acc": 0.99}
    report({"epoch": 1, "val_acc": 0.4})
    report({"epoch": 2, "val_acc": math.inf if mode == "inf_last" else 0.5})
    return None if mode == "inf_last" else {"test_acc": 0.4}


fit.settings = {"mode": "plain"}
fit.metrics = ["val_acc", "test_acc"]
'''


@pytest.mark.slow
def test_a_sweep_records_each_failure_as_what_it_was_and_stops_only_at_a_met_target(ray_session, tmp_path,
                                                                                   monkeypatch, capsys):
    from sweeper.driver import SweepOptions, run_sweep

    monkeypatch.chdir(tmp_path)
    modes = ["refused", "diverged", "inf_last", "no_objective", "plain"]
    (tmp_path / "outcomes.py").write_text(FUNCTION)
    (tmp_path / "outcomes.yaml").write_text(textwrap.dedent(f"""\
        name: outcomes-{uuid.uuid4().hex[:8]}
        entrypoint: outcomes:fit
        objective: {{metric: val_acc, direction: maximize}}
        targets: {{test_acc: 95%}}
        params:
          mode: {{type: categorical, choices: {modes}}}
        scheduler: {{type: none}}
        budget: {{trials: 5, max_concurrent: 1, stop_on_target: true}}
        enqueue: [{", ".join(f"{{mode: {m}}}" for m in modes)}]
        resources: {{cpu: 1}}
        """))
    url = f"sqlite:///{Path(tmp_path) / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(tmp_path / "outcomes.yaml"), storage=url))
    out = " ".join(capsys.readouterr().out.split())
    trials = optuna.load_study(study_name=study.study_name, storage=url).get_trials()
    assert [t.state for t in trials] == [TS.FAIL] * 4 + [TS.COMPLETE]  # not stopped after no_objective
    assert [t.params["mode"] for t in trials] == modes
    assert [t.user_attrs.get("stop_reason") for t in trials[:4]] == [None, "diverged", "diverged", None]
    assert trials[0].user_attrs["error"].startswith("ConfigError: device='cuda'")
    assert trials[1].user_attrs["error"] == "NonFiniteLossError: non-finite loss (nan) at step 3"
    assert trials[2].user_attrs["error"] == "the training function ended with val_acc = inf"
    assert trials[3].user_attrs["error"] == "the training function returned without reporting 'val_acc'"
    assert "the targets are met" not in out and "targets not met" in out



def test_a_trial_pruned_as_the_storage_went_away_for_good_is_recorded_pruned_on_resume(recorded):
    """The PRUNED tell waited in the writer's queue when the sweep gave up on the storage (exit 75): the resume
    carried the trial on as an orphan and trained it to its last epoch, then recorded it COMPLETE."""
    from storage.retry import StorageUnavailable
    from sweeper.searcher import record_stopped

    study, recorder, writer = recorded
    pruned, running = study.ask(), study.ask()
    writer.fail(StorageUnavailable("the storage stayed away"))  # what is queued from now on is never written
    finish(recorder, pruned, {"epoch": 4, "val_top3": 0.3})  # no final flag: the scheduler stopped it
    orphans = study.get_trials(deepcopy=False)  # as the resume finds them: their driver is gone
    assert [t.state for t in orphans] == [TS.RUNNING, TS.RUNNING]
    left = record_stopped(study, orphans, recorder.searcher.checkpoints)
    assert [t.number for t in left] == [running.number]
    trial = study.trials[pruned.number]
    assert trial.state == TS.PRUNED and trial.user_attrs["stop_reason"] == "pruned"
    assert trial.user_attrs["epochs_run"] == 4 and trial.user_attrs["val_top3"] == 0.3
    # a second driver resumed at the same moment found the same orphans: it leaves the recorded one be
    assert [t.number for t in record_stopped(study, orphans, recorder.searcher.checkpoints)] == [running.number]


def test_a_noted_orphan_found_mid_sweep_is_recorded_pruned_not_carried_on(recorded, tmp_path):
    """A driver that finds a dead driver's trial once its own budget is spent carried it on to its end, note or
    not; only a starting driver read the note."""
    import socket
    import subprocess
    import sys

    from storage import attrs
    from storage.resume import Driver
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.trainable import note_stopped

    study, recorder, writer = recorded
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = study.ask({"x": optuna.distributions.FloatDistribution(0, 1)})
    orphan.set_user_attr(attrs.DRIVER, Driver(socket.gethostname(), int(dead.stdout), None).as_attr())
    checkpoints = str(tmp_path / "checkpoints")
    note_stopped(checkpoints, orphan.number, {attrs.STOP_REASON: attrs.STOP_PRUNED, attrs.EPOCHS_RUN: 2})
    searcher = StudySearcher(study, recorder.spec, checkpoints=checkpoints, budget=1, driver=Driver.current(),
                             policy=OutagePolicy(30), writer=writer, orphans=[])
    assert searcher.suggest("ray-1") == "FINISHED"  # Searcher.FINISHED: the budget is spent, nothing to carry on
    assert study.trials[0].state == TS.PRUNED and study.trials[0].user_attrs["epochs_run"] == 2


def test_a_result_dropped_for_another_drivers_record_meets_no_target_in_the_study(recorded):
    """Another driver finished the trial while this one was cut off: the study keeps that record, and judged this
    driver's dropped result instead, it wrote target_met for a record that does not meet the targets."""
    study, recorder, writer = recorded
    trial = study.ask()
    trial.set_user_attr("test_top3", 0.5)
    study.tell(trial, 0.5)  # the other driver's record
    finish(recorder, trial, {"epoch": 3, "val_top3": 0.9, "test_top3": 0.9, FINAL_FLAG: True,
                             RESULT_KEYS: ["test_top3"], NO_OBJECTIVE_KEY: False})
    writer.flush()
    assert study.trials[0].value == 0.5 and study.trials[0].user_attrs["test_top3"] == 0.5
    assert target_met(study.user_attrs) is None


def test_a_trial_ray_ends_with_retries_left_runs_again_and_is_never_recorded_failed(failed_ray_trial, tmp_path):
    """A Ray worker that died while its actor waited for the next trial (reuse_actors) fails both the actor and the
    reset queued on it; Tune counts two failures, recovers the first and ends the trial ERROR on the second, its
    retries (--max-failures 2) unspent. The trial, which had not begun, was recorded FAIL."""
    from ray.exceptions import ActorDiedError

    from storage.resume import Driver
    from sweeper.searcher import StudySearcher

    spec = load_spec("spaces/asl20.yaml", ("budget.trials=3",))
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    try:
        study = optuna.create_study(study_name="rerun", storage=storage, direction="maximize")
        writer = StudyWriter(OutagePolicy(30))
        searcher = StudySearcher(study, spec, checkpoints=str(tmp_path / "checkpoints"), budget=3,
                                 driver=Driver.current(), policy=OutagePolicy(30), writer=writer)
        recorder = StudyRecorder(searcher, spec, lambda frozen: None, writer)
        first = searcher._next_trial()

        def ray_ends(optuna_trial: optuna.Trial, failures: int) -> None:
            ray_trial = failed_ray_trial(ActorDiedError(), failures)
            searcher.trials[ray_trial.trial_id] = optuna_trial
            recorder.on_trial_error(0, [], ray_trial)

        ray_ends(first, failures=2)  # the double failure: retries left
        assert searcher._next_trial() is first  # asked again before anything new, params as they were
        ray_ends(first, failures=2)  # once only: a trial that kills its worker each time fails in the end
        writer.flush()
        assert study.trials[0].state == TS.FAIL
        second, third = searcher._next_trial(), searcher._next_trial()
        ray_ends(second, failures=1)
        searcher.stopped = True  # the sweep ends before its rerun is asked: RUNNING, for the next run to carry on
        searcher.drop_unstarted()
        searcher.finished = True  # Tune heard FINISHED (the budget is spent): it would never ask for a rerun
        ray_ends(third, failures=1)
        writer.flush()
        assert [t.state for t in study.get_trials()] == [TS.FAIL, TS.RUNNING, TS.RUNNING]
        assert study.trials[1].user_attrs["driver"] is None and study.trials[2].user_attrs["driver"] is None
        assert not searcher.reruns
    finally:
        close_storage(storage)


def test_a_pruned_trial_of_the_training_core_records_its_last_epochs_metrics(recorded):
    """What a trial stopped before it returned keeps of its last epoch is what the training core reports every
    epoch, less lr and timings: the recorder's list of those keys was a copy of trials' and could drift from it."""
    from trials.config import EPOCH_METRICS
    from trials.train import run

    study, recorder, writer = recorded
    reports: list[dict] = []
    run({"dataset.classes": 5, "dataset.samples_per_class": 6, "dataset.seq_len": 8, "epochs": 1, "batch_size": 8,
         "seed": 7}, reports.append)
    finish(recorder, study.ask(), reports[-1])  # no final flag: stopped by the scheduler after that epoch
    writer.flush()
    [trial] = study.get_trials()
    assert trial.state == TS.PRUNED
    optimisable = {metric for metric, direction in EPOCH_METRICS.items() if direction}
    assert {key for key in trial.user_attrs if key in reports[-1]} == {"epoch", *optimisable}
    assert {key: trial.user_attrs[key] for key in optimisable} == {key: reports[-1][key] for key in optimisable}


def test_the_names_a_functions_results_are_moved_from_hold_every_one_ray_tune_sets():
    """A function's value under a name Ray Tune sets in each result is recorded as returned_NAME (the trainable): a
    name Ray adds in a later release would otherwise hold Ray's value, or end the trial, as "done" did."""
    from ray.tune import result

    from storage import attrs

    ray_sets = {*result.AUTO_RESULT_KEYS, result.DONE, result.TRIAL_ID, result.EXPERIMENT_TAG, result.SHOULD_CHECKPOINT}
    assert ray_sets <= set(attrs.RAY_RESULT_KEYS), ray_sets - set(attrs.RAY_RESULT_KEYS)


def test_a_whole_float_epoch_is_that_epoch_of_the_learning_curve(recorded, capsys):
    """``epoch = step / steps_per_epoch`` reports 1.0, 2.0: no learning curve was recorded (a PRUNED trial had no
    value), though ASHA judged those epochs, and the warning said the reports had no 'epoch' key."""
    study, recorder, writer = recorded
    recorder.searcher.trials["ray-0"] = trial = study.ask()
    ray_trial = SimpleNamespace(trial_id="ray-0", config={})
    for epoch, value in ((1.0, 0.2), (2.0, 0.3), (2.5, 0.35), (2.5, 0.4)):
        recorder.on_trial_result(0, [], ray_trial, {"epoch": epoch, "val_top3": value})
    writer.flush()
    assert study.get_trials()[trial.number].intermediate_values == {1: 0.2, 2: 0.3}
    recorder.searcher.trials["ray-1"] = study.ask()
    for _ in range(2):
        recorder.on_trial_result(0, [], SimpleNamespace(trial_id="ray-1", config={}), {"epoch": 0.5, "val_top3": 0.1})
    assert "trial #1 reported 2 times with epoch 0.5, not 1, 2, ...;" in " ".join(capsys.readouterr().out.split())
