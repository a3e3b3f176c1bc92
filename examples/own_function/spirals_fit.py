"""A training function of your own, swept by sweeper: a small MLP on three interleaved 2-D spirals.

Copy this file and spirals.yaml, replace the data and the model, keep the shape of ``fit``:

    fit(config, report, checkpoint_dir) -> dict

- ``config`` is a flat dict: the space's ``training:`` block plus this trial's sampled params, as dotted keys.
  It does NOT contain the defaults in ``fit.settings`` below, so ``fit`` merges them itself (first line).
- ``report(metrics)`` is called once per epoch with an ``epoch`` key and the objective metric (``val_acc``);
  schedulers (ASHA, ...) stop bad trials between two reports.
- ``checkpoint_dir`` is a folder kept per trial (None under ``sweeper train`` without --checkpoint-dir): save
  after each epoch, load at the start and report the saved epochs again, marked ``replayed``. A trial whose
  worker died is retried from there, and ``sweeper resume`` carries on an interrupted sweep's trials from there.
- The returned dict is recorded on the trial (user attrs; ``sweeper best`` and ``export`` show them). Its
  ``best_val_acc`` becomes the trial's objective value; without it, the last reported ``val_acc`` would.

The data is generated, so nothing is downloaded: the same ``data_seed`` gives the same points everywhere.
Plain PyTorch, CPU, a second or two per epoch at most.
"""

from __future__ import annotations

import math
import os

import torch
from torch import nn
from torch.nn import functional as F

STATE_FILE = "state.pt"


def fit(config: dict, report, checkpoint_dir: str | None) -> dict:
    cfg = {**fit.settings, **config}  # the space's values win over the defaults below
    torch.manual_seed(cfg["seed"])
    torch.set_num_threads(1)  # trials run side by side; one core each

    # --- data and model -----------------------------------------------------------------------------------
    train_x, train_y, val_x, val_y, test_x, test_y = spirals(cfg["samples"], cfg["noise"], cfg["data_seed"])
    model = nn.Sequential(
        nn.Linear(2, cfg["hidden"]), nn.ReLU(), nn.Dropout(cfg["dropout"]),
        nn.Linear(cfg["hidden"], cfg["hidden"]), nn.ReLU(), nn.Dropout(cfg["dropout"]),
        nn.Linear(cfg["hidden"], 3),
    )
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg["lr"], weight_decay=cfg["weight_decay"])
    shuffle = torch.Generator().manual_seed(cfg["seed"])

    # --- resume: everything that changes between epochs is in the checkpoint -------------------------------
    start, best, history = 1, {"val_acc": -1.0, "epoch": 0, "weights": None}, []
    path = os.path.join(checkpoint_dir, STATE_FILE) if checkpoint_dir else None
    if path and os.path.exists(path):
        state = torch.load(path, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        shuffle.set_state(state["shuffle"])
        torch.set_rng_state(state["rng"])
        start, best, history = state["epoch"] + 1, state["best"], state.get("history", [])  # older copies saved none
        # report the saved epochs again: a driver killed between our save and its record of the report never got
        # the last few; "replayed" tells the scheduler they passed its rungs already (the study keeps the first)
        for metrics in history:
            report({**metrics, "replayed": True})

    # --- the epoch loop -----------------------------------------------------------------------------------
    for epoch in range(start, cfg["epochs"] + 1):
        model.train()
        order = torch.randperm(len(train_y), generator=shuffle)
        total = 0.0
        for i in range(0, len(order), cfg["batch_size"]):
            batch = order[i:i + cfg["batch_size"]]
            loss = F.cross_entropy(model(train_x[batch]), train_y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.item() * len(batch)
        val_loss, val_acc = evaluate(model, val_x, val_y)
        if val_acc > best["val_acc"]:
            best = {"val_acc": val_acc, "epoch": epoch,
                    "weights": {k: v.clone() for k, v in model.state_dict().items()}}
        metrics = {"epoch": epoch, "train_loss": total / len(train_y), "val_loss": val_loss, "val_acc": val_acc}
        history.append(metrics)
        if path:  # save before reporting: a scheduler may stop the trial at the report
            os.makedirs(checkpoint_dir, exist_ok=True)
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch,
                        "shuffle": shuffle.get_state(), "rng": torch.get_rng_state(), "best": best,
                        "history": history}, path + ".tmp")
            os.replace(path + ".tmp", path)  # a kill mid-save leaves the previous checkpoint whole
        report(metrics)

    # --- final metrics: the test split on the best epoch's weights -----------------------------------------
    if best["weights"] is not None:
        model.load_state_dict(best["weights"])
    test_loss, test_acc = evaluate(model, test_x, test_y)
    return {"best_val_acc": best["val_acc"], "best_epoch": best["epoch"], "test_acc": test_acc,
            "test_loss": test_loss}


# Optional: the keys fit accepts, with their defaults. `sweeper validate` then refuses params, training keys and
# --set flags fit does not know (with "did you mean"), and values of the wrong type.
fit.settings = {
    "epochs": 20,
    "lr": 3e-3,
    "weight_decay": 1e-4,
    "hidden": 64,
    "dropout": 0.0,
    "batch_size": 64,
    "samples": 1500,  # points in all, a third per spiral arm
    "noise": 0.5,
    "data_seed": 0,
    "seed": 0,
}
# Optional: the metrics fit reports or returns. `sweeper validate` then refuses an objective or target it never
# reports. The objective must be among the per-epoch ones.
fit.metrics = ["train_loss", "val_loss", "val_acc", "best_val_acc", "best_epoch", "test_acc", "test_loss"]


def evaluate(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    model.eval()
    with torch.no_grad():
        logits = model(x)
    return F.cross_entropy(logits, y).item(), (logits.argmax(1) == y).float().mean().item()


def spirals(samples: int, noise: float, seed: int) -> tuple[torch.Tensor, ...]:
    """Three spiral arms in the plane, shuffled and split 60/20/20 into train, val and test."""
    g = torch.Generator().manual_seed(seed)
    per_arm = samples // 3
    radius = torch.linspace(0.05, 1.0, per_arm).repeat(3)
    arm = torch.arange(3).repeat_interleave(per_arm)
    angle = 8.0 * radius + arm * (2 * math.pi / 3) + noise * torch.randn(len(arm), generator=g) * radius
    x = torch.stack([radius * torch.sin(angle), radius * torch.cos(angle)], dim=1) * 2
    order = torch.randperm(len(arm), generator=g)
    x, y = x[order], arm[order]
    a, b = int(0.6 * len(y)), int(0.8 * len(y))
    return x[:a], y[:a], x[a:b], y[a:b], x[b:], y[b:]
