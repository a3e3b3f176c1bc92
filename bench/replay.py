"""Time to target, replayed offline on calibrated learning curves: what ASHA alone buys, and what a sampler must add.

``bench/search.py`` runs real sweeps, and with 5 or 10 sampler seeds a few lucky first draws decide its medians.
This replays the same rules thousands of times on what ``bench/calibrate.py --json`` recorded: each trial is one of
the calibrated random configurations, drawn with replacement (the space's own distribution as far as the records
know it), whose validation objective per epoch and final test metrics are the recorded ones. ``max_concurrent``
trials run side by side, one epoch per step. Ray's ASHA rule is replayed as Ray writes it (rungs at
``grace * rf**k`` below ``max_t``; a trial whose value at a rung is below the ``1 - 1/rf`` quantile of the values
recorded there before it stops). Compute to target is what ``bench/search.py`` reads from the study attr
``target_met``: every epoch trained, by all trials, until the first trial that meets the targets completes.

No sampler is replayed: a sampler's proposals would need a model of configurations never trained. Oracles say
instead how good a sampler would have to be. After the space's random start-up trials (TPE's ``n_startup_trials``,
or ``--startup``) an oracle draws only from the best ``q`` of the calibrated configurations, ranked by their best
validation objective (what a search sees, never the test split), and runs them under the space's ASHA (Ray's
defaults, grace 1 and rf 4, when it has none). ``oracle-10%`` is a sampler that, once its start-up is over, never
proposes a configuration outside the best tenth of the space. Real TPE is measured by ``bench/search.py``.

    python bench/replay.py --space bench/spaces/asl20-rare.yaml \
        --records bench/records/asl20-steady-calibration-*.json
    python bench/replay.py --space bench/spaces/asl20-rare.yaml --records ... --asha 2:3 3:4 --oracle 0.5 0.2
    python bench/replay.py --space bench/spaces/asl20-rare.yaml --records ... --slots 1 --startup 3
    python bench/replay.py --space bench/spaces/asl20-rare.yaml --records ... --asha 3:4:4 --oracle

``GRACE:RF:B`` stops no trial at a rung until B values are recorded there (Optuna's ``bootstrap_count``; Ray's rule
is B = 1): Ray judges the second trial to reach a rung against the first alone, so early in a sweep it stops any
trial that starts slower than the one before it.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


Setting = tuple[int, float] | tuple[int, float, int]  # ASHA's grace period, reduction factor, and bootstrap B


class Asha:
    """Ray's ASHA rule for one bracket (``ray.tune.schedulers.async_hyperband._Bracket``), on plain numbers."""

    def __init__(self, grace: int, rf: float, max_t: int, bootstrap: int = 1) -> None:
        self.rf, self.bootstrap = rf, bootstrap
        count = int(np.log(max_t / grace) / np.log(rf) + 1)
        # Ray acts on the first report at or past a rung's milestone: with a report every epoch, its ceiling
        self.rungs: dict[int, list[float]] = {math.ceil(grace * rf**k): [] for k in range(count)}

    def stops(self, epoch: int, value: float) -> bool:
        """Whether a trial reporting ``value`` after ``epoch`` epochs stops here; records the value at a rung."""
        recorded = self.rungs.get(epoch)
        if recorded is None:
            return False
        stop = len(recorded) >= self.bootstrap and value < np.percentile(recorded, (1 - 1 / self.rf) * 100)
        recorded.append(value)
        return stop


def sweep(curves: Sequence[Sequence[float]], met: Sequence[bool], draw: Callable[[int], int], slots: int,
          trials: int, asha: Setting | None) -> float | None:
    """One replayed sweep: trial-epochs until the first trial meeting the targets completes (None: never)."""
    epochs = len(curves[0])
    scheduler = Asha(asha[0], asha[1], epochs, *asha[2:]) if asha else None
    running: list[list[int]] = []  # [configuration, epochs trained]
    started = trained = 0
    while running or started < trials:
        while len(running) < slots and started < trials:
            running.append([draw(started), 0])
            started += 1
        for trial in running:
            trial[1] += 1
            trained += 1
        for trial in list(running):
            config, epoch = trial
            if epoch == epochs and met[config]:
                return trained
            if epoch == epochs or (scheduler and scheduler.stops(epoch, curves[config][epoch - 1])):
                running.remove(trial)
    return None


def load_runs(paths: Sequence[str]) -> list[dict[str, Any]]:
    """Every random configuration in the records (the seeds' setup and its 10x-lr twin are not random draws).

    Records before 2026-12-02 are a bare list of runs; later ones hold it under ``runs``, beside the revision."""
    records = [json.loads(Path(path).read_text()) for path in paths]
    runs = [run for record in records for run in (record["runs"] if isinstance(record, dict) else record)]
    return [run for run in runs if run["label"].startswith("random")]


def asha_setting(text: str) -> Setting:
    """``"3:4"`` -> ``(3, 4.0)``, ``"3:4:2"`` -> ``(3, 4.0, 2)``; B = 1 is Ray's rule, spelt without it."""
    grace, rf, *bootstrap = text.split(":")
    if len(bootstrap) > 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected GRACE:RF or GRACE:RF:B")
    return (int(grace), float(rf), *(int(b) for b in bootstrap if int(b) != 1))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--space", required=True, help="the benchmark space: targets, epochs, concurrency, start-up")
    parser.add_argument("--records", nargs="+", required=True, help="bench/calibrate.py --json files of that space")
    parser.add_argument("--asha", nargs="*", type=asha_setting,
                        default=[(3, 4.0), (2, 3.0), (1, 3.0), (3, 3.0), (6, 3.0)],
                        help="ASHA settings GRACE:RF or GRACE:RF:B to replay, B the values a rung holds before it "
                             "stops a trial (default 1, Ray's; the space's own setting is always included)")
    parser.add_argument("--oracle", nargs="*", type=float, default=[0.5, 0.2, 0.1],
                        help="oracle shares q: after start-up, draw only from the best q by validation")
    parser.add_argument("--sweeps", type=int, default=2000, help="replayed sweeps per method")
    parser.add_argument("--trials", type=int, default=400, help="trials per replayed sweep at most")
    parser.add_argument("--startup", type=int, help="the oracles' random start-up trials (default: the space's TPE's)")
    parser.add_argument("--slots", type=int, help="trials at a time (default: the space's budget.max_concurrent)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    from search import BOUND, fmt, median_of  # bench/search.py, beside this script

    from search_spaces.loader import load_spec
    from storage.view import targets_met
    from sweeper.samplers import default_sampler_options

    spec = load_spec(args.space)
    runs = load_runs(args.records)
    sign = 1.0 if spec.direction == "maximize" else -1.0
    curves = [[sign * v for v in run["result"]["curve"]] for run in runs]
    met = [targets_met(run["result"], spec.targets, spec.metric_direction) for run in runs]
    if not any(met) or len({len(c) for c in curves}) != 1:
        sys.exit(f"{args.space}: the records need curves of one length and at least one run that meets the targets")
    slots, epochs = args.slots or spec.budget.max_concurrent, len(curves[0])
    startup = args.startup if args.startup is not None else \
        default_sampler_options(spec).get("n_startup_trials", 10) if spec.sampler.type == "tpe" else 0
    own = (spec.scheduler.options.get("grace_period") or 1, spec.scheduler.options.get("reduction_factor") or 4.0)
    settings = [own] + [s for s in args.asha if s != own]
    by_validation = sorted(range(len(runs)), key=lambda i: -max(curves[i]))
    rng = np.random.default_rng(args.seed)

    def uniform(_: int) -> int:
        return int(rng.integers(len(runs)))

    def oracle(q: float) -> Callable[[int], int]:
        best = by_validation[:max(1, math.ceil(q * len(runs)))]
        return lambda i: uniform(i) if i < startup else best[int(rng.integers(len(best)))]

    methods: list[tuple[str, Callable[[int], int], Setting | None]] = [("random", uniform, None)]
    methods += [(f"random+asha g{s[0]} rf{s[1]:g}" + (f" b{s[2]}" if s[2:] else ""), uniform, s) for s in settings]
    methods += [(f"oracle-{q:.0%}+asha g{own[0]} rf{own[1]:g}", oracle(q), own) for q in args.oracle]
    cap = float(args.trials * epochs)
    rows = []
    for name, draw, asha in methods:
        results = [sweep(curves, met, draw, slots, args.trials, asha) for _ in range(args.sweeps)]
        rows.append((name, *median_of(results, [cap]), results))
    reference = rows[0][1]
    print(f"# replay of {len(runs)} calibrated configurations ({sum(met)} meet "
          f"{', '.join(f'{m} >= {v:.1%}' for m, v in spec.targets.items())}), {args.sweeps} sweeps per method, "
          f"{slots} at a time, {epochs} epochs, oracles after {startup} random start-up trials")
    print("| method | trial-epochs to target: median | x random | p10 - p90 | met within "
          f"{args.trials} trials |")
    print("| --- | --- | --- | --- | --- |")
    for name, median, censored, results in rows:
        p10, p90 = np.percentile([cap if r is None else r for r in results], [10, 90])
        share = sum(r is not None for r in results) / len(results)
        print(f"| {name} | {fmt(median, censored)} | {fmt(median / reference, censored, 2)} | {p10:.0f} - {p90:.0f} "
              f"| {share:.0%} |")
    floor = min(r for *_, results in rows for r in results if r is not None)
    print(f"# the floor (fastest replayed sweep of any method): {floor:.0f} trial-epochs; {BOUND:.2f} x random "
          f"search's median is {BOUND * reference:.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
