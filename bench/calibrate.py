"""Is the synthetic stand-in as hard as the workload it stands in for?

For each built-in space it trains, at the space's full epochs:

* the space's fixed ``training:`` block alone (the seeds' setup), and compares its test Top-1/Top-3 with the
  figures the seeds document (the space's ``baseline:``); then the same with 10x its learning rate, which should
  not reach the target by itself (under-training must not be all that stands between the setup and the target);
* ``--configs`` random configurations of the space's params (Optuna's RandomSampler, ``--seed``), and counts
  how many reach every target. A calibrated space lets only well-chosen configurations reach it: 3% to 20%.

    python bench/calibrate.py                          # asl20 and asl50, 30 random configs each, 2 processes
    python bench/calibrate.py --spaces asl20 --configs 40 --jobs 1 -v
    python bench/calibrate.py --spaces bench/spaces/asl20-signers.yaml --configs 40 --seed 300 --json runs.json

It also prints how well the validation split ranks the test split (Spearman correlation of the random
configurations' best validation objective with their test Top-3): a search sees validation only, so where that
correlation is low, no search method can find the configurations that reach a test target any faster than luck.
``--json`` keeps every run (params, validation objective per epoch, final metrics), rewritten after each run, with
the commit it ran at (``revision``, as ``bench/search.py --json`` writes it).

Training runs are independent processes of one torch thread each (``--jobs`` at a time), like sweep trials.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SHARE_BOUNDS = (0.03, 0.20)  # the share of random configurations that may reach the target
CONTEXT = "spawn"  # fresh worker processes, as Ray starts them


def random_configs(spec: Any, n: int, seed: int) -> list[dict[str, Any]]:
    """``n`` parameter sets drawn independently and uniformly (in each param's own scale) from the space."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=seed))
    return [study.ask(spec.distributions()).params for _ in range(n)]


def train(job: tuple[str, str, dict[str, Any]]) -> tuple[str, str, dict[str, Any], dict[str, Any], float]:
    """One full training run of ``config`` on one thread; returns what it was and the final metrics, with the
    objective of every epoch under ``curve``."""
    from trials import run

    space, label, config = job
    started = time.perf_counter()
    curve: list[float] = []
    objective = config.get("objective", "val_top3")
    result = run({**config, "threads": 1, "device": "cpu"}, lambda metrics: curve.append(metrics[objective]))
    return space, label, config, {**result, "curve": curve}, time.perf_counter() - started


def rank_correlation(a: list[float], b: list[float]) -> float:
    """Spearman's rho (ties broken by order: the figures here are accuracies over hundreds of samples)."""
    import numpy as np

    ranks_a, ranks_b = (np.argsort(np.argsort(np.asarray(x))) for x in (a, b))
    return float(np.corrcoef(ranks_a, ranks_b)[0, 1])


def percent(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.2f}%"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spaces", nargs="+", default=["asl20", "asl50"], help="built-in names or YAML files")
    parser.add_argument("--configs", type=int, default=30, help="random configurations per space")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random configurations")
    parser.add_argument("--skip", type=int, default=0,
                        help="leave out the seeds' setup and the first SKIP configurations (to run a batch in parts)")
    parser.add_argument("--jobs", type=int, default=2, help="training processes at a time")
    parser.add_argument("-v", "--verbose", action="store_true", help="one line per finished run")
    parser.add_argument("--json", help="write every run (params, objective per epoch, final metrics) to this file")
    args = parser.parse_args(argv)

    from search import revision  # bench/search.py, beside this script

    from search_spaces.loader import load_spec
    from storage.view import targets_met
    from trials.config import TrainConfig

    commit = revision()

    specs = {name: load_spec(name if name.endswith((".yaml", ".yml")) else f"spaces/{name}.yaml")
             for name in args.spaces}
    jobs = []
    for name, spec in specs.items():
        if not args.skip:  # the seeds' setup, and the same with 10x its learning rate: a larger lr alone is no answer
            setup = spec.base_config()
            jobs.append((name, "seeds' setup", setup))
            lr = setup.get("lr", TrainConfig().lr)  # a training block may leave lr to the default
            jobs.append((name, "seeds' setup, lr x10", {**setup, "lr": 10 * lr}))
        drawn = random_configs(spec, args.skip + args.configs, args.seed)
        jobs += [(name, f"random {i}", spec.trial_config(drawn[i])) for i in range(args.skip, len(drawn))]
    results: dict[str, list[tuple[str, dict[str, Any], dict[str, Any]]]] = {name: [] for name in specs}
    started = time.perf_counter()
    with multiprocessing.get_context(CONTEXT).Pool(args.jobs) as pool:
        for space, label, config, result, seconds in pool.imap_unordered(train, jobs):
            results[space].append((label, config, result))
            if args.json:
                Path(args.json).write_text(json.dumps({"revision": commit, "seed": args.seed, "runs": [
                    {"space": name, "label": label, "params": {k: c.get(k) for k in specs[name].distributions()},
                     "result": r} for name, rows in results.items() for label, c, r in rows]}, indent=1))
            if args.verbose:
                params = {k: config.get(k) for k in specs[space].distributions()}
                print(f"{space} {label}: test_top1 {percent(result['test_top1'])} test_top3 "
                      f"{percent(result['test_top3'])} ({seconds:.0f} s) {params}", file=sys.stderr, flush=True)

    print(f"# calibration: {args.configs} random configurations per space (seed {args.seed}), full epochs, "
          f"{time.perf_counter() - started:.0f} s with {args.jobs} processes")
    print("| space | measure | seeds | ours |")
    print("| --- | --- | --- | --- |")
    verdicts = []
    for name, spec in specs.items():
        setup = next((r for label, _, r in results[name] if label == "seeds' setup"), {})
        seeds = spec.baseline.metrics if spec.baseline else {}
        for metric in sorted({*seeds, *spec.targets}):
            print(f"| {name} | seeds' setup, {metric} | {percent(seeds.get(metric))} | {percent(setup.get(metric))} |")
        faster = next((r for label, _, r in results[name] if label == "seeds' setup, lr x10"), None)
        if faster:
            print(f"| {name} | seeds' setup with 10x its lr, " + ", ".join(spec.targets) + " | | "
                  + ", ".join(percent(faster.get(m)) for m in spec.targets) + " |")
        randoms = [(c, r) for label, c, r in results[name] if label.startswith("random")]
        reached = sum(targets_met(r, spec.targets, spec.metric_direction) for _, r in randoms)
        share = reached / len(randoms) if randoms else 0.0
        target = ", ".join(f"{m} >= {percent(v)}" for m, v in spec.targets.items())
        print(f"| {name} | random configs reaching {target} | 3% - 20% | "
              f"{reached}/{len(randoms)} = {100 * share:.0f}% |")
        top3 = sorted(r["test_top3"] for _, r in randoms)
        if top3:
            print(f"| {name} | random configs' test_top3: median (range) | | {percent(statistics.median(top3))} "
                  f"({percent(top3[0])} - {percent(top3[-1])}) |")
        if len(randoms) >= 3:
            best_val = [max(r["curve"]) if spec.direction == "maximize" else -min(r["curve"]) for _, r in randoms]
            rho = rank_correlation(best_val, [r["test_top3"] for _, r in randoms])
            print(f"| {name} | random configs: rank correlation of best {spec.objective.metric} with test_top3 | "
                  f"| {rho:.2f} |")
        verdicts.append(f"{name} {'met' if SHARE_BOUNDS[0] <= share <= SHARE_BOUNDS[1] else 'not met'}")
    print("share of random configurations reaching the target within 3%-20%: " + ", ".join(verdicts))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
