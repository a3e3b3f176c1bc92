"""Trials per GPU-hour: one trial, packed trial processes, a compiled trial, and fused trial groups.

Drives the training core itself (``trials.run``, ``trials.fused.run_group``), not Ray: the GPU image has CUDA
torch and numpy but no Ray, Optuna, SQLAlchemy or pydantic, so this file imports nothing else (``trials/`` does
not either). Four tables, every figure measured on this machine in this run:

1. one trial per model preset, batch 32 (bf16 autocast on CUDA): samples/s and step time;
2. packing: N concurrent trial processes on one device, what ``resources.gpu: 1/N`` does: aggregate samples/s
   and memory per process (CUDA: device memory in use over the processes, CUDA contexts included);
3. one trial through ``torch.compile`` (mode reduce-overhead: CUDA graphs), against table 1's eager trial;
4. fused groups: K trials of the preset trained as one stacked model: aggregate samples/s and memory, without
   and with mixup (the built-in spaces tune it, and a group draws it for all members at once on CUDA);
5. learning: the same config trained alone and as members of one group, seed by seed: their validation Top-3
   after a few more epochs, so that a fast group is also shown to train as well as its members would alone.

"x one" is aggregate samples/s over one trial's: trials per device-hour relative to one trial per device, since
every trial trains the same epochs. Timings are medians over the epochs after the first (warm-up).

    python bench/gpu.py                           # CUDA if present, else a short CPU run of every table
    python bench/gpu.py --device cpu --sizes small --packing 1 2 --fuse 1 2 4 --epochs 3
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trials.fused import run_group
from trials.train import run

CUDA_DEFAULTS = {"sizes": ["small", "medium", "large"], "packing": [1, 2, 4, 8, 16],
                 "fuse": [1, 2, 4, 8, 16, 32, 64], "epochs": 4, "samples_per_class": 80, "seconds": 10.0,
                 "learn_seeds": 8, "learn_epochs": 12}
CPU_DEFAULTS = {"sizes": ["small"], "packing": [1, 2], "fuse": [1, 2, 4], "epochs": 3, "samples_per_class": 12,
                "seconds": 3.0, "learn_seeds": 2, "learn_epochs": 3}
MIXUP = 0.2  # the mixup rows' alpha: seed 004's


def trial_config(size: str, device: str, epochs: int, samples_per_class: int, **extra: Any) -> dict[str, Any]:
    """The sweep's default trial of one preset: 20 synthetic classes, batch 32, dropout, smoothing, clipping;
    ``--set`` settings on top (``extra``)."""
    return {"model.size": size, "dataset.classes": 20, "dataset.samples_per_class": samples_per_class,
            "batch_size": 32, "epochs": epochs, "device": device, "seed": 0, **SETTINGS, **extra}


SETTINGS: dict[str, Any] = {}  # --set KEY=VALUE: another shape than a preset's (nslt1000: model.hidden=512 ...)


def timed_epochs(reports: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return reports[1:] or reports  # the first epoch pays for allocation, kernel selection, caches


def one_trial(config: dict[str, Any]) -> dict[str, float]:
    reports: list[dict[str, Any]] = []
    run(config, reports.append)
    rate = statistics.median(r["samples_per_second"] for r in timed_epochs(reports))
    return {"samples_per_s": rate, "step_ms": 1000 * config["batch_size"] / rate}


def fused_group(config: dict[str, Any], k: int, device: torch.device) -> dict[str, float]:
    """K members that differ in lr and seed (as a sweep's would), and in mixup alpha where the config mixes;
    aggregate samples/s of the group."""
    mixes = config.get("mixup_alpha", 0) > 0
    members = [{**config, "seed": i, "lr": 1e-4 * (1 + i % 7), **({"mixup_alpha": 0.1 * (1 + i % 4)} if mixes else {})}
               for i in range(k)]
    reports: list[list[dict[str, Any]]] = [[] for _ in members]
    reset_memory(device)
    outcomes = run_group(members, [r.append for r in reports])
    failed = [o for o in outcomes if isinstance(o, Exception)]
    if failed:
        raise RuntimeError(f"{len(failed)} of {k} members failed: {failed[0]}")
    rate = statistics.median(r["samples_per_second"] for r in timed_epochs(reports[0]))
    return {"samples_per_s": k * rate, "memory_mb": peak_memory_mb(device)}


def learning(config: dict[str, Any], seeds: int) -> dict[str, list[float]]:
    """Validation Top-3 (best epoch) of the config under seeds 0..n-1: each alone, then all as one group."""
    configs = [{**config, "seed": i} for i in range(seeds)]
    alone = [run(c)["val_top3"] for c in configs]
    fused = [o["val_top3"] if isinstance(o, dict) else float("nan") for o in run_group(configs)]
    return {"alone": alone, "fused": fused}


def measured(what: Any, *args: Any) -> Any:
    """``what(*args)``, or None after printing why it failed: one failing row must not lose the others."""
    try:
        return what(*args)
    except Exception as exc:  # a row the device or compiler cannot run is a finding, not a crash
        print(f"failed: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}", flush=True)
        return None


def compiled_trial(config: dict[str, Any]) -> dict[str, float]:
    """One trial whose model goes through ``torch.compile(mode="reduce-overhead")`` inside ``trials.run``."""
    import trials.train as train

    original = train.new_model

    def compiled_model(cfg: Any, data: Any) -> torch.nn.Module:
        return torch.compile(original(cfg, data), mode="reduce-overhead")

    train.new_model = compiled_model
    try:
        return one_trial(config)
    finally:
        train.new_model = original


# --- packing: N trial processes at once -------------------------------------------------------------------
def packed(config: dict[str, Any], n: int, seconds: float, device: torch.device) -> dict[str, float]:
    """N worker processes train side by side for the same ``seconds``, started together after their warm-up."""
    threads = max(1, (os.cpu_count() or 1) // n)
    baseline = device_used_mb(device)
    workers = [subprocess.Popen(
        [sys.executable, __file__, "--worker", json.dumps({**config, "seed": i, "threads": threads}), str(seconds)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True) for i in range(n)]
    for w in workers:  # each prints "ready" after its warm-up epoch
        if w.stdout.readline().strip() != "ready":
            raise RuntimeError(f"a packing worker failed to start (exit {w.wait()})")
    for w in workers:
        w.stdin.write("go\n")
        w.stdin.flush()
    results = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    if device.type == "cuda":
        memory = (max(r["device_used_mb"] for r in results) - baseline) / n
    else:
        memory = statistics.mean(r["max_rss_mb"] for r in results)
    return {"samples_per_s": sum(r["samples_per_s"] for r in results), "memory_mb": memory}


def worker(config_json: str, seconds: float) -> None:
    """One packed trial: warm up, wait for "go", train whole epochs until ``seconds`` are up, print its rate."""
    import math

    import trials.train as train
    from trials.config import TrainConfig
    from trials.data import load_splits
    from trials.losses import inverse_frequency_weights

    cfg = TrainConfig.from_flat(json.loads(config_json))
    torch.set_num_threads(cfg.threads)
    device = train.resolve_device(cfg.device)
    torch.manual_seed(cfg.seed)
    data = load_splits(cfg).to(device)
    model = train.new_model(cfg, data).to(device)
    optimizer = train.new_optimizer(cfg, model)
    weights = inverse_frequency_weights(data.y_train, data.num_classes).to(device) if cfg.class_weights else None
    schedule = train.lr_schedule(cfg, math.ceil(len(data.y_train) / cfg.batch_size))
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=device.type == "cuda")
    progress = train.new_progress()

    def epoch() -> None:
        train.train_epoch(model, optimizer, data, cfg, progress, schedule, weights, autocast)
        if device.type == "cuda":
            torch.cuda.synchronize(device)

    epoch()
    print("ready", flush=True)
    sys.stdin.readline()
    start, epochs = time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        epoch()
        epochs += 1
    elapsed = time.perf_counter() - start
    print(json.dumps({"samples_per_s": epochs * len(data.y_train) / elapsed, "device_used_mb": device_used_mb(device),
                      "max_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}), flush=True)


# --- memory -----------------------------------------------------------------------------------------------
def device_used_mb(device: torch.device) -> float:
    if device.type != "cuda":
        return 0.0
    free, total = torch.cuda.mem_get_info(device)
    return (total - free) / 2**20


def reset_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """The caching allocator's peak (no CUDA context); NaN on the CPU, where no per-run peak can be read."""
    return torch.cuda.max_memory_reserved(device) / 2**20 if device.type == "cuda" else float("nan")


def megabytes(value: float) -> str:
    return "-" if value != value else f"{value:.0f}"


def json_or_text(key: str, value: str) -> tuple[str, Any]:
    try:
        return key, json.loads(value)
    except json.JSONDecodeError:
        return key, value


# --- the report ----------------------------------------------------------------------------------------------
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto", help="auto (CUDA if present), cpu, cuda or cuda:N")
    parser.add_argument("--sizes", nargs="+", help="presets for table 1 (the other tables use the first)")
    parser.add_argument("--packing", nargs="*", type=int, help="numbers of concurrent processes (none: skip)")
    parser.add_argument("--fuse", nargs="*", type=int, help="group sizes K (none: skip)")
    parser.add_argument("--compile", choices=["auto", "yes", "no"], default="auto",
                        help="table 3 (auto: on CUDA only; on CPU inductor compiles C++ for minutes)")
    parser.add_argument("--epochs", type=int, help="epochs per measured run (the first is warm-up)")
    parser.add_argument("--samples-per-class", type=int, help="synthetic samples per class (20 classes)")
    parser.add_argument("--seconds", type=float, help="timed window of each packing run")
    parser.add_argument("--learn-seeds", type=int, help="table 5: seeds trained alone and as one group (0: skip)")
    parser.add_argument("--learn-epochs", type=int, help="table 5: epochs of each")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE",
                        help="trial settings for every table, e.g. model.hidden=512 dataset.classes=1000")
    parser.add_argument("--worker", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    SETTINGS.update(json_or_text(*item.split("=", 1)) for item in args.set)
    if args.worker:
        worker(args.worker[0], float(args.worker[1]))
        return

    name = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(name)
    defaults = CUDA_DEFAULTS if device.type == "cuda" else CPU_DEFAULTS
    pick = {key: getattr(args, key) if getattr(args, key) is not None else value for key, value in defaults.items()}
    epochs, per_class = pick["epochs"], pick["samples_per_class"]
    precision = "bf16 autocast" if device.type == "cuda" else "fp32"
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU, {torch.get_num_threads()} threads"
    print(f"{time.strftime('%Y-%m-%d')}  torch {torch.__version__}  {where}  batch 32  {precision}  "
          f"{epochs} epochs of {int(SETTINGS.get('dataset.classes', 20) * per_class * 0.6)}-ish samples, medians "
          f"after the first" + "".join(f"  {k}={v}" for k, v in SETTINGS.items()))

    clock = time.perf_counter()

    def took() -> str:
        return f"({time.perf_counter() - clock:.0f} s in)"

    print("\n1. one trial")
    print(f"{'model':<14}{'samples/s':>12}{'step ms':>10}")
    single: dict[str, float] = {}
    for row, config in [*((size, trial_config(size, name, epochs, per_class)) for size in pick["sizes"]),
                        (f"{pick['sizes'][0]}+mixup", trial_config(pick["sizes"][0], name, epochs, per_class,
                                                                   mixup_alpha=MIXUP))]:
        if r := measured(one_trial, config):
            single[row] = r["samples_per_s"]
            print(f"{row:<14}{r['samples_per_s']:>12.0f}{r['step_ms']:>10.2f}", flush=True)
    size = pick["sizes"][0]
    config = trial_config(size, name, epochs, per_class)
    base, base_mixup = single.get(size, float("nan")), single.get(f"{size}+mixup", float("nan"))
    best = ("one trial", 1, 1.0, float("nan"))

    if pick["packing"]:
        print(f"\n2. packing: N {size} trial processes at once, {pick['seconds']:g} s each {took()}")
        memory_label = "MB/process" if device.type == "cuda" else "RSS MB/proc"
        print(f"{'N':>4}{'samples/s':>12}{'x one':>8}{memory_label:>14}")
        for n in pick["packing"]:
            if r := measured(packed, config, n, pick["seconds"], device):
                ratio = r["samples_per_s"] / base
                print(f"{n:>4}{r['samples_per_s']:>12.0f}{ratio:>8.2f}{r['memory_mb']:>14.0f}", flush=True)
                if ratio > best[2]:
                    best = ("packing", n, ratio, r["memory_mb"] * n)

    if args.compile == "yes" or (args.compile == "auto" and device.type == "cuda"):
        print(f"\n3. one {size} trial, torch.compile(mode='reduce-overhead') {took()}")
        if r := measured(compiled_trial, config):
            verdict = "pays" if r["samples_per_s"] > base else "does not pay"
            print(f"samples/s {r['samples_per_s']:.0f}  step ms {r['step_ms']:.2f}  "
                  f"x eager {r['samples_per_s'] / base:.2f}  ({verdict})", flush=True)
    else:
        print("\n3. torch.compile: skipped (--compile yes to run it here)")

    if pick["fuse"]:
        print(f"\n4. fused groups: K {size} trials as one stacked model; mixup: members with alpha 0.1-0.4, "
              f"against one trial with mixup {MIXUP} {took()}")
        print(f"{'K':>4}{'samples/s':>12}{'x one':>8}{'MB':>8}{'mixup s/s':>12}{'x one':>8}")
        for k in pick["fuse"]:
            plain = measured(fused_group, config, k, device)
            mixed = measured(fused_group, {**config, "mixup_alpha": MIXUP}, k, device)
            if plain:
                ratio = plain["samples_per_s"] / base
                mixed_cells = (f"{mixed['samples_per_s']:>12.0f}{mixed['samples_per_s'] / base_mixup:>8.2f}"
                               if mixed else f"{'-':>12}{'-':>8}")
                print(f"{k:>4}{plain['samples_per_s']:>12.0f}{ratio:>8.2f}{megabytes(plain['memory_mb']):>8}"
                      + mixed_cells, flush=True)
                if ratio > best[2]:
                    best = ("fused", k, ratio, plain["memory_mb"])

    if pick["learn_seeds"]:
        learn = {**config, "epochs": pick["learn_epochs"]}
        print(f"\n5. learning: {size}, {pick['learn_epochs']} epochs, seeds 0-{pick['learn_seeds'] - 1}, alone and "
              f"as one group: best val Top-3 {took()}")
        if r := measured(learning, learn, pick["learn_seeds"]):
            for how, values in r.items():
                print(f"{how:<7}median {statistics.median(values):.3f}  range {min(values):.3f}-{max(values):.3f}"
                      f"  per seed {' '.join(f'{v:.3f}' for v in values)}", flush=True)

    how, n, ratio, memory = best
    print(f"\nbest: {how} {n} -> {ratio:.2f}x one {size} trial per device-hour, memory {megabytes(memory)} MB "
          f"{took()}")
    if device.type == "cuda":
        print(f"bound (issue 15): >= 10x on the small preset -> {'OK' if ratio >= 10 else 'UNDER'}")
    else:
        print("CPU run: GPU rows not measured, no device lent")


if __name__ == "__main__":
    main()
