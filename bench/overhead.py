"""Sweep overhead: ``sweeper run`` against the stock Ray Tune + OptunaSearch, on the same fixed-length work.

Each case runs N trials of T seconds of sleep at concurrency C through both, side by side in one run, each as a
fresh command (Ray start-up and shutdown included), and prints efficiency = ideal wall time / actual wall
time, ideal = N * T / C. The bound: sweeper >= 90% for 20 trials of 5 s at concurrency 2 on a 2-core machine.

    python bench/overhead.py                 # both cases, 1 repeat
    python bench/overhead.py --repeats 3     # medians of 3
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [(20, 5.0, 2), (40, 0.5, 8)]


def space_yaml(trials: int, seconds: float, concurrency: int) -> str:
    return textwrap.dedent(f"""\
        name: overhead
        entrypoint: sleep_train:train
        objective: {{metric: score, direction: maximize}}
        training: {{seconds: {seconds}}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        sampler: {{type: tpe, seed: 0}}
        budget: {{trials: {trials}, max_concurrent: {concurrency}}}
        resources: {{cpu: {2 / concurrency}}}
        """)


def timed(cmd: list[str], cwd: str) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(HERE)})
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed


def run_case(trials: int, seconds: float, concurrency: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "overhead.yaml").write_text(space_yaml(trials, seconds, concurrency))
        (Path(tmp) / "sleep_train.py").write_text((HERE / "sleep_train.py").read_text())
        sweeper = timed([sys.executable, "-m", "sweeper.cli", "run", "overhead.yaml", "--storage",
                         f"sqlite:///{tmp}/sweeper.db"], tmp)
        stock = timed([sys.executable, str(HERE / "stock_tune.py"), str(trials), str(seconds), str(concurrency),
                       f"sqlite:///{tmp}/stock.db", f"{tmp}/stock_results"], tmp)
    return sweeper, stock


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    print(f"{'case':<22}{'ideal':>8}{'sweeper':>10}{'stock':>10}{'sweeper eff':>13}{'stock eff':>11}{'ratio':>8}")
    for trials, seconds, concurrency in CASES:
        ideal = trials * seconds / concurrency
        runs = [run_case(trials, seconds, concurrency) for _ in range(args.repeats)]
        sweeper = statistics.median(r[0] for r in runs)
        stock = statistics.median(r[1] for r in runs)
        label = f"{trials} x {seconds:g}s @ {concurrency}"
        print(f"{label:<22}{ideal:>7.1f}s{sweeper:>9.1f}s{stock:>9.1f}s{ideal / sweeper:>12.1%}{ideal / stock:>11.1%}"
              f"{stock / sweeper:>7.2f}x", flush=True)
    print("bound: sweeper >= 90% efficiency for 20 x 5s @ 2")


if __name__ == "__main__":
    main()
