"""Time to target: the record of the first trial meeting every target, on SQLite and PostgreSQL, and where it shows."""

from __future__ import annotations

import json
import math
import re
import uuid
from datetime import datetime, timedelta

import optuna
import pytest

from storage import attrs
from storage.engine import close_storage, open_storage
from storage.target import (
    TARGET_MET,
    clock,
    describe_target_met,
    epochs_trained,
    prune_stopped,
    record_target_met,
    target_met,
    time_to_target,
)

TS = optuna.trial.TrialState
X = optuna.distributions.FloatDistribution(0.0, 1.0)


def sweep_like_study(url: str) -> tuple[optuna.Study, optuna.trial.FrozenTrial]:
    """#0 COMPLETE after 3 epochs, #1 PRUNED after 1, #2 RUNNING with 2 reported, #3 COMPLETE meeting the target."""
    study = optuna.create_study(storage=open_storage(url), study_name=f"target-{uuid.uuid4().hex[:8]}",
                                direction="maximize")
    study.set_user_attr(attrs.TARGETS, {"test_top3": 0.8})
    study.set_user_attr(attrs.OBJECTIVE, attrs.objective_attr("val_top3", "maximize"))

    def trial(epochs: int, value: float, state: TS | None, test_top3: float | None = None) -> optuna.Trial:
        t = study.ask({"x": X})
        for epoch in range(1, epochs + 1):
            t.report(value * epoch / epochs, epoch)
        if test_top3 is not None:
            t.set_user_attr("test_top3", test_top3)
        if state == TS.PRUNED:
            t.set_user_attr(attrs.EPOCHS_RUN, epochs)
            study.tell(t, state=TS.PRUNED)
        elif state == TS.COMPLETE:
            study.tell(t, value)
        return t

    trial(3, 0.6, TS.COMPLETE, test_top3=0.7)
    trial(1, 0.3, TS.PRUNED)
    trial(2, 0.5, None)  # still running when #3 finishes
    met = trial(3, 0.9, TS.COMPLETE, test_top3=0.85)
    return study, study.trials[met.number]


def test_the_first_trial_to_meet_the_targets_is_recorded_with_the_compute_until_then(storage_url: str) -> None:
    study, met = sweep_like_study(storage_url)
    record = record_target_met(study, met)
    assert record is not None
    assert (record["trial"], record["trial_epochs"], record["trials"]) == (3, 3 + 1 + 2 + 3, 4)
    assert 0 <= record["wall_seconds"] < 60
    stored = optuna.load_study(study_name=study.study_name, storage=storage_url).user_attrs
    assert target_met(stored) == record
    assert stored[TARGET_MET] == dict(record)  # plain JSON in the study, readable without sweeper

    again = study.trials[0]  # a later trial, or a resumed run, never overwrites the first record
    assert record_target_met(study, again) is None
    assert target_met(optuna.load_study(study_name=study.study_name, storage=storage_url).user_attrs) == record
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def test_a_function_that_reports_no_epoch_gets_no_trial_epochs_claim(tmp_path) -> None:
    """A function may return its result without calling report (README): its epochs are unknown, not 0."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    for value in (0.5, 0.9):  # COMPLETE with what they returned, and no intermediate value: as the recorder writes
        trial = study.ask({"x": X})
        trial.set_user_attr("test_top3", value)
        study.tell(trial, value)
    record = record_target_met(study, study.trials[1])
    assert record is not None and record["trial_epochs"] is None and record["trials"] == 2
    assert target_met(study.user_attrs) == record  # read back as met, not as a malformed record
    line = describe_target_met(record)
    assert line == f"#1 after {clock(record['wall_seconds'])} wall, 2 trials (trial-epochs unknown: no epoch was " \
                   "reported)"
    assert "trial-epochs," not in line and "0 trial-epochs" not in line


def test_trials_started_after_the_target_was_met_do_not_count(storage_url: str) -> None:
    study, met = sweep_like_study(storage_url)
    later = study.ask({"x": X})
    later.report(0.1, 1)
    trials = study.get_trials(deepcopy=False)
    assert met.datetime_complete is not None
    at_the_time = time_to_target(trials, met)
    moved = [t if t.number != later.number else _started(t, met.datetime_complete + timedelta(seconds=1))
             for t in trials]
    assert time_to_target(moved, met) == {**at_the_time, "trials": 4, "trial_epochs": 9}
    first = min(t.datetime_start for t in trials if t.datetime_start)
    assert at_the_time["wall_seconds"] == pytest.approx((met.datetime_complete - first).total_seconds(), abs=1e-3)
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def test_a_trial_that_never_started_does_not_count(storage_url: str) -> None:
    study, met = sweep_like_study(storage_url)
    ghost = study.ask({"x": X})  # asked for a fused group that the sweep stopped before it started
    ghost.set_user_attr(attrs.STOP_REASON, attrs.STOP_NEVER_STARTED)
    study.tell(ghost, state=TS.PRUNED)
    ghost_trial = study.trials[ghost.number]
    moved = [_started(ghost_trial, met.datetime_start) if t.number == ghost.number else t
             for t in study.get_trials(deepcopy=False)]  # asked while the winner trained
    assert time_to_target(moved, met)["trials"] == 4
    assert time_to_target([*moved[:-1], _started(moved[-1], met.datetime_start, {})], met)["trials"] == 5
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def test_a_trial_set_aside_for_a_fused_group_does_not_count_while_it_waits(storage_url: str) -> None:
    """At a met target FusedSearcher records it never_started after Tune's loop, but target_met is written as the
    winner ends: it counted the trial, which never trained, as one more."""
    study, met = sweep_like_study(storage_url)
    aside = study.ask({"x": X})
    aside.set_user_attr(attrs.RAY_TRIAL_ID, None)  # FusedSearcher: in no group while it waits for its shape
    trials = study.get_trials(deepcopy=False)
    moved = [_started(t, met.datetime_start) if t.number == aside.number else t for t in trials]
    assert time_to_target(moved, met)["trials"] == 4
    joined = {**trials[aside.number].user_attrs, attrs.RAY_TRIAL_ID: "ray9/0"}  # it started in the next group
    assert time_to_target([*moved[:-1], _started(moved[-1], met.datetime_start, joined)], met)["trials"] == 5
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def test_a_trial_set_aside_for_a_fused_group_counts_the_epochs_it_trained_before(storage_url: str) -> None:
    """A dead driver's trial carried on, then set aside for the next group (another shape came first), trained its
    epochs in the run before: target_met left them out, and the trial, as if it had never trained."""
    study, met = sweep_like_study(storage_url)
    carried = study.ask({"x": X})
    carried.report(0.4, 1)
    carried.report(0.5, 2)
    carried.set_user_attr(attrs.RAY_TRIAL_ID, None)  # FusedSearcher: in no group while it waits for its shape
    trials = study.get_trials(deepcopy=False)
    record = time_to_target([_started(t, met.datetime_start) if t.number == carried.number else t for t in trials], met)
    assert record["trials"] == 5 and record["trial_epochs"] == 3 + 1 + 2 + 3 + 2
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def _started(trial: optuna.trial.FrozenTrial, when: datetime, user_attrs: dict | None = None
             ) -> optuna.trial.FrozenTrial:
    return optuna.trial.FrozenTrial(
        number=trial.number, state=trial.state, value=None, datetime_start=when, datetime_complete=None,
        params=trial.params, distributions=trial.distributions,
        user_attrs=trial.user_attrs if user_attrs is None else user_attrs,
        system_attrs=trial.system_attrs, intermediate_values=trial.intermediate_values, trial_id=trial._trial_id)


def test_trials_running_when_the_sweep_stops_at_its_target_become_pruned(storage_url: str) -> None:
    study, _ = sweep_like_study(storage_url)
    running = study.ask({"x": X})  # a live handle, as the searcher holds them
    running.report(0.4, 1)
    running.report(0.5, 2)
    finished = study.ask({"x": X})
    study.tell(finished, 0.1)
    assert prune_stopped(study, [running, finished]) == [running.number]  # a finished trial is left as it is
    stored = optuna.load_study(study_name=study.study_name, storage=storage_url).trials
    assert stored[running.number].state == TS.PRUNED
    assert stored[running.number].user_attrs == {"stop_reason": "sweep_stopped", "epochs_run": 2}
    assert stored[finished.number].state == TS.COMPLETE and "stop_reason" not in stored[finished.number].user_attrs
    assert [t.number for t in stored if t.state == TS.RUNNING] == [2]  # sweep_like_study's own, not handed over
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


@pytest.mark.parametrize("lands_after", [attrs.STOP_REASON, attrs.EPOCHS_RUN])
def test_a_trial_another_driver_stops_meanwhile_is_left_to_it(tmp_path, lands_after: str) -> None:
    """Two sweeper resumes at once of a study that met its targets (stop_on_target) both stop the dead driver's
    trials: one found a trial RUNNING, the other recorded it PRUNED, and the first crashed with a traceback
    (UpdateFinishedTrialError, exit 1); landing just before this one's tell, the tell skipped it (skip_if_finished)
    and it was still counted among those this driver stopped. A trigger lands the other driver's write."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = sweep_like_study(url)
    taken, ours = study.ask({"x": X}), study.ask({"x": X})
    with open_storage(url).engine.begin() as connection:
        connection.exec_driver_sql(
            "CREATE TRIGGER other_driver AFTER INSERT ON trial_user_attributes "
            f"WHEN NEW.key = '{lands_after}' AND NEW.trial_id = {taken._trial_id} "
            "BEGIN UPDATE trials SET state = 'PRUNED', datetime_complete = CURRENT_TIMESTAMP "
            "WHERE trial_id = NEW.trial_id; END")
    assert prune_stopped(study, [taken, ours]) == [ours.number]
    stored = optuna.load_study(study_name=study.study_name, storage=url).trials
    assert stored[taken.number].state == stored[ours.number].state == TS.PRUNED


def test_a_target_on_the_objective_is_judged_on_the_recorded_value_the_best_epoch() -> None:
    """An entrypoint that returns best_<metric> is recorded with that value; the recorder judges the target on it
    too (not on the last epoch), as status and the report do, so the record is written and stop_on_target fires."""
    from types import SimpleNamespace

    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.recorder import StudyRecorder
    from sweeper.study_writer import StudyWriter
    from sweeper.trainable import FINAL_FLAG, RESULT_KEYS

    spec = load_spec("spaces/asl20.yaml", ("targets={val_top3: 90%}", "budget.stop_on_target=true"))
    study = optuna.create_study(direction="maximize")
    trial = study.ask({"x": X})
    trial.report(0.95, 3)
    trial.report(0.85, 4)
    writer = StudyWriter(OutagePolicy(30))
    recorder = StudyRecorder(SimpleNamespace(study=study, trials={"ray-1": trial}, carried_on=set()), spec,
                             lambda frozen: None, writer)
    result = {"epoch": 4, "val_top3": 0.85, "best_val_top3": 0.95, FINAL_FLAG: True, RESULT_KEYS: ["best_val_top3"]}
    recorder.on_trial_complete(0, [], SimpleNamespace(trial_id="ray-1", last_result=result))
    writer.flush()
    assert study.trials[0].value == 0.95 and recorder.target_reached
    assert target_met(study.user_attrs)["trial"] == 0


def test_epochs_trained_reads_the_last_report_or_epochs_run() -> None:
    study = optuna.create_study()
    reported = study.ask({"x": X})
    for epoch in (1, 2, 5):
        reported.report(0.1, epoch)
    study.tell(reported, state=TS.PRUNED)
    silent = study.ask({"x": X})
    silent.set_user_attr(attrs.EPOCHS_RUN, 4)
    study.tell(silent, state=TS.PRUNED)
    nothing = study.ask({"x": X})
    study.tell(nothing, state=TS.FAIL)
    assert [epochs_trained(t) for t in study.trials] == [5, 4, 0]


def test_the_record_reads_back_and_prints_in_one_line() -> None:
    record = {"trial": 7, "trial_epochs": 212, "wall_seconds": 185.4, "trials": 9}
    assert target_met({TARGET_MET: record}) == record
    assert target_met({}) is None and target_met({TARGET_MET: {"trial": 7}}) is None
    assert target_met({TARGET_MET: "yesterday"}) is None
    assert describe_target_met(record) == "#7 after 212 trial-epochs, 3m05s wall, 9 trials"
    assert [clock(s) for s in (4.4, 59.6, 185, 3725)] == ["4s", "1m00s", "3m05s", "1h02m"]


# --------------------------------------------------------------------------------------------------------------
# where it shows: the final table, sweeper status, the report
def test_final_table_status_and_report_say_when_the_target_was_met(storage_url: str, capsys) -> None:
    from search_spaces.loader import load_spec, resolve_space_path
    from storage.report import build_report
    from sweeper import inspection
    from sweeper.progress import SweepPrinter

    study, met = sweep_like_study(storage_url)
    record = record_target_met(study, met)
    assert record is not None
    line = f"first met by {describe_target_met(record)}"
    spec = load_spec(resolve_space_path("spaces/asl20.yaml"), (f"name={study.study_name}",))
    SweepPrinter(spec).final_table(study)
    assert f"time to target: {line}" in capsys.readouterr().out

    storage = open_storage(storage_url, create=False)
    try:
        inspection.status(storage, storage_url, study.study_name)
        assert f"time to target, {study.study_name}: {line}" in capsys.readouterr().out
        view = inspection.load_view(storage, study.study_name, storage_url)
        page = build_report(view, url=storage_url)
    finally:
        close_storage(storage)
    summary = page[page.index('id="summary"'):page.index('id="history"')]
    assert re.search(r"<th>time to target</th><td>#3 after 9 trial-epochs, \d+s wall, 4 trials</td>", summary)
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def test_final_table_names_a_trial_that_met_the_target_below_the_best_validation_scores(capsys) -> None:
    """The best validation Top-3 is not always the trial that met the test target (make run, 2026-12-01)."""
    from search_spaces.loader import load_spec
    from sweeper.progress import SweepPrinter

    spec = load_spec("spaces/asl20.yaml")
    study = optuna.create_study(direction="maximize")
    for number, (val, test) in enumerate([(0.90, 0.82), *((0.91 + i / 100, 0.76) for i in range(5))]):
        trial = study.ask({"x": X})
        trial.set_user_attr("test_top3", test)
        study.tell(trial, val)
        assert trial.number == number
    SweepPrinter(spec).final_table(study, top=5)
    out = capsys.readouterr().out
    assert "targets first met by #0\n" in out and "not met" not in out  # the best one meeting them too
    assert "#0 (target met)" in out and out.index("#5") < out.index("#1 ") < out.index("#0 (target met)")


@pytest.mark.parametrize("columns", [200, 80, 60, 40])
def test_final_table_fits_the_terminal_and_keeps_every_param_whole(columns: int, capsys, monkeypatch) -> None:
    """Where the longest param does not fit whole in a column (60 columns), the params go under the table."""
    from search_spaces.loader import load_spec
    from sweeper.console import console, format_params
    from sweeper.progress import SweepPrinter

    monkeypatch.setattr(console, "width", columns)
    spec = load_spec("spaces/asl20.yaml")
    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.RandomSampler(seed=1))
    study.enqueue_trial({"label_smoothing": 0.1418, "warmup_epochs": 0.3416, "weight_decay": 1.03e-4})
    for _ in range(3):
        trial = study.ask(spec.distributions())
        trial.set_user_attr("test_top3", 0.5)
        study.tell(trial, 0.6)
    SweepPrinter(spec).final_table(study)
    out = capsys.readouterr().out
    table = out[out.index("┏"):out.index("┘") + 1]
    assert max(map(len, table.splitlines())) <= columns, table
    for trial in study.trials:
        for word in format_params(trial.params).split():  # each param whole on one line, in the table or under it
            assert any(word in line.replace("│", " ").split() for line in out.splitlines()), (word, out)
    assert ("#0: label_smoothing=0.1418 " in out) == (columns < 80), out
    # a terminal wraps a line wider than itself anywhere, inside a param too: rich wraps them between two
    assert max(len(line) for line in out.splitlines() if not line.startswith("best trials of")) <= columns, out


def test_final_table_title_names_only_what_the_space_compares_with(capsys) -> None:
    """A space with targets and no baseline was titled "against targets and baseline" all the same."""
    from search_spaces.loader import load_spec
    from sweeper.progress import SweepPrinter

    study = optuna.create_study(direction="maximize")
    trial = study.ask(load_spec("spaces/asl20.yaml").distributions())
    study.tell(trial, 0.6)
    for overrides, title in [((), "against targets and baseline"), (("baseline=null",), "against targets\n"),
                             (("baseline=null", "targets={}"), f"best trials of {study.study_name}\n")]:
        SweepPrinter(load_spec("spaces/asl20.yaml", overrides)).final_table(study)
        lines = capsys.readouterr().out.splitlines()  # rich 13.8 (setup.cfg's floor) pads a title to its table's width
        assert title in "".join(f"{line.rstrip()}\n" for line in lines)


def test_final_table_status_and_report_name_the_first_and_the_best_trial_meeting_the_targets(tmp_path, capsys) -> None:
    """#1 meets the target first, #3 (better on validation) later: every place names both, in the same words."""
    from search_spaces.loader import load_spec
    from storage.report import build_report
    from sweeper import inspection
    from sweeper.progress import SweepPrinter

    url = f"sqlite:///{tmp_path / 's.db'}"
    spec = load_spec("spaces/asl20.yaml", ("name=both",))
    study = optuna.create_study(storage=url, study_name="both", direction="maximize")
    study.set_user_attr(attrs.TARGETS, dict(spec.targets))
    study.set_user_attr(attrs.OBJECTIVE, attrs.objective_attr("val_top3", "maximize"))
    for val, test in ((0.5, 0.6), (0.7, 0.81), (0.6, 0.7), (0.8, 0.82)):
        trial = study.ask({"x": X})
        trial.set_user_attr("test_top3", test)
        study.tell(trial, val)
    record_target_met(study, study.trials[1])
    words = "first met by #1; best trial meeting them: #3"
    SweepPrinter(spec).final_table(study)
    out = capsys.readouterr().out
    assert f"targets {words}\n" in out and "time to target: first met by #1 after" in out
    storage = open_storage(url, create=False)
    inspection.status(storage, url, "both")
    close_storage(storage)
    cell = " ".join(line.split("│")[4].strip() for line in capsys.readouterr().out.splitlines()
                    if line.count("│") > 4 and line.split("│")[4].strip())
    assert cell.endswith(f") {words}")  # the target's line, then the cell's last two: the same words
    page = build_report(inspection.view_of(study), url=url)
    assert f"<th>targets met</th><td>{words}</td>" in page


def test_trial_lines_of_a_resumed_sweep_count_the_studys_best_and_gaps_in_the_metrics_unit(capsys) -> None:
    from search_spaces.loader import load_spec
    from sweeper.progress import SweepPrinter

    spec = load_spec("spaces/asl20.yaml", ("targets={test_top3: 80%, test_loss: 1.5}",))
    study = optuna.create_study(direction="maximize")
    for val in (0.9, 0.5):
        trial = study.ask({"x": X})
        trial.set_user_attr("test_loss", 1.25)
        trial.set_user_attr("test_top3", 0.7013)
        study.tell(trial, val)
    earlier, latest = study.get_trials()
    SweepPrinter(spec, [earlier]).trial_finished(latest)  # the run resumed after #0
    line = " ".join(capsys.readouterr().out.split())
    assert "val_top3 50.00% best 90.00%" in line
    # the gap in words: a plain -0.25 would read as a miss, but a loss below its target beats it
    assert "test_top3 70.13% (target 80.00%, 9.87 pts short)" in line
    assert "test_loss 1.25 (target 1.5, beats by 0.25)" in line
    failed = study.ask({"x": X})  # one line per trial, which grep '^#' finds whole: an error's first line
    failed.set_user_attr("error", "ValueError: x too big\nsecond line of the message")
    study.tell(failed, state=optuna.trial.TrialState.FAIL)
    SweepPrinter(spec).trial_finished(study.get_trials()[-1])
    printed = capsys.readouterr().out
    assert len(printed.splitlines()) == 1 and "error: ValueError: x too big " in printed and "x=" in printed, printed
    pruned = study.ask({"x": X})  # a PRUNED trial meets no target (its values are an epoch's, not a test)
    pruned.set_user_attr("test_top3", 0.9)
    study.tell(pruned, state=optuna.trial.TrialState.PRUNED)
    SweepPrinter(spec).trial_finished(study.get_trials()[-1])
    assert "target" not in capsys.readouterr().out
    from sweeper.console import format_value

    assert [format_value("test_top3", v) for v in (float("nan"), float("inf"), 0.5)] == ["nan", "inf", "50.00%"]
    # a target on the objective: its value once, with the target (it was printed twice)
    SweepPrinter(load_spec("spaces/asl20.yaml", ("targets={val_top3: 80%}",)), [earlier]).trial_finished(latest)
    line = " ".join(capsys.readouterr().out.split())
    assert line.startswith("#1 COMPLETE val_top3 50.00% (target 80.00%, 30.00 pts short) best 90.00% x="), line


def test_report_history_shares_one_trial_axis_and_fades_pruned_trials(storage_url: str) -> None:
    from storage.report import build_report
    from sweeper import inspection

    study, _ = sweep_like_study(storage_url)
    storage = open_storage(storage_url, create=False)
    try:
        page = build_report(inspection.load_view(storage, study.study_name, storage_url), url=storage_url)
    finally:
        close_storage(storage)
    figures = _figures(page)
    objective, target = figures["fig-history-val_top3"], figures["fig-history-test_top3"]
    assert objective["layout"]["xaxis"]["range"] == target["layout"]["xaxis"]["range"] == [-0.5, 3.5]
    pruned = next(t for t in objective["data"] if t["name"] == "PRUNED (last rung)")
    assert pruned["x"] == [1] and pruned["y"] == [pytest.approx(0.3)] and pruned["opacity"] < 1
    assert "PRUNED at epoch 1" in pruned["text"][0]
    best = next(t for t in objective["data"] if t["name"] == "best so far")
    assert best["x"] == [0, 3] and best["y"] == [pytest.approx(0.6), pytest.approx(0.9)]  # PRUNED never "best"
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=study.study_name, storage=storage_url)


def _figures(page: str) -> dict[str, dict]:
    """The report's embedded figures: ``<script type="application/json" data-figure="DIV">JSON</script>``."""
    found = re.findall(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', page, re.S)
    return {div: json.loads(text) for div, text in found}


def test_a_target_on_a_users_metric_is_judged_the_way_its_name_says() -> None:
    """A minimized objective (loss) with a target on accuracy: 10% accuracy does not meet a 90% target."""
    from storage.view import targets_met
    from sweeper.inspection import view_of
    from trials.entrypoint import metric_direction

    def direction(metric: str) -> str:
        return metric_direction(metric, "minimize")

    assert [direction(m) for m in ("test_acc", "val_err", "widgets")] == ["maximize", "minimize", "minimize"]
    assert not targets_met({"test_acc": 0.1}, {"test_acc": 0.9}, direction)
    assert targets_met({"test_acc": 0.95, "val_err": 0.05}, {"test_acc": 0.9, "val_err": 0.1}, direction)
    assert [metric_direction(m, "maximize") for m in ("top5_acc", "error_score", "val_loss")] == \
        ["maximize", "maximize", "minimize"]  # both ways: the fallback; the core's own names as the core says
    # topN only says which accuracy or error; camelCase names have words too (a top-1 error of 0.40 met 25% before)
    assert [direction(m) for m in ("top1_err", "test_top5_error", "top3", "testAccuracy", "valF1", "trainLoss")] \
        == ["minimize", "minimize", "maximize", "maximize", "maximize", "minimize"]
    assert [direction(m) for m in ("mAP", "val_mAP", "mAP@0.5", "IoU", "valIoU", "nDCG@10")] == ["maximize"] * 6
    # a time is smaller-is-better; MS-SSIM, which says ms, is no time (a 0.5 "beat" a 0.95 target)
    assert [metric_direction(m, "maximize") for m in ("latency_ms", "p99Latency", "latency_p95", "ms_per_step",
                                                      "ms_ssim", "val_ms_ssim", "psnr")] == \
        ["minimize"] * 4 + ["maximize"] * 3
    assert not targets_met({"test_top1_err": 0.4}, {"test_top1_err": 0.25}, lambda m: metric_direction(m, "maximize"))
    study = optuna.create_study(direction="minimize")
    study.set_user_attr(attrs.OBJECTIVE, {"metric": "score", "direction": "minimize"})
    assert view_of(study).direction("test_acc") == "maximize"


def test_only_accuracies_are_taken_for_percentages():
    """A metric that merely holds "acc" (grad_accum_steps = 4) got the warning to report it / 100."""
    from storage.view import percent_scale

    assert percent_scale("val_acc", 45.5) and percent_scale("test_top3", 80) and percent_scale("Test_Accuracy", 2)
    assert not percent_scale("grad_accum_steps", 4) and not percent_scale("samples_accumulated", 180)
    assert not percent_scale("val_acc", 0.455) and not percent_scale("stop3", 5)


def test_every_accuracy_prints_as_the_percentage_its_target_was_written_as():
    """A target `val_acc: 80%` was stored as 0.8 (an accuracy by its name) but printed as 0.8, its gap as 0.099:
    only the core's top1/top3/top5 printed as percentages. One rule now says which metrics are fractions."""
    from sweeper.console import format_value, target_gap
    from trials.metrics import is_accuracy

    for metric in ("val_acc", "test_accuracy", "test_top10", "val_top3", "best_val_top3", "Val_Acc"):
        assert is_accuracy(metric) and format_value(metric, 0.8) == "80.00%", metric
    assert target_gap("val_acc", 0.701, 0.8, "maximize") == "9.90 pts short"
    for metric in ("grad_accum", "samples_accumulated", "stop3", "val_loss"):
        assert not is_accuracy(metric) and format_value(metric, 0.8) == "0.8", metric
    assert format_value("val_acc", 45.5) == "45.5"  # reported on another scale (the recorder warns): as it came


def test_a_nan_metric_is_no_comparison_not_short_of_its_target_or_baseline():
    """``test_err nan (target 0.15, nan short)`` in a run's line and ``nan pts short`` in sweeper best's vs baseline."""
    from sweeper.console import target_gap

    for direction in ("maximize", "minimize"):
        assert target_gap("test_err", math.nan, 0.15, direction) == "no comparison (nan)"
        assert target_gap("test_acc", math.nan, 0.8, direction) == "no comparison (nan)"
    assert target_gap("test_err", 0.1, 0.15, "minimize") == "beats by 0.05"


@pytest.mark.parametrize("columns", [30, 100])
def test_final_table_prints_every_param_of_a_value_with_control_characters(columns: int, capsys, monkeypatch) -> None:
    """A control character prints escaped (4 columns, not 0): params measured without that were wrapped too late,
    and the line under the table lost its end (``lr=1.00e-04 x=1`` printed as ``lr=1``)."""
    from sweeper import progress
    from sweeper.console import console

    monkeypatch.setattr(console, "width", columns)
    params = "opt=a\x1b\x1b\x1b b=2 lr=1.00e-04 x=1 y=2 z=3"
    progress._print_best_table("best trials", ["val_top3"], [("#0", ["14.29%"], params)])
    out = capsys.readouterr().out
    words = " ".join(line.replace("│", " ").strip() for line in out.splitlines()).split()
    for word in ["opt=a\\x1b\\x1b\\x1b", "b=2", "lr=1.00e-04", "x=1", "y=2", "z=3"]:
        assert word in words, (word, out)
    assert max(len(line) for line in out.splitlines()) <= columns, out
    assert len({len(line) for line in out.splitlines() if line[:1] in "┏┃┡│└"}) == 1, out  # its borders aligned


def test_train_seeds_count_the_seeds_that_reach_every_target_at_once() -> None:
    """Seed 1 meets test_top3 and seed 2 test_loss: "1 of 2" for each said nothing of whether either met both, which
    is what a trial of the sweep must do to meet the targets."""
    from sweeper.standalone import Standalone, target_lines

    run = Standalone("trials:run", {}, 3, {"test_top3": (0.8, "maximize"), "test_loss": (1.0, "minimize")}, "val_top3")
    results = [{"test_top3": 0.85, "test_loss": 1.2}, {"test_top3": 0.7, "test_loss": 0.9},
               {"test_top3": 0.82, "test_loss": 0.95}]
    lines = target_lines(run, results)
    assert lines[:2] == ["test_top3 >= 80.00%: 2 of 3 seeds reach it (mean 79.00%)",
                         "test_loss <= 1: 2 of 3 seeds reach it (mean 1.017)"]
    assert lines[2] == "every target: 1 of 3 seeds reach them all"
    one = Standalone("trials:run", {}, 3, {"test_top3": (0.8, "maximize")}, "val_top3")
    assert len(target_lines(one, results)) == 1  # one target: its own line says it


def test_an_accuracy_that_float32_rounds_below_its_target_meets_it() -> None:
    """285 of 300 is 95%, but ``(pred == y).float().mean().item()`` (spirals_fit.py, most training loops) gives
    0.949999988: every place said "95.00% (target 95.00%, 0.00 pts short)", not met, and no trial met 95%."""
    import torch

    from search_spaces.loader import load_spec
    from storage.view import targets_met
    from sweeper.console import target_gap
    from sweeper.recorder import meets_targets
    from sweeper.standalone import Standalone, target_lines

    acc = (torch.arange(300) < 285).float().mean().item()
    assert acc < 0.95 and targets_met({"test_acc": acc}, {"test_acc": 0.95}, lambda _: "maximize")
    assert target_gap("test_acc", acc, 0.95, "maximize") == "on target"
    loss = torch.tensor(0.3).item()  # 0.30000001192...: a minimised metric on its target too
    assert loss > 0.3 and targets_met({"val_loss": loss}, {"val_loss": 0.3}, lambda _: "minimize")
    assert not targets_met({"test_acc": 284 / 300}, {"test_acc": 0.95}, lambda _: "maximize")  # a real miss
    spec = load_spec("examples/own_function/spirals.yaml")
    assert spec.targets == {"test_acc": 0.95} and meets_targets(spec, {"test_acc": acc}, 0.9)
    run = Standalone("spirals_fit:fit", {}, 4, {"test_acc": (0.95, "maximize")}, "val_acc")
    assert target_lines(run, [{"test_acc": acc}]) == ["test_acc >= 95.00%: 1 of 1 seeds reach it (mean 95.00%)"]


def test_a_count_beside_its_target_is_shown_in_every_digit():
    """A function's throughput of 98765 against a target of 98760 both read 9.876e+04, "met" by a figure that looked
    like the target itself; a figure that is not whole keeps 4 significant digits."""
    from sweeper.console import format_value

    assert [format_value("throughput", v) for v in (98765.0, 98760.0, 1e5, -2.0**40)] == \
        ["98765", "98760", "100000", str(-2**40)]
    assert [format_value("throughput", v) for v in (98765.4, 1e20, 0.25)] == ["9.877e+04", "1e+20", "0.25"]
