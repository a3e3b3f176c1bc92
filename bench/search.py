"""Time to target, side by side: how much compute each search method spends before a trial meets the targets.

Every sweep is a real one, through sweeper's own ``run`` path (real Ray, real Optuna on a throwaway SQLite file per
sweep), on one benchmark space (default bench/spaces/asl20-short.yaml: asl20 at 10 epochs, target 77.5%, calibrated
with bench/calibrate.py). Each method runs with ``--repeats`` sampler seeds (0, 1, ...). A sweep's compute to
target is the study attr ``target_met`` (storage/target.py): the epochs trained by all trials, the second
concurrent slot included, until the first trial meeting every target completed, and the wall seconds until then.
The benchmark space sets ``budget.stop_on_target``, so a sweep ends at that moment and no best-at-budget figures
exist; a sweep that never reaches the target within its trial budget counts as more than all it trained (">N").

    python bench/search.py --repeats 5                            # every method, one table and the verdict
    python bench/search.py --methods random tpe+asha --repeats 3 -v
    python bench/search.py --methods random --json /tmp/random.json          # in parts ...
    python bench/search.py --merge /tmp/random.json /tmp/default.json         # ... and one table of them all

The verdict compares the default search (the space's own sampler and scheduler sections) with random search:
the median compute to target over the seeds, as a ratio; the bound is 0.20. All sweeps of a run share one local
Ray instance. Trial-epochs are not distorted by other load on the machine; wall seconds are.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SPACE = str(Path(__file__).resolve().parent / "spaces" / "asl20-short.yaml")
BOUND = 0.20  # the default search must reach the target in at most this share of random search's compute
REFERENCE = "random"
DEFAULT = "default"
# name -> --set overrides on the benchmark space; "default" is the space as written, whose sampler and scheduler
# sections are the built-in spaces' defaults (today TPE + ASHA with grace_period 3, Ray's reduction factor 4).
METHODS: dict[str, tuple[str, ...]] = {
    "random": ("sampler.type=random", "scheduler={type: none}"),
    "random+asha": ("sampler.type=random", "scheduler={type: asha, grace_period: 3}"),
    "tpe": ("sampler={type: tpe}", "scheduler={type: none}"),
    DEFAULT: (),
    "tpe+asha-g1": ("sampler={type: tpe}", "scheduler={type: asha, grace_period: 1, reduction_factor: 3}"),
}
# Tried on the way (docs/time-to-target.md): run only when named with --methods.
VARIANTS: dict[str, tuple[str, ...]] = {
    "tpe+asha": ("sampler={type: tpe}", "scheduler={type: asha, grace_period: 3}"),  # the default, spelled out
    "tpe+asha-g1-s5": ("sampler={type: tpe, n_startup_trials: 5}",
                       "scheduler={type: asha, grace_period: 1, reduction_factor: 3}"),
    "tpe+asha-g1-rf4": ("sampler={type: tpe}", "scheduler={type: asha, grace_period: 1, reduction_factor: 4}"),
    "tpe+asha-g1-rf4-s5": ("sampler={type: tpe, n_startup_trials: 5}",
                           "scheduler={type: asha, grace_period: 1, reduction_factor: 4}"),
    # a later first rung: regularised trials start slower, and a rung at epoch 3 prunes them (asl20-signers)
    "tpe+asha-g6": ("sampler={type: tpe}", "scheduler={type: asha, grace_period: 6, reduction_factor: 3}"),
}


def run_one(space: str, method: str, seed: int, workdir: Path, verbose: bool) -> dict[str, Any]:
    """One sweep of ``method`` with sampler seed ``seed``; its time to target and what it spent in all."""
    from storage.target import epochs_trained, target_met
    from sweeper.driver import SweepOptions, run_sweep

    folder = workdir / f"{method.replace('+', '-')}-{seed}"
    folder.mkdir(parents=True, exist_ok=True)
    overrides = (*{**METHODS, **VARIANTS}[method], f"sampler.seed={seed}", f"name=search-{folder.name}")
    started = time.perf_counter()
    log = sys.stderr if verbose else open(folder / "sweep.log", "w")  # noqa: SIM115
    with contextlib.redirect_stdout(log):
        study = run_sweep(SweepOptions(space=space, overrides=overrides, storage=f"sqlite:///{folder / 'sweep.db'}",
                                       results_dir=str(folder / "runs"), max_failures=0))
    if log is not sys.stderr:
        log.close()
    trials = study.get_trials(deepcopy=False)
    return {
        "method": method, "seed": seed, "overrides": list(overrides),
        "target_met": target_met(study.user_attrs),  # None: never within the budget
        "trials": len(trials), "trial_epochs": sum(epochs_trained(t) for t in trials),
        "sweep_seconds": round(time.perf_counter() - started, 1),
    }


def median_of(values: list[float | None], censored_at: list[float]) -> tuple[float, bool]:
    """Median where ``None`` means "more than its budget" (ranks last): (value, censored).

    A censored median is reported as more than the smallest budget of the censored sweeps.
    """
    ranked = sorted(values, key=lambda v: (v is None, v or 0.0))
    n = len(ranked)
    middle = ranked[(n - 1) // 2: n // 2 + 1]
    if any(v is None for v in middle):
        return min(censored_at), True
    return statistics.fmean(middle), False


def fmt(value: float, censored: bool, digits: int = 0) -> str:
    return (">" if censored else "") + f"{value:.{digits}f}"


SPENT = {"trial_epochs": "trial_epochs", "wall_seconds": "sweep_seconds", "trials": "trials"}  # a whole sweep's


def summarize(records: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: sweeps, how many reached the target, and median/range of trial-epochs, wall s, trials to it.

    A sweep that never reached the target stands for "more than everything it spent" (``censored``).
    """
    out: dict[str, dict[str, Any]] = {}
    for method in dict.fromkeys(r["method"] for r in records):
        rows = [r for r in records if r["method"] == method]
        summary: dict[str, Any] = {"sweeps": len(rows), "reached": sum(bool(r["target_met"]) for r in rows)}
        for key, whole in SPENT.items():
            values = [r["target_met"][key] if r["target_met"] else None for r in rows]
            spent = [float(r[whole]) for r in rows if not r["target_met"]]
            median, censored = median_of(values, spent)
            reached = [v for v in values if v is not None]
            summary[key] = {"median": median, "censored": censored,
                            "low": min(reached) if reached else min(spent), "low_censored": not reached,
                            "high": max(spent) if spent else max(reached), "high_censored": bool(spent)}
        out[method] = summary
    return out


def ratio(summary: dict[str, dict[str, Any]], method: str) -> tuple[str, float | None, bool]:
    """``method``'s median trial-epochs to target over random search's: (text, value, proven <= BOUND)."""
    if REFERENCE not in summary:
        return "-", None, False
    mine, ref = summary[method]["trial_epochs"], summary[REFERENCE]["trial_epochs"]
    value = mine["median"] / ref["median"]
    if mine["censored"] and ref["censored"]:
        return "?", None, False
    if mine["censored"]:  # more than this
        return f">{value:.2f}", value, False
    if ref["censored"]:  # random needed more than its budget: the true ratio is smaller
        return f"<{value:.2f}", value, value <= BOUND
    return f"{value:.2f}", value, value <= BOUND


def table(records: list[dict[str, Any]], labels: dict[str, str] | None = None) -> list[str]:
    """The markdown table and the verdict line; ``labels``: what each method searches with."""
    labels = labels or {}
    summary = summarize(records)
    seeds = sorted({r["seed"] for r in records})
    lines = ["| method | sweeps reaching the target | trial-epochs to target: median (range) | x random (median) "
             "| wall s to target: median (range) | trials to target: median (range) |",
             "| --- | --- | --- | --- | --- | --- |"]
    for method, s in summary.items():
        cells = []
        for key, digits in (("trial_epochs", 0), ("wall_seconds", 0), ("trials", 0)):
            c = s[key]
            cells.append(f"{fmt(c['median'], c['censored'], digits)} ({fmt(c['low'], c['low_censored'], digits)} - "
                         f"{fmt(c['high'], c['high_censored'], digits)})")
        label = f"{method} ({labels[method]})" if method in labels else method
        lines.append(f"| {label} | {s['reached']} of {s['sweeps']} | {cells[0]} | {ratio(summary, method)[0]} | "
                     f"{cells[1]} | {cells[2]} |")
    if DEFAULT in summary:
        text, _, met = ratio(summary, DEFAULT)
        lines.append(f"bound: default search ({labels.get(DEFAULT, DEFAULT)}) reaches the target in <= {BOUND:.2f} "
                     f"x random search's compute (median of {len(seeds)} seeds): {text}, {'met' if met else 'not met'}")
    return lines


def revision(folder: Path = Path(__file__).resolve().parent) -> str:
    """The commit ``folder`` is at, ``+dirty`` with uncommitted changes: a record is reproducible only from it."""
    def git(*args: str) -> str:
        return subprocess.run(["git", *args], cwd=folder, capture_output=True, text=True, check=True).stdout.strip()

    try:
        commit, changes = git("rev-parse", "--short", "HEAD"), git("status", "--porcelain", "--untracked-files=no")
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return commit + ("+dirty" if changes else "")


def search_label(space: str, overrides: tuple[str, ...] = ()) -> str:
    """What a method searches with, from the space as it resolves: ``tpe + asha grace_period=1``."""
    from search_spaces.loader import load_spec

    spec = load_spec(space, overrides)
    sampler = " ".join([spec.sampler.type, *(f"{k}={v}" for k, v in spec.sampler.options.items())])
    scheduler = " ".join([spec.scheduler.type, *(f"{k}={v}" for k, v in spec.scheduler.options.items())])
    return f"{sampler} + {scheduler}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", default=SPACE, help="the benchmark space (default: %(default)s)")
    parser.add_argument("--methods", nargs="+", choices=[*METHODS, *VARIANTS], default=list(METHODS))
    parser.add_argument("--repeats", type=int, default=5, help="sampler seeds per method (0, 1, ...)")
    parser.add_argument("--first-seed", type=int, default=0, help="run seeds FIRST .. FIRST+REPEATS-1")
    parser.add_argument("--json", help="also write every sweep's record to this file (for --merge)")
    parser.add_argument("--merge", nargs="+", help="print the table of these --json files instead of running")
    parser.add_argument("--workdir", help="keep each sweep's database and log here (default: a temporary folder)")
    parser.add_argument("-v", "--verbose", action="store_true", help="the sweeps' own output on stderr")
    args = parser.parse_args(argv)

    if args.merge:
        records = [r for path in args.merge for r in json.loads(Path(path).read_text())["records"]]
    else:
        from sweeper.ray_runtime import start_ray

        start_ray()  # one local Ray for every sweep of the run
        records, commit = [], revision()
        started = time.perf_counter()
        with tempfile.TemporaryDirectory(prefix="sweeper-search-") as tmp:
            workdir = Path(args.workdir or tmp)
            for method in args.methods:
                for seed in range(args.first_seed, args.first_seed + args.repeats):
                    record = run_one(args.space, method, seed, workdir, args.verbose)
                    records.append(record)
                    met = record["target_met"]
                    print(f"# {method} seed {seed}: " + (f"target after {met['trial_epochs']} trial-epochs, "
                          f"{met['wall_seconds']:.0f} s, {met['trials']} trials" if met else
                          f"no target in {record['trials']} trials ({record['trial_epochs']} trial-epochs)")
                          + f"; sweep {record['sweep_seconds']:.0f} s", file=sys.stderr, flush=True)
                    if args.json:  # after every sweep: a run that dies later keeps what it measured
                        Path(args.json).write_text(json.dumps({"space": args.space, "revision": commit,
                                                            "records": records}, indent=1))
        print(f"# {len(records)} sweeps in {time.perf_counter() - started:.0f} s at {commit}")
    from search_spaces.loader import load_spec

    spec = load_spec(args.space)
    methods = {**METHODS, **VARIANTS}
    labels = {m: search_label(args.space, methods[m]) for m in dict.fromkeys(r["method"] for r in records)}
    print(f"# time to target on {Path(args.space).name} ({spec.name}): {spec.budget.trials} trials per sweep at most, "
          f"{spec.budget.max_concurrent} at a time, {spec.base_config().get('epochs')} epochs each; targets "
          + ", ".join(f"{m} >= {100 * v:g}%" for m, v in spec.targets.items()))
    print("\n".join(table(records, labels)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
