"""examples/own_function as the README tells a user to run it, so the guide can never rot.

Its function resumes exactly from its checkpoint, ``sweeper train`` runs it (not the built-in model), and it runs
as a real sweep (Ray, SQLite) whose best trial ``sweeper best`` can train again.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import optuna
import pytest
from forked_cli import run_command, run_commands

from sweeper.driver import SweepOptions, run_sweep

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "own_function"
SPACE = EXAMPLE / "spirals.yaml"
TS = optuna.trial.TrialState


def sweeper(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``sweeper ARGS`` as a process of its own, forked by a parent that imported the libraries and torch once for
    this pytest worker (tests/forked_cli.py)."""
    env = {k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}
    return run_command(list(args), cwd, {**env, "COLUMNS": "200"}, preload=("torch", "torch._dynamo"))


def example_fit():
    sys.path.insert(0, str(EXAMPLE))
    try:
        import spirals_fit
    finally:
        sys.path.remove(str(EXAMPLE))
    return spirals_fit.fit


class Stop(Exception):
    """The "kill" between two epochs."""


def test_example_resumes_exactly_from_its_checkpoint(tmp_path: Path) -> None:
    fit = example_fit()
    config = {"epochs": 5, "samples": 300, "lr": 1e-2}
    straight: list[dict] = []
    expected = fit(config, straight.append, str(tmp_path / "straight"))

    def stop_after_two(metrics: dict) -> None:
        if metrics["epoch"] == 3:
            raise Stop
    with pytest.raises(Stop):
        fit(config, stop_after_two, str(tmp_path / "resumed"))  # epoch 3 was checkpointed before its report
    resumed: list[dict] = []
    assert fit(config, resumed.append, str(tmp_path / "resumed")) == expected
    # epochs 1-3 again, marked replayed (a killed driver may have missed their reports), then 4 and 5: the same numbers
    assert resumed == [{**metrics, "replayed": True} for metrics in straight[:3]] + straight[3:]
    import torch

    with pytest.raises(Stop):
        fit(config, stop_after_two, str(tmp_path / "older"))
    state = torch.load(tmp_path / "older" / "state.pt", weights_only=False)
    del state["history"]  # as an older copy of the example saved it: it carries on, with nothing to replay
    torch.save(state, tmp_path / "older" / "state.pt")
    carried: list[dict] = []
    assert fit(config, carried.append, str(tmp_path / "older")) == expected
    assert carried == straight[3:]
    assert set(expected) == {"best_val_acc", "best_epoch", "test_acc", "test_loss"}
    assert set(straight[0]) == {"epoch", "train_loss", "val_loss", "val_acc"}
    assert set(fit.metrics) >= {*straight[0], *expected} - {"epoch"}


REFUSED = {  # a --set that fit does not accept: what train says
    "epocs=3": "did you mean 'epochs'",
    "hidden=wide": "hidden",
    "dataset.classes=20": "--set dataset.classes: unknown setting 'dataset.classes'; allowed: epochs, lr",
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, subprocess.CompletedProcess[str]]:
    """``sweeper train`` of the example once as told and once with each of REFUSED's flags, side by side, torch
    imported once for them all (tests/forked_cli.py): each command paid seconds of CPU importing it."""
    cwd = tmp_path_factory.mktemp("train")
    commands = {"ok": ["train", str(SPACE), "--set", "epochs=3", "--set", "samples=300"],
                **{flag: ["train", str(SPACE), "--set", flag] for flag in REFUSED}}
    env = {**{k: v for k, v in os.environ.items() if k != "SWEEPER_STORAGE"}, "COLUMNS": "200"}
    return dict(zip(commands, run_commands(list(commands.values()), cwd, env, 2, preload=("torch",)), strict=True))


def test_sweeper_train_runs_the_examples_own_function(trained: dict[str, subprocess.CompletedProcess[str]]) -> None:
    proc = trained["ok"]
    assert proc.returncode == 0, proc.stderr
    lines = proc.stdout.splitlines()
    epochs = [line for line in lines if line.startswith("epoch")]
    assert [line.split()[1] for line in epochs] == ["1/3", "2/3", "3/3"]
    assert all("train_loss" in line and "val_acc" in line for line in epochs)
    assert any(line.startswith("final: best_val_acc") and "test_acc" in line for line in lines)
    assert "spirals_fit:fit" in lines[-1]
    # never the built-in model: no parameter count, no landmark data line, none of its metrics
    assert "parameters on" not in proc.stdout and "classes" not in proc.stdout and "top3" not in proc.stdout


@pytest.mark.parametrize(("flag", "message"), REFUSED.items())
def test_train_refuses_what_the_examples_function_does_not_accept(trained: dict[str, subprocess.CompletedProcess[str]],
                                                                  flag: str, message: str) -> None:
    proc = trained[flag]
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert message in proc.stderr and "Traceback" not in proc.stderr
    assert "epoch" not in proc.stdout


@pytest.mark.slow
def test_example_runs_as_a_sweep_and_its_best_trial_trains_again(ray_session, tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(SPACE), quick=True, storage=url, results_dir=str(tmp_path / "runs")))
    trials = optuna.load_study(study_name="spirals-quick", storage=url).get_trials()
    assert len(trials) == 4 and all(t.state in (TS.COMPLETE, TS.PRUNED) for t in trials), [t.state for t in trials]
    complete = [t for t in trials if t.state == TS.COMPLETE]
    assert complete  # ASHA always lets the first trial at a rung go on
    for trial in complete:
        assert sorted(trial.intermediate_values) == [1, 2, 3, 4]
        assert trial.value == trial.user_attrs["best_val_acc"]  # the returned best_<metric> is the objective
        assert trial.value == max(trial.intermediate_values.values())
        assert {"test_acc", "test_loss", "best_epoch"} <= set(trial.user_attrs)
        folder = Path(study.user_attrs["checkpoints"]) / f"trial-{trial.number:05d}"
        assert (folder / "state.pt").is_file()

    # from the checkout, above the space's folder: best imports a study's code from there or below only
    best = sweeper("best", "spirals-quick", "--storage", url, "--format", "json", cwd=SPACE.parents[2])
    assert best.returncode == 0, best.stderr
    data = json.loads(best.stdout)
    assert data["entrypoint"] == "spirals_fit:fit" and data["note"] is None
    words = shlex.split(data["reproduce"])
    assert words[:3] == ["sweeper", "train", str(SPACE)]
    again = sweeper(*words[1:], cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    final = next(line for line in again.stdout.splitlines() if line.startswith("final:")).split()
    shown = final[final.index("best_val_acc") + 1]  # an accuracy, in percent with 2 decimals
    assert shown.endswith("%") and float(shown[:-1]) / 100 == pytest.approx(data["value"], abs=6e-5)

