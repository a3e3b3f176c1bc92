"""trials.fused: a member of a fused group reports what the same config reports alone, fails and leaves alone,
and checkpoints in the single trial's format (a member resumes alone, a single trial's checkpoint joins a group).

Real training on tiny synthetic data, CPU. "Alone" is always ``trials.run`` itself.
"""

from __future__ import annotations

import copy
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from trials.config import ConfigError
from trials.fused import group_key, run_group
from trials.train import NonFiniteLossError, run

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


def assert_same_run(expected, got):
    """Equal metrics, epoch for epoch; losses within float tolerance (batched kernels round differently)."""
    assert [m["epoch"] for m in got] == [m["epoch"] for m in expected]
    for want, have in zip(expected, got, strict=True):
        assert_same_metrics(want, have, f"epoch {want['epoch']}")


def assert_same_result(expected, got):
    assert_same_metrics(expected, got, "final")


def assert_same_metrics(want, have, where):
    assert want.keys() == have.keys(), where
    for key in want:
        if key in TIMINGS:
            continue
        if key in LOSSES:
            assert have[key] == pytest.approx(want[key], rel=1e-5, abs=1e-6), (where, key)
        else:
            assert have[key] == want[key], (where, key)


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
    outcomes = run_group(members, [r.append for r in reports])
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
    assert_same_run(straight[0][0][1:], resumed)  # epoch 2 reported again first, as a resumed run does
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
    assert_same_result(straight[1][1], outcomes[0])
    assert_same_run(straight[0][0], reports[1])

    # the files are the single trial's format, key for key
    single = torch.load(tmp_path / "b" / "state.pt", weights_only=True)
    member = torch.load(tmp_path / "b-group" / "state.pt", weights_only=True)
    assert single.keys() == member.keys()
    assert single["model"].keys() == member["model"].keys()
    assert single["optimizer"]["state"].keys() == member["optimizer"]["state"].keys()
    assert single["optimizer"]["state"][0].keys() == member["optimizer"]["state"][0].keys()


def test_group_drawn_dropout_keeps_every_other_stream_of_the_member():
    # exact_rng=False (the CUDA default) draws dropout masks for the whole group at once: a member without dropout
    # still matches its run alone exactly, a member with dropout trains on other masks
    reports = [[], []]
    run_group(MEMBERS[:2], [r.append for r in reports], exact_rng=False)
    assert_same_run(alone(MEMBERS[1])[0], reports[1])
    with_dropout = alone(MEMBERS[0])[0]
    assert [m["epoch"] for m in reports[0]] == [m["epoch"] for m in with_dropout]
    assert reports[0][0]["train_loss"] != pytest.approx(with_dropout[0]["train_loss"], rel=1e-5)


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
        [sys.executable, str(root / "bench" / "gpu.py"), "--device", "cpu", "--sizes", "small", "--packing", "1",
         "2", "--fuse", "1", "2", "--epochs", "2", "--samples-per-class", "4", "--seconds", "0.2"],
        capture_output=True, text=True, env=env, cwd=tmp_path, timeout=300)
    assert done.returncode == 0, done.stderr
    out = done.stdout
    for heading in ("1. one trial", "2. packing", "3. torch.compile: skipped", "4. fused groups"):
        assert heading in out
    rows = {line.split()[0]: line.split() for line in out.splitlines() if line[:4].strip().isdigit()}
    assert {"1", "2"} <= rows.keys()  # packing N and fused K rows
    small = next(line.split() for line in out.splitlines() if line.startswith("small"))
    assert float(small[1]) > 0 and float(small[2]) > 0  # samples/s and step ms
    assert "CPU run: GPU rows not measured, no device lent" in out
    assert "best: " in out
