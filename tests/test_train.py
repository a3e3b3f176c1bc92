"""The training core end to end on tiny synthetic data: it learns, resumes exactly, and fails loudly on NaN."""

import math
import re

import numpy as np
import pytest
import torch

from trials.config import ConfigError, TrainConfig
from trials.data import load_splits
from trials.train import NonFiniteLossError, evaluate, new_model, run

TINY = {"dataset.classes": 5, "dataset.samples_per_class": 6, "dataset.seq_len": 8, "epochs": 4,
        "batch_size": 8, "lr": 1e-3, "mixup_alpha": 0.2, "class_weights": True, "seed": 7}


class StopAfter(Exception):
    pass


def test_reports_every_epoch_with_all_metrics():
    seen = []
    result = run(TINY, seen.append)
    assert [m["epoch"] for m in seen] == [1, 2, 3, 4]
    for metrics in seen:
        for key in ("train_loss", "val_loss", "val_top1", "val_top3", "val_top5", "lr", "epoch_seconds",
                    "samples_per_second"):
            assert math.isfinite(metrics[key]), key
        assert 0 <= metrics["val_top1"] <= metrics["val_top3"] <= metrics["val_top5"] <= 1
    assert result["epochs_run"] == 4 and result["stop_reason"] == "completed"
    assert {"test_top1", "test_top3", "test_top5", "test_loss"} <= result.keys()
    assert result["best_epoch"] in (1, 2, 3, 4)
    # the lr reported at the last epoch is near the cosine floor
    assert seen[-1]["lr"] < seen[0]["lr"]


@pytest.mark.parametrize("stop_after", [1, 2, 3])
def test_resume_between_epochs_is_identical_to_an_uninterrupted_run(tmp_path, stop_after):
    straight_reports = []
    straight = run(TINY, straight_reports.append, tmp_path / "straight")

    def interrupting(metrics):
        if metrics["epoch"] == stop_after:
            raise StopAfter

    with pytest.raises(StopAfter):
        run(TINY, interrupting, tmp_path / "resumed")
    resumed_reports = []
    resumed = run(TINY, resumed_reports.append, tmp_path / "resumed")
    # every checkpointed epoch is reported again first (a killed driver may have recorded none of the last few)
    assert [m["epoch"] for m in resumed_reports] == list(range(1, 5))
    # marked as replays, which schedulers record but do not judge again
    assert [m.get("replayed", False) for m in resumed_reports] == [True] * stop_after + [False] * (4 - stop_after)

    def strip(d):  # timings differ between runs, replays are marked; everything else must be bit-identical
        return {k: v for k, v in d.items()
                if k not in ("epoch_seconds", "samples_per_second", "wall_seconds", "replayed")}

    assert [strip(m) for m in straight_reports] == [strip(m) for m in resumed_reports]
    assert strip(straight) == strip(resumed)
    a = torch.load(tmp_path / "straight" / "state.pt", weights_only=True)
    b = torch.load(tmp_path / "resumed" / "state.pt", weights_only=True)
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert a["progress"]["step"] == b["progress"]["step"]


def test_a_checkpoint_of_another_config_is_refused_not_replayed(tmp_path):
    run({**TINY, "epochs": 2}, None, tmp_path)
    with pytest.raises(ConfigError, match=r"state\.pt holds a run of another config \(epochs 2 -> 3, lr 0\.001 -> "
                                          r"0\.01\): delete its folder to train it from the start, or give another "
                                          r"checkpoint dir \(a sweep's trial stays FAIL: raise budget\.trials to "
                                          r"run another in its place\)$"):
        run({**TINY, "epochs": 3, "lr": 1e-2}, None, tmp_path)
    assert run({**TINY, "epochs": 2, "threads": 1}, None, tmp_path)["epochs_run"] == 2  # runtime keys may change


def test_a_checkpoint_cut_short_or_damaged_is_refused_in_one_line(tmp_path):
    """A state.pt cut short (a lost machine's, a copy stopped half way) or damaged: torch.load's RuntimeError or bare
    EOFError was a traceback (an empty file ``sweeper train`` said only "Aborted.", exit 1), and a sweep retried the
    trial twice before it failed with the same traceback; now the core's refusal, which fails a trial at once."""
    run({**TINY, "epochs": 1}, None, tmp_path)
    whole = (tmp_path / "state.pt").read_bytes()
    for damaged in (whole[:len(whole) // 2], b"", b"not a checkpoint" * 100):
        (tmp_path / "state.pt").write_bytes(damaged)
        with pytest.raises(ConfigError, match=r"state\.pt cannot be read as a checkpoint, cut short or damaged \(\w+: "
                                              r".+\): delete its folder to train it from the start"):
            run(TINY, None, tmp_path)


def test_a_checkpoint_is_flushed_to_disk_through_a_descriptor_that_may_write(tmp_path, monkeypatch):
    """An SMB share (a CIFS mount) refuses to flush a file through a descriptor opened read-only (EACCES, as MS-SMB2
    has a FLUSH without write access refused): save_state's fsync of the file it had just written failed every
    checkpoint there, and so every trial that saves one."""
    import errno
    import fcntl
    import os

    fsync = os.fsync

    def as_on_an_smb_share(descriptor):
        if fcntl.fcntl(descriptor, fcntl.F_GETFL) & os.O_ACCMODE == os.O_RDONLY:
            raise PermissionError(errno.EACCES, os.strerror(errno.EACCES))
        fsync(descriptor)

    monkeypatch.setattr(os, "fsync", as_on_an_smb_share)
    assert run({**TINY, "epochs": 1}, None, tmp_path)["epochs_run"] == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state.pt"]


def trained_on_npz(tmp_path):
    """A one-epoch run on a tiny npz, checkpointed in tmp_path/ck: the generator, the file, its labels, the config."""
    rng = np.random.default_rng(0)
    path, y = tmp_path / "data.npz", np.repeat(np.arange(3), 8)
    np.savez(path, X=rng.standard_normal((24, 6, 5, 3)).astype(np.float32), y=y)
    config = {"dataset.name": "npz", "dataset.path": str(path), "dataset.classes": 3, "dataset.seq_len": 8,
              "epochs": 1, "batch_size": 8, "objective": "val_top1"}
    run(config, None, tmp_path / "ck")
    return rng, path, y, config


def test_a_checkpoint_of_other_data_under_the_same_path_is_refused_in_words(tmp_path):
    """sweeper train --checkpoint-dir resumed after the npz under dataset.path was rewritten with other landmarks:
    the same config, so the checkpoint passed, and the model's load was a size-mismatch traceback (exit 1)."""
    rng, path, y, config = trained_on_npz(tmp_path)
    np.savez(path, X=rng.standard_normal((24, 6, 7, 3)).astype(np.float32), y=y)  # 7 landmarks instead of 5
    with pytest.raises(ConfigError, match=rf"ck/state\.pt was trained on other data than {path} gives now \(sha256:"):
        run(config, None, tmp_path / "ck")
    state = torch.load(tmp_path / "ck" / "state.pt", weights_only=True)
    torch.save({k: v for k, v in state.items() if k != "data"}, tmp_path / "ck" / "state.pt")  # as before 2026-12-06
    with pytest.raises(ConfigError, match=r"ck/state\.pt holds a model of another shape than this data gives \(size "
                                          r"mismatch for input_proj\.weight.*\): the data changed since"):
        run(config, None, tmp_path / "ck")


def test_a_checkpoint_of_other_data_of_the_same_shape_is_refused_not_resumed(tmp_path):
    """sweeper train --checkpoint-dir resumed after the npz under dataset.path was rewritten with other landmarks of
    the same shape: it reported the old run's validation metrics beside the new data's test metrics, without a
    word. Sweeps refuse such data by its sha256 (study attr ``data``); the checkpoint now records the same."""
    rng, path, y, config = trained_on_npz(tmp_path)
    assert run(config, None, tmp_path / "ck")["epochs_run"] == 1  # the same data: resumed
    np.savez(path, X=rng.standard_normal((24, 6, 5, 3)).astype(np.float32), y=y)
    with pytest.raises(ConfigError, match=r"ck/state\.pt was trained on other data than .*data\.npz gives now"):
        run(config, None, tmp_path / "ck")


def test_nan_loss_stops_the_trial_at_once_with_a_clear_reason():
    seen = []
    with pytest.raises(NonFiniteLossError, match="non-finite loss") as info:
        run({**TINY, "lr": 1e30, "grad_clip": 0.0, "label_smoothing": 0.0, "mixup_alpha": 0.0}, seen.append)
    assert "lr=1e+30" in str(info.value)
    assert len(seen) <= 1  # stopped within the first epochs, not after the whole run


def test_early_stopping_ends_the_run_and_says_why():
    # lr so small nothing changes: the objective never improves after epoch 1
    result = run({**TINY, "epochs": 10, "lr": 1e-9, "min_lr": 0.0, "early_stopping": 2, "mixup_alpha": 0.0})
    assert result["stop_reason"] == "early_stopping"
    assert result["epochs_run"] < 10


def test_the_checkpoint_of_a_finished_run_holds_its_best_weights_as_the_readme_loads_them(tmp_path):
    """With checkpoint_every above 1 an early-stopped run's state.pt was an older epoch's, its best_model not the
    weights the trial's test metrics came from; `sweeper best` points users to that file."""
    config = {**TINY, "epochs": 12, "lr": 1e-9, "min_lr": 0.0, "early_stopping": 2, "mixup_alpha": 0.0,
              "checkpoint_every": 5}
    result = run(config, None, tmp_path)
    assert result["stop_reason"] == "early_stopping" and result["epochs_run"] % 5, result
    state = torch.load(tmp_path / "state.pt", weights_only=True, map_location="cpu")  # README, "Inspecting studies"
    assert state["progress"]["epoch"] == result["epochs_run"]
    cfg = TrainConfig.from_flat(state["config"])
    data = load_splits(cfg)
    model = new_model(cfg, data)
    model.load_state_dict(state["best_model"])
    test = evaluate(model, data.x_test, data.y_test, torch.autocast("cpu", enabled=False))
    assert test["top3"] == result["test_top3"] and test["loss"] == pytest.approx(result["test_loss"])


def test_bad_settings_are_rejected_with_the_allowed_values():
    with pytest.raises(ConfigError, match="did you mean 'label_smoothing'"):
        TrainConfig.from_flat({"label_smothing": 0.1})
    with pytest.raises(ConfigError, match=r"dropout=1\.5 is not allowed: a number in \[0, 1\)"):
        TrainConfig.from_flat({"dropout": 1.5})
    with pytest.raises(ConfigError, match=r"model\.size"):
        TrainConfig.from_flat({"model.size": "huge"})
    with pytest.raises(ConfigError, match="expected int"):
        TrainConfig.from_flat({"epochs": "three"})
    assert TrainConfig.from_flat({"epochs": "3", "class_weights": "true"}).epochs == 3
    for key, value in (("epochs", 1e30), ("seed", "99999999999999999999"), ("seed", 2**64)):  # not silently a
        with pytest.raises(ConfigError, match="expected int"):  # rounded count, nor torch's overflow mid-sweep
            TrainConfig.from_flat({key: value})
    with pytest.raises(ConfigError, match=r"seed=18446744073709551615 is not allowed: expected int from -2\*\*63 to "):
        TrainConfig.from_flat({"seed": 2**64 - 1})  # an int: "expected int" alone said it was not one
    assert TrainConfig.from_flat({"seed": "12345678901234567", "epochs": 1e3}).seed == 12345678901234567
    for key, value in (("weight_decay", "inf"), ("grad_clip", "inf"), ("dataset.noise", "nan"), ("lr", "inf")):
        with pytest.raises(ConfigError, match=rf"{re.escape(key)}=(inf|nan) is not allowed: a finite number"):
            TrainConfig.from_flat({key: value})
    with pytest.raises(ConfigError, match="threads=100000 is not allowed: an integer from 0"):
        TrainConfig.from_flat({"threads": 100000})
    with pytest.raises(ConfigError, match="with 3 classes every label is in the top 3, so it never improves"):
        TrainConfig.from_flat({"dataset.classes": 3})  # the default objective, val_top3
    assert TrainConfig.from_flat({"dataset.classes": 3, "objective": "val_top1"}).dataset_classes == 3


def test_parameter_counts_of_the_presets():
    from trials.model import LandmarkTransformer, count_parameters

    def params(size, features, classes):
        hidden, layers, heads = TrainConfig.from_flat({"model.size": size}).architecture
        return count_parameters(LandmarkTransformer(features, classes, hidden, layers, heads, 0.1))

    # README: ~179K for the small preset at 366 input features and 20 classes (seed 001's figure)
    assert abs(params("small", 366, 20) - 179_000) < 2_000
    assert params("large", 366, 20) > params("medium", 366, 20) > params("small", 366, 20)


def test_many_classes_get_the_three_layer_head():
    from trials.model import LandmarkTransformer

    linear = lambda m: sum(isinstance(x, torch.nn.Linear) for x in m.head)  # noqa: E731
    assert linear(LandmarkTransformer(63, 500, 64, 1, 8, 0.1)) == 2
    assert linear(LandmarkTransformer(63, 501, 64, 1, 8, 0.1)) == 3


def test_small_model_learns_the_20_class_synthetic_task():
    """Val top-3 far above chance (15%) within a short CPU run."""
    result = run({"dataset.classes": 20, "epochs": 12, "lr": 2e-3, "label_smoothing": 0.1, "seed": 0})
    assert result["val_top3"] > 0.45, result
    assert result["test_top3"] > 0.30, result


def test_the_training_core_imports_no_ray_optuna_yaml_or_sibling_package() -> None:
    """trials/ is a plain function over a flat dict: any driver (or a bare CUDA image, bench/gpu.py) can run it."""
    import subprocess
    import sys

    modules = ", ".join(f"trials.{m}" for m in ("train", "fused", "data", "datasets", "synthetic", "entrypoint"))
    code = (f"import sys, {modules}\n"
            "print(sorted({m.split('.')[0] for m in sys.modules} & {'ray', 'optuna', 'yaml', 'pydantic', "
            "'sqlalchemy', 'sweeper', 'storage', 'search_spaces'}))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
