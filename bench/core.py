"""How much of a training step is spent outside the model: the training core's own overhead.

For each model size it times, side by side and interleaved, (a) the real ``trials.train.train_epoch`` and
(b) a bare loop over the same batches prepared in advance that does only forward + loss, backward and
``optimizer.step()``. The difference is everything the core adds per step: taking the batch by index,
building smoothed targets, mixup, setting the LR, the NaN check, gradient clipping and loss bookkeeping.

    python bench/core.py                # small model on CPU (the acceptance figure), plus CUDA sizes if present
    python bench/core.py --repeats 9 --sizes small medium

Prints samples/s of the real loop and the out-of-model share, medians over the repeats (this machine is
shared and noisy: compare within one run, never across runs).
"""

from __future__ import annotations

import argparse
import functools
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.config import TrainConfig
from trials.data import load_splits
from trials.losses import smoothed_targets, soft_cross_entropy
from trials.model import LandmarkTransformer, count_parameters
from trials.schedule import lr_at
from trials.train import train_epoch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def bench_size(size: str, device: torch.device, repeats: int, mixup_alpha: float) -> dict[str, float]:
    cfg = TrainConfig.from_flat({
        "model.size": size, "dataset.classes": 20, "dataset.samples_per_class": 80, "batch_size": 32,
        "mixup_alpha": mixup_alpha, "grad_clip": 1.0, "label_smoothing": 0.1, "epochs": 10, "seed": 0,
    })
    torch.manual_seed(0)
    data = load_splits(cfg).to(device)
    hidden, layers, heads = cfg.architecture
    model = LandmarkTransformer(data.feature_dim, data.num_classes, hidden, layers, heads, cfg.dropout).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    schedule = functools.partial(lr_at, base_lr=cfg.lr, min_lr=cfg.min_lr, warmup_steps=10, total_steps=1000)
    progress = {"step": 0}
    n = len(data.y_train)

    def real_epoch() -> float:
        sync(device)
        start = time.perf_counter()
        train_epoch(model, optimizer, data, cfg, progress, schedule, None, autocast)
        sync(device)
        return time.perf_counter() - start

    def bare_epoch() -> float:
        order = torch.randperm(n, device=device)
        batches = [(data.x_train[order[i:i + cfg.batch_size]],
                    smoothed_targets(data.y_train[order[i:i + cfg.batch_size]], data.num_classes, 0.1))
                   for i in range(0, n, cfg.batch_size)]
        model.train()
        sync(device)
        start = time.perf_counter()
        for inputs, targets in batches:
            with autocast:
                loss = soft_cross_entropy(model(inputs), targets)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        sync(device)
        return time.perf_counter() - start

    real_epoch(), bare_epoch()  # warm-up: allocator, kernels, optimizer state
    shares, rates = [], []
    for _ in range(repeats):
        real, bare = real_epoch(), bare_epoch()
        shares.append(max(0.0, (real - bare) / real))
        rates.append(n / real)
    return {"parameters": count_parameters(model), "samples_per_s": statistics.median(rates),
            "share": statistics.median(shares), "share_max": max(shares), "steps": -(-n // cfg.batch_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--sizes", nargs="+", default=None, help="model sizes (default: small on CPU; all on CUDA)")
    parser.add_argument("--mixup", type=float, default=0.2, help="mixup_alpha in the real loop (0 disables)")
    args = parser.parse_args()

    runs = [(size, torch.device("cpu")) for size in (args.sizes or ["small"])]
    if torch.cuda.is_available():
        runs += [(size, torch.device("cuda")) for size in (args.sizes or ["small", "medium", "large"])]
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads, batch 32, mixup_alpha {args.mixup}, "
          f"median of {args.repeats} interleaved epochs")
    print(f"{'model':<8}{'device':<8}{'params':>10}{'steps':>7}{'samples/s':>12}{'out-of-model share':>21}{'max':>8}")
    worst = 0.0
    for size, device in runs:
        r = bench_size(size, device, args.repeats, args.mixup)
        label = "bf16" if device.type == "cuda" else "fp32"
        print(f"{size:<8}{device.type + '/' + label:<8}{r['parameters']:>10,}{r['steps']:>7}"
              f"{r['samples_per_s']:>12.0f}{100 * r['share']:>20.2f}%{100 * r['share_max']:>7.1f}%")
        if device.type == "cpu" and size == "small":
            worst = r["share"]
    print(f"small/CPU out-of-model share {100 * worst:.2f}% (bound: 5%) -> {'OK' if worst <= 0.05 else 'OVER'}")


if __name__ == "__main__":
    main()
