"""What a PostgreSQL restart costs a running sweep: extra wall time, trials lost, trials duplicated.

Side by side in one run, ``--repeats`` times each: the same ``sweeper run`` (8 trials of 6 epochs, 0.4 s an
epoch, 2 at a time, through tests/fixtures/resumable_train.py: no torch) against a throwaway PostgreSQL server,
once undisturbed and once with the server stopped for ``--down`` seconds after the first epochs are recorded.
Lost = budget trials that did not finish; duplicated = trials beyond the budget or repeated params.

    python bench/outage.py [--down 5] [--repeats 1]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import optuna

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from pg_server import PostgresServer, postgres_bin, recorded_epochs  # noqa: E402

TRIALS = 8
SPACE = """\
name: {name}
entrypoint: resumable_train:train
objective: {{metric: score, direction: maximize}}
training: {{epochs: 6, sleep: 0.4}}
params:
  x: {{type: float, low: 0.0, high: 1.0}}
sampler: {{type: random, seed: 3}}
budget: {{trials: {trials}, max_concurrent: 2}}
resources: {{cpu: 1}}
"""


def sweep(server: PostgresServer, folder: Path, down: float | None) -> dict[str, float]:
    name = f"outage-{uuid.uuid4().hex[:6]}"
    subprocess.run([sys.executable, "-c", f"import psycopg; psycopg.connect('postgresql://postgres@127.0.0.1:"
                    f"{server.port}/postgres', autocommit=True).execute('CREATE DATABASE \"{name}\"')"], check=True)
    url = server.url.rsplit("/", 1)[0] + f"/{name}"
    (folder / "resumable_train.py").write_text((ROOT / "tests/fixtures/resumable_train.py").read_text())
    space = folder / f"{name}.yaml"
    space.write_text(SPACE.format(name=name, trials=TRIALS))
    started = time.monotonic()
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(space), "--storage", url,
                               "--results-dir", str(folder / "runs")], cwd=folder, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    outage = 0.0
    if down is not None:
        while recorded_epochs(url) < 3:
            time.sleep(0.1)
        stopped = time.monotonic()
        server.stop()
        time.sleep(down)
        server.start()
        outage = time.monotonic() - stopped
    out, _ = driver.communicate(timeout=600)
    wall = time.monotonic() - started
    if driver.returncode != 0:
        raise SystemExit(f"the sweep failed (exit {driver.returncode}):\n{out}")
    study = optuna.load_study(study_name=name, storage=url)
    trials = study.get_trials(deepcopy=False)
    finished = [t for t in trials if t.state.is_finished()]
    distinct = {tuple(sorted(t.params.items())) for t in trials}
    return {"wall": wall, "outage": outage, "lost": TRIALS - len(finished),
            "duplicated": len(trials) - TRIALS + len(trials) - len(distinct),
            "running": sum(t.state == optuna.trial.TrialState.RUNNING for t in trials)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--down", type=float, default=5.0, help="seconds the server stays stopped")
    parser.add_argument("--repeats", type=int, default=1)
    args = parser.parse_args()
    bin_dir = postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL's initdb/pg_ctl are not installed")
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    server = PostgresServer(bin_dir)
    calm, restarted = [], []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for _ in range(args.repeats):  # interleaved, so machine noise hits both alike
                for runs, down in ((calm, None), (restarted, args.down)):
                    folder = Path(tmp) / f"{len(calm) + len(restarted)}"
                    folder.mkdir()
                    runs.append(sweep(server, folder, down))
    finally:
        server.close()
    median = lambda runs, key: statistics.median(r[key] for r in runs)  # noqa: E731
    extra = median(restarted, "wall") - median(calm, "wall")
    print(f"{TRIALS} trials x 6 epochs x 0.4 s, 2 at a time; medians of {args.repeats}")
    print(f"{'case':<28}{'wall s':>8}{'outage s':>10}{'lost':>6}{'duplicated':>12}{'RUNNING':>9}")
    for label, runs in (("undisturbed", calm), (f"server down {args.down:g} s", restarted)):
        print(f"{label:<28}{median(runs, 'wall'):>8.1f}{median(runs, 'outage'):>10.1f}{max(r['lost'] for r in runs):>6}"
              f"{max(r['duplicated'] for r in runs):>12}{max(r['running'] for r in runs):>9}")
    ratio = extra / median(restarted, "outage")
    print(f"extra wall time {extra:.1f} s for an outage of {median(restarted, 'outage'):.1f} s "
          f"({ratio:.2f} s per second down); lost {max(r['lost'] for r in restarted)}, "
          f"duplicated {max(r['duplicated'] for r in restarted)}")


if __name__ == "__main__":
    main()
