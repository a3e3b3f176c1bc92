"""What sweeper reads of a study with many trials: the checks and pages that need a trial's last value, or whether
it has trials at all, must not load every trial's whole learning curve (Optuna's ``get_all_trials`` builds an ORM
object of each intermediate value: seconds for a study of thousands of trials, on every run and report).

Counted on a real database, not timed: the statements sent, and the intermediate values Optuna's ORM built.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections.abc import Iterator

import optuna
import pytest
import sqlalchemy as sa
from optuna.distributions import FloatDistribution, IntDistribution
from optuna.storages._rdb import models
from optuna.trial import TrialState

from storage import attrs
from storage.engine import close_storage, open_storage
from storage.studies import holds_trials

TRIALS, EPOCHS = 24, 30


@contextlib.contextmanager
def statements(storage: optuna.storages.RDBStorage) -> Iterator[list[str]]:
    """Every SQL statement ``storage`` sends meanwhile."""
    sent: list[str] = []

    def record(conn, cursor, statement, parameters, context, executemany) -> None:
        sent.append(statement)

    sa.event.listen(storage.engine, "before_cursor_execute", record)
    try:
        yield sent
    finally:
        sa.event.remove(storage.engine, "before_cursor_execute", record)


@contextlib.contextmanager
def curve_points_loaded() -> Iterator[list[int]]:
    """How many intermediate values Optuna's ORM made objects of meanwhile (one count per object)."""
    loaded: list[int] = []

    def count(target, context) -> None:
        loaded.append(1)

    sa.event.listen(models.TrialIntermediateValueModel, "load", count)
    try:
        yield loaded
    finally:
        sa.event.remove(models.TrialIntermediateValueModel, "load", count)


def fill(study: optuna.Study) -> None:
    """TRIALS trials of EPOCHS reports each, as a sweep records them; every third PRUNED halfway."""
    distributions = {"x": FloatDistribution(0.0, 1.0), "width": IntDistribution(8, 64)}
    for number in range(TRIALS):
        x = number / TRIALS
        stop = EPOCHS // 2 if number % 3 == 2 else EPOCHS
        pruned = stop < EPOCHS
        study.add_trial(optuna.trial.create_trial(
            state=TrialState.PRUNED if pruned else TrialState.COMPLETE, value=None if pruned else x,
            params={"x": x, "width": 8 + number}, distributions=distributions,
            user_attrs={attrs.EPOCHS_RUN: stop, **({} if pruned else {"test_acc": x})},
            intermediate_values={epoch: x * epoch / EPOCHS for epoch in range(1, stop + 1)}))


@pytest.fixture
def big_study(storage_url: str) -> Iterator[tuple[optuna.storages.RDBStorage, optuna.Study]]:
    storage = open_storage(storage_url)
    try:
        study = optuna.create_study(study_name=f"big-{uuid.uuid4().hex[:8]}", storage=storage, direction="maximize")
        study.set_user_attr(attrs.SPEC, {"name": study.study_name})
        study.set_user_attr(attrs.OBJECTIVE, {"metric": "val_acc", "direction": "maximize"})
        study.set_user_attr(attrs.TARGETS, {"test_acc": 0.9})
        fill(study)
        yield storage, study
    finally:
        close_storage(storage)


def test_a_resumed_studys_spec_is_checked_without_reading_its_trials_curves(big_study) -> None:
    """``sweeper run`` of an existing study asked ``get_n_trials`` whether it held trials, which loaded every
    trial's every epoch (3.8 s for 2,000 trials of up to 50 epochs) before the sweep started."""
    from sweeper.preflight import stored_spec_attr

    storage, study = big_study
    with statements(storage) as sent:
        assert stored_spec_attr(storage, study.study_name) == ({"name": study.study_name}, True, None)
    assert not [s for s in sent if "trial_intermediate_values" in s]
    assert len([s for s in sent if "trials" in s]) == 1  # the one row of trial #0
    empty = optuna.create_study(study_name=f"empty-{uuid.uuid4().hex[:8]}", storage=storage)
    assert holds_trials(storage, empty._study_id) is False
    assert holds_trials(storage, study._study_id) is True


def test_the_report_reads_whole_curves_of_its_top_trials_only(big_study, storage_url: str) -> None:
    """Optuna's parallel coordinates, slices and importances were given the stored study, and read every trial
    again with its whole learning curve (4.6 s of a 6.6 s report of 2,000 trials): they draw the trials the report
    has read already, with every trial's number as stored (the slice plots colour by it)."""
    from storage.report import build_report
    from sweeper.inspection import load_view

    storage, study = big_study
    with curve_points_loaded() as loaded:
        page = build_report(load_view(storage, study.study_name, storage_url), url=storage_url, top=3)
    assert 0 < len(loaded) <= 3 * EPOCHS  # the top 3's learning curves; every trial's would be 600
    figures = dict(re.findall(r'<script type="application/json" data-figure="([^"]+)">(.*?)</script>', page, re.S))
    assert {"fig-parallel-coordinates", "fig-importances", "fig-slices"} <= set(figures)
    complete = sorted(t.number for t in study.get_trials(states=(TrialState.COMPLETE,)))
    for trace in json.loads(figures["fig-slices"])["data"]:
        assert sorted(trace["marker"]["color"]) == complete


def test_the_dashboard_reads_again_only_the_trials_new_or_unfinished_since(big_study) -> None:
    """optuna-dashboard reads a polled study's trials again every 10 s (2 s under 100 trials): from the bare
    RDBStorage, every trial with its whole curve each time (2 to 4 s of CPU per 2,000 trials, beside the sweep).
    Read through Optuna's trial cache, a poll fetches what is new; the page still gets every trial."""
    import io
    import time
    from wsgiref.util import setup_testing_defaults

    from sweeper.dashboard import dashboard_app

    storage, study = big_study
    app = dashboard_app(storage)

    def trials_served() -> list[dict]:
        environ = {"PATH_INFO": f"/api/studies/{study._study_id}", "QUERY_STRING": "after=0"}
        setup_testing_defaults(environ)
        statuses: list[str] = []

        def start_response(status: str, headers: list, exc_info: object = None) -> object:
            statuses.append(status)
            return io.BytesIO().write

        body = b"".join(app(environ, start_response))
        assert statuses == ["200 OK"], body[:300]
        return json.loads(body)["trials"]

    with curve_points_loaded() as first:
        assert len(trials_served()) == TRIALS
    assert len(first) > TRIALS * EPOCHS // 2  # the first read is whole
    time.sleep(2.2)  # past optuna-dashboard's own cache of a study under 100 trials
    sweep = optuna.load_study(study_name=study.study_name, storage=storage)  # a sweep's new trial meanwhile
    sweep.add_trial(optuna.trial.create_trial(
        value=0.5, params={"x": 0.5}, distributions={"x": FloatDistribution(0.0, 1.0)},
        intermediate_values={1: 0.25, 2: 0.5}))
    with curve_points_loaded() as again:
        served = trials_served()
    assert len(served) == TRIALS + 1
    assert served[-1]["intermediate_values"] == [{"step": 1, "value": 0.25}, {"step": 2, "value": 0.5}]
    # the new trial's two epochs, not every trial's again; Optuna before 5 (setup.cfg's floor is 4.5) reads one
    # finished trial's curve again too
    assert len(again) == 2 or (int(optuna.__version__.split(".")[0]) < 5 and len(again) == 2 + EPOCHS), len(again)


def test_status_of_an_interrupted_study_reads_no_trials_whole_curve(big_study, storage_url: str, capsys) -> None:
    """``sweeper status`` of a study with RUNNING trials asked whether their driver was gone through Optuna's trial
    cache, which loads every trial with its whole learning curve (3 s for 2,000 trials of 30 epochs): it asks of
    the trials the status has read already, each with its last value only."""
    from storage.resume import Driver, own
    from sweeper.inspection import status

    storage, study = big_study
    gone = Driver.current()
    own(study.ask({"x": FloatDistribution(0.0, 1.0)}), Driver(gone.host, gone.pid, -1))  # its pid another's: died
    for fmt in ("table", "json"):
        capsys.readouterr()
        with curve_points_loaded() as loaded:
            status(storage, storage_url, study.study_name, fmt)
        assert not loaded, fmt
        said = capsys.readouterr().out
        if fmt == "json":
            assert json.loads(said)["studies"][0]["interrupted_trials"] == [TRIALS]
        else:
            assert "(interrupted)" in said and f"interrupted: #{TRIALS} was running" in " ".join(said.split()), said


def test_status_of_many_studies_reads_the_schema_once(big_study, storage_url: str) -> None:
    """``storage.reading`` reflected Optuna's six tables for every study it read: ``sweeper status`` of a storage of
    50 studies sent 4,100 statements on SQLite, 3,300 of them asking the database its schema again."""
    from storage.reading import trials_with_last_values

    storage, study = big_study
    trials_with_last_values(storage, study)
    other = optuna.create_study(study_name=f"other-{uuid.uuid4().hex[:8]}", storage=storage)
    with statements(storage) as sent:
        assert len(trials_with_last_values(storage, other)) == 0
        assert len(trials_with_last_values(storage, study)) == TRIALS
    assert len(sent) == 2 * 7  # each: the study's id, then its trials and their values, params, attrs, last values
