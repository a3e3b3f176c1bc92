"""Sweep overhead: ``sweeper run`` against the stock Ray Tune + OptunaSearch, on the same fixed-length work.

Each case runs N trials of T seconds of sleep at concurrency C through each runner, side by side in one run,
each as a fresh command (Ray start-up and shutdown included), and prints efficiency = ideal wall time / actual
wall time, ideal = N * T / C, and the CPU time the whole machine spent meanwhile (Ray's processes are not the
command's children; Linux only). The bound: sweeper >= 90% for 20 trials of 5 s at concurrency 2 on a 2-core
machine. The third runner, a bare Ray Tune with nothing on top (bare_tune.py), is what Ray Tune costs out of the
box: Ray's start-up, actor start and shutdown. The last case runs one trial at a time, where a Ray of sweeper's own
starts no worker ahead for CPUs no trial takes.

    python bench/overhead.py                 # every case, 1 repeat
    python bench/overhead.py --repeats 3     # medians of 3
    python bench/overhead.py --case 10,0.5,1 # one case: N,T,C
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
CASES = [(20, 5.0, 2), (40, 0.5, 8), (10, 0.5, 1)]


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


def busy_cpu_seconds() -> float:
    """CPU time the machine has spent busy since boot (/proc/stat), NaN where there is no /proc."""
    try:
        fields = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:8]]
    except OSError:
        return math.nan
    user, nice, system, _idle, _iowait, irq, softirq = fields
    return (user + nice + system + irq + softirq) / os.sysconf("SC_CLK_TCK")


def timed(cmd: list[str], cwd: str) -> tuple[float, float]:
    """Wall seconds of the command, and the machine's busy CPU seconds meanwhile."""
    cpu, start = busy_cpu_seconds(), time.perf_counter()
    path = os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")]))  # another checkout's, to compare
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": path})
    elapsed, cpu = time.perf_counter() - start, busy_cpu_seconds() - cpu
    if proc.returncode != 0:
        sys.exit(f"{cmd[:3]} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return elapsed, cpu


RUNNERS = ("sweeper", "stock", "bare Tune")


def run_case(trials: int, seconds: float, concurrency: int) -> dict[str, tuple[float, float]]:
    """One (wall, CPU) per runner, back to back on the same machine."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "overhead.yaml").write_text(space_yaml(trials, seconds, concurrency))
        (Path(tmp) / "sleep_train.py").write_text((HERE / "sleep_train.py").read_text())
        shape = [str(trials), str(seconds), str(concurrency)]
        return {
            "sweeper": timed([sys.executable, "-m", "sweeper.cli", "run", "overhead.yaml", "--storage",
                              f"sqlite:///{tmp}/sweeper.db"], tmp),
            "stock": timed([sys.executable, str(HERE / "stock_tune.py"), *shape, f"sqlite:///{tmp}/stock.db",
                            f"{tmp}/stock_results"], tmp),
            "bare Tune": timed([sys.executable, str(HERE / "bare_tune.py"), *shape, f"{tmp}/bare_results"], tmp),
        }


def case_of(text: str) -> tuple[int, float, int]:
    try:
        trials, seconds, concurrency = text.split(",")
        return int(trials), float(seconds), int(concurrency)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not N,T,C (e.g. 10,0.5,1)") from None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--case", action="append", type=case_of, metavar="N,T,C",
                        help="run this case instead: N trials of T seconds, C at a time (repeatable)")
    args = parser.parse_args()
    cases = args.case or CASES
    print(f"{'case':<18}{'runner':<11}{'ideal':>7}{'median':>9}{'min-max':>15}{'efficiency':>12}"
          f"{'vs sweeper':>12}{'CPU s':>8}")
    verdict = ""
    for trials, seconds, concurrency in cases:
        ideal = trials * seconds / concurrency
        runs = [run_case(trials, seconds, concurrency) for _ in range(args.repeats)]
        medians = {name: statistics.median(run[name][0] for run in runs) for name in RUNNERS}
        label = f"{trials} x {seconds:g}s @ {concurrency}"
        for name in RUNNERS:
            times = [run[name][0] for run in runs]
            cpu = statistics.median(run[name][1] for run in runs)
            print(f"{label:<18}{name:<11}{ideal:>6.1f}s{medians[name]:>8.1f}s{min(times):>8.1f}-{max(times):<5.1f}s"
                  f"{ideal / medians[name]:>11.1%}{medians[name] / medians['sweeper']:>11.2f}x{cpu:>8.1f}", flush=True)
            label = ""
        if (trials, seconds, concurrency) == CASES[0]:
            efficiency = ideal / medians["sweeper"]
            verdict = (f"bound: sweeper >= 90% efficiency for {trials} x {seconds:g}s @ {concurrency}: "
                       f"{efficiency:.1%}, {'met' if efficiency >= 0.9 else 'NOT met'} (bare Tune: "
                       f"{ideal / medians['bare Tune']:.1%})")
    print(verdict)


if __name__ == "__main__":
    main()
