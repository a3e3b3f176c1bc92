"""trials.fused: a member of a fused group reports what the same config reports alone, fails and leaves alone,
and checkpoints in the single trial's format (a member resumes alone, a single trial's checkpoint joins a group).

Real training on tiny synthetic data, CPU. "Alone" is always ``trials.run`` itself.
"""

from __future__ import annotations

import copy
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import optuna
import pytest
import torch
from test_resume import checkpoint_folder, resumable_space

from search_spaces.loader import load_spec
from sweeper.driver import SweepOptions, run_sweep
from sweeper.trainable import output_kept
from trials.config import ConfigError, TrainConfig
from trials.fused import group_key, run_group
from trials.random_stream import dropout_draws_in_memory_order, shared_mixup
from trials.train import NonFiniteLossError, run, trained_config

TS = optuna.trial.TrialState

# enough data and lr that the members learn (their metrics move apart), small enough for a fast test
BASE = {"dataset.classes": 6, "dataset.samples_per_class": 10, "dataset.seq_len": 8, "epochs": 4,
        "batch_size": 8, "lr": 3e-3, "seed": 7}
# members that differ in every per-member hyperparameter, and in the length of their run
MEMBERS = [
    {**BASE, "mixup_alpha": 0.2, "class_weights": True},
    {**BASE, "lr": 1e-2, "weight_decay": 0.05, "warmup_epochs": 1, "label_smoothing": 0.0, "dropout": 0.0,
     "seed": 3},
    {**BASE, "lr": 1e-3, "weight_decay": 0.0, "warmup_epochs": 0, "label_smoothing": 0.3, "dropout": 0.3,
     "mixup_alpha": 1.0, "seed": 11, "grad_clip": 0.0, "min_lr": 1e-4},
    {**BASE, "lr": 5e-3, "warmup_epochs": 2.5, "label_smoothing": 0.05, "dropout": 0.2, "mixup_alpha": 0.4,
     "seed": 5, "grad_clip": 0.05, "epochs": 3, "objective": "val_loss"},
    {**BASE, "lr": 1e-9, "min_lr": 0.0, "early_stopping": 1, "seed": 9},  # never improves: stops early alone
]
LOSSES = ("train_loss", "val_loss", "best_val_loss", "test_loss")
TIMINGS = ("epoch_seconds", "samples_per_second", "wall_seconds")


class Pruned(Exception):
    pass


def alone(config, checkpoint_dir=None):
    """``trials.run`` of the config by itself: its reports and its result (uncheckpointed runs are remembered)."""
    if checkpoint_dir is None:
        key = tuple(sorted(config.items()))
        if key not in _ALONE:
            _ALONE[key] = alone(config, False)
        reports, result = _ALONE[key]
        return copy.deepcopy(reports), dict(result)
    reports = []
    return reports, run(config, reports.append, checkpoint_dir or None)


_ALONE: dict = {}


def replayed(reports) -> list[bool]:
    return [m.get("replayed", False) for m in reports]


def assert_same_run(expected, got):
    """Equal metrics, epoch for epoch; losses within float tolerance (batched kernels round differently)."""
    assert [m["epoch"] for m in got] == [m["epoch"] for m in expected]
    for want, have in zip(expected, got, strict=True):
        assert_same_metrics(want, have, f"epoch {want['epoch']}")


def assert_same_result(expected, got):
    assert_same_metrics(expected, got, "final")


def assert_same_metrics(want, have, where):
    assert want.keys() - {"replayed"} == have.keys() - {"replayed"}, where  # replays: see replayed()
    for key in want.keys() - {"replayed"}:
        if key in TIMINGS:
            continue
        if key in LOSSES:
            assert have[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (where, key)
        else:
            assert have[key] == want[key], (where, key)


def test_asking_torch_how_dropout_draws_leaves_the_global_generator_as_it_was():
    dropout_draws_in_memory_order.cache_clear()
    torch.manual_seed(5)
    want = torch.rand(3)
    torch.manual_seed(5)
    assert dropout_draws_in_memory_order() is (torch.__version__ >= "2.7")  # measured on 2.3, 2.6, 2.7, 2.9, 2.13
    assert torch.equal(torch.rand(3), want)


def test_each_member_reports_exactly_what_it_reports_alone():
    reports = [[] for _ in MEMBERS]
    outcomes = run_group(MEMBERS, [r.append for r in reports])
    finals = []
    for config, got, outcome in zip(MEMBERS, reports, outcomes, strict=True):
        want, result = alone(config)
        assert_same_run(want, got)
        assert_same_result(result, outcome)
        finals.append(outcome)
    # the group is not trivially equal: members learned different things and ran for different lengths
    assert len({round(r[0]["train_loss"], 4) for r in reports}) == len(MEMBERS)
    assert [f["epochs_run"] for f in finals] == [4, 4, 4, 3, 2]
    assert finals[4]["stop_reason"] == "early_stopping" and finals[0]["stop_reason"] == "completed"
    assert max(f["val_top1"] for f in finals) > 1 / 6  # someone learned above chance


def test_a_member_with_a_nan_loss_fails_alone_and_the_others_go_on():
    exploding = {**BASE, "lr": 1e30, "grad_clip": 0.0, "label_smoothing": 0.0, "seed": 1}
    members = [MEMBERS[0], exploding, MEMBERS[2]]
    reports = [[] for _ in members]
    left = []  # (member, epochs the others had reported then): the failed one is out while the others train
    outcomes = run_group(members, [r.append for r in reports],
                         finished=lambda k, outcome: left.append((k, len(reports[0]), outcome)))
    assert [k for k, _, _ in left] == [1, 0, 2] and left[0][1] <= 1
    assert [outcome for _, _, outcome in sorted(left)] == outcomes
    assert isinstance(outcomes[1], NonFiniteLossError)
    assert "non-finite loss" in str(outcomes[1]) and "lr=1e+30" in str(outcomes[1])
    with pytest.raises(NonFiniteLossError, match="non-finite loss") as alone_error:  # and so it fails alone
        run(exploding)
    assert str(outcomes[1]).split(" at step ")[1] == str(alone_error.value).split(" at step ")[1]
    assert len(reports[1]) <= 1
    for k in (0, 2):
        want, result = alone(members[k])
        assert_same_run(want, reports[k])
        assert_same_result(result, outcomes[k])


def test_weights_gone_nan_at_an_epochs_last_step_fail_the_trial_alone_and_in_a_group():
    """Every training loss was finite, but the epoch's last step made the weights NaN: NaN logits rank first in
    every top-k, and the trial was COMPLETE with a made-up accuracy (found by an exploratory test)."""
    late = {**BASE, "epochs": 1, "batch_size": 24, "lr": 4e4, "grad_clip": 0.0, "label_smoothing": 0.0,
            "warmup_epochs": 0, "seed": 1}
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss \(nan\) at step 2:") as alone_error:  # 2 steps
        run(late)
    steady = {**BASE, "batch_size": 24}
    reports = [[], []]
    outcomes = run_group([steady, late], [r.append for r in reports])
    assert isinstance(outcomes[1], NonFiniteLossError) and str(outcomes[1]) == str(alone_error.value)
    assert reports[1] == []
    want, result = alone(steady)
    assert_same_run(want, reports[0])
    assert_same_result(result, outcomes[0])


def test_a_pruned_member_leaves_and_the_others_go_on(tmp_path):
    def prune_at_2(metrics):
        reports[1].append(metrics)
        if metrics["epoch"] == 2:
            raise Pruned("asha rung 2")

    members = MEMBERS[:3]
    reports = [[] for _ in members]
    outcomes = run_group(members, [reports[0].append, prune_at_2, reports[2].append],
                         [tmp_path / f"m{k}" for k in range(3)])
    assert isinstance(outcomes[1], Pruned) and str(outcomes[1]) == "asha rung 2"
    assert [m["epoch"] for m in reports[1]] == [1, 2]
    assert torch.load(tmp_path / "m1" / "state.pt", weights_only=True)["progress"]["epoch"] == 2
    for k in (0, 2):
        want, result = alone(members[k])
        assert_same_run(want, reports[k])
        assert_same_result(result, outcomes[k])
    want, _ = alone(members[1])
    assert_same_run(want[:2], reports[1])


def test_a_member_checkpoint_resumes_alone_and_a_single_checkpoint_resumes_in_a_group(tmp_path):
    straight = [alone(config) for config in MEMBERS[:2]]

    # member 0 stops after epoch 2 inside a group; it finishes alone from its own checkpoint
    def stop_at_2(metrics):
        if metrics["epoch"] == 2:
            raise Pruned

    run_group(MEMBERS[:2], [stop_at_2, None], [tmp_path / "a", tmp_path / "b-group"])
    resumed, result = alone(MEMBERS[0], tmp_path / "a")
    assert_same_run(straight[0][0], resumed)  # epochs 1 and 2 reported again first, as a resumed run does
    assert replayed(resumed) == [True, True, False, False]
    assert_same_result(straight[0][1], result)

    # a single trial stopped after epoch 1 carries on inside a group beside a fresh member
    def stop_at_1(metrics):
        if metrics["epoch"] == 1:
            raise Pruned

    with pytest.raises(Pruned):
        run(MEMBERS[1], stop_at_1, tmp_path / "b")
    reports = [[], []]
    outcomes = run_group([MEMBERS[1], MEMBERS[0]], [r.append for r in reports], [tmp_path / "b", tmp_path / "c"])
    assert_same_run(straight[1][0], reports[0])  # epoch 1 again, then 2..4
    assert replayed(reports[0]) == [True, False, False, False] and not any(replayed(reports[1]))
    assert_same_result(straight[1][1], outcomes[0])
    assert_same_run(straight[0][0], reports[1])

    # the files are the single trial's format, key for key
    single = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    member = torch.load(tmp_path / "b-group" / "state.pt", weights_only=True)
    assert single.keys() == member.keys() and single["data"] == member["data"] != ""  # the data it trained on
    assert single["model"].keys() == member["model"].keys()
    assert single["optimizer"]["state"].keys() == member["optimizer"]["state"].keys()
    assert single["optimizer"]["state"][0].keys() == member["optimizer"]["state"][0].keys()


def test_a_member_whose_checkpoint_is_another_runs_fails_alone_and_the_others_go_on(tmp_path):
    """A checkpoint ``load_state`` refuses (another config's: folders mixed up, or the space changed since) fails its
    member at once with that ConfigError, as it fails ``run``; it no longer fails the group, nor Ray's retries."""
    run({**MEMBERS[0], "epochs": 1}, None, tmp_path / "b")  # member 1's folder holds another run
    reports, finished = [[], []], []
    outcomes = run_group(MEMBERS[:2], [r.append for r in reports], [tmp_path / "a", tmp_path / "b"],
                         finished=lambda index, outcome: finished.append(index))
    assert isinstance(outcomes[1], ConfigError)
    assert "b/state.pt holds a run of another config" in str(outcomes[1]) and reports[1] == [] and finished == [1, 0]
    want_reports, want_result = alone(MEMBERS[0])
    assert_same_run(want_reports, reports[0])
    assert_same_result(want_result, outcomes[0])
    assert [type(o) for o in run_group([MEMBERS[1]], None, [tmp_path / "b"])] == [ConfigError]  # none left to train


def test_group_drawn_dropout_keeps_every_other_stream_of_the_member():
    # exact_rng=False (the CUDA default) draws dropout masks and mixup for the whole group at once: a member
    # without either still matches its run alone exactly, a member with them trains on other draws
    reports = [[], []]
    run_group(MEMBERS[:2], [r.append for r in reports], exact_rng=False)
    assert_same_run(alone(MEMBERS[1])[0], reports[1])
    with_dropout = alone(MEMBERS[0])[0]
    assert [m["epoch"] for m in reports[0]] == [m["epoch"] for m in with_dropout]
    assert reports[0][0]["train_loss"] != pytest.approx(with_dropout[0]["train_loss"], rel=1e-5)


def test_group_drawn_mixup_mixes_each_member_with_its_own_lam_and_partners():
    k, batch = 3, 8
    inputs = torch.randn(k, batch, 4, 5)
    targets = torch.eye(batch).expand(k, batch, batch).clone()  # sample i has label i: mixing shows its partner
    torch.manual_seed(0)
    mixed_inputs, mixed_targets = shared_mixup(inputs, targets, torch.tensor([[0.0], [0.4], [1.0]]))
    assert torch.equal(mixed_inputs[0], inputs[0]) and torch.equal(mixed_targets[0], targets[0])  # alpha 0
    lams, partner_orders = [], []
    for m in (1, 2):
        assert torch.allclose(mixed_targets[m].sum(dim=1), torch.ones(batch))
        lam = mixed_targets[m].diagonal().min().item()  # below 1 wherever a sample has another partner
        partners = [next((j for j in range(batch) if j != i and mixed_targets[m, i, j] > 0), i) for i in range(batch)]
        assert sorted(partners) == list(range(batch)) and 0 < lam < 1
        assert torch.allclose(mixed_inputs[m], lam * inputs[m] + (1 - lam) * inputs[m, partners], atol=1e-6)
        lams.append(lam)
        partner_orders.append(partners)
    assert lams[0] != lams[1] and partner_orders[0] != partner_orders[1]  # each member draws its own


def test_configs_that_change_tensor_shapes_cannot_share_a_group():
    assert group_key(MEMBERS[0]) == group_key(MEMBERS[3])
    assert group_key(BASE) != group_key({**BASE, "model.size": "medium"})
    with pytest.raises(ConfigError, match=r"must share model architecture .* member 1 has \(128, 4, 8\)"):
        run_group([BASE, {**BASE, "model.size": "medium"}])
    with pytest.raises(ConfigError, match="must share batch_size: member 0 has 8, member 1 has 16"):
        run_group([BASE, {**BASE, "batch_size": 16}])
    with pytest.raises(ConfigError, match=r"must share dataset\.classes: member 0 has 6, member 1 has 7"):
        run_group([BASE, {**BASE, "dataset.classes": 7}])


FORBIDDEN_ON_THE_GPU_IMAGE = ("ray", "optuna", "sqlalchemy", "pydantic")


def test_bench_gpu_runs_on_cpu_importing_only_torch_numpy_and_trials(tmp_path):
    # the GPU image lacks these: stand-ins that fail on import, for the bench and every process it starts
    for name in FORBIDDEN_ON_THE_GPU_IMAGE:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(f"raise ImportError('bench/gpu.py imported {name}')\n")
    root = Path(__file__).resolve().parents[1]
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    done = subprocess.run(
        [sys.executable, str(root / "bench" / "gpu.py"), "--device", "cpu", "--sizes", "small", "--packing", "2",
         "--fuse", "1", "2", "--epochs", "2", "--samples-per-class", "4", "--seconds", "0.2", "--learn-seeds", "2",
         "--learn-epochs", "2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. one trial", "2. packing", "3. torch.compile: skipped", "4. fused groups", "5. learning"):
        assert heading in out
    learned = {line.split()[0]: line.split("per seed")[1].split() for line in out.splitlines()
               if line.startswith(("alone ", "fused "))}
    assert len(learned["alone"]) == 2 and learned["fused"] == learned["alone"]  # on the CPU a member is exact
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:4].strip().isdigit()}
    assert {"1", "2"} <= rows.keys()  # packing N=2, fused K=1 and K=2 rows
    small = next(line.split() for line in out.splitlines() if line.startswith("small"))
    assert float(small[1]) > 0 and float(small[2]) > 0  # samples/s and step ms
    assert "CPU run: GPU rows not measured, no device lent" in out
    assert "best: " in out


# --- fused sweeps: resources.fuse, real Ray and real storage ---------------------------------------------------
def quick_fused(name: str, *overrides: str) -> tuple[str, ...]:
    return (f"name={name}", *overrides)


def alone_values(spec, trial) -> dict[int, float]:
    """The intermediate values the trial's config reaches through ``trials.run`` alone (the driver adds threads)."""
    reports, _ = alone({**spec.trial_config(trial.params), "threads": max(1, int(spec.resources.cpu))})
    return {m["epoch"]: m[spec.objective.metric] for m in reports}


def group_of(trial) -> str:
    return trial.user_attrs["ray_trial_id"].split("/")[0]


@pytest.mark.slow
# on PostgreSQL alone: fusing plays no part in the storage (members are recorded as any trial is), and this is the
# suite's sweep of the real training core on PostgreSQL (test_sweep's asl20 --quick acceptance run is on SQLite)
@pytest.mark.postgres
@pytest.mark.parametrize("storage_url", ["postgres"], indirect=True)
def test_quick_fused_sweep_records_each_member_as_its_own_trial(ray_session, tmp_path, monkeypatch, storage_url):
    """The acceptance run: asl20 --quick with resources.fuse=4 records 6 separate trials, each as if alone."""
    monkeypatch.chdir(tmp_path)
    name = f"asl20-fused-{uuid.uuid4().hex[:8]}"
    overrides = quick_fused(name, "resources.fuse=4")
    run_sweep(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=storage_url, overrides=overrides))
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    assert len(trials) == 6 and all(t.state in (TS.COMPLETE, TS.PRUNED) for t in trials)
    groups = sorted({group_of(t) for t in trials}, key=lambda g: min(t.number for t in trials if group_of(t) == g))
    assert [sorted(t.number for t in trials if group_of(t) == g) for g in groups] == [[0, 1, 2, 3], [4, 5]]
    spec = load_spec("spaces/asl20.yaml", overrides, quick=True)
    for t in trials:
        assert t.intermediate_values, t.number
        if t.state == TS.COMPLETE:
            assert sorted(t.intermediate_values) == [1, 2, 3]
            for key in ("test_top1", "test_top3", "test_top5", "val_top3", "epochs_run", "wall_seconds", "device",
                        "node"):
                assert key in t.user_attrs, key
        else:
            assert t.user_attrs["epochs_run"] < 3 and t.user_attrs["stop_reason"] == "pruned"
        # the study cannot tell: every value is the one the member's config reaches alone
        want = alone_values(spec, t)
        assert t.intermediate_values == {e: pytest.approx(want[e], abs=1e-6) for e in t.intermediate_values}
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=name, storage=storage_url)


def one_group(folder: Path, scheduler: str, lrs: tuple[str, str, str], *overrides: str) -> tuple[str, list]:
    """A quick asl20 sweep (run from ``folder``) of one fused group: 3 enqueued trials that differ in lr alone, on
    easy data (so that a member that learns is ahead after one epoch whatever the space's calibration), judged on
    val_loss; the study's name and its trials."""
    url = f"sqlite:///{folder / 'sweeps.db'}"
    name = f"asl20-fused-{uuid.uuid4().hex[:8]}"
    run_sweep(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=url, results_dir="runs", overrides=(
        f"name={name}", "resources.fuse=3", "budget.trials=3", "objective.metric=val_loss",
        "training.dataset.noise=0.1", "training.min_lr=0", "params.lr.low=1e-9", f"scheduler={scheduler}",
        *overrides, "enqueue=[" + ", ".join("{label_smoothing: 0.1, warmup_epochs: 0.0, weight_decay: 1.0e-3, "
                                            f"dropout: 0.1, mixup_alpha: 0.0, lr: {lr}}}" for lr in lrs) + "]")))
    return name, optuna.load_study(study_name=name, storage=url).get_trials()


@pytest.mark.slow
def test_fused_members_fail_and_are_pruned_alone(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    # #0 explodes (NaN), #1 learns, #2 cannot learn (lr 1e-9) and is behind #1 at ASHA's first rung
    name, trials = one_group(tmp_path, "{type: asha, grace_period: 1, reduction_factor: 2}",
                             ("1.0e30", "3.0e-3", "1.0e-9"), "training.grad_clip=0", "params.lr.high=1e31")
    assert [t.state for t in trials] == [TS.FAIL, TS.COMPLETE, TS.PRUNED]
    assert len({group_of(t) for t in trials}) == 1
    assert "non-finite loss" in trials[0].user_attrs["error"] and trials[0].user_attrs["stop_reason"] == "diverged"
    assert sorted(trials[1].intermediate_values) == [1, 2, 3]
    assert sorted(trials[2].intermediate_values) == [1] and trials[2].user_attrs["stop_reason"] == "pruned"
    # the pruned member left its group at once: its checkpoint stops at the rung
    state = checkpoint_folder(tmp_path, name, 2) / "state.pt"
    assert torch.load(state, weights_only=True)["progress"]["epoch"] == 1
    for number in range(3):  # each member has its output file, as a trial alone does: its group's output
        output = (checkpoint_folder(tmp_path, name, number).parent / f"trial-{number:05d}.log").read_text()
        assert "trials 0, 1, 2 train as one fused group" in output and "non-finite loss" in output, output


@pytest.mark.slow
def test_the_median_rule_prunes_the_member_behind_the_rest_of_its_group(ray_session, tmp_path, monkeypatch):
    """Ray's median rule keeps each trial's history by the trial object: each member gets one for its life."""
    monkeypatch.chdir(tmp_path)
    # reporting in order, #2 (lr 1e-9, cannot learn) is judged at epoch 1 against #0 and #1
    _, trials = one_group(tmp_path, "{type: median, grace_period: 1, min_samples_required: 2}",
                          ("3.0e-3", "2.0e-3", "1.0e-9"))
    assert [t.state for t in trials] == [TS.COMPLETE, TS.COMPLETE, TS.PRUNED]
    assert len({group_of(t) for t in trials}) == 1
    assert [sorted(t.intermediate_values) for t in trials] == [[1, 2, 3], [1, 2, 3], [1]]
    assert trials[2].user_attrs["stop_reason"] == "pruned"


@pytest.mark.slow
def test_a_sweep_stopping_at_its_target_records_the_members_that_finished_with_the_first_as_complete(
        ray_session, tmp_path, monkeypatch):
    """A group that finishes in lockstep sends its members' results one by one: the sweep stopped at the first,
    which met the target, and recorded the others, trained to their last epoch, PRUNED without test metrics."""
    monkeypatch.chdir(tmp_path)
    _, trials = one_group(tmp_path, "{type: none}", ("3.0e-3", "2.0e-3", "1.0e-3"),
                          "budget.stop_on_target=true", "targets={test_top3: 0.01}")
    assert [t.state for t in trials] == [TS.COMPLETE] * 3, [t.user_attrs.get("stop_reason") for t in trials]
    assert all("test_top3" in t.user_attrs and sorted(t.intermediate_values) == [1, 2, 3] for t in trials)


@pytest.mark.parametrize("command", ["run", "validate"])
def test_fused_sweep_refuses_what_it_cannot_fuse(tmp_path, command):
    space = resumable_space(tmp_path, trials=2, sleep=0.0)  # a user's own training function
    storage = ["--storage", f"sqlite:///{tmp_path / 'sweeps.db'}"] if command == "run" else []

    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "sweeper.cli", command, str(space), *args, *storage],
                              capture_output=True, text=True, cwd=tmp_path, timeout=120)

    done = cli("--set", "resources.fuse=4")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "--set resources.fuse=4: resources.fuse: fused groups train the built-in model only (entrypoint " \
           "trials:run), not resumable_train:train; or set resources.fuse: 1" in done.stdout + done.stderr
    assert not (tmp_path / "sweeps.db").exists()
    if command == "validate":  # a space's on_gpu.fuse (a GPU's offer) is no reason to refuse the space
        done = cli("--set", "resources.on_gpu={gpu: 1, fuse: 16}")
        assert done.returncode == 0, done.stdout + done.stderr
        assert done.stdout.startswith("# resources.on_gpu.fuse: 16 does not apply (fused groups train the built-in "
                                      "model only (entrypoint trials:run), not resumable_train:train): on a GPU "
                                      "each trial trains alone\n"), done.stdout


def held_open_under(folder: Path) -> set[int]:
    """The processes with a file under ``folder`` open: a trial's worker keeps its output file open as it trains."""
    held = set()
    for fds in Path("/proc").glob("[0-9]*/fd"):
        try:
            if any(os.readlink(fd).startswith(f"{folder}/") for fd in fds.iterdir()):
                held.add(int(fds.parent.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return held


def checkpointed_epoch(folder: Path, name: str, number: int) -> int:
    return checkpointed(folder, name, number).get("progress", {}).get("epoch", 0)


def checkpointed(folder: Path, name: str, number: int) -> dict[str, Any]:
    state = checkpoint_folder(folder, name, number) / "state.pt"
    try:
        return torch.load(state, weights_only=True)
    except (FileNotFoundError, RuntimeError, EOFError):  # not written yet
        return {}


@pytest.mark.slow
@pytest.mark.parametrize("storage_url", ["sqlite"], indirect=True)  # resume on PostgreSQL: test_resume.py's kill -9
def test_kill_9_of_a_fused_sweep_resumes_each_member_from_its_own_checkpoint(tmp_path, storage_url):
    name, epochs = f"asl20-fused-{uuid.uuid4().hex[:8]}", 3  # killed after epoch 1 or 2: the rest trains on resume
    overrides = [f"name={name}", "resources.fuse=3", "budget.trials=3", "budget.max_concurrent=1",
                 f"training.epochs={epochs}", "scheduler={type: none}", "training.dataset.samples_per_class=16"]
    command = [sys.executable, "-m", "sweeper.cli", "run", "spaces/asl20.yaml", "--quick",
               *(arg for o in overrides for arg in ("--set", o)), "--storage", storage_url, "--results-dir", "runs"]
    proc = subprocess.Popen(command, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)
    deadline = time.time() + 180
    while time.time() < deadline and not all(checkpointed_epoch(tmp_path, name, n) >= 1 for n in (0, 1, 2)):
        assert proc.poll() is None, proc.stdout.read()
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    assert proc.wait(timeout=60) == -signal.SIGKILL
    before = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    interrupted = {t.number: checkpointed_epoch(tmp_path, name, t.number) for t in before if t.state == TS.RUNNING}
    assert set(interrupted) == {0, 1, 2} and min(interrupted.values()) >= 1, before
    assert max(interrupted.values()) < epochs
    # the orphaned group's worker notices its raylet is gone (ORPHAN_POLL_S) and exits, closing its members' files
    members = checkpoint_folder(tmp_path, name, 0).parent
    deadline = time.time() + 60
    while held := held_open_under(members):
        assert time.time() < deadline, f"{held} still hold files of the killed sweep's trials open"
        time.sleep(0.1)
    # each epoch's wall time is in its checkpoint: a member that retrains an epoch (or reads another's) differs there
    histories = {n: checkpointed(tmp_path, name, n)["progress"]["history"] for n in interrupted}

    spec = load_spec("spaces/asl20.yaml", overrides, quick=True)
    with ThreadPoolExecutor(1) as pool:  # what each config reaches alone, worked out as the sweep carries them on
        alone_runs = pool.submit(lambda: {t.number: alone_values(spec, t) for t in before})
        again = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "carrying on 3 trials" in again.stdout, again.stdout
    trials = optuna.load_study(study_name=name, storage=storage_url).get_trials()
    assert len(trials) == 3 and all(t.state == TS.COMPLETE for t in trials), trials
    for t in trials:  # carried on from its own checkpoint, every epoch is what the config reaches in one run
        assert sorted(t.intermediate_values) == list(range(1, epochs + 1)) and t.user_attrs.get("resumed") == 1
        want = alone_runs.result()[t.number]
        assert t.intermediate_values == {e: pytest.approx(want[e], abs=1e-6) for e in t.intermediate_values}
        # its folder holds its own run, carried on from the very checkpoint it was killed with, not retrained
        state = checkpointed(tmp_path, name, t.number)
        assert state["config"] == trained_config(TrainConfig.from_flat(spec.trial_config(t.params))), t.number
        assert state["progress"]["epoch"] == epochs, t.number
        assert state["progress"]["history"][:len(histories[t.number])] == histories[t.number], t.number
    if storage_url.startswith("postgresql"):
        optuna.delete_study(study_name=name, storage=storage_url)


def test_a_group_member_file_on_a_full_disk_loses_its_header_not_the_group(tmp_path):
    """A member's output file on a full disk (/dev/full takes no byte): the group's header line is lost there, as the
    tee loses output, and the group runs, its output in the other member's file; the header's ENOSPC ended the group
    before its first epoch (a plain OSError: a Ray retry, not the disk stop) and leaked both files' descriptors."""
    def descriptors() -> int:
        return len(os.listdir("/proc/self/fd"))

    kept, before = tmp_path / "trial-00000.log", descriptors()
    with output_kept(kept, Path("/dev/full"), header="[sweeper] trials 0, 1 train as one fused group\n"):
        os.write(1, b"epoch 1\n")
    assert kept.read_text() == "[sweeper] trials 0, 1 train as one fused group\nepoch 1\n"
    assert descriptors() == before


def test_a_group_without_descriptors_for_its_pipe_runs_and_keeps_no_member_file_open(tmp_path):
    """The tee's pipe refused (EMFILE: the process is at its limit of open files): the group runs, its output where
    Ray sends it, as where a member's file cannot be opened; the members' files it had opened stayed open."""
    import resource

    def descriptors() -> set[int]:
        return {int(fd) for fd in os.listdir("/proc/self/fd")}

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    before = descriptors()
    free = [fd for fd in range(soft) if fd not in before][:3]  # the two files take the first two; the pipe, none
    ran = False
    resource.setrlimit(resource.RLIMIT_NOFILE, (free[2], hard))
    try:
        with output_kept(tmp_path / "trial-00000.log", tmp_path / "trial-00001.log", header="group\n"):
            ran = True
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert ran and descriptors() == before


@pytest.mark.slow
def test_a_stop_on_target_resume_records_the_members_killed_after_their_last_epoch_complete(ray_session, tmp_path,
                                                                                           monkeypatch):
    """A driver killed after a group's first member met the target, before the others' test metrics (computed after
    their last epoch) were recorded: the next run records those members COMPLETE from the checkpoints of their last
    epoch (the test split only, no epoch trained again), as the live sweep waits for them, instead of PRUNED without
    test metrics; one that had not recorded its last epoch, or kept no checkpoint, is stopped; no trial starts."""
    from storage import attrs
    from storage.resume import Driver

    monkeypatch.chdir(tmp_path)
    name, url = f"asl20-fused-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp_path / 'sweeps.db'}"
    overrides = (f"name={name}", "resources.fuse=3", "budget.max_concurrent=1", "training.epochs=2",
                 "params.warmup_epochs.high=2.0", "scheduler={type: none}", "budget.stop_on_target=true",
                 "targets={test_top3: 0.01}", "enqueue=[]")

    def sweep(trials: int) -> None:
        run_sweep(SweepOptions(space="spaces/asl20.yaml", quick=True, storage=url, results_dir="runs",
                               overrides=(*overrides, f"budget.trials={trials}")))

    sweep(1)  # #0 meets the target
    study, spec = optuna.load_study(study_name=name, storage=url), load_spec("spaces/asl20.yaml", overrides, quick=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    finals, saved = {}, {}
    # #1 and #2 trained both epochs, reported and checkpointed them; #3 reported one; #4 both, but kept no checkpoint
    for reported, kept in ((2, True), (2, True), (1, False), (2, False)):
        ghost = study.ask(spec.distributions())
        ghost.set_user_attr(attrs.DRIVER, Driver(Driver.current().host, dead.pid, None).as_attr())
        reports: list[dict] = []
        final = run({**spec.trial_config(ghost.params), "threads": 1}, reports.append,
                    checkpoint_folder(tmp_path, name, ghost.number)) if kept else {}
        for epoch in range(1, reported + 1):
            ghost.report(reports[epoch - 1]["val_top3"] if kept else 0.1, epoch)
        if final:
            finals[ghost.number] = final
            saved[ghost.number] = (checkpoint_folder(tmp_path, name, ghost.number) / "state.pt").stat().st_mtime_ns

    sweep(6)
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert [t.state for t in trials] == [TS.COMPLETE] * 3 + [TS.PRUNED] * 2  # and no #5
    assert [t.user_attrs["stop_reason"] for t in trials[3:]] == ["sweep_stopped"] * 2
    for number, final in finals.items():
        recorded = trials[number].user_attrs
        assert recorded["test_top3"] == pytest.approx(final["test_top3"]) and recorded["epochs_run"] == 2
        assert len({trials[n].user_attrs["ray_trial_id"].split("/")[0] for n in finals}) == 1  # one group
        assert (checkpoint_folder(tmp_path, name, number) / "state.pt").stat().st_mtime_ns == saved[number]


@pytest.mark.slow
def test_a_resumed_member_whose_checkpoint_is_refused_fails_alone_and_its_group_trains_on(ray_session, tmp_path,
                                                                                         monkeypatch, capsys):
    """A killed sweep resumed with one member's folder holding another trial's run (folders mixed up: the driver
    refuses a changed space or data before anything runs, so this is how a sweep meets ``load_state``'s refusal):
    that member is FAIL at once with the refusal, which says what to do; the other carried-on member and a new one
    train on in the same group, and the study ends with its budget, no trial lost or run twice."""
    from storage import attrs
    from storage.resume import Driver
    from sweeper.driver import open_study
    from sweeper.folders import trial_checkpoint_dir
    from sweeper.preflight import checked_data, prepare
    from trials.train import START_OVER

    monkeypatch.chdir(tmp_path)
    name, url = f"asl20-fused-{uuid.uuid4().hex[:8]}", f"sqlite:///{tmp_path / 'sweeps.db'}"
    options = SweepOptions(space="spaces/asl20.yaml", quick=True, storage=url, results_dir="runs", overrides=(
        f"name={name}", "resources.fuse=3", "budget.trials=3", "budget.max_concurrent=1", "training.epochs=2",
        "params.warmup_epochs.high=2.0", "scheduler={type: none}", "enqueue=[]"))
    spec, _ = prepare(options)
    opened, _ = open_study(spec, url, options.space, Path("runs"), checked_data(spec, url, options))  # as run does
    checkpoints = opened.user_attrs[attrs.CHECKPOINTS]
    study = optuna.load_study(study_name=name, storage=url)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    ghosts = [study.ask(spec.distributions()) for _ in range(2)]  # #0 and #1: RUNNING when their driver was killed
    for ghost in ghosts:
        ghost.set_user_attr(attrs.DRIVER, Driver(Driver.current().host, dead.pid, None).as_attr())
    reports: list[dict] = []

    def killed_after_epoch_1(metrics: dict) -> None:
        reports.append(metrics)
        raise Pruned  # after the epoch's checkpoint, as a kill between epochs leaves it

    with pytest.raises(Pruned):
        run({**spec.trial_config(ghosts[1].params), "threads": 1}, killed_after_epoch_1,
            trial_checkpoint_dir(checkpoints, 1))
    for ghost in ghosts:
        ghost.report(reports[0]["val_top3"], 1)
    refused = trial_checkpoint_dir(checkpoints, 0) / "state.pt"
    refused.parent.mkdir()
    refused.write_bytes((trial_checkpoint_dir(checkpoints, 1) / "state.pt").read_bytes())  # #1's run in #0's folder

    capsys.readouterr()
    run_sweep(options)  # carries #0 and #1 on, with a new #2, as one group
    trials = optuna.load_study(study_name=name, storage=url).get_trials()
    assert [t.state for t in trials] == [TS.FAIL, TS.COMPLETE, TS.COMPLETE], [t.user_attrs.get("error") for t in trials]
    assert len({group_of(t) for t in trials}) == 1 and trials[0].user_attrs[attrs.RESUMED] == 1
    error = trials[0].user_attrs["error"]
    assert error.startswith(f"ConfigError: {refused} holds a run of another config (") and error.endswith(START_OVER)
    assert trials[0].user_attrs.get("stop_reason") is None and sorted(trials[0].intermediate_values) == [1]
    assert START_OVER in " ".join(capsys.readouterr().out.split())  # the sweep's FAIL line says it too
    for t in trials[1:]:
        assert sorted(t.intermediate_values) == [1, 2] and t.user_attrs["stop_reason"] == "completed"
    # #1 carried on from its checkpoint (epoch 1 not trained again: its wall time is the first run's), #2 anew
    carried = torch.load(trial_checkpoint_dir(checkpoints, 1) / "state.pt", weights_only=True)
    assert carried["progress"]["epoch"] == 2 and carried["progress"]["history"][0] == reports[0]
    assert trials[1].user_attrs[attrs.RESUMED] == 1 and attrs.RESUMED not in trials[2].user_attrs


def shapes_searcher(tmp_path: Path, max_concurrent: int, param: str = "", extra: str = "", seed: int = 0
                    ) -> tuple[Any, optuna.Study, Any]:
    """A FusedSearcher over two model sizes (random draws, seed 0: medium, small, small, medium, ...), no Tune."""
    from storage.resume import Driver
    from storage.retry import OutagePolicy
    from sweeper.fused import FusedSearcher
    from sweeper.samplers import build_sampler
    from sweeper.study_writer import StudyWriter

    space = tmp_path / "shapes.yaml"
    space.write_text(textwrap.dedent(f"""\
        name: shapes-{uuid.uuid4().hex[:8]}
        training: {{dataset: {{classes: 5, samples_per_class: 4}}, epochs: 2}}
        params:
          model.size: {{type: categorical, choices: [small, medium]}}
          lr: {{type: float, low: 1.0e-5, high: 1.0e-2, log: true}}
          {param}
        sampler: {{type: random, seed: {seed}}}
        scheduler: {{type: none}}
        budget: {{trials: 11, max_concurrent: {max_concurrent}}}
        resources: {{fuse: 3}}
        """) + extra)
    spec = load_spec(str(space))
    study = optuna.create_study(study_name=spec.name, storage=f"sqlite:///{tmp_path / 'sweeps.db'}",
                                sampler=build_sampler(spec))
    policy = OutagePolicy(60)
    searcher = FusedSearcher(study, spec, checkpoints=str(tmp_path), budget=11, driver=Driver.current(),
                             policy=policy, writer=StudyWriter(policy))
    return spec, study, searcher


def test_a_trial_set_aside_for_another_shape_outlives_the_group_that_asked_it(ray_session, tmp_path):
    """With one group at a time, the group that set a trial aside ends before the next group takes it."""
    from sweeper.fused import MEMBERS, FusedRecorder, Member
    from sweeper.trainable import META_KEY

    spec, study, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    recorder = FusedRecorder(searcher, spec, lambda trial: None, searcher.writer)
    first = searcher.suggest("ray1")[META_KEY][MEMBERS]
    assert searcher.waiting is not None, "seed 0 draws medium, then small"
    aside = searcher.waiting[1][META_KEY]["number"]
    searcher.writer.flush()  # while it waits, the study puts it in no group (it named ray1's, which it is not in)
    assert study.get_trials()[aside].user_attrs["ray_trial_id"] is None
    recorder.on_trial_complete(0, [], Member("ray1"))  # the group ends: its running members end with it
    searcher.writer.flush()
    states = {t.number: t.state for t in study.get_trials()}
    assert all(states[m[META_KEY]["number"]] == TS.PRUNED for m in first) and states[aside] == TS.RUNNING
    second = searcher.suggest("ray2")[META_KEY][MEMBERS]  # it opens the next group, under that group's id
    assert second[0][META_KEY]["number"] == aside
    searcher.writer.flush()
    assert study.get_trials()[aside].user_attrs["ray_trial_id"] == "ray2/0"


def test_a_group_that_fails_fails_its_members_with_its_error_and_one_ended_early_runs_again(tmp_path,
                                                                                            failed_ray_trial):
    """Members of a failed group were recorded "unknown error (Ray kept no error file)": the stand-in got the
    group's error files in the wrong fields. A group Ray ends with its retries unspent (a worker that died between
    groups) was recorded FAIL too; its members run again."""
    from ray.exceptions import ActorDiedError

    from sweeper.fused import MEMBERS, FusedRecorder
    from sweeper.trainable import META_KEY

    spec, study, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    recorder = FusedRecorder(searcher, spec, lambda trial: None, searcher.writer)
    first = [m[META_KEY]["number"] for m in searcher.suggest("ray1")[META_KEY][MEMBERS]]
    recorder.on_trial_error(0, [], failed_ray_trial(ValueError("a shared batch broke"), trial_id="ray1"))
    searcher.writer.flush()
    failed = [study.get_trials()[n] for n in first]
    assert [t.state for t in failed] == [TS.FAIL] * len(first)
    assert all(t.user_attrs["error"] == "a shared batch broke" for t in failed)  # str(error), as Tune writes it
    second = [m[META_KEY]["number"] for m in searcher.suggest("ray2")[META_KEY][MEMBERS]]
    recorder.on_trial_error(0, [], failed_ray_trial(ActorDiedError(), failures=2, trial_id="ray2"))
    asked = [m[META_KEY]["number"] for ray_id in ("ray3", "ray4") for m in searcher.suggest(ray_id)[META_KEY][MEMBERS]]
    assert set(second) <= set(asked) and len(study.get_trials()) == len({*first, *second, *asked})  # none anew
    searcher.writer.flush()
    assert all(study.get_trials()[n].state == TS.RUNNING for n in second)


def test_a_group_ray_runs_again_says_so_for_each_member(tmp_path, failed_ray_trial, capsys):
    """A group whose worker died was run again in silence; a single trial says so."""
    from ray.exceptions import ActorDiedError

    from sweeper.fused import MEMBERS, FusedRecorder
    from sweeper.trainable import META_KEY

    spec, _, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    recorder = FusedRecorder(searcher, spec, lambda trial: None, searcher.writer)
    numbers = [m[META_KEY]["number"] for m in searcher.suggest("ray1")[META_KEY][MEMBERS]]
    recorder.on_trial_recover(0, [], failed_ray_trial(ActorDiedError(), failures=1, trial_id="ray1"))
    err = " ".join(capsys.readouterr().err.split())
    for number in numbers:
        assert f"trial #{number} failed (ActorDiedError" in err and "(retry 1 of 2)" in err, err


@pytest.mark.parametrize("ended_by", ["budget_time", "target"])
def test_a_trial_set_aside_for_a_group_that_never_starts_is_handed_back_unless_at_the_target(ray_session, tmp_path,
                                                                                          ended_by, capsys):
    """budget_time: it was recorded never_started and counted against budget.trials, so the same command run again
    trained one trial fewer; now it is handed back as a trial to run again is, and the next run trains it first.
    target: the sweep is over, and it never starts (it was recorded sweep_stopped, "after epoch 0")."""
    from ray.tune.search import Searcher

    from storage.resume import Driver, orphaned_trials
    from storage.studies import trials_counted
    from sweeper.fused import MEMBERS, FusedRecorder, FusedSearcher, Member
    from sweeper.trainable import META_KEY

    spec, study, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    recorder = FusedRecorder(searcher, spec, lambda trial: None, searcher.writer)
    searcher.suggest("ray1")
    aside = searcher.waiting[1][META_KEY]["number"]
    recorder.on_trial_complete(0, [], Member("ray1"))
    searcher.stopped = searcher.timed_out = True  # budget.time is spent (at a met target too) before the next group
    assert searcher.suggest("ray2") == Searcher.FINISHED  # Tune asks for the next group: none starts
    searcher.drop_unstarted(at_target=ended_by == "target")  # as the driver does after Tune's loop
    searcher.writer.flush()
    ghost = study.get_trials()[aside]
    assert ghost.user_attrs["ray_trial_id"] is None and len(study.get_trials()) == aside + 1
    if ended_by == "target":
        assert ghost.state == TS.PRUNED and ghost.user_attrs["stop_reason"] == "never_started"
        assert ghost.user_attrs["epochs_run"] == 0
        return
    assert ghost.state == TS.RUNNING and ghost.user_attrs["driver"] is None
    said = " ".join(capsys.readouterr().out.split())
    assert f"trial #{aside} was still waiting to run when the sweep ended; it stays RUNNING for the next run to " \
           "carry on" in said
    assert "stop_reason" not in ghost.user_attrs and "epochs_run" not in ghost.user_attrs
    assert [t.number for t in orphaned_trials(study)] == [aside]  # the next run's, in this process too
    resumed = FusedSearcher(study, spec, checkpoints=str(tmp_path), budget=11, driver=Driver.current(),
                            policy=searcher.policy, writer=searcher.writer, orphans=orphaned_trials(study))
    assert resumed.suggest("ray3")[META_KEY][MEMBERS][0][META_KEY]["number"] == aside
    resumed.writer.flush()
    assert study.get_trials()[aside].user_attrs["ray_trial_id"] == "ray3/0"
    assert trials_counted(study) == len(study.get_trials())  # the budget counts it once


def test_a_trained_trial_set_aside_at_a_met_target_keeps_its_epochs(ray_session, tmp_path, capsys):
    """A dead driver's trial carried on, set aside for the next group (another shape came first), was recorded
    never_started, 'epochs_run 0', at a met target, over the epochs it had trained; handed back, it was said to
    have "not started"."""
    from storage.resume import Driver, orphaned_trials, own
    from sweeper.fused import FusedSearcher
    from sweeper.trainable import META_KEY

    spec, study, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    gone = Driver.current()
    for size in ("medium", "small"):  # the dead driver's groups, each a few epochs in
        study.enqueue_trial({"model.size": size, "lr": 1e-3})
        trial = study.ask(spec.distributions())
        own(trial, Driver(gone.host, gone.pid, -1))
        for epoch in (1, 2, 3):
            trial.report(0.5, epoch)
    resumed = FusedSearcher(study, spec, checkpoints=str(tmp_path), budget=11, driver=gone, policy=searcher.policy,
                            writer=searcher.writer, orphans=orphaned_trials(study))
    resumed.suggest("ray1")
    assert resumed.waiting is not None and resumed.waiting[1][META_KEY]["number"] == 1
    resumed.stopped = True  # the group meets the targets: stop_on_target
    resumed.drop_unstarted(at_target=True)
    resumed.writer.flush()
    aside = study.get_trials()[1]
    assert aside.state == TS.RUNNING and "stop_reason" not in aside.user_attrs, aside.user_attrs  # the next run's
    assert [t.number for t in orphaned_trials(study)] == [1]
    said = " ".join(capsys.readouterr().out.split())
    assert "trial #1 was still waiting to run when the sweep ended" in said and "did not start" not in said, said


def test_a_trial_set_aside_when_its_driver_died_is_never_started_at_a_target_the_next_run_finds_met(
        ray_session, tmp_path, capsys):
    """Ctrl-C with a trial set aside for the next group; the next run found the targets met and stopped it: it was
    recorded sweep_stopped and printed "stopped with the sweep after epoch 0", though it never trained."""
    from storage import attrs
    from storage.resume import Driver, orphaned_trials
    from storage.target import TARGET_MET
    from sweeper.driver import nothing_left
    from sweeper.progress import SweepPrinter
    from sweeper.trainable import META_KEY

    spec, study, searcher = shapes_searcher(tmp_path, max_concurrent=1)
    spec = spec.model_copy(update={"budget": spec.budget.model_copy(update={"stop_on_target": True})})
    searcher.suggest("ray1")
    aside = searcher.waiting[1][META_KEY]["number"]
    searcher.writer.flush()
    gone = Driver.current()
    for trial in study.get_trials():  # Ctrl-C: their driver is gone
        optuna.Trial(study, trial._trial_id).set_user_attr(attrs.DRIVER, Driver(gone.host, gone.pid, -1).as_attr())
    optuna.Trial(study, study.trials[0]._trial_id).report(0.5, 1)  # its group trained an epoch
    study.set_user_attr(TARGET_MET, {"trial": 9, "trial_epochs": 2, "wall_seconds": 1.0, "trials": 1})  # elsewhere
    assert nothing_left(study, spec, 11, orphaned_trials(study), searcher.policy, SweepPrinter(spec, []),
                        counted=len(study.trials))
    out = " ".join(capsys.readouterr().out.split())
    trials = study.get_trials()
    assert trials[aside].state == TS.PRUNED and trials[aside].user_attrs["stop_reason"] == "never_started", trials
    assert f"#{aside} PRUNED never started: the sweep stopped first" in out, out
    assert trials[0].user_attrs["stop_reason"] == "sweep_stopped" and "#0 PRUNED stopped with the sweep after " \
        "epoch 1" in out, out


def test_fused_searcher_groups_only_trials_of_one_shape(ray_session, tmp_path):
    from sweeper.fused import MEMBERS, FusedSearcher
    from sweeper.trainable import META_KEY
    from trials.fused import group_key

    _, study, searcher = shapes_searcher(tmp_path, max_concurrent=2)
    groups = []
    while (config := searcher.suggest(f"ray{len(groups)}")) != FusedSearcher.FINISHED:
        groups.append((f"ray{len(groups)}", config[META_KEY][MEMBERS]))
    searcher.writer.flush()  # the ray_trial_id attrs are written on the study writer's thread
    numbers = [m[META_KEY]["number"] for _, members in groups for m in members]
    assert sorted(numbers) == list(range(11))  # every trial asked once, none lost while waiting for its shape
    sizes = []
    for ray_id, members in groups:
        assert 1 <= len(members) <= 3
        assert len({group_key({k: v for k, v in m.items() if k != META_KEY}) for m in members}) == 1
        sizes.append(members[0]["model.size"])
        for k, m in enumerate(members):  # the study knows each member by its group's Ray trial
            trial = study.get_trials()[m[META_KEY]["number"]]
            assert trial.user_attrs["ray_trial_id"] == f"{ray_id}/{k}" and trial.state == TS.RUNNING
    assert {"small", "medium"} <= set(sizes) and len(groups) < 11  # both shapes came up, and groups were fused


def test_a_trial_the_core_refuses_joins_no_group_and_fails_alone(ray_session, tmp_path):
    """Params each valid alone can combine into a config the core refuses (min_lr above lr): unfused, that trial
    fails on its own; fused, it must not raise out of the searcher (Tune's loop) nor fail the trials it joins."""
    from sweeper.fused import MEMBERS, FusedSearcher
    from sweeper.trainable import META_KEY

    _, _, searcher = shapes_searcher(tmp_path, max_concurrent=2, seed=2,
                                     param="min_lr: {type: float, low: 1.0e-6, high: 1.0e-4, log: true}")
    groups = []
    while (config := searcher.suggest(f"ray{len(groups)}")) != FusedSearcher.FINISHED:
        groups.append(config[META_KEY][MEMBERS])
    assert sorted(m[META_KEY]["number"] for members in groups for m in members) == list(range(11))
    refused = [members for members in groups if any(m["min_lr"] > m["lr"] for m in members)]
    assert refused and all(len(members) == 1 for members in refused)  # seed 2 draws two; each is alone
