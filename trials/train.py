"""One training run of the landmark transformer: the function every sweep trial calls.

``run(config, report, checkpoint_dir)`` takes a flat config dict (see ``trials.config``), calls ``report``
once per epoch with that epoch's metrics, and returns the final metrics, with the test split evaluated on
the best checkpoint. With a ``checkpoint_dir`` it writes ``state.pt`` after each epoch and resumes from it,
so a run stopped between any two epochs finishes exactly as an uninterrupted one would (CPU, same seed). A
resumed run first reports every checkpointed epoch again, marked ``replayed`` (reports travel to the driver
after the checkpoint is written, so a driver killed with a few of them in flight never recorded them); a
recorder keeps the first report of an epoch, and a scheduler does not judge a replay.

Read it top to bottom: set-up, then the epoch loop, then the final evaluation.
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import os
import pickle
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch

from trials.config import EPOCH_METRICS, FINAL_METRICS, REPLAYED, STATE_FILE, ConfigError, TrainConfig
from trials.data import Splits, load_splits
from trials.losses import inverse_frequency_weights, mixup, smoothed_targets, soft_cross_entropy
from trials.model import LandmarkTransformer, count_parameters
from trials.schedule import lr_at, warmup_steps_for

log = logging.getLogger("trials")

EVAL_BATCH = 1024
ADAM_BETAS = (0.9, 0.999)

Report = Callable[[dict[str, Any]], Any]


class NonFiniteLossError(RuntimeError):
    """The training loss became NaN or inf; the trial cannot recover and must fail with this reason."""


def run(config: Mapping[str, Any], report: Report | None = None, checkpoint_dir: str | os.PathLike | None = None
        ) -> dict[str, Any]:
    """Train one model from a flat config; see the module docstring for the contract."""
    cfg = TrainConfig.from_flat(config)
    report = report or (lambda metrics: None)
    started = time.perf_counter()
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    device = resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)

    # --- data and model -------------------------------------------------------------------------------
    data = load_splits(cfg).to(device)
    model = new_model(cfg, data).to(device)
    optimizer = new_optimizer(cfg, model)
    class_weights = inverse_frequency_weights(data.y_train, data.num_classes).to(device) if cfg.class_weights else None
    schedule = lr_schedule(cfg, math.ceil(len(data.y_train) / cfg.batch_size))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")

    # --- resume -----------------------------------------------------------------------------------------
    progress = new_progress()
    best_state = copy.deepcopy(model.state_dict())
    state_path = Path(checkpoint_dir) / STATE_FILE if checkpoint_dir is not None else None
    if state_path is not None and state_path.exists():
        progress, best_state = load_state(state_path, model, optimizer, cfg, data.fingerprint)
        log.info("resumed from %s at epoch %d", state_path, progress["epoch"])
        for metrics in progress["history"]:  # again: a killed driver may have recorded none of the last few
            report({**metrics, REPLAYED: True})

    # --- epochs -----------------------------------------------------------------------------------------
    stop_reason = "completed"
    for epoch in range(progress["epoch"] + 1, cfg.epochs + 1):
        if patience_spent(progress, cfg):
            stop_reason = "early_stopping"
            break
        epoch_start = time.perf_counter()
        train_loss, lr = train_epoch(model, optimizer, data, cfg, progress, schedule, class_weights, autocast)
        train_seconds = time.perf_counter() - epoch_start
        val = evaluate(model, data.x_val, data.y_val, autocast)
        if not math.isfinite(val["loss"]):  # NaN weights since the last step: NaN logits rank first in every top-k
            raise non_finite_loss(val["loss"], progress["step"], cfg)
        metrics = epoch_metrics(epoch, train_loss, val, lr, time.perf_counter() - epoch_start,
                                len(data.y_train) / train_seconds)
        if track_best(progress, metrics, cfg):
            best_state = copy.deepcopy(model.state_dict())
        if state_path is not None and checkpoint_due(epoch, progress, cfg):
            save_state(state_path, model, optimizer, progress, best_state, cfg, data.fingerprint)
        report(metrics)

    # --- final: test split on the best checkpoint ---------------------------------------------------
    model.load_state_dict(best_state)
    test = evaluate(model, data.x_test, data.y_test, autocast)
    return final_result(progress, test, stop_reason, model, device, time.perf_counter() - started, data)


# Declared so that drivers can check a search space against this entrypoint without running it.
run.settings = TrainConfig.defaults()  # type: ignore[attr-defined]
run.metrics = [*EPOCH_METRICS, *FINAL_METRICS]  # type: ignore[attr-defined]


def train_epoch(model: torch.nn.Module, optimizer: torch.optim.Optimizer, data: Splits, cfg: TrainConfig,
                progress: dict[str, Any], schedule: Callable[[int], float], class_weights: torch.Tensor | None,
                autocast: torch.autocast) -> tuple[float, float]:
    """One pass over the training split in shuffled batches taken by index from device-resident tensors.

    Returns the mean training loss and the last learning rate. ``progress["step"]`` counts optimizer steps
    across epochs: it is the schedule's position and is saved in checkpoints.
    """
    model.train()
    loss_sum = torch.zeros((), device=data.x_train.device)
    order = torch.randperm(len(data.y_train), device=data.x_train.device)
    lr = schedule(progress["step"])
    for first in range(0, len(order), cfg.batch_size):
        index = order[first:first + cfg.batch_size]
        inputs = data.x_train[index]
        targets = smoothed_targets(data.y_train[index], data.num_classes, cfg.label_smoothing)
        if cfg.mixup_alpha > 0:
            inputs, targets = mixup(inputs, targets, cfg.mixup_alpha)
        lr = schedule(progress["step"])
        for group in optimizer.param_groups:
            group["lr"] = lr
        with autocast:
            loss = soft_cross_entropy(model(inputs), targets, class_weights)
        if not torch.isfinite(loss):
            raise non_finite_loss(loss.item(), progress["step"], cfg)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=cfg.grad_clip)
        optimizer.step()
        loss_sum += loss.detach() * len(index)
        progress["step"] += 1
    return float(loss_sum) / len(data.y_train), lr


@torch.no_grad()
def evaluate(model: torch.nn.Module, inputs: torch.Tensor, labels: torch.Tensor, autocast: torch.autocast
             ) -> dict[str, float]:
    """Plain (unsmoothed, unweighted) loss and top-1/3/5 accuracy as fractions."""
    model.eval()
    loss = torch.zeros((), device=inputs.device)
    hits = {k: torch.zeros((), device=inputs.device) for k in (1, 3, 5)}
    for first in range(0, len(labels), EVAL_BATCH):
        x, y = inputs[first:first + EVAL_BATCH], labels[first:first + EVAL_BATCH]
        with autocast:
            logits = model(x).float()
        loss += torch.nn.functional.cross_entropy(logits, y, reduction="sum")
        top = logits.topk(min(5, logits.shape[1]), dim=1).indices
        for k in hits:
            hits[k] += (top[:, :k] == y.unsqueeze(1)).any(dim=1).sum()
    n = len(labels)
    return {"loss": float(loss) / n, **{f"top{k}": float(h) / n for k, h in hits.items()}}


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    index = int(name.partition(":")[2] or 0)
    if name.startswith("cuda") and index >= torch.cuda.device_count():
        raise ConfigError(f"device={name!r}: this machine has {torch.cuda.device_count()} CUDA device(s)"
                          + ("" if torch.cuda.is_available() else " (CUDA is not available here)"), "device")
    return torch.device(name)


RUNTIME_KEYS = ("device", "threads", "checkpoint_every")  # may change between a run and its resume


def trained_config(cfg: TrainConfig) -> dict[str, Any]:
    """What a checkpoint is a checkpoint of: the config without the keys that only say where and how it runs."""
    return {k: v for k, v in cfg.to_flat().items() if k not in RUNTIME_KEYS}


def save_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, progress: dict,
               best_state: dict, cfg: TrainConfig, data: str = "") -> None:
    """Everything needed to continue bit-for-bit, written atomically (a crash mid-write keeps the old file);
    ``data``: the fingerprint of the data it trains on (:attr:`trials.data.Splits.fingerprint`)."""
    state = {
        "config": trained_config(cfg),
        "data": data,
        "model": model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "best_model": best_state,
        "progress": progress,
        "rng_cpu": torch.get_rng_state(),
        "rng_cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(state, tmp)
    # write access: an SMB share refuses to flush through a read-only descriptor (EACCES), failing every checkpoint
    descriptor = os.open(tmp, os.O_WRONLY)
    try:  # on the disk before the rename: a machine lost right after it leaves the file whole, not empty
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    os.replace(tmp, path)


def checkpoint_due(epoch: int, progress: dict, cfg: TrainConfig) -> bool:
    """Every ``checkpoint_every`` epochs, and at the last epoch run (early stopping's too): the file keeps the
    trial's best weights, which ``sweeper best`` points to."""
    return epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs or patience_spent(progress, cfg)


def patience_spent(progress: dict, cfg: TrainConfig) -> bool:
    """Early stopping: the epoch after ``progress["epoch"]`` would be past ``early_stopping`` epochs without a better
    objective, so none is trained (one rule for the loop, the last checkpoint and the fused loop)."""
    return progress["epoch"] + 1 - progress["best_epoch"] > cfg.early_stopping > 0


# what to do about a refused checkpoint; a sweep's trial has no dir to give, and once FAIL it is never run again
START_OVER = ("delete its folder to train it from the start, or give another checkpoint dir (a sweep's trial stays "
              "FAIL: raise budget.trials to run another in its place)")


def load_state(path: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, cfg: TrainConfig,
               data: str = "") -> tuple[dict, dict]:
    """A checkpoint of this very config and data; one of another run is refused (resumed, it would replay that
    run). ``data``: :func:`save_state`'s; a checkpoint written without one (before 2026-12-06) is compared by shape."""
    # on the CPU: the RNG states must stay CPU byte tensors; load_state_dict copies the rest onto the model's device
    try:  # a file cut short (copied in part, a lost machine's) or not torch's: one line, not a retried traceback
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        why = str(exc).split(". ")[0] or "it ends too early"
        raise ConfigError(f"{path} cannot be read as a checkpoint, cut short or damaged ({type(exc).__name__}: "
                          f"{why}): {START_OVER}") from None
    now, then = trained_config(cfg), state.get("config", {})
    if changed := [f"{k} {then.get(k)!r} -> {now.get(k)!r}" for k in now if then and then.get(k) != now.get(k)]:
        raise ConfigError(f"{path} holds a run of another config ({', '.join(changed)}): {START_OVER}")
    if data and state.get("data") and state["data"] != data:  # the same shape is no sign of the same data
        raise ConfigError(f"{path} was trained on other data than {cfg.dataset_path or 'the generator'} gives now "
                          f"({data[:19]}... now, {state['data'][:19]}... then): {START_OVER}")
    try:  # the same config, but the data under dataset.path changed since: other features or classes
        model.load_state_dict(state["model"])
    except RuntimeError as exc:
        mismatch = str(exc).splitlines()[-1].strip().rstrip(".")  # "size mismatch for input_proj.weight: ..."
        raise ConfigError(f"{path} holds a model of another shape than this data gives ({mismatch}): the data changed "
                          f"since it was written: {START_OVER}") from None
    optimizer.load_state_dict(state["optimizer"])
    torch.set_rng_state(state["rng_cpu"])
    if state["rng_cuda"] and torch.cuda.is_available():  # as many as are visible: Ray may show fewer GPUs now
        torch.cuda.set_rng_state_all(state["rng_cuda"][:torch.cuda.device_count()])
    return state["progress"], state["best_model"]


# --- pieces shared with the fused loop (trials.fused) --------------------------------------------------
def new_model(cfg: TrainConfig, data: Splits) -> LandmarkTransformer:
    """The model of ``cfg``, initialised (on the CPU) from the global random stream."""
    hidden, layers, heads = cfg.architecture
    model = LandmarkTransformer(data.feature_dim, data.num_classes, hidden, layers, heads, cfg.dropout)
    log.info("model %s: %d parameters (hidden %d, layers %d, heads %d, input %d, classes %d)",
             cfg.model_size, count_parameters(model), hidden, layers, heads, data.feature_dim, data.num_classes)
    return model


def new_optimizer(cfg: TrainConfig, model: torch.nn.Module) -> torch.optim.AdamW:
    return torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=ADAM_BETAS, weight_decay=cfg.weight_decay)


def lr_schedule(cfg: TrainConfig, steps_per_epoch: int) -> Callable[[int], float]:
    """The learning rate of each optimizer step: warmup then cosine over the whole run (``trials.schedule``)."""
    return functools.partial(lr_at, base_lr=cfg.lr, min_lr=cfg.min_lr,
                             warmup_steps=warmup_steps_for(cfg.resolved_warmup_epochs, steps_per_epoch),
                             total_steps=cfg.epochs * steps_per_epoch)


def new_progress() -> dict[str, Any]:
    """Where a run stands: saved in every checkpoint (``step`` is the schedule's position)."""
    return {"epoch": 0, "step": 0, "best_score": -math.inf, "best_epoch": 0, "history": []}


def non_finite_loss(loss: float, step: int, cfg: TrainConfig) -> NonFiniteLossError:
    return NonFiniteLossError(f"non-finite loss ({loss}) at step {step}: "
                              f"lr={cfg.lr:g} is likely too high for this model, or the data holds extreme values")


def epoch_metrics(epoch: int, train_loss: float, val: dict[str, float], lr: float, seconds: float,
                  samples_per_second: float) -> dict[str, Any]:
    return {
        "epoch": epoch,
        "train_loss": train_loss,
        "val_loss": val["loss"], "val_top1": val["top1"], "val_top3": val["top3"], "val_top5": val["top5"],
        "lr": lr,
        "epoch_seconds": seconds,
        "samples_per_second": samples_per_second,
    }


def track_best(progress: dict[str, Any], metrics: dict[str, Any], cfg: TrainConfig) -> bool:
    """Record an epoch's metrics in ``progress``; True when the objective improved (keep this epoch's weights)."""
    sign = 1.0 if EPOCH_METRICS[cfg.objective] == "maximize" else -1.0
    score = sign * metrics[cfg.objective]
    improved = score > progress["best_score"]
    if improved:
        progress.update(best_score=score, best_epoch=metrics["epoch"])
    metrics["best_" + cfg.objective] = sign * progress["best_score"]
    progress["epoch"] = metrics["epoch"]
    progress["history"].append(metrics)
    return improved


def final_result(progress: dict[str, Any], test: dict[str, float], stop_reason: str, model: torch.nn.Module,
                 device: torch.device, wall_seconds: float, data: Splits) -> dict[str, Any]:
    """What ``run`` returns: the best epoch's validation metrics, the test split on the best weights, and facts."""
    best = progress["history"][progress["best_epoch"] - 1] if progress["best_epoch"] else {}
    return {
        **{k: v for k, v in best.items() if k.startswith("val_")},
        **{f"test_{k}": v for k, v in test.items()},
        "best_epoch": progress["best_epoch"],
        "epochs_run": progress["epoch"],
        "stop_reason": stop_reason,
        "parameters": count_parameters(model),
        "device": str(device),
        "threads": torch.get_num_threads(),  # its float rounding: a retrain on another count differs in the last digits
        "wall_seconds": wall_seconds,
        "data": data.description,
    }


__all__ = ["NonFiniteLossError", "Splits", "run"]
