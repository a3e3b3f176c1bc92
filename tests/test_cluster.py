"""A real two-node Ray cluster on this machine: ``ray start --head`` and ``ray start --address``, each node with
its own custom resources, a sweep driven against it with ``--address`` into PostgreSQL, and one node lost
mid-sweep. No mocks: real raylets, real GCS, real worker processes.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import optuna
import pytest
from pg_server import free_port
from test_resume import resumable_space, study_name

FIXTURES = Path(__file__).parent / "fixtures"
RAY = str(Path(sys.executable).parent / "ray")
TS = optuna.trial.TrialState
EPOCHS = 6


@dataclass
class Cluster:
    address: str
    env: dict[str, str]
    nodes: dict[str, subprocess.Popen]  # "a" (head), "b" -> the blocking `ray start` of that node
    ids: dict[str, str] = field(default_factory=dict)  # node_ids() once both nodes joined (a node keeps its id)

    def node_ids(self) -> dict[str, str]:
        """Our node name -> the first 8 hex digits of its Ray node id (what the trial's ``node`` attr ends with)."""
        code = (f"import ray, json; ray.init(address='{self.address}', log_to_driver=False); "
                "print(json.dumps({r: n['NodeID'][:8] for n in ray.nodes() if n['Alive'] "
                "for r in ('node_a', 'node_b') if r in n['Resources']}))")
        out = subprocess.run([sys.executable, "-c", code], env=self.env, capture_output=True, text=True,
                             timeout=120, check=True).stdout
        return {name[-1]: node for name, node in json.loads(out.strip().splitlines()[-1]).items()}

    def stop(self, name: str) -> None:
        """Lose a node the hard way: SIGKILL its raylet and everything started with it."""
        process = self.nodes[name]
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=30)


def start_node(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen([RAY, "start", *args, "--num-cpus=1", "--disable-usage-stats", "--block"], env=env,
                            stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """Two nodes, one CPU and one ``sweeper_slot`` each, plus a marker resource naming the node. One cluster for the
    module (starting it costs seconds): the test that loses a node comes last."""
    tmp_path = tmp_path_factory.mktemp("cluster")
    port = free_port()  # not 6379: a Redis may listen there, as on this machine
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token",
           "RAY_AUTH_TOKEN": secrets.token_hex(32)}  # a cluster's shared secret, as README tells users to set
    nodes = {"a": start_node(["--head", f"--port={port}", "--include-dashboard=false",
                              '--resources={"sweeper_slot": 1, "node_a": 1}'], env, tmp_path / "head.log")}
    address = f"127.0.0.1:{port}"
    deadline = time.time() + 120
    while subprocess.run([RAY, "health-check", f"--address={address}"], env=env, capture_output=True).returncode:
        assert time.time() < deadline and nodes["a"].poll() is None, (tmp_path / "head.log").read_text()
        time.sleep(0.25)
    nodes["b"] = start_node([f"--address={address}", '--resources={"sweeper_slot": 1, "node_b": 1}'], env,
                            tmp_path / "worker.log")
    cluster = Cluster(address, env, nodes)
    try:
        while len(cluster.ids) < 2:
            assert time.time() < deadline, (tmp_path / "worker.log").read_text()
            time.sleep(0.25)
            cluster.ids = cluster.node_ids()
        yield cluster
    finally:
        for name in nodes:
            cluster.stop(name)
        kill_leftover_workers(port)
        forget_address(port)


def forget_address(port: int) -> None:
    """A killed head leaves its address in /tmp/ray/ray_current_cluster, where a later bare ``ray.init()`` finds
    it and hangs on a dead cluster; a clean ``ray stop`` would remove it, but would stop every Ray here."""
    address_file = Path(tempfile.gettempdir()) / "ray" / "ray_current_cluster"
    with contextlib.suppress(OSError):
        if address_file.read_text().strip().endswith(f":{port}"):
            address_file.unlink()


def kill_leftover_workers(port: int) -> None:
    """Ray workers run in process groups of their own; end those that belonged to this cluster."""
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if f":{port} " in cmdline + " " and ("ray" in cmdline):
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(proc.name), signal.SIGKILL)


def checkpointed(folder: Path, name: str, number: int) -> int:
    found = list((folder / "shared" / "checkpoints").glob(f"{name}-{'?' * 8}"))  # STUDY-KEY
    state = (found[0] if found else folder) / f"trial-{number:05d}" / "state.json"
    try:
        return json.loads(state.read_text())["epoch"]
    except (OSError, ValueError):
        return 0


@pytest.mark.slow
def test_a_trial_no_node_can_hold_is_said_at_once_and_the_sweep_waits(cluster, tmp_path):
    """Two nodes of one CPU, a trial of two (which Ray places on one node): the sweep waited, rightly (an autoscaler
    may add a node), under a "2 at a time" header, and Tune said why only after a minute."""
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", "spaces/asl20.yaml", "--quick", "--set",
                               "resources.cpu=2", "--address", cluster.address, "--storage",
                               f"sqlite:///{tmp_path / 'sweeps.db'}", "--results-dir", str(tmp_path / "runs")],
                              cwd=tmp_path, env={**cluster.env, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert driver.stdout is not None
    watchdog = threading.Timer(120, driver.kill)  # a line never printed would hang the loop below
    watchdog.start()
    lines = []
    try:
        for line in driver.stdout:
            lines.append(line)
            if line.startswith("no node of the cluster"):
                break
        driver.send_signal(signal.SIGINT)
        rest, _ = driver.communicate(timeout=60)
    finally:
        watchdog.cancel()
    output = "".join(lines) + rest
    assert "no node of the cluster can hold a trial now (resources.cpu is 2, the largest node has 1 CPU): waiting " \
        "for a node that can (an autoscaler may add one); Ctrl-C stops\n" in output, output
    assert driver.returncode == 130, output


@pytest.mark.slow
def test_sweep_runs_on_both_nodes_and_survives_losing_one(cluster, tmp_path, postgres_url):
    """Loses node b for good: the last test on the module's cluster."""
    name = f"cluster-{uuid.uuid4().hex[:8]}"
    (tmp_path / "resumable_train.py").write_text((FIXTURES / "resumable_train.py").read_text())
    space = tmp_path / "cluster.yaml"
    space.write_text(textwrap.dedent(f"""\
        name: {name}
        entrypoint: resumable_train:train
        objective: {{metric: score, direction: maximize}}
        training: {{epochs: {EPOCHS}, sleep: 0.5}}
        params:
          x: {{type: float, low: 0.0, high: 1.0}}
        budget: {{trials: 8, max_concurrent: 2}}
        resources: {{cpu: 1, custom: {{sweeper_slot: 1}}}}
        """))
    ids = cluster.ids  # as the fixture found them: each is a ray.init in a process of its own
    # a driver without the cluster's token is turned away: exit 2, one message, no study (Ray retries 1 s, not 10)
    stranger = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", str(space), "--address", cluster.address,
                               "--storage", postgres_url, "--results-dir", str(tmp_path / "shared")],
                              cwd=tmp_path, env={**cluster.env, "RAY_AUTH_TOKEN": secrets.token_hex(32),
                                                 "RAY_gcs_server_port_wait_time_s": "1"},
                              capture_output=True, text=True, timeout=120)
    assert stranger.returncode == 2, stranger.stdout + stranger.stderr
    assert "could not join Ray at" in stranger.stderr and "RAY_AUTH_TOKEN" in stranger.stderr
    assert "Traceback" not in stranger.stderr
    assert name not in optuna.get_all_study_names(storage=postgres_url)
    driver = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "run", str(space), "--address", cluster.address,
                               "--storage", postgres_url, "--results-dir", str(tmp_path / "shared"),
                               "--max-failures", "3"],
                              cwd=tmp_path, env={**cluster.env, "COLUMNS": "200"}, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True)
    assert driver.stdout is not None
    lines = []
    for line in driver.stdout:  # lose node b once trials have finished and others are in flight
        lines.append(line)
        if sum("COMPLETE" in seen for seen in lines) >= 3:
            break
    study = optuna.load_study(study_name=name, storage=postgres_url)
    deadline = time.time() + 120
    # Both trials in flight are past a checkpoint, so the lost one can resume, and two epochs (1 s) short of their
    # end, so the one on node b cannot finish between the snapshot of finished trials and the loss of its node.
    while True:
        assert time.time() < deadline, "never saw two trials in flight between a checkpoint and their last epochs"
        running = study.get_trials(states=(TS.RUNNING,))
        if len(running) == 2 and all(1 <= checkpointed(tmp_path, name, t.number) <= EPOCHS - 2 for t in running):
            break
        time.sleep(0.05)
    before = {t.number: t for t in study.get_trials() if t.state.is_finished()}
    cluster.stop("b")
    rest, _ = driver.communicate(timeout=400)
    output = "".join(lines) + rest
    assert driver.returncode == 0, output
    assert "no node of the cluster" not in output, output  # each node holds a trial (and its sweeper_slot)

    trials = {t.number: t for t in optuna.load_study(study_name=name, storage=postgres_url).get_trials()}
    assert len(trials) == 8 and all(t.state == TS.COMPLETE for t in trials.values()), output
    nodes = {t.user_attrs["node"].rsplit("/", 1)[1] for t in before.values()}
    assert nodes == {ids["a"], ids["b"]}, (nodes, ids)  # trials ran on both nodes
    for number, trial in before.items():  # nothing finished was lost or re-run
        assert trials[number].datetime_complete == trial.datetime_complete
    after = [t for n, t in trials.items() if n not in before]
    assert all(t.user_attrs["node"].endswith(ids["a"]) for t in after), [t.user_attrs for t in after]
    retried = [t for t in after if t.user_attrs["resumed_from_epoch"] > 0]
    assert retried, "the trial in flight on the lost node should have continued from its checkpoint on node a"
    optuna.delete_study(study_name=name, storage=postgres_url)


@pytest.mark.slow
def test_a_space_fuses_its_trials_on_a_cluster_with_a_gpu_one_group_per_gpu_at_a_time(tmp_path):
    """resources.on_gpu applies where the cluster has a GPU (here one declared on a CPU node: trials see
    CUDA_VISIBLE_DEVICES, find no CUDA and train on CPU); a second group is asked only once the GPU is free."""
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "CUDA_VISIBLE_DEVICES"},  # conftest hides any GPU
           "RAY_USAGE_STATS_ENABLED": "0", "RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    head = start_node(["--head", f"--port={port}", "--include-dashboard=false", "--num-gpus=1"], env,
                      tmp_path / "h.log")
    address = f"127.0.0.1:{port}"
    try:
        deadline = time.time() + 120
        while subprocess.run([RAY, "health-check", f"--address={address}"], env=env, capture_output=True).returncode:
            assert time.time() < deadline and head.poll() is None, (tmp_path / "h.log").read_text()
            time.sleep(0.25)
        db, unfused_db = tmp_path / "sweeps.db", tmp_path / "alone.db"
        own = resumable_space(tmp_path, trials=2, sleep=0.1)  # a user's own training function cannot fuse

        def sweep(db: Path, space: str, *sets: str) -> subprocess.CompletedProcess:
            return subprocess.run([sys.executable, "-m", "sweeper.cli", "run", space, "--quick",
                                   *(a for s in sets for a in ("--set", s)), "--address", address, "--storage",
                                   f"sqlite:///{db}", "--results-dir", str(tmp_path / "runs")], cwd=tmp_path,
                                  env={**env, "COLUMNS": "200"}, capture_output=True, text=True, timeout=300)

        done = sweep(db, "spaces/asl20.yaml", "resources.on_gpu.fuse=3")
        # a space that cannot fuse: on_gpu still applies, a trial to the GPU at a time
        unfused = sweep(unfused_db, str(own), "resources.on_gpu={gpu: 1, fuse: 3}", "budget.trials=2")
    finally:
        os.killpg(head.pid, signal.SIGKILL)
        head.wait(timeout=30)
        kill_leftover_workers(port)
        forget_address(port)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "resources.on_gpu applies (the cluster has 1 GPU)" in done.stdout
    assert "up to 3 trials fused in each, 1 at a time" in done.stdout  # max_concurrent 2, but one GPU
    trials = optuna.load_study(study_name="asl20-quick", storage=f"sqlite:///{db}").get_trials()
    groups: dict[str, list] = {}
    for t in trials:
        groups.setdefault(t.user_attrs["ray_trial_id"].split("/")[0], []).append(t)
    assert len(trials) == 6 and sorted(len(g) for g in groups.values()) == [3, 3], groups.keys()
    first, second = sorted(groups.values(), key=lambda g: min(t.datetime_start for t in g))
    # not asked while the first held the GPU (it would have been at once, then waited RUNNING, sampled blind)
    assert min(t.datetime_complete for t in first) <= min(t.datetime_start for t in second)
    assert unfused.returncode == 0, unfused.stdout + unfused.stderr
    assert "resources.on_gpu.fuse: 3 does not apply (fused groups train the built-in model only (entrypoint " \
        "trials:run), not resumable_train:train)" in unfused.stdout, unfused.stdout
    assert "CPU and 1 GPU per Ray trial, 1 at a time" in unfused.stdout, unfused.stdout
    alone = optuna.load_study(study_name=f"{study_name(own)}-quick", storage=f"sqlite:///{unfused_db}").get_trials()
    assert len(alone) == 2 and all("/" not in t.user_attrs["ray_trial_id"] for t in alone), alone
