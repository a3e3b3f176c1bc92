"""What ``sweeper status`` costs on big storages: one study of many trials (interrupted: a trial RUNNING whose driver
is gone, which status must tell apart), and many studies of a hundred trials. Trials are shaped as a sweep records
them (a curve of up to EPOCHS epochs, most PRUNED early; sweeper's trial attrs), written with Optuna directly.

    python bench/reads.py                                  # a temporary SQLite file, medians of 3
    python bench/reads.py --storage postgresql+psycopg://me@db/empty_db --repeats 5

Each case is a fresh ``sweeper status`` command (imports included). Building takes a minute or two; a storage
that holds the studies already (a --storage given before) is timed as it is, to compare two checkouts.
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time

import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

EPOCHS = 30
DISTRIBUTIONS = {"lr": FloatDistribution(1e-4, 3e-2, log=True), "hidden": CategoricalDistribution([16, 32, 64, 128])}
GONE = {"host": socket.gethostname(), "pid": 2**22 + 1, "started": 1}  # above Linux's highest pid: a dead driver


def build(url: str, name: str, trials: int, orphan: bool) -> None:
    study = optuna.create_study(study_name=name, storage=url, direction="maximize")
    study.set_user_attr("spec", {"name": name})
    study.set_user_attr("objective", {"metric": "val_acc", "direction": "maximize"})
    study.set_user_attr("targets", {"test_acc": 0.95})
    rng, made = random.Random(name), []
    for _ in range(trials):
        stop = EPOCHS if rng.random() < 0.4 else rng.choice([2, 4, 8, 16])
        curve = {epoch: 0.3 + 0.02 * epoch + 0.1 * rng.random() for epoch in range(1, stop + 1)}
        made.append(create_trial(
            state=TrialState.COMPLETE if stop == EPOCHS else TrialState.PRUNED, value=curve[stop],
            params={"lr": 10 ** rng.uniform(-4, -1.6), "hidden": rng.choice([16, 32, 64, 128])},
            distributions=DISTRIBUTIONS, intermediate_values=curve,
            user_attrs={"driver": GONE, "epochs_run": stop, "test_acc": curve[stop] - 0.01, "node": "192.0.2.2"},
            system_attrs={"sweeper:ask": {"token": f"{rng.getrandbits(64):x}", "driver": GONE}}))
    if orphan:
        made.append(create_trial(state=TrialState.RUNNING, params=made[0].params, distributions=DISTRIBUTIONS,
                                 user_attrs={"driver": GONE}, intermediate_values={1: 0.3}))
    study.add_trials(made)


def timed(url: str, *name: str) -> float:
    started = time.perf_counter()
    subprocess.run([sys.executable, "-m", "sweeper.cli", "status", *name, "--storage", url], check=True,
                   stdout=subprocess.DEVNULL, env={**os.environ, "COLUMNS": "120"})
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--storage", help="an empty database (default: a temporary SQLite file)")
    parser.add_argument("--trials", type=int, default=2000, help="trials of the big study")
    parser.add_argument("--studies", type=int, default=50, help="studies of 100 trials (every tenth interrupted)")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="sweeper-reads-") as folder:
        url = args.storage or f"sqlite:///{folder}/reads.db"
        started = time.perf_counter()
        if "big" not in optuna.get_all_study_names(url):
            build(url, "big", args.trials, orphan=True)
            for i in range(args.studies):
                build(url, f"small-{i:03d}", 100, orphan=i % 10 == 0)
            print(f"built {args.trials} + {args.studies} x 100 trials in {time.perf_counter() - started:.0f} s")
        for case, name in (("status big (interrupted)", ("big",)), ("status (all studies)", ())):
            times = [timed(url, *name) for _ in range(args.repeats)]
            print(f"{case}: median {statistics.median(times):.2f} s of {', '.join(f'{t:.2f}' for t in times)}")


if __name__ == "__main__":
    main()
