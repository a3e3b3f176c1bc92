"""Interrupted sweeps resume without losing or repeating finished work: real drivers killed for real.

The training function is tests/fixtures/resumable_train.py: it checkpoints each epoch like the real core, records
the pid of every process that runs it, and says from which epoch it continued.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
import warnings
from datetime import datetime, timedelta
from pathlib import Path

import optuna
import pytest
from forked_cli import run_command

from search_spaces.errors import SpecError
from search_spaces.schema import Spec
from storage import attrs
from storage.engine import close_storage, open_storage
from storage.errors import StorageError
from storage.resume import GRACE_PERIOD_S, Driver, orphaned_trials, record_heartbeat
from storage.studies import create_or_load_study, spec_changes
from storage.urls import is_sqlite
from sweeper.driver import open_study, run_sweep
from sweeper.preflight import SweepOptions, prepare

FIXTURES = Path(__file__).parent / "fixtures"
TS = optuna.trial.TrialState
EPOCHS = 6


def resumable_space(folder: Path, *, trials: int, sleep: float, extra: str = "") -> Path:
    path = folder / "resumable.yaml"
    path.write_text(textwrap.dedent(f"""\
        name: resumable-{uuid.uuid4().hex[:8]}
        entrypoint: resumable_train:train
        objective: {{metric: score, direction: maximize}}
        training: {{epochs: {EPOCHS}, sleep: {sleep}}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        sampler: {{type: tpe, seed: 3}}
        budget: {{trials: {trials}, max_concurrent: 2}}
        resources: {{cpu: 1}}
        """) + extra)
    (folder / "resumable_train.py").write_text((FIXTURES / "resumable_train.py").read_text())
    return path


def study_name(space: Path) -> str:
    return space.read_text().split("name: ")[1].split()[0]


def study_checkpoints(folder: Path, name: str) -> Path:
    """The study's checkpoint folder, STUDY-KEY (the study attr ``checkpoints``), once its sweep made it."""
    found = list((folder / "runs" / "checkpoints").glob(f"{name}-{'?' * 8}"))
    return found[0] if found else folder / "runs" / "checkpoints" / f"{name}-not-yet"


def checkpoint_folder(folder: Path, name: str, number: int) -> Path:
    return study_checkpoints(folder, name) / f"trial-{number:05d}"


def checkpointed_epoch(folder: Path, name: str, number: int) -> int:
    state = checkpoint_folder(folder, name, number) / "state.json"
    return json.loads(state.read_text())["epoch"] if state.exists() else 0


def worker_pids(folder: Path, name: str) -> set[int]:
    root = study_checkpoints(folder, name)
    return {int(pid) for pids in root.glob("*/pids") for pid in pids.read_text().split()}


def alive(pids: set[int]) -> set[int]:
    living = set()
    for pid in pids:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        stat = Path(f"/proc/{pid}/stat")
        if stat.exists() and stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            continue  # a zombie has stopped; only its parent's wait is missing
        living.add(pid)
    return living


def sweeper_cli(*args: str, cwd: Path) -> subprocess.Popen:
    """``sweeper ...`` in its own session and process group, as a user's shell runs it."""
    return subprocess.Popen([sys.executable, "-m", "sweeper.cli", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200"})


INTERRUPTIONS = {
    "kill -9 of the driver's process group": signal.SIGKILL,
    "Ctrl-C": signal.SIGINT,
}


@pytest.mark.slow
@pytest.mark.parametrize(("storage_url", "how"), [  # Ctrl-C is the driver's own doing: SQLite covers it
    ("sqlite", "kill -9 of the driver's process group"),
    ("sqlite", "Ctrl-C"),
    pytest.param("postgres", "kill -9 of the driver's process group", marks=pytest.mark.postgres),
], indirect=["storage_url"])
def test_interrupted_sweep_resumes_without_losing_or_repeating_trials(tmp_path, storage_url, how):
    """Kill a sweep mid-trial, check its workers stop, resume it, check exactly what ran."""
    space = resumable_space(tmp_path, trials=6, sleep=0.05)
    gate = tmp_path / "gate"  # trials #2 on wait after their first epoch until it exists: killed mid-trial, no race
    space.write_text(space.read_text().replace("sleep: 0.05}", f"sleep: 0.05, gate: {json.dumps(str(gate))}, "
                                               "gate_from: 2}"))
    name = study_name(space)
    proc = sweeper_cli("run", str(space), "--storage", storage_url, "--results-dir", "runs", cwd=tmp_path)
    completed = 0
    deadline = time.time() + 180
    assert proc.stdout is not None
    for line in proc.stdout:  # wait until two trials are finished and two more are in flight
        completed += "COMPLETE" in line
        if completed >= 2 or time.time() > deadline:
            break
    study = optuna.load_study(study_name=name, storage=storage_url)
    while time.time() < deadline:  # ... and both of those wait at the gate, past their first checkpoint
        running = study.get_trials(states=(TS.RUNNING,))
        if len(running) == 2 and all(checkpointed_epoch(tmp_path, name, t.number) >= 1 for t in running):
            break
        time.sleep(0.1)
    os.killpg(proc.pid, INTERRUPTIONS[how])
    code = proc.wait(timeout=60)
    assert code == (130 if how == "Ctrl-C" else -signal.SIGKILL), proc.stdout.read()

    # No worker trains on as an orphan (holding a GPU) after its driver is gone.
    workers = worker_pids(tmp_path, name)
    deadline = time.time() + 30
    while alive(workers) and time.time() < deadline:
        time.sleep(0.5)
    assert not alive(workers), f"workers {alive(workers)} outlived their driver by 30 s"

    before = {t.number: t for t in study.get_trials()}
    finished = {n for n, t in before.items() if t.state.is_finished()}
    interrupted = {n: checkpointed_epoch(tmp_path, name, n) for n, t in before.items() if t.state == TS.RUNNING}
    assert len(finished) >= 2 and interrupted, before
    assert max(interrupted.values()) >= 1

    shown = run_command(["status", name, "--storage", storage_url], tmp_path, {**os.environ, "COLUMNS": "300"}).stdout
    assert "interrupted: " + ", ".join(f"#{n}" for n in sorted(interrupted)) in shown, shown
    its, them = ("its", "it") if len(interrupted) == 1 else ("their", "them")
    assert f"running when {its} driver stopped; sweeper resume {name} --storage {storage_url} carries {them} on" in \
        " ".join(shown.split()), shown
    narrow = run_command(["status", "--storage", storage_url], tmp_path, {**os.environ, "COLUMNS": "80"}).stdout
    assert "(interrupted)" in narrow, narrow  # a terminal's default width cuts no word of the table

    gate.touch()
    if not is_sqlite(storage_url):  # works from the database alone: Ray's results folder is only a cache
        shutil.rmtree(tmp_path / "runs" / "ray")
        again = sweeper_cli("resume", name, "--storage", storage_url, "--results-dir", "runs", cwd=tmp_path)
    else:
        again = sweeper_cli("run", str(space), "--storage", storage_url, "--results-dir", "runs", cwd=tmp_path)
    output, _ = again.communicate(timeout=300)
    assert again.returncode == 0, output
    assert f"carrying on {len(interrupted)} trial{'' if len(interrupted) == 1 else 's'} whose" in output, output
    for number in interrupted:  # its folder holds a pids file at least
        assert f"#{number} (epoch {max(before[number].intermediate_values, default=0)} recorded)" in output, output

    after = {t.number: t for t in optuna.load_study(study_name=name, storage=storage_url).get_trials()}
    assert len(after) == 6 and all(t.state == TS.COMPLETE for t in after.values()), after
    for number in finished:  # finished work never re-ran
        assert after[number].datetime_complete == before[number].datetime_complete
        assert len((checkpoint_folder(tmp_path, name, number) / "pids").read_text().split()) == 1
    for number, epoch in interrupted.items():  # in-flight work continued from its checkpoint, same params
        trial = after[number]
        assert trial.params == before[number].params
        assert trial.user_attrs["resumed_from_epoch"] == epoch
        assert trial.user_attrs[attrs.RESUMED] == 1
        assert sorted(trial.intermediate_values) == list(range(1, EPOCHS + 1))
    assert len({t.params["x"] for t in after.values()}) == 6  # no trial sampled twice
    if is_sqlite(storage_url):  # the .db file alone holds the study: copying just it loses nothing
        copy = tmp_path / "copy" / "sweeps.db"
        copy.parent.mkdir()
        shutil.copyfile(tmp_path / "sweeps.db", copy)
        copied = optuna.load_study(study_name=name, storage=f"sqlite:///{copy}").get_trials()
        assert [t.state for t in copied] == [TS.COMPLETE] * 6
    else:
        optuna.delete_study(study_name=name, storage=storage_url)


@pytest.mark.slow
def test_killed_worker_is_retried_from_its_checkpoint_and_budget_can_grow(ray_session, tmp_path, monkeypatch,
                                                                          capsys):
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    space = resumable_space(tmp_path, trials=3, sleep=0.05, extra="enqueue: [{x: 0.95}]\n")
    space.write_text(space.read_text().replace("sleep: 0.05}", "sleep: 0.05, crash_above: 0.9, crash_epoch: 3}"))
    options = SweepOptions(space=str(space), storage=url, results_dir="runs", max_failures=1)
    study = run_sweep(options)
    trials = study.get_trials()
    assert [t.state for t in trials] == [TS.COMPLETE] * 3
    crashed = trials[0]
    assert crashed.params["x"] == 0.95
    assert crashed.user_attrs["resumed_from_epoch"] == 2  # the retry continued after the last checkpoint
    pids = (checkpoint_folder(tmp_path, study.study_name, 0) / "pids").read_text().split()
    assert len(set(pids)) == 2  # the worker process really died and another one took over
    assert sorted(crashed.intermediate_values) == list(range(1, EPOCHS + 1))

    capsys.readouterr()
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir="runs", overrides=("budget.trials=2",)))
    assert "nothing left to run: the study has 3 trials, and budget.trials is 2 (raise it for more: --set " \
           "budget.trials=N)" in capsys.readouterr().out
    grown = run_sweep(SweepOptions(space=str(space), storage=url, results_dir="runs",
                                   overrides=("budget.trials=5",)))
    after = grown.get_trials()
    assert len(after) == 5 and all(t.state == TS.COMPLETE for t in after)
    assert [t.datetime_complete for t in after[:3]] == [t.datetime_complete for t in trials]
    assert grown.user_attrs["spec"]["budget"]["trials"] == 5  # `sweeper resume` now continues to 5


def test_a_changed_space_is_refused_and_fresh_starts_a_new_study(tmp_path):
    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec, _ = prepare(SweepOptions(space=str(space), storage=url))
    open_study(spec, url, str(space))
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage", url,
                           "--set", "training.epochs=9", "--set", "params.x.high=2"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert proc.returncode == 2, proc.stderr
    message = " ".join(proc.stderr.split())
    assert "training.epochs: 6 -> 9" in message and "params.x.high: 1.0 -> 2" in message, message
    assert "--fresh" in message and "Traceback" not in message
    assert f"continue the study as it was: sweeper resume {spec.name} --storage {url}" in message, message
    study = optuna.load_study(study_name=spec.name, storage=url)
    assert study.user_attrs["spec"]["training"]["epochs"] == EPOCHS and not study.trials

    more, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("budget.trials=9",)))
    assert more.name == spec.name  # a bigger budget resumes the same study
    fresh, _ = prepare(SweepOptions(space=str(space), storage=url, fresh=True))
    assert fresh.name == f"{spec.name}-2"
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == [spec.name]  # nothing written yet


def own_space(module: str) -> str:
    """A space for the function ``module:fit``, tuning its lr."""
    return f"entrypoint: {module}:fit\nobjective: {{metric: acc, direction: maximize}}\n" \
           "params:\n  lr: {type: float, low: 0.01, high: 1}\nbudget: {trials: 2}\n"


def add_finished_trial(study: optuna.Study) -> None:
    study.add_trial(optuna.trial.create_trial(params={"lr": 0.5}, value=0.5,
                                              distributions={"lr": optuna.distributions.FloatDistribution(0.01, 1)}))


def study_with_one_trial(space: str, url: str) -> Spec:
    """What a first run of ``space`` leaves: its study, holding one finished trial."""
    spec, _ = prepare(SweepOptions(space=space, storage=url))
    add_finished_trial(open_study(spec, url, space)[0])
    return spec


def test_a_default_of_the_function_changed_since_the_study_ran_is_refused_unless_the_space_sets_it(tmp_path,
                                                                                                   monkeypatch):
    """A setting the space leaves out trains at the function's fit.settings default, which its config does not hold:
    a default changed between two runs resumed the study silently, its new trials trained at the new default
    beside the first ones (``run`` and ``resume`` alike). Written into the training block, the study goes on."""
    monkeypatch.chdir(tmp_path)
    module = f"defaults_fit_{uuid.uuid4().hex[:8]}"
    code = "def fit(config, report, checkpoint_dir):\n    return {}\n\nfit.settings = {'lr': 0.1, 'noise': %s}\n"
    (tmp_path / f"{module}.py").write_text(code % "0.5")
    space = tmp_path / "own.yaml"
    space.write_text(own_space(module))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec = study_with_one_trial(str(space), url)
    (tmp_path / f"{module}.py").write_text(code % "0.9")
    monkeypatch.delitem(sys.modules, module)  # the function as it is now, as a new process imports it
    said = f"trained the settings its space leaves out at {module}:fit's defaults, which it declares otherwise " \
           "now (noise: 0.5 -> 0.9); carrying it on would mix two experiments"
    with pytest.raises(StorageError, match=re.escape(said)):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("budget.trials=4",)))
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", spec.name, "--storage", url], cwd=tmp_path,
                          capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert proc.returncode == 2 and said in " ".join(proc.stderr.split()), proc.stderr
    pinned, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("training.noise=0.5",)))
    assert pinned.base_config()["noise"] == 0.5 and pinned.name == spec.name
    assert optuna.load_study(study_name=spec.name, storage=url).user_attrs["defaults"] == {"lr": 0.1, "noise": 0.5}


def test_a_setting_the_study_wrote_whose_default_became_its_value_may_leave_the_space(tmp_path, monkeypatch):
    """The study's space wrote noise: 0.9 (its trials trained at 0.9, not at the default 0.5); the default became
    0.9 and the line went: the same experiment, refused as a default changed for a setting the space leaves out."""
    monkeypatch.chdir(tmp_path)
    module = f"written_fit_{uuid.uuid4().hex[:8]}"
    code = "def fit(config, report, checkpoint_dir):\n    return {}\n\nfit.settings = {'lr': 0.1, 'noise': %s}\n"
    (tmp_path / f"{module}.py").write_text(code % "0.5")
    head = own_space(module)
    space = tmp_path / "own.yaml"
    space.write_text(head + "training: {noise: 0.9}\n")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec = study_with_one_trial(str(space), url)
    (tmp_path / f"{module}.py").write_text(code % "0.9")
    monkeypatch.delitem(sys.modules, module)
    space.write_text(head)
    again, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("budget.trials=4",)))
    assert again.name == spec.name
    (tmp_path / f"{module}.py").write_text(code % "0.7")  # what the study ran (0.9) is no default now: refused
    monkeypatch.delitem(sys.modules, module)
    with pytest.raises(StorageError, match=re.escape("noise: 0.9 -> 0.7")):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("budget.trials=4",)))


def test_a_copied_project_whose_function_declares_a_path_of_its_folder_carries_its_study_on(tmp_path, monkeypatch):
    """fit.settings = {data: <its own folder>/data}: in a copy of the project (cp -a, its SQLite file with it) the
    default names the copy's data, as the study's folders do; it was refused as a default changed since the study
    ran ('/a/data' -> '/b/data'), by run and resume, with no way on but --fresh."""
    from sweeper.preflight import stored_spec

    module = f"folder_fit_{uuid.uuid4().hex[:8]}"
    first, copy = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    (first / f"{module}.py").write_text("from pathlib import Path\n\ndef fit(config, report, checkpoint_dir):\n"
                                        "    return {}\n\nfit.settings = {'lr': 0.1, "
                                        "'data': str(Path(__file__).parent / 'data')}\n")
    (first / "own.yaml").write_text(own_space(module))
    url = "sqlite:///sweeps.db"
    monkeypatch.chdir(first)
    spec = study_with_one_trial("own.yaml", url)
    assert optuna.load_study(study_name=spec.name, storage=url).user_attrs["defaults"]["data"] == \
        str(first.resolve() / "data")
    shutil.copytree(first, copy)
    monkeypatch.chdir(copy)
    monkeypatch.delitem(sys.modules, module)  # the copy's module, as a new process in it imports it
    again, _ = prepare(SweepOptions(space="own.yaml", storage=url, overrides=("budget.trials=4",)))
    assert again.name == spec.name
    assert stored_spec(url, spec.name).base_dir == str(copy.resolve())
    shared = f"sqlite:///{tmp_path / 'shared.db'}"  # one study for both checkouts, as a server's: each carries it on
    for folder in (first, copy, first):  # each in a process of its own: its folder's module, not the other's
        monkeypatch.chdir(folder)
        monkeypatch.delitem(sys.modules, module, raising=False)
        monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in (str(first.resolve()), str(copy.resolve()))])
        spec, _ = prepare(SweepOptions(space="own.yaml", storage=shared))
        study, _ = open_study(spec, shared, "own.yaml")
        if not study.trials:
            add_finished_trial(study)


def test_a_copied_project_whose_function_names_a_fixed_path_in_the_first_folder_carries_its_study_on(
        tmp_path, monkeypatch):
    """fit.settings = {data: '/srv/a/data'}, written out, not of its own folder: a copy of the project declares the
    same path, but the study's was moved under the copy ('/srv/b/data') and the copy was refused as a default changed
    since the study ran, which it was not. A default still as recorded stays as recorded."""
    from sweeper.preflight import stored_spec

    module = f"fixed_fit_{uuid.uuid4().hex[:8]}"
    first, copy = tmp_path / "a", tmp_path / "b"
    first.mkdir()
    (first / f"{module}.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n\n"
                                        f"fit.settings = {{'lr': 0.1, 'data': {str(first.resolve() / 'data')!r}}}\n")
    (first / "own.yaml").write_text(own_space(module))
    url = "sqlite:///sweeps.db"
    monkeypatch.chdir(first)
    spec = study_with_one_trial("own.yaml", url)
    shutil.copytree(first, copy)
    monkeypatch.chdir(copy)
    monkeypatch.delitem(sys.modules, module)  # the copy's module, as a new process in it imports it
    again, _ = prepare(SweepOptions(space="own.yaml", storage=url, overrides=("budget.trials=4",)))
    resumed, _ = open_study(again, url, "own.yaml")
    assert stored_spec(url, spec.name).name == spec.name
    assert resumed.user_attrs["defaults"]["data"] == str(first.resolve() / "data")


def test_a_study_of_the_same_name_that_another_program_made_is_not_taken_over(tmp_path):
    """Its trials would count in the sweep's budget and best (a best 'val_top3' of 435%), and its params clash."""
    from storage.errors import StorageError

    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = prepare(SweepOptions(space=str(space), storage=url))[0].name
    optuna.create_study(study_name=name, storage=url).optimize(lambda t: t.suggest_float("x", 0, 5), n_trials=2)
    with pytest.raises(StorageError, match="holds trials but no sweeper spec: another program made it"):
        prepare(SweepOptions(space=str(space), storage=url))
    study = optuna.load_study(study_name=name, storage=url)
    assert study.user_attrs == {} and len(study.trials) == 2
    assert prepare(SweepOptions(space=str(space), storage=url, fresh=True))[0].name == f"{name}-2"
    optuna.delete_study(study_name=name, storage=url)
    optuna.create_study(study_name=name, storage=url)  # as a driver killed before it wrote the spec leaves it
    assert prepare(SweepOptions(space=str(space), storage=url))[0].name == name


def test_a_removed_line_that_said_the_default_is_no_change(tmp_path):
    from search_spaces.loader import BUILTIN_DIR
    from storage.errors import StorageError

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    space = tmp_path / "asl20.yaml"
    space.write_text((BUILTIN_DIR / "asl20.yaml").read_text())
    spec, _ = prepare(SweepOptions(space=str(space), storage=url, quick=True))
    open_study(spec, url, str(space))
    space.write_text(space.read_text().replace("  grad_clip: 1.0\n", ""))  # the core's default
    assert prepare(SweepOptions(space=str(space), storage=url, quick=True))[0].name == spec.name
    with pytest.raises(StorageError, match=r"training.grad_clip: 1.0 -> 0.5"):
        prepare(SweepOptions(space=str(space), storage=url, quick=True, overrides=("grad_clip=0.5",)))


def test_a_sqlite_file_killed_between_optunas_tables_and_their_version_stamp_is_completed(tmp_path):
    """A kill -9 in a new sweep's first second: Optuna had created its tables, not stamped their version; every run
    after refused the file as "not a complete Optuna study database", for good."""
    import sqlalchemy
    from optuna.storages._rdb import models

    url = f"sqlite:///{tmp_path / 'cut.db'}"
    engine = sqlalchemy.create_engine(url)
    models.BaseModel.metadata.create_all(engine)
    engine.dispose()
    spec, _ = prepare(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=url))
    _, created = open_study(spec, url, None, tmp_path / "runs")
    assert created and optuna.load_study(study_name=spec.name, storage=url).user_attrs["spec"]


def test_resume_of_a_study_without_a_spec_names_the_way_that_works(tmp_path):
    """Another program's study (trials, no spec) cannot be carried on: resume said to run the space file, which run
    refuses too; one whose creator died before writing its spec can be run again from its space file."""
    from storage.errors import StorageError

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    other = optuna.create_study(study_name="other", storage=url)
    other.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)
    optuna.create_study(study_name="unwritten", storage=url)
    with pytest.raises(StorageError, match=r"another program made it.*sweeper run FILE --fresh, or --set name="):
        prepare(SweepOptions(study="other", storage=url))
    with pytest.raises(StorageError, match="holds no sweeper spec; run its space file with sweeper run instead"):
        prepare(SweepOptions(study="unwritten", storage=url))


def test_resume_takes_a_bigger_budget_but_refuses_a_changed_search(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # resume imports the study's own function only from its folder or above
    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec, _ = prepare(SweepOptions(space=str(space), storage=url))
    open_study(spec, url, str(space))
    more, _ = prepare(SweepOptions(study=spec.name, storage=url, overrides=("budget.trials=9",)))
    assert more.budget.trials == 9
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", spec.name, "--storage", url,
                           "--set", "params.x.high=2"], capture_output=True, text=True, cwd=tmp_path,
                          env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    message = " ".join(proc.stderr.split())
    assert "params.x.high: 1.0 -> 2" in message and "--fresh" in message, message
    study = optuna.load_study(study_name=spec.name, storage=url)
    assert study.user_attrs["spec"]["params"]["x"]["high"] == 1.0 and not study.trials
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", spec.name, "--storage", url, "--set",
                           "storage=postgresql://bob:hunter22@db.example/sweeps"], capture_output=True, text=True,
                          cwd=tmp_path, env={**os.environ, "COLUMNS": "300"}, timeout=120)
    assert proc.returncode == 2 and "hunter22" not in proc.stderr, proc.stderr
    assert f"sweeper resume reads study {spec.name!r} from its storage, so it cannot move it; name that storage " \
        "with --storage URL" in " ".join(proc.stderr.split())


def test_resume_imports_no_code_from_a_space_folder_outside_this_one(tmp_path, monkeypatch):
    """Anyone who may write a shared database sets a study's attrs: resume imported (ran) a module of the folder the
    space_dir attr named, wherever it was."""
    from sweeper.errors import BadInput

    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec, _ = prepare(SweepOptions(space=str(space), storage=url))
    open_study(spec, url, str(space))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    ran = tmp_path / "ran"
    (elsewhere / "resume_planted.py").write_text(f"open({str(ran)!r}, 'w')\n" + (FIXTURES / "resumable_train.py")
                                                 .read_text())
    study = optuna.load_study(study_name=spec.name, storage=url)
    study.set_user_attr(attrs.SPEC, {**study.user_attrs[attrs.SPEC], "entrypoint": "resume_planted:train"})
    study.set_user_attr(attrs.SPACE_DIR, str(elsewhere))
    (tmp_path / "here").mkdir()
    monkeypatch.chdir(tmp_path / "here")
    with pytest.raises(BadInput, match="imports a study's code only from the folder it runs in or below"):
        prepare(SweepOptions(study=spec.name, storage=url))
    assert not ran.exists()
    monkeypatch.chdir(tmp_path)  # from a folder above the space's, the study resumes
    assert prepare(SweepOptions(study=spec.name, storage=url))[0].entrypoint == "resume_planted:train"
    study.set_user_attr(attrs.SPACE_DIR, str(tmp_path / "moved"))  # a folder no longer there: no advice to go there
    with pytest.raises(BadInput, match=r"which is not on this machine \(a moved project\?\): run its space file"):
        prepare(SweepOptions(study=spec.name, storage=url))


def test_a_quick_run_with_another_scheduler_resumes_from_its_stored_spec(tmp_path, monkeypatch):
    """The stored spec is what ran: its quick: section (grace_period 1 for asl20's ASHA) is not applied again to
    the scheduler --set made none."""
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec, _ = prepare(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=url,
                                   overrides=("scheduler.type=none",)))
    open_study(spec, url, "spaces/asl20.yaml")
    resumed, _ = prepare(SweepOptions(study=spec.name, storage=url, overrides=("budget.trials=8",)))
    assert resumed.scheduler.type == "none" and resumed.budget.trials == 8
    assert resumed.training == spec.training  # the quick profile's epochs and data, as it ran


def test_resume_of_an_unknown_study_is_one_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    create_or_load_study(open_storage(url), "asl20-quick", "maximize")
    proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "resume", "asl20-qiuck", "--storage", url],
                          capture_output=True, text=True, cwd=tmp_path, timeout=120,
                          env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
    assert "did you mean 'asl20-quick'" in proc.stderr, proc.stderr


def test_orphans_are_trials_of_dead_drivers_or_stale_heartbeats(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}", heartbeat_interval=1, grace_period=1)
    study, _ = create_or_load_study(storage, "owners", "maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    me = Driver.current()
    owners = {
        "mine": me,
        "dead here": Driver(me.host, dead.pid, None),
        "pid reused": Driver(me.host, os.getppid(), 1),  # the pid lives, but started at another time
        "elsewhere, beating": Driver("other-host", 1, None),
        "elsewhere, silent": Driver("other-host", 2, None),
    }
    trials = {}
    for label, owner in owners.items():
        trial = study.ask()
        trial.set_user_attr(attrs.DRIVER, owner.as_attr())
        record_heartbeat(study, trial._trial_id)
        trials[label] = trial.number
    # every beat so far 10 s ago, past the grace period even by SQLite's whole-second now(); one more on a trial
    with open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}").engine.begin() as connection:
        for trial_id, beat in connection.exec_driver_sql("SELECT trial_id, heartbeat FROM trial_heartbeats").all():
            earlier = datetime.fromisoformat(beat) - timedelta(seconds=10)
            connection.exec_driver_sql("UPDATE trial_heartbeats SET heartbeat = ? WHERE trial_id = ?",
                                       (earlier, trial_id))
    record_heartbeat(study, study.trials[trials["elsewhere, beating"]]._trial_id)
    orphans = {t.number for t in orphaned_trials(study)}
    assert orphans == {trials["dead here"], trials["pid reused"], trials["elsewhere, silent"]}
    assert me.alive() and Driver(socket.gethostname(), dead.pid, None).alive() is False
    # an enqueued trial a live driver takes is RUNNING a moment before it holds its owner: it was carried on by
    # another driver (trained twice, and recorded as the wrong driver's); one left so past the grace period is taken
    study.enqueue_trial({})
    taken = study.ask()
    assert taken.number not in {t.number for t in orphaned_trials(study)}
    old = study._storage.get_trial(taken._trial_id).datetime_start - timedelta(seconds=GRACE_PERIOD_S + 1)
    with open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}").engine.begin() as connection:
        connection.exec_driver_sql("UPDATE trials SET datetime_start = ? WHERE trial_id = ?", (old, taken._trial_id))
    assert taken.number in {t.number for t in orphaned_trials(study)}


def test_an_enqueued_trial_whose_driver_was_killed_before_owning_it_is_carried_on_at_once(tmp_path):
    """A kill -9 between taking an enqueued row (RUNNING) and writing its owner left the trial without a driver
    attr: a resume within the grace period said it ran "in another live driver", counted it in the budget and
    ended with it RUNNING, the seeds' row never trained (found by an exploratory kill -9 right after start)."""
    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    study, _ = open_study(spec, f"sqlite:///{tmp_path / 'sweeps.db'}", None)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()

    def searcher(driver: Driver, orphans: list[optuna.trial.FrozenTrial] = ()) -> StudySearcher:
        policy = OutagePolicy(30)
        return StudySearcher(study, spec, checkpoints=str(tmp_path), budget=6, driver=driver, policy=policy,
                             writer=StudyWriter(policy), orphans=orphans)

    searcher(Driver(socket.gethostname(), dead.pid, None))._new_trial_id()  # the dead driver's last step
    searcher(Driver.current())._new_trial_id()  # a live driver's, about to write itself as owner
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TS.RUNNING, TS.RUNNING]
    orphans = orphaned_trials(study)
    assert [t.number for t in orphans] == [0]
    carried = searcher(Driver.current(), orphans)._next_trial()
    assert carried.number == 0 and carried.params == spec.enqueue[0]


def test_an_orphan_another_driver_carried_on_or_finished_is_not_claimed_again(tmp_path):
    """Orphans are listed when a driver starts and claimed as its slots free, maybe hours later: by then another
    driver may have taken one (it must not run twice) or finished it (claiming it would fail the sweep)."""
    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter
    from sweeper.trainable import META_KEY

    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study, _ = create_or_load_study(storage, "orphans", "maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    for _ in range(2):
        study.ask().set_user_attr(attrs.DRIVER, Driver(socket.gethostname(), dead.pid, None).as_attr())
    spec = load_spec("spaces/asl20.yaml", quick=True)

    def searcher(driver: Driver) -> StudySearcher:
        policy = OutagePolicy(30)
        return StudySearcher(study, spec, checkpoints=str(tmp_path), budget=3, driver=driver, policy=policy,
                             writer=StudyWriter(policy), orphans=orphaned_trials(study))

    early, late = searcher(Driver.current()), searcher(Driver(socket.gethostname(), os.getppid(), None))
    assert [t.number for t in early.orphans] == [t.number for t in late.orphans] == [0, 1]
    assert [late.suggest(f"late-{i}")[META_KEY]["number"] for i in (1, 2)] == [0, 1]  # the later driver took both
    study.tell(late.trials["late-2"], 0.9)
    config = early.suggest("early-1")  # the early driver's slot frees: neither orphan is its to run any more
    assert config is not None and config[META_KEY]["number"] == 2
    owners = [Driver.from_attr(t.user_attrs[attrs.DRIVER]) for t in study.get_trials(deepcopy=False)]
    assert owners[0].pid == os.getppid() and owners[2] == Driver.current()


def test_two_drivers_resumed_at_once_carry_an_orphan_on_once(tmp_path):
    """Both read the dead owner before either wrote itself: both trained the trial, in one checkpoint folder, and
    the one that finished second crashed on a trial already finished."""
    from concurrent.futures import ThreadPoolExecutor

    from storage.resume import claim

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = create_or_load_study(open_storage(url), "orphans", "maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study.ask().set_user_attr(attrs.DRIVER, Driver(socket.gethostname(), dead.pid, None).as_attr())
    [orphan] = orphaned_trials(study)
    drivers = [Driver("host-a", 1, None), Driver("host-b", 2, None)]  # each with a study of its own, as processes
    studies = [optuna.load_study(study_name="orphans", storage=open_storage(url)) for _ in drivers]
    with ThreadPoolExecutor(2) as pool:
        claims = list(pool.map(lambda i: claim(studies[i], orphan, drivers[i]), range(2)))
    assert sum(c is not None for c in claims) == 1, claims
    winner = drivers[[c is not None for c in claims].index(True)]
    assert study.trials[0].user_attrs[attrs.DRIVER] == winner.as_attr()


def test_two_drivers_asking_for_the_last_trial_at_once_create_it_once(storage_url, tmp_path, monkeypatch):
    """Both counted the study's trials before either created one: with one trial left in the budget each created
    one, and a study of N trials ended with N+1 (found by an exploratory test of drivers started together)."""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    name = f"last-{uuid.uuid4().hex[:8]}"
    storages = [open_storage(storage_url) for _ in range(2)]  # each driver with its own, as processes have
    studies = [create_or_load_study(storage, name, "maximize")[0] for storage in storages]
    counted = threading.Barrier(2, timeout=1)
    budget_spent = StudySearcher._budget_spent

    def count_together(searcher: StudySearcher) -> bool:  # each counts, then waits for the other to have counted
        spent = budget_spent(searcher)
        with contextlib.suppress(threading.BrokenBarrierError):  # the other cannot count yet: it waits its turn
            counted.wait()
        return spent

    monkeypatch.setattr(StudySearcher, "_budget_spent", count_together)
    spec = load_spec("spaces/asl20.yaml", quick=True)
    policy = OutagePolicy(30)
    searchers = [StudySearcher(study, spec, checkpoints=str(tmp_path), budget=1, driver=Driver(host, 1, None),
                               policy=policy, writer=StudyWriter(policy))
                 for study, host in zip(studies, ("host-a", "host-b"), strict=True)]
    try:
        with ThreadPoolExecutor(2) as pool:
            asked = list(pool.map(lambda searcher: searcher._next_trial(), searchers))
        assert sum(trial is not None for trial in asked) == 1, asked
        assert len(studies[0].get_trials(deepcopy=False)) == 1
    finally:
        for storage in storages:
            close_storage(storage)


def test_a_driver_starts_no_trial_once_another_met_the_targets_with_stop_on_target(storage_url, tmp_path):
    """Another driver on the study met the targets (budget.stop_on_target): this one read that only beside its
    heartbeats, every 10 s, and meanwhile started trial after trial that the stop then pruned (8 new trials after
    the target in a sweep of 2 s trials; found by an exploratory test of drivers sharing a study)."""
    import time

    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from storage.target import record_target_met
    from sweeper.driver import searcher_and_recorder, should_stop
    from sweeper.progress import SweepPrinter
    from sweeper.study_writer import StudyWriter

    name = f"met-{uuid.uuid4().hex[:8]}"
    storage = open_storage(storage_url)
    try:
        study = create_or_load_study(storage, name, "maximize")[0]
        spec = load_spec("spaces/asl20.yaml", quick=True).model_copy(update={"name": name})
        spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"stop_on_target": True, "trials": 5})})
        met = study.ask()  # the other driver's trial, which met the targets
        study.tell(met, 0.99)
        record_target_met(study, study.trials[0])
        policy = OutagePolicy(30)
        writer = StudyWriter(policy)
        searcher, recorder = searcher_and_recorder(study, spec, str(tmp_path), 5, [], policy, writer,
                                                   SweepPrinter(spec, []))
        assert searcher._next_trial() is None
        assert len(study.get_trials(deepcopy=False)) == 1  # none created after the target
        assert should_stop(spec, time.perf_counter(), searcher.interrupted, searcher, recorder, policy, writer)
        assert recorder.target_reached and searcher.stopped
    finally:
        close_storage(storage)


def test_two_drivers_resuming_with_a_new_enqueued_row_add_it_once(storage_url, tmp_path, monkeypatch):
    """Rows added to enqueue: run on resume; two drivers resuming at once both found the row missing and both added
    it (Optuna's skip_if_exists looks, then adds), so the same configuration trained twice."""
    import contextlib
    import threading
    from concurrent.futures import ThreadPoolExecutor

    name = f"rows-{uuid.uuid4().hex[:8]}"
    spec, _ = prepare(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=storage_url,
                                   overrides=(f"name={name}", "enqueue=[]")))
    open_study(spec, storage_url, None, tmp_path / "runs")
    row = {"label_smoothing": 0.05, "warmup_epochs": 1.0, "weight_decay": 1e-3, "dropout": 0.1, "mixup_alpha": 0.2,
           "lr": 1e-3}
    spec = spec.model_copy(update={"enqueue": [row]})
    looked = threading.Barrier(2, timeout=1)
    add_trial = optuna.Study.add_trial

    def add_together(study: optuna.Study, trial) -> None:  # each looked for the row, then waits for the other
        with contextlib.suppress(threading.BrokenBarrierError):  # the other cannot look yet: it waits its turn
            looked.wait()
        add_trial(study, trial)

    monkeypatch.setattr(optuna.Study, "add_trial", add_together)
    with ThreadPoolExecutor(2) as pool:
        list(pool.map(lambda _: open_study(spec, storage_url, None, tmp_path / "runs"), range(2)))
    waiting = optuna.load_study(study_name=name, storage=storage_url).get_trials(states=(TS.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == [row]


def test_a_new_trial_starts_without_the_checkpoint_a_deleted_study_left_under_its_number(tmp_path):
    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.folders import trial_checkpoint_dir
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    study, _ = create_or_load_study(open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}"), "again", "maximize")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    study.ask().set_user_attr(attrs.DRIVER, Driver(socket.gethostname(), dead.pid, None).as_attr())
    stale = [trial_checkpoint_dir(str(tmp_path), n) / "state.pt" for n in (0, 1)]
    for path in stale:
        path.parent.mkdir(parents=True)
        path.write_bytes(b"a checkpoint")
    (tmp_path / "trial-00001.log").write_text("another run's output\n")
    policy = OutagePolicy(30)
    searcher = StudySearcher(study, load_spec("spaces/asl20.yaml", quick=True), checkpoints=str(tmp_path),
                             budget=3, driver=Driver.current(), policy=policy, writer=StudyWriter(policy),
                             orphans=orphaned_trials(study))
    assert searcher.suggest("carried-on") is not None and stale[0].exists()  # #0 resumes from its checkpoint
    assert searcher.suggest("new") is not None and not stale[1].exists()  # #1 is new: the file is another run's
    moved = list(tmp_path.glob(f"{stale[1].parent.name}.stale-*"))  # set aside, not deleted: whose is it?
    assert len(moved) == 1 and (moved[0] / "state.pt").read_bytes() == b"a checkpoint"
    assert [p.name for p in tmp_path.glob("trial-00001.log*")] == [f"trial-00001.log{moved[0].suffix}"]  # with it


def test_spec_changes_ignore_budget_and_resources():
    old = {"name": "a", "training": {"epochs": 3}, "params": {"x": {"low": 0, "high": 1}}, "budget": {"trials": 4},
           "resources": {"cpu": 1}}
    assert spec_changes(old, {**old, "budget": {"trials": 9}, "resources": {"cpu": 2}, "baseline": {"x": 1}}) == []
    new = {**old, "training": {"epochs": 4, "lr": 0.1}, "params": {}}
    assert spec_changes(old, new) == ["params.x: removed", "training.epochs: 3 -> 4", "training.lr: added"]


def test_a_sampler_or_scheduler_option_written_at_its_default_changes_no_study(tmp_path):
    """sampler.multivariate=true (sweeper's TPE default) or scheduler.reduction_factor=4 (Ray's) on a resume was
    refused as another space (found by an exploratory test); another value still is. So was an int param's step: 1."""
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    first, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("scheduler={type: asha}",)))
    study, _ = open_study(first, url, str(space))
    study.enqueue_trial({"x": 0.5})  # a study with a trial: one without is made anew
    for same in ("sampler.multivariate=true", "sampler.constant_liar=true", "scheduler.reduction_factor=4",
                 "scheduler.grace_period=1"):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("scheduler={type: asha}", same)))
    with pytest.raises(StorageError, match=r"made from a different space \(sampler.multivariate: added\)"):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("scheduler={type: asha}",
                                                                       "sampler.multivariate=false")))
    steps = [f"params.epochs={{type: int, low: 1, high: 3{step}}}" for step in ("", ", step: 1", ", step: 2")]
    for first, then in [(steps[0], steps[1]), (steps[1], steps[0])]:  # an int range's step: 1 written or not
        fresh = resumable_space(tmp_path, trials=2, sleep=0.0)
        study, _ = open_study(prepare(SweepOptions(space=str(fresh), storage=url, overrides=(first,)))[0], url, "")
        study.enqueue_trial({"x": 0.5})
        prepare(SweepOptions(space=str(fresh), storage=url, overrides=(then,)))
    with pytest.raises(StorageError, match=r"different space \(params.epochs.step: added\)"):
        prepare(SweepOptions(space=str(fresh), storage=url, overrides=(steps[2],)))


def test_a_max_t_written_at_its_computed_default_changes_no_study(tmp_path):
    """ASHA's and HyperBand's max_t defaults to just below the planned epochs (EPOCHS - 1); writing it so on a resume
    was refused as another space (scheduler.max_t: added; found by an exploratory test). Another max_t still is."""
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    for kind in ("asha", "hyperband"):
        first, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=(f"scheduler={{type: {kind}}}",
                                                                                 f"name={kind}")))
        study, _ = open_study(first, url, str(space))
        study.enqueue_trial({"x": 0.5})  # a study with a trial: one without is made anew
        prepare(SweepOptions(space=str(space), storage=url,
                             overrides=(f"scheduler={{type: {kind}, max_t: {EPOCHS - 1}}}", f"name={kind}")))
        with pytest.raises(StorageError, match=r"made from a different space \(scheduler.max_t: added\)"):
            prepare(SweepOptions(space=str(space), storage=url,
                                 overrides=(f"scheduler={{type: {kind}, max_t: {EPOCHS - 2}}}", f"name={kind}")))


def test_a_value_written_in_another_type_is_another_space_where_the_function_gets_it_so(tmp_path):
    """Choices [1, 2] -> [1.0, 2.0], [true, false] -> [1, 0], or a training value 3 -> 3.0 compared equal, so a
    re-run gave a function without settings 1.0 where the study's trials had 1 (found by an exploratory test). A
    function's settings turn a value into their types, so there the trials are the same, and the study goes on."""
    (tmp_path / "plain.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'score': 0.5}\n")
    space, url = tmp_path / "plain.yaml", f"sqlite:///{tmp_path / 'sweeps.db'}"
    space.write_text("name: plain\nentrypoint: plain:fit\nobjective: {metric: score, direction: maximize}\n"
                     "training: {epochs: 3}\nparams:\n  c: {type: categorical, choices: [true, false]}\n"
                     "  n: {type: categorical, choices: [1, 2]}\n")
    study, _ = open_study(prepare(SweepOptions(space=str(space), storage=url))[0], url, str(space))
    study.enqueue_trial({"c": True, "n": 1})  # a study with a trial: one without is made anew
    prepare(SweepOptions(space=str(space), storage=url, overrides=("params.n.choices=[1, 2]",)))
    for change, said in (("params.c.choices=[1, 0]", "params.c.choices: [True, False] -> [1, 0]"),
                         ("params.n.choices=[1.0, 2.0]", "params.n.choices: [1, 2] -> [1.0, 2.0]"),
                         ("training.epochs=3.0", "training.epochs: 3 -> 3.0")):
        with pytest.raises(StorageError, match=re.escape(f"made from a different space ({said})")):
            prepare(SweepOptions(space=str(space), storage=url, overrides=(change,)))
    space = resumable_space(tmp_path, trials=2, sleep=0.0)  # crash_epoch: an int setting; sleep: a float one
    typed = ("params.crash_epoch={type: categorical, choices: [1, 2]}", "training.sleep=0")
    study, _ = open_study(prepare(SweepOptions(space=str(space), storage=url, overrides=typed))[0], url, "")
    study.enqueue_trial({"x": 0.5, "crash_epoch": 1})
    retyped = ("params.crash_epoch={type: categorical, choices: [1.0, 2.0]}", "training.sleep=0.0")
    prepare(SweepOptions(space=str(space), storage=url, overrides=retyped))  # the same trials


def test_a_training_value_moved_to_a_fixed_param_changes_no_study(tmp_path):
    """A fixed param is merged into the training values, so moving sleep: 0.0 from training: to params: {type: fixed}
    gives the same trials; it was refused as another space (found by an exploratory test). Another value still is."""
    space = resumable_space(tmp_path, trials=2, sleep=0.0)  # the function's default sleep is 0.05
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = open_study(prepare(SweepOptions(space=str(space), storage=url))[0], url, str(space))
    study.enqueue_trial({"x": 0.5})  # a study with a trial: one without is made anew
    fixed = "params:\n  sleep: {type: fixed, value: 0}\n"  # an int: the float setting makes it 0.0
    moved = space.read_text().replace(", sleep: 0.0", "").replace("params:\n", fixed)
    assert "sleep: 0.0" not in moved
    space.write_text(moved)
    prepare(SweepOptions(space=str(space), storage=url))
    with pytest.raises(StorageError, match=re.escape("different space (training.sleep: 0.0 -> 0.5)")):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("params.sleep.value=0.5",)))


def test_a_nan_in_the_training_block_changes_no_study(tmp_path, monkeypatch):
    """NaN != NaN: a space whose training block held NaN (crash_above: .nan, never) was refused as another space by
    its own re-run, and by sweeper resume of its study, which that refusal advised (found by an exploratory test)."""
    monkeypatch.chdir(tmp_path)
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    first, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("crash_above=.nan",)))
    study, _ = open_study(first, url, str(space))
    study.enqueue_trial({"x": 0.5})  # a study with a trial: one without is made anew
    prepare(SweepOptions(space=str(space), storage=url, overrides=("crash_above=.nan",)))
    resumed, _ = prepare(SweepOptions(study=first.name, storage=url))
    assert str(resumed.training["crash_above"]) == "nan"
    with pytest.raises(StorageError, match=r"made from a different space \(training.crash_above: nan -> 1.0\)"):
        prepare(SweepOptions(space=str(space), storage=url, overrides=("crash_above=1.0",)))


@pytest.mark.parametrize("quick", [False, True])
def test_the_spec_a_study_keeps_holds_no_storage_url_not_even_the_quick_profiles(tmp_path, quick):
    from search_spaces.loader import load_spec
    from sweeper.preflight import spec_attr

    url = "postgresql+psycopg://alice:hunter22secret@db.example/sweeps"
    (tmp_path / "s.yaml").write_text(f"storage: {url}\nparams:\n  lr: {{type: float, low: 0.001, high: 0.01}}\n"
                                     f"quick:\n  storage: {url}\n  budget.trials: 2\n")
    kept = spec_attr(load_spec(tmp_path / "s.yaml", quick=quick))
    assert "hunter22secret" not in json.dumps(kept) and kept["quick"] == {"budget.trials": 2}


def test_rows_added_to_enqueue_run_on_resume_and_rows_already_there_are_not_repeated(tmp_path):
    from search_spaces.loader import load_spec

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    spec = load_spec("spaces/asl20.yaml", quick=True)
    study, created = open_study(spec, url, None)
    assert created and len(study.get_trials(deepcopy=False)) == 2
    row = {**spec.enqueue[0], "lr": 2.0e-3}
    more = load_spec("spaces/asl20.yaml", quick=True, overrides=[f"enqueue={[*spec.enqueue, row]}"])
    study, created = open_study(more, url, None)
    waiting = [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)]
    assert not created and waiting == [*spec.enqueue, row]
    assert study.user_attrs[attrs.BASELINE]["metrics"]["test_top1"] == spec.baseline.metrics["test_top1"]
    compared = load_spec("spaces/asl20.yaml", quick=True, overrides=["baseline.test_top1=50%"])
    study, _ = open_study(compared, url, None)  # reports compare with the new one
    assert study.user_attrs[attrs.BASELINE]["metrics"]["test_top1"] == 0.5


def test_each_study_checkpoints_in_a_folder_of_its_own_that_a_resume_from_anywhere_finds(tmp_path):
    """Two studies of one name in two storages, run from one folder, used to share checkpoints/NAME: one read the
    other's weights (or crashed loading them) and deleted its folders. A resume run from another folder looked in
    its own --results-dir and started the carried-on trials over, while saying "from their last checkpoints"."""
    from search_spaces.loader import load_spec
    from sweeper.folders import checkpoint_folder

    spec = load_spec("spaces/asl20.yaml", quick=True)
    runs = tmp_path / "runs"
    team, mine = (open_study(spec, f"sqlite:///{tmp_path / db}", None, runs)[0] for db in ("team.db", "mine.db"))
    folders = [Path(study.user_attrs[attrs.CHECKPOINTS]) for study in (team, mine)]
    assert folders[0] != folders[1] and {f.parent for f in folders} == {runs.resolve() / "checkpoints"}
    assert all(f.name.startswith(f"{spec.name}-") for f in folders)
    folders[0].mkdir(parents=True)
    again, created = open_study(spec, f"sqlite:///{tmp_path / 'team.db'}", None, tmp_path / "elsewhere" / "runs")
    assert not created
    assert checkpoint_folder(again.user_attrs, again.study_name, tmp_path / "elsewhere" / "runs") == folders[0]
    far, _ = open_study(spec, f"sqlite:///{tmp_path / 'far.db'}", None, tmp_path / "far")  # a folder not here
    assert checkpoint_folder(far.user_attrs, far.study_name, tmp_path / "here") == \
        tmp_path / "here" / "checkpoints" / Path(far.user_attrs[attrs.CHECKPOINTS]).name
    old, _ = create_or_load_study(open_storage(f"sqlite:///{tmp_path / 'old.db'}"), spec.name, "maximize")
    old.ask()  # a study of an earlier sweeper, with a trial: its checkpoints stay where they always were
    (runs / "checkpoints" / spec.name).mkdir(parents=True)
    again, _ = open_study(spec, f"sqlite:///{tmp_path / 'old.db'}", None, runs)
    assert again.user_attrs[attrs.CHECKPOINTS] == str(runs.resolve() / "checkpoints" / spec.name)
    (tmp_path / "home" / ".ssh").mkdir(parents=True)  # the attr is anyone's who may write the database
    for planted in (tmp_path / "home" / ".ssh", runs.resolve() / "checkpoints" / ".." / ".." / "home" / ".ssh",
                    runs.resolve() / "checkpoints" / ".." / ".." / "home" / ".ssh" / "."):
        again.set_user_attr(attrs.CHECKPOINTS, str(planted))
        assert checkpoint_folder(again.user_attrs, again.study_name, runs) == runs / "checkpoints" / ".ssh"


def test_an_earlier_sweepers_study_whose_checkpoints_are_not_under_this_results_dir_is_refused(tmp_path):
    """A study of a sweeper before the ``checkpoints`` attr, whose first run had --results-dir first, resumed with
    the default one: its interrupted trial started over ('none in sweeper_runs/...: from the start'), and the folder
    recorded for good was the new one, where best and clean never find the first run's weights."""
    from search_spaces.loader import load_spec
    from sweeper.errors import BadInput

    spec = load_spec("spaces/asl20.yaml", quick=True)
    url = f"sqlite:///{tmp_path / 'old.db'}"
    old, _ = create_or_load_study(open_storage(url), spec.name, "maximize")
    old.ask()  # RUNNING, as a kill -9 of the earlier sweeper left it, with no checkpoints attr
    first = tmp_path / "first"
    (first / "checkpoints" / spec.name / "trial-00000").mkdir(parents=True)
    with pytest.raises(BadInput, match=r"made by an earlier sweeper.* the --results-dir its first run had"):
        open_study(spec, url, None, tmp_path / "runs")
    assert attrs.CHECKPOINTS not in optuna.load_study(study_name=spec.name, storage=url).user_attrs
    assert not (tmp_path / "runs").exists()
    again, created = open_study(spec, url, None, first)
    assert not created and again.user_attrs[attrs.CHECKPOINTS] == str(first.resolve() / "checkpoints" / spec.name)


def test_rows_past_the_budget_are_not_enqueued_until_a_larger_budget_makes_room(tmp_path):
    """A row past budget.trials would never run: it would stay WAITING in a finished study."""
    from search_spaces.loader import load_spec

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    small = load_spec("spaces/asl20.yaml", quick=True, overrides=["budget.trials=1"])
    assert len(small.enqueue) == 2
    study, _ = open_study(small, url, None)
    assert [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)] == small.enqueue[:1]
    larger = load_spec("spaces/asl20.yaml", quick=True, overrides=["budget.trials=3"])
    study, created = open_study(larger, url, None)
    assert not created and [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)] == small.enqueue


@pytest.mark.slow
def test_trials_import_the_function_from_where_the_driver_found_it_not_from_the_studys_first_folder(
        ray_session, tmp_path, monkeypatch):
    """Trials run in the study's work_dir (an attr anyone who may write the database can set), and imported the
    entrypoint from there, ahead of the module the driver had checked in its own folder."""
    module = f"where_{uuid.uuid4().hex[:8]}"
    first, now, spaces = tmp_path / "first", tmp_path / "now", tmp_path / "spaces"
    for folder in (first, now, spaces):
        folder.mkdir()
    for folder in (first, now):
        (folder / f"{module}.py").write_text(f"def fit(config, report, checkpoint_dir):\n"
                                             f"    report({{'epoch': 1, 'score': 0.5}})\n"
                                             f"    return {{'score': 0.5, 'folder': {folder.name!r}}}\n")
    space = spaces / "where.yaml"
    space.write_text(textwrap.dedent(f"""\
        name: {module}
        entrypoint: {module}:fit
        objective: {{metric: score, direction: maximize}}
        params: {{x: {{type: float, low: 0.0, high: 1.0}}}}
        scheduler: {{type: none}}
        budget: {{trials: 1, max_concurrent: 1}}
        resources: {{cpu: 1}}
        """))
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    monkeypatch.chdir(first)
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(tmp_path / "runs")))
    monkeypatch.chdir(now)
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(tmp_path / "runs"),
                           overrides=("budget.trials=2",)))
    trials = optuna.load_study(study_name=module, storage=url).get_trials()
    assert [t.user_attrs["folder"] for t in trials] == ["first", "now"]


def test_a_resume_from_another_folder_reads_the_data_the_study_started_with(ray_session, tmp_path, monkeypatch):
    """A relative dataset.path is read from the folder of the study's first run: run from another folder, a resume
    trained on that folder's file of the same name (one study, two datasets), or refused it as not found."""
    import numpy as np

    first, elsewhere = tmp_path / "first", tmp_path / "elsewhere"
    for folder, per_class in ((first, 8), (elsewhere, 12)):
        (folder / "data").mkdir(parents=True)
        rng = np.random.default_rng(0)
        np.savez(folder / "data" / "d.npz", X=rng.standard_normal((3 * per_class, 8, 5, 2)).astype(np.float32),
                 y=np.repeat(np.arange(3), per_class))
    space = first / "npz.yaml"
    space.write_text(textwrap.dedent("""\
        name: npz-data
        objective: {metric: val_loss}
        training: {dataset: {name: npz, path: data/d.npz, classes: 3}, model: {size: small}, epochs: 1, batch_size: 8}
        params: {lr: {type: float, low: 1.0e-4, high: 1.0e-3, log: true}}
        sampler: {type: random, seed: 0}
        scheduler: {type: none}
        budget: {trials: 1, max_concurrent: 1}
        """))
    url, runs = f"sqlite:///{tmp_path / 'sweeps.db'}", str(tmp_path / "runs")
    monkeypatch.chdir(first)
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir=runs))
    monkeypatch.chdir(elsewhere)
    run_sweep(SweepOptions(space=str(space), storage=url, results_dir=runs, overrides=("budget.trials=2",)))
    trials = optuna.load_study(study_name="npz-data", storage=url).get_trials()
    assert [t.state for t in trials] == [TS.COMPLETE] * 2
    assert trials[0].user_attrs["data"] == trials[1].user_attrs["data"], [t.user_attrs["data"] for t in trials]
    assert Path.cwd() == elsewhere  # the driver's folder is its own; only the trials ran in the study's
    from sweeper.best import best_summary
    from sweeper.inspection import view_of

    command = best_summary(view_of(optuna.load_study(study_name="npz-data", storage=url)))["reproduce"]
    assert command.startswith(f"cd {first} && sweeper train ") and "dataset.path=data/d.npz" in command, command


def test_a_study_another_space_made_a_moment_ago_is_not_joined(tmp_path):
    """Two spaces of one name started together: both found no study when prepare compared them, then the second
    loaded the first's study and ran its trials into it (2 epochs with x up to 1, then 5 epochs with x up to 0.1)."""
    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    first, _ = prepare(SweepOptions(space=str(space), storage=url))
    second, _ = prepare(SweepOptions(space=str(space), storage=url, overrides=("params.x.high=0.1",)))
    open_study(first, url, str(space))
    with pytest.raises(StorageError, match=r"made a moment ago by another sweep, from a different space \(params"):
        open_study(second, url, str(space))
    same, _ = open_study(first, url, str(space))  # the same space joins it, as a second driver does
    assert same.user_attrs["spec"]["params"]["x"]["high"] == 1.0


def test_two_fresh_runs_started_together_do_not_share_one_study(tmp_path):
    """Both found slow-2 free when prepare picked the name; the second loaded the first's new study, said "(new)" too,
    and each ran half the budget of what its user took for a study of its own."""
    space = resumable_space(tmp_path, trials=4, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = study_name(space)
    open_study(prepare(SweepOptions(space=str(space), storage=url))[0], url, str(space))
    first, _ = prepare(SweepOptions(space=str(space), storage=url, fresh=True))
    second, _ = prepare(SweepOptions(space=str(space), storage=url, fresh=True))
    assert first.name == second.name == f"{name}-2"
    open_study(first, url, str(space), fresh=True)
    with pytest.raises(StorageError, match=r"made a moment ago by another sweep \(two --fresh runs started together"):
        open_study(second, url, str(space), fresh=True)
    assert prepare(SweepOptions(space=str(space), storage=url, fresh=True))[0].name == f"{name}-3"  # run again


def test_the_resume_command_shown_pastes_into_a_shell_whatever_the_names():
    import shlex

    from search_spaces.loader import load_spec
    from sweeper.preflight import SweepOptions, resume_command

    spec = load_spec("asl20", overrides=["name=my exp; rm -rf x"])
    url = "sqlite:////tmp/A proj/my sweeps.db"
    command = resume_command(spec, SweepOptions(space="asl20", storage=url), url)
    assert shlex.split(command) == ["sweeper", "resume", "my exp; rm -rf x", "--storage", url]
    assert resume_command(spec.model_copy(update={"name": "asl20"}), SweepOptions(space="asl20"), url) == \
        "sweeper resume asl20"  # the storage is the space's default: nothing to add


@pytest.mark.parametrize("case", ["db moved alone", "db copied alone", "db moved alone, results outside",
                                  "copy, then its original's db deleted", "db in a folder, moved",
                                  "results outside, copied", "results outside, copied under its own name",
                                  "copied before a trial ran", "older study, copied",
                                  "older study, db in a folder, copied"])
def test_where_a_study_finds_its_folders_when_its_database_moved(tmp_path, monkeypatch, case):
    """The SQLite file moved or copied alone keeps the study's folders (they were mapped into its new folder, where
    neither data nor checkpoints are); a copy keeps its own even once the original's file is gone (it took that
    for a file moved alone), its space folder too with the file in a folder of the project, and its checkpoints
    where the results folder lies outside and both copies share it; a study of a sweeper before the database attr
    is told a copy's, also with its file in a folder, and stamped with its file (the first file a copy ran on was
    stamped on it, and the copy wrote into the original's checkpoints for good) (found by regression checks)."""
    import sqlite3

    from search_spaces.loader import load_spec

    first, copy = (tmp_path / "a" / "proj", tmp_path / "b" / "proj") if "own name" in case else \
        (tmp_path / "proj", tmp_path / "copy")
    db = "dbs/sweeps.db" if "folder" in case else "sweeps.db"
    results = first.parent / "runs" if "outside" in case else Path("sweeper_runs")
    (first / db).parent.mkdir(parents=True, exist_ok=True)
    (first / "space.yaml").write_text("params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2}\n")
    monkeypatch.chdir(first)
    space = None if "before a trial" in case else "space.yaml"  # a built-in space: no space file in the project
    made, _ = open_study(load_spec(first / "space.yaml"), f"sqlite:///{db}", space, results)
    made.enqueue_trial({"lr": 1e-3})  # a study with trials: one without is made anew
    before = made.user_attrs
    if "before a trial" not in case:
        (Path(before[attrs.CHECKPOINTS]) / "trial-00000").mkdir(parents=True)
    close_storage(made._storage._backend)  # the files are moved between runs, not under one
    if "older" in case:
        with sqlite3.connect(first / db) as connection:
            connection.execute("DELETE FROM study_user_attributes WHERE key = ?", (attrs.DATABASE,))
    if "alone" in case:
        (first / "moved").mkdir()
        for file in first.glob("sweeps.db*"):  # mv (cp) sweeps.db* moved/
            (file.rename if "moved" in case else functools.partial(shutil.copy, file))(first / "moved" / file.name)
        study, _ = open_study(load_spec(first / "space.yaml"), "sqlite:///moved/sweeps.db", "space.yaml", results)
        assert study.user_attrs[attrs.DATABASE] == str(first / "moved" / "sweeps.db")
        for key in (attrs.CHECKPOINTS, attrs.WORK_DIR, attrs.SPACE_DIR):
            assert study.user_attrs[key] == before[key], key
        return
    copy.parent.mkdir(exist_ok=True)
    shutil.copytree(first, copy)
    if "moved" in case or "deleted" in case:
        for file in first.glob("**/sweeps.db*"):
            file.unlink()
    else:  # the original goes on first: its folders, and now its file, recorded
        study, _ = open_study(load_spec(first / "space.yaml"), f"sqlite:///{db}", space, results)
        assert study.user_attrs[attrs.CHECKPOINTS] == before[attrs.CHECKPOINTS]
        assert study.user_attrs[attrs.DATABASE] == str(first / db)
    monkeypatch.chdir(copy)
    study, created = open_study(load_spec(copy / "space.yaml"), f"sqlite:///{db}", space, results)
    assert not created
    assert study.user_attrs[attrs.WORK_DIR] == str(copy) and study.user_attrs[attrs.SPACE_DIR] == str(copy)
    assert study.user_attrs[attrs.DATABASE] == str(copy / db)
    own = Path(study.user_attrs[attrs.CHECKPOINTS])
    if "outside" in case:  # one results folder for both: a checkpoint folder of the copy's own in it
        assert own.parent == Path(before[attrs.CHECKPOINTS]).parent and own != Path(before[attrs.CHECKPOINTS])
    else:
        assert own == copy / Path(before[attrs.CHECKPOINTS]).relative_to(first)


def test_a_copied_or_moved_project_checkpoints_and_reads_data_in_its_own_folders(tmp_path, monkeypatch):
    """The study records its first run's folders as absolute paths; a copy of the project (``cp -a``: the database,
    the results) used them: its trials moved the original's live checkpoints aside and wrote theirs there, and the
    original then carried on from the copy's weights. A study records its SQLite file too: where another file holds
    it, its folders are that file's copy's, wherever in the copy it runs from."""
    from search_spaces.loader import load_spec
    from sweeper.folders import checkpoint_folder, relocated

    spec = load_spec("spaces/asl20.yaml", quick=True)
    first, copy = tmp_path / "A proj", tmp_path / "B proj"
    (first / "db").mkdir(parents=True)  # a database in a folder of its own, the results beside it
    monkeypatch.chdir(first)
    study, _ = open_study(spec, "sqlite:///db/sweeps.db", None, Path("sweeper_runs"))
    original = Path(study.user_attrs[attrs.CHECKPOINTS])
    assert study.user_attrs[attrs.DATABASE] == str(first / "db" / "sweeps.db")
    (original / "trial-00000").mkdir(parents=True)
    shutil.copytree(first, copy)
    (copy / "sub").mkdir()
    monkeypatch.chdir(copy / "sub")  # run from a folder of the copy, its database and results named from there
    url = f"sqlite:///{copy / 'db' / 'sweeps.db'}"
    own = copy / "sweeper_runs" / "checkpoints" / original.name
    study, created = open_study(spec, url, None, copy / "sweeper_runs")
    assert not created and study.user_attrs[attrs.CHECKPOINTS] == str(own)
    assert study.user_attrs[attrs.WORK_DIR] == str(copy)  # where the first run's folder is in the copy
    assert study.user_attrs[attrs.DATABASE] == str(copy / "db" / "sweeps.db")
    assert checkpoint_folder(study.user_attrs, study.study_name, copy / "sweeper_runs") == own
    monkeypatch.chdir(first)  # the original is untouched
    study, _ = open_study(spec, "sqlite:///db/sweeps.db", None, Path("sweeper_runs"))
    assert study.user_attrs[attrs.CHECKPOINTS] == str(original) and study.user_attrs[attrs.WORK_DIR] == str(first)
    moved = {attrs.DATABASE: str(tmp_path / "old" / "sweeps.db"), attrs.WORK_DIR: str(tmp_path / "old" / "data"),
             attrs.CHECKPOINTS: str(tmp_path / "old" / "runs" / "checkpoints" / "s-1"), attrs.SPACE_DIR: "/elsewhere"}
    (tmp_path / "new" / "runs" / "checkpoints" / "s-1").mkdir(parents=True)  # the project came along
    assert relocated(moved, f"sqlite:///{tmp_path / 'new' / 'sweeps.db'}", Path("x")) == {
        attrs.DATABASE: str(tmp_path / "new" / "sweeps.db"), attrs.WORK_DIR: str(tmp_path / "new" / "data"),
        attrs.CHECKPOINTS: str(tmp_path / "new" / "runs" / "checkpoints" / "s-1"), attrs.SPACE_DIR: "/elsewhere"}
    # the same file from another folder (a SQLite file two checkouts share), and a server's study: never moved
    shared = {**moved, attrs.DATABASE: str(first / "db" / "sweeps.db")}
    assert relocated(shared, "sqlite:///db/sweeps.db", first) is None
    assert relocated(moved, "postgresql+psycopg://u@db.example/s", first) is None


def test_resume_says_how_to_go_on_when_the_stored_spec_is_refused(tmp_path, monkeypatch):
    """A study an earlier sweeper stored with what this one refuses (e.g. a top-k target that any model meets)
    could not be resumed, and the message did not say how to go on; where the study's own code changed since (a
    module renamed), the way on is to put it back, not --fresh (found by a regression check)."""
    from search_spaces.loader import load_spec

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    core = load_spec("spaces/asl20.yaml", (f"name=core-{uuid.uuid4().hex[:8]}",), quick=True)
    study = open_study(core, url, None)[0]
    stored = study.user_attrs[attrs.SPEC]
    study.set_user_attr(attrs.SPEC, {**stored, "budget": {**stored["budget"], "trials": 0}})
    assert prepare(SweepOptions(study=core.name, storage=url, overrides=("budget.trials=5",)))[0].budget.trials == 5
    with pytest.raises(SpecError) as err:
        prepare(SweepOptions(study=core.name, storage=url))
    assert str(err.value).startswith(f"the spec stored in study {core.name!r}: budget.trials")
    # budget may change on resume: the study goes on, its RUNNING trials too, not anew
    assert str(err.value).endswith("an earlier sweeper stored what this one refuses; budget.trials may change on "
                                   f"resume: sweeper resume {core.name} --set budget.trials=VALUE carries the study on")
    # a resource below Ray's unit (which an earlier sweeper took, and Ray raised on): resources may change too
    study.set_user_attr(attrs.SPEC, {**stored, "resources": {**stored["resources"], "cpu": 0.00004}})
    assert prepare(SweepOptions(study=core.name, storage=url, overrides=("resources.cpu=1",)))[0].resources.cpu == 1
    with pytest.raises(SpecError) as err:
        prepare(SweepOptions(study=core.name, storage=url))
    assert "resources.cpu may change on resume" in str(err.value) and "cannot be carried on" not in str(err.value)
    study.set_user_attr(attrs.SPEC, {**stored, "params": {**stored["params"], "epochs": {"type": "fixed", "value": 0}}})
    with pytest.raises(SpecError) as err:  # what is searched cannot change on resume: a new study
        prepare(SweepOptions(study=core.name, storage=url))
    assert str(err.value).endswith("an earlier sweeper stored what this one refuses, so the study cannot be carried "
                                   "on: run its space, mended, as a new study (sweeper run FILE --fresh)")
    study.set_user_attr(attrs.SPEC, stored)
    with pytest.raises(SpecError) as err:  # the user's own --set refused: nothing about an earlier sweeper
        prepare(SweepOptions(study=core.name, storage=url, overrides=("budget.trials=0",)))
    assert "earlier sweeper" not in str(err.value) and "--set budget.trials=0" in str(err.value)

    space = resumable_space(tmp_path, trials=4, sleep=0.0)  # a function of the user's own, then renamed
    spec, _ = prepare(SweepOptions(space=str(space), storage=url))
    open_study(spec, url, str(space))
    module = tmp_path / f"{spec.entrypoint.partition(':')[0]}.py"
    module.rename(tmp_path / "renamed.py")  # this process imported it already: a command of its own
    code = ("from sweeper.preflight import SweepOptions, prepare; from search_spaces.errors import SpecError\n"
            f"try:\n    prepare(SweepOptions(study={spec.name!r}, storage={url!r}))\n"
            "except SpecError as exc:\n    print(exc)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=120)
    said = " ".join(proc.stdout.split())
    assert "cannot import module" in said and "earlier sweeper" not in said, proc.stderr
    assert said.endswith(f"this sweeper, or {spec.entrypoint} as it is here, refuses what the study ran with: put "
                         "back the code it ran and resume; if the code is as it was, run its space, mended, as a new "
                         "study (sweeper run FILE --fresh)"), said
    (tmp_path / "renamed.py").rename(module)  # put back: it resumes
    assert prepare(SweepOptions(study=spec.name, storage=url))[0].name == spec.name


def test_the_resume_and_clean_commands_shown_take_a_name_that_starts_with_a_dash():
    """``sweeper resume -lr-test`` pasted was ``No such option: -l``: the name goes after ``--``, the flags before."""
    import shlex

    from search_spaces.loader import load_spec
    from sweeper.preflight import SweepOptions, clean_command, resume_command

    spec = load_spec("asl20", overrides=["name=-lr-test"])
    url = "sqlite:////tmp/A proj/my sweeps.db"
    options = SweepOptions(space="asl20", storage=url, results_dir="/tmp/my runs")
    assert shlex.split(resume_command(spec, options, url)) == ["sweeper", "resume", "--storage", url, "--", "-lr-test"]
    assert shlex.split(clean_command(spec, options, url)) == \
        ["sweeper", "clean", "--storage", url, "--results-dir", "/tmp/my runs", "--", "-lr-test"]


@pytest.mark.usefixtures("optuna_deprecates_prior_weight")
def test_a_study_stored_with_a_sampler_option_optuna_deprecates_resumes(tmp_path, monkeypatch):
    """A study an earlier sweeper ran with a sampler option Optuna has since deprecated (TPE's prior_weight, which
    still works) could be neither resumed (its stored spec refused) nor run again without it (a changed sampler):
    the stored spec keeps what it ran with; a new space is still told to leave the option out (found by a
    regression check)."""
    from search_spaces.loader import load_spec

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    core = load_spec("spaces/asl20.yaml", (f"name=dep-{uuid.uuid4().hex[:8]}",), quick=True)
    study = open_study(core, url, None)[0]
    stored = study.user_attrs[attrs.SPEC]
    study.set_user_attr(attrs.SPEC, {**stored, "sampler": {**stored["sampler"], "prior_weight": 2.0,
                                                          "n_startup_trials": -1}})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        resumed = prepare(SweepOptions(study=core.name, storage=url, overrides=("budget.trials=8",)))[0]
    assert resumed.sampler.options["prior_weight"] == 2.0 and resumed.budget.trials == 8
    with pytest.raises(SpecError, match="prior_weight: is deprecated by Optuna"):
        load_spec("spaces/asl20.yaml", ("sampler.prior_weight=2.0",))


@pytest.mark.usefixtures("optuna_deprecates_prior_weight")
def test_a_study_that_ran_with_a_deprecated_sampler_option_runs_from_its_space_with_one_note(tmp_path, monkeypatch,
                                                                                             capsys):
    """``sweeper run SPACE`` of a study that ran with a sampler option Optuna has since deprecated was refused (the
    option, in the space as the study ran it) while ``sweeper resume NAME`` went on and printed Optuna's raw
    FutureWarning line: both go on with one plain note, and only a new study is told to leave the option out."""
    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    sets = (f"name=dep-{uuid.uuid4().hex[:8]}", "sampler.prior_weight=2.0")
    study = open_study(load_spec("spaces/asl20.yaml", sets[:1], quick=True), url, None)[0]
    stored = study.user_attrs[attrs.SPEC]  # what an earlier sweeper took without a word
    study.set_user_attr(attrs.SPEC, {**stored, "sampler": {**stored["sampler"], "prior_weight": 2.0}})
    for options in (SweepOptions(space="spaces/asl20.yaml", overrides=sets, quick=True, storage=url),
                    SweepOptions(study=sets[0][5:], storage=url)):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("default")
            spec = prepare(options)[0]
            build_sampler(spec, resumed_after=1)  # as the sweep builds it
        said = " ".join(capsys.readouterr().out.split())
        assert said.count("note: ") == 1 and "ran with sampler.prior_weight, which Optuna has deprecated" in said, said
        assert spec.sampler.options["prior_weight"] == 2.0
        assert not [w for w in caught if issubclass(w.category, FutureWarning)], [str(w.message) for w in caught]
    for options in (SweepOptions(space="spaces/asl20.yaml", overrides=sets, quick=True, storage=url, fresh=True),
                    SweepOptions(space="spaces/asl20.yaml", overrides=(*sets, "name=another"), storage=url)):
        with pytest.raises(SpecError, match=r"--set sampler.prior_weight=2.0: sampler.prior_weight: is deprecated"):
            prepare(options)


@pytest.mark.usefixtures("optuna_deprecates_prior_weight")
def test_a_deprecated_sampler_option_is_refused_before_optunas_tables_join_another_applications(postgres_url):
    """A new study's deprecated sampler option, refused once the storage was read, was refused after prepare had
    created Optuna's tables in a PostgreSQL database that held only another application's: bad input wrote them."""
    import sqlalchemy
    from sqlalchemy.engine import make_url

    name, admin = f"explore_dep_{uuid.uuid4().hex[:8]}", sqlalchemy.create_engine(postgres_url,
                                                                                  isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    database = sqlalchemy.create_engine(url)
    try:
        with database.begin() as connection:
            connection.exec_driver_sql("CREATE TABLE accounts (id integer)")
        options = SweepOptions(space="spaces/asl20.yaml", overrides=("sampler.prior_weight=2.0",), storage=url)
        with pytest.raises(SpecError, match=r"sampler\.prior_weight: is deprecated by Optuna"):
            prepare(options)
        assert sqlalchemy.inspect(database).get_table_names() == ["accounts"]
    finally:
        database.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.mark.usefixtures("optuna_deprecates_prior_weight")
def test_a_deprecated_sampler_option_of_the_quick_section_alone_is_refused_as_validate_refuses_it(tmp_path):
    """``sweeper run SPACE`` lets the full spec's deprecated sampler options through for the study to vet, and let
    the quick: section's check through too: one that only the quick: section sets passed (validate refused it,
    and so did run --quick, later). The quick: section keeps only what the full spec has."""
    from search_spaces.loader import load_spec

    (tmp_path / "q.yaml").write_text("objective: {metric: val_loss}\ntraining: {epochs: 2}\nparams:\n"
                                     "  lr: {type: float, low: 0.001, high: 0.01}\n"
                                     "quick:\n  training.epochs: 1\n  sampler.prior_weight: 2.0\n")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    for options in (SweepOptions(space=str(tmp_path / "q.yaml"), storage=url),
                    SweepOptions(space=str(tmp_path / "q.yaml"), storage=url, quick=True)):
        with pytest.raises(SpecError, match=r"q\.yaml:7: (--quick: )?sampler\.prior_weight: is deprecated by Optuna"):
            prepare(options)
    same = ("sampler.prior_weight=2.0",)  # the full spec's own, as a study that ran with it has: vetted by prepare
    assert load_spec(tmp_path / "q.yaml", same, keep_deprecated=True).sampler.options["prior_weight"] == 2.0
    (tmp_path / "q.yaml").write_text((tmp_path / "q.yaml").read_text() + "sampler: {type: tpe, prior_weight: 3.0}\n")
    with pytest.raises(SpecError, match=r"q\.yaml:7: --quick: sampler\.prior_weight: is deprecated by Optuna"):
        load_spec(tmp_path / "q.yaml", keep_deprecated=True)  # another value than the full spec's
    assert not (tmp_path / "sweeps.db").exists()


def test_the_final_summary_names_what_carries_a_gone_drivers_trials_on(tmp_path, capsys):
    """Another driver's trials left RUNNING as this sweep ended were carried on by "sweeper run again", which after
    --fresh starts yet another study and leaves them (found by a review): the sweep's own how, sweeper resume NAME."""
    from search_spaces.loader import load_spec
    from storage.resume import own
    from storage.retry import OutagePolicy
    from sweeper.driver import final_summary
    from sweeper.progress import SweepPrinter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="asl20-quick-2", direction="maximize")
    gone = Driver.current()
    own(study.ask(spec.distributions()), Driver(gone.host, gone.pid, -1))  # its pid another process's: it died
    resume = f"sweeper resume asl20-quick-2 --storage {url}"
    final_summary(study, OutagePolicy(30), SweepPrinter(spec, []), resume)
    out = " ".join(capsys.readouterr().out.split())
    assert f"1 trial of a driver that is gone is still RUNNING (#0): {resume} carries it on" in out, out


def test_the_final_summary_leaves_out_a_trial_a_driver_left_for_the_next_run(tmp_path, capsys):
    """A fused trial set aside when budget.time was spent was named 'of a driver that is gone' by the very driver
    that left it for the next run (which says so itself: StudySearcher.drop_unstarted). One that another driver, or
    the run before, left so is named still: this run said nothing of it (it went unnamed, found by a review)."""
    from search_spaces.loader import load_spec
    from storage.resume import own
    from storage.retry import OutagePolicy
    from sweeper.driver import final_summary
    from sweeper.progress import SweepPrinter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    url = f"sqlite:///{tmp_path / 's.db'}"
    study = optuna.create_study(storage=url, study_name="asl20-quick-2", direction="maximize")
    gone = Driver.current()
    own(study.ask(spec.distributions()), Driver(gone.host, gone.pid, -1))
    for _ in range(2):  # #1 left by this driver, #2 by the run before, which this one did not reach
        study.ask(spec.distributions()).set_user_attr(attrs.DRIVER, None)
    final_summary(study, OutagePolicy(30), SweepPrinter(spec, []), "the same command")  # a driver that left none
    out = " ".join(capsys.readouterr().out.split())
    assert "3 trials of a driver that is gone are still RUNNING (#0, #1, #2)" in out, out
    final_summary(study, OutagePolicy(30), SweepPrinter(spec, []), "the same command", said={1})
    out = " ".join(capsys.readouterr().out.split())
    assert "2 trials of a driver that is gone are still RUNNING (#0, #2): the same command carries them on" in out, out


def test_a_resume_with_other_code_records_its_environment_for_the_trials_it_trains(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The study kept its first run's environment only: a resume after a git pull (a study started at bd4c680,
    extended at e5c5d1c) trained trial #10 with other code, and the study, its report and best said bd4c680."""
    from search_spaces.loader import load_spec
    from storage.report import build_report
    from sweeper.inspection import view_of

    monkeypatch.chdir(tmp_path)
    spec, url = load_spec("asl20", quick=True), f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = open_study(spec, url, None)
    for number in range(3):  # the enqueued #0 and #1 finished, #2 interrupted
        trial = study.ask(spec.distributions())
        if number < 2:
            study.tell(trial, 0.5)
    capsys.readouterr()
    open_study(spec, url, None)  # the same code: nothing to add
    assert attrs.ENVIRONMENTS not in study.user_attrs and "note:" not in capsys.readouterr().out
    first = study.user_attrs[attrs.ENVIRONMENT]
    study.set_user_attr(attrs.ENVIRONMENT, {**first, "sweeper_commit": "bd4c6803dab40bb882a5f88719ec0403af7b0577",
                                            "packages": {**first["packages"], "torch": "2.12.0+cpu"}})
    resumed, _ = open_study(spec, url, None)
    assert resumed.user_attrs[attrs.ENVIRONMENTS] == [{"from_trial": 3, "unfinished": [2], **first}]
    out = capsys.readouterr().out
    assert "torch 2.12.0+cpu -> " in out and "sweeper git bd4c6803dab4 -> " in out
    assert "trials from #3 on and those unfinished are recorded as trained with it" in out
    open_study(spec, url, None)  # recorded once: the last record is this code's
    assert len(study.user_attrs[attrs.ENVIRONMENTS]) == 1 and "note:" not in capsys.readouterr().out
    page = build_report(view_of(study), url=url)  # the report's summary names both
    assert "torch 2.12.0+cpu" in page and "<th>environment from #3 (and #2)</th>" in page


def test_a_resume_from_another_folder_notes_no_other_code(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """The git commit came from the resume's working directory: `sweeper resume` run outside the project's
    repository noted 'git 2c535bbd21a6 -> None' and recorded an environment, and the next run from the project the
    reverse, though every trial ran the same code. It is the study's work folder's, as the first run recorded."""
    from search_spaces.loader import load_spec

    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir(), elsewhere.mkdir()
    for command in (["init", "-q"], ["-c", "user.name=a", "-c", "user.email=a@b", "commit", "-q", "--allow-empty",
                                     "-m", "first"]):
        subprocess.run(["git", *command], cwd=project, check=True)
    monkeypatch.chdir(project)
    spec, url = load_spec("asl20", quick=True), f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = open_study(spec, url, None)
    study.tell(study.ask(spec.distributions()), 0.5)
    assert study.user_attrs[attrs.ENVIRONMENT]["git_commit"]
    capsys.readouterr()
    for folder in (elsewhere, project):
        monkeypatch.chdir(folder)
        open_study(spec, url, None)
        assert attrs.ENVIRONMENTS not in study.user_attrs and "note:" not in capsys.readouterr().out


def test_attrs_another_program_wrote_in_other_types_leave_the_study_resumable(tmp_path):
    """Each of these raised in the driver (a traceback, exit 1); the first two left a trial RUNNING that every later
    run raised on again: a row enqueued by hand with a value its param cannot take ('abc' for a float), an orphan's
    resumed count that is no int, a driver attr's pid of -1 (kill(-1, 0) answered that it lived, so the trial was
    never carried on) or 2**70 (OverflowError), work_dir a list (each trial failed in its worker), space_dir a
    number, environments a map."""
    from search_spaces.loader import load_spec
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", ("enqueue=[]",), quick=True)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study, _ = open_study(spec, url, None)
    here = socket.gethostname()
    for pid in (-1, 2**70):
        gone = study.ask()
        gone.set_user_attr(attrs.DRIVER, {"host": here, "pid": pid, "started": None})
        gone.set_user_attr(attrs.RESUMED, "1x")
    study.enqueue_trial({"dropout": "abc"})
    for key, value in {attrs.WORK_DIR: ["a"], attrs.SPACE_DIR: 5, attrs.ENVIRONMENTS: {"a": 1}}.items():
        study.set_user_attr(key, value)
    study, created = open_study(spec, url, None)  # the next run's
    assert not created and study.user_attrs[attrs.ENVIRONMENTS] == {"a": 1}  # the same code: nothing to add
    orphans = orphaned_trials(study)
    assert [t.number for t in orphans] == [0, 1]
    policy = OutagePolicy(30)
    searcher = StudySearcher(study, spec, checkpoints=str(tmp_path), budget=4, driver=Driver.current(),
                             policy=policy, writer=StudyWriter(policy), orphans=orphans)
    assert searcher.work_dir is None  # where the driver runs, not a list handed to every trial
    taken = [searcher._next_trial() for _ in range(3)]
    assert [t.number for t in taken] == [0, 1, 3]
    assert [study.get_trials()[n].user_attrs[attrs.RESUMED] for n in (0, 1)] == [1, 1]
    failed = study.get_trials()[2]
    assert failed.state == TS.FAIL and failed.user_attrs[attrs.ERROR].startswith(
        "ValueError: enqueued dropout='abc', which its param cannot take (")
    assert isinstance(taken[2].params["dropout"], float)
