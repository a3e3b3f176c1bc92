"""``sweeper dashboard``: the real optuna-dashboard server, checked over HTTP and in a real headless browser."""

from __future__ import annotations

import http.client
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import optuna
import pytest
from forked_cli import run_command

from storage.engine import open_storage
from storage.studies import create_or_load_study
from storage.urls import is_sqlite

TS = optuna.trial.TrialState
FIXTURES = Path(__file__).parent / "fixtures"


def refused_dashboard(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``sweeper dashboard ARGS`` that must refuse before it serves: a process of its own, forked by a parent that
    imported the libraries once (tests/forked_cli.py); one that served after all fails at the timeout."""
    return run_command(["dashboard", *args], cwd, {**os.environ, "COLUMNS": "300"}, timeout=60)


def make_study(url: str, name: str, trials: int = 4, epochs: int = 3) -> None:
    storage = open_storage(url)
    study, _ = create_or_load_study(storage, name, "maximize")
    for number in range(trials):
        trial = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1e-1, log=True)})
        for epoch in range(1, epochs + 1):
            trial.report(0.1 * number + 0.01 * epoch, step=epoch)
        study.tell(trial, 0.1 * number + 0.01 * epochs)


@contextmanager
def dashboard(*args: str, cwd: Path) -> Iterator[tuple[str, str, int]]:
    """``sweeper dashboard ARGS --port 0``; yields its base URL, the line it printed and its pid."""
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "dashboard", *args, "--port", "0"], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://([\d.]+|\[[\da-f:]+\]):(\d+)/dashboard/", line)
        assert match, line + proc.stdout.read() if proc.poll() is not None else line
        yield f"http://{match[1]}:{match[2]}", line, proc.pid
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=30) as response:
        return json.loads(response.read())


def study_id(base: str, name: str) -> int:
    studies = get_json(f"{base}/api/studies")["study_summaries"]
    return next(s["study_id"] for s in studies if s["study_name"] == name)


def test_dashboard_serves_studies_trials_and_learning_curves(tmp_path, storage_url):
    name = f"dash-{uuid.uuid4().hex[:8]}"
    make_study(storage_url, name)
    with dashboard("--storage", storage_url, cwd=tmp_path) as (base, _, _):
        assert base.startswith("http://127.0.0.1:")
        detail = get_json(f"{base}/api/studies/{study_id(base, name)}")
        trials = detail["trials"]
        assert len(trials) == 4 and {t["state"] for t in trials} == {"Complete"}
        curve = sorted((v["step"], v["value"]) for v in trials[3]["intermediate_values"])
        assert curve == [(1, pytest.approx(0.31)), (2, pytest.approx(0.32)), (3, pytest.approx(0.33))]
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=30) as page:
            assert page.status == 200 and b"<html" in page.read().lower()
    if not is_sqlite(storage_url):
        optuna.delete_study(study_name=name, storage=storage_url)


def test_dashboard_serves_its_script_to_a_client_without_accept_encoding(tmp_path):
    """optuna-dashboard answered 500 for its static files where the request had no Accept-Encoding (curl sends
    none; a proxy may strip it): the page's script and icon, uncompressed then."""
    make_study(f"sqlite:///{tmp_path / 'sweeps.db'}", "a")
    with dashboard("--storage", "sqlite:///sweeps.db", cwd=tmp_path) as (base, _, _):
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=30) as page:
            script = re.search(r'src="(/static/[^"]+\.js)"', page.read().decode())
        assert script, "the page names no script"
        for path in (script[1], "/favicon.ico"):
            connection = http.client.HTTPConnection(base.removeprefix("http://"), timeout=30)
            connection.putrequest("GET", path, skip_accept_encoding=True)  # urllib would send "identity"
            connection.endheaders()
            response = connection.getresponse()
            assert response.status == 200 and response.getheader("Content-Encoding") is None, path
            assert response.read(), path
            connection.close()


def test_dashboard_listens_on_loopback_only_and_masks_the_password(tmp_path, postgres_url):
    with_password = postgres_url.replace("postgres@", "postgres:s3cretpass@", 1)  # trust auth ignores it
    with dashboard("--storage", with_password, cwd=tmp_path) as (base, line, pid):
        assert "s3cretpass" not in line and "postgres:***@" in line
        shown = Path(f"/proc/{pid}/cmdline").read_bytes()  # what ps shows, for as long as the server runs
        assert b"s3cretpass" not in shown and b"postgres:***@" in shown
        port = int(base.rsplit(":", 1)[1])
        outside = [ip for ip in socket.gethostbyname_ex(socket.gethostname())[2] if not ip.startswith("127.")]
        for ip in outside:
            with pytest.raises(OSError), socket.create_connection((ip, port), timeout=5):
                pass
        assert get_json(f"{base}/api/meta")


def test_dashboard_listens_on_ipv6_loopback(tmp_path):
    try:
        socket.socket(socket.AF_INET6).bind(("::1", 0))
    except OSError:
        pytest.skip("this machine has no IPv6 loopback")
    make_study(f"sqlite:///{tmp_path / 'v6.db'}", "v6")
    for host in ("::1", "[::1]"):  # as a URL writes it, too: it was "not an address of this machine"
        with dashboard("--storage", "sqlite:///v6.db", "--host", host, cwd=tmp_path) as (base, line, _):
            assert base.startswith("http://[::1]:") and "note:" not in line
            assert get_json(f"{base}/api/meta")


KILLED_AFTER_A_CHECKPOINT = """
import os, sqlite3, sys, optuna
from storage.engine import open_storage
study = optuna.create_study(study_name="s", storage=open_storage("sqlite:///" + sys.argv[1]))
study.add_trial(optuna.trial.create_trial(value=0.0))
sqlite3.connect(sys.argv[1]).execute("PRAGMA wal_checkpoint(PASSIVE)")  # that one is in the file
for value in range(3):
    study.add_trial(optuna.trial.create_trial(value=float(value)))
os._exit(0)  # as a kill -9: these stay in the -wal file
"""


def test_dashboard_warns_where_an_immutable_url_leaves_out_what_the_wal_file_holds(tmp_path):
    """The dashboard opens its URL as given (not read-only, as status, best, report and export do): with
    ``immutable=1`` it showed a killed driver's study without the trials its -wal file holds (1 of 4 here), and did
    not warn as they do."""
    path = tmp_path / "sweeps.db"
    subprocess.run([sys.executable, "-c", KILLED_AFTER_A_CHECKPOINT, str(path)], check=True,
                   cwd=Path(__file__).parent.parent)
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "dashboard", "--storage",
                             f"sqlite:///file:{path}?immutable=1&uri=true", "--port", "0"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    try:
        assert proc.stdout is not None
        said = [proc.stdout.readline()]  # up to the line with its address
        while said[-1] and "/dashboard/" not in said[-1]:
            said.append(proc.stdout.readline())
        base = re.search(r"http://[\d.]+:\d+", said[-1])
        assert base, said
        assert len(get_json(f"{base[0]}/api/studies/{study_id(base[0], 's')}")["trials"]) == 1  # what it warns of
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "sweeps.db-wal is not empty, and immutable=1 does not read it" in "".join(said[:-1]), said


def test_dashboard_of_a_space_file_uses_its_storage(tmp_path):
    space = tmp_path / "mine.yaml"
    space.write_text((Path(__file__).parents[1] / "search_spaces" / "spaces" / "asl20.yaml").read_text()
                     + "\nstorage: sqlite:///team.db\n")
    make_study(f"sqlite:///{tmp_path / 'team.db'}", "asl20")
    with dashboard(str(space), cwd=tmp_path) as (base, line, _):
        assert "team.db" in line
        assert study_id(base, "asl20") >= 0


@pytest.mark.parametrize(("args", "message"), [
    (["--storage", "sqlite:///missing.db"], "There is no SQLite database"),
    (["--storage", "mysql://u:hunter22@127.0.0.1/x"], "Unsupported storage"),
    (["--storage", "sqlite:///missing.db", "--host", " "], "--host is empty"),  # not every interface
])
def test_dashboard_bad_input_is_one_message_and_exit_2(tmp_path, args, message):
    proc = refused_dashboard(*args, cwd=tmp_path)
    assert proc.returncode == 2 and message in proc.stderr and "hunter22" not in proc.stderr, proc.stderr
    assert not (tmp_path / "missing.db").exists()


def test_dashboard_port_in_use_is_one_message(tmp_path):
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "a")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = refused_dashboard("--storage", url, "--port", str(port), cwd=tmp_path)
    assert proc.returncode == 2 and f"Port {port}" in proc.stderr, proc.stderr


def test_dashboard_privileged_port_is_one_message(tmp_path):
    """A port below 1024 without root (the image's uid 10001) was a PermissionError traceback, exit 1."""
    unprivileged = Path("/proc/sys/net/ipv4/ip_unprivileged_port_start")
    if not unprivileged.exists() or int(unprivileged.read_text()) < 2:
        pytest.skip("no privileged ports on this machine")
    # root binds them anyway: run it without the capability that lets it (util-linux's setpriv)
    drop = ["setpriv", "--inh-caps=-net_bind_service", "--bounding-set=-net_bind_service"] if os.geteuid() == 0 else []
    if drop and shutil.which("setpriv") is None:
        pytest.skip("root without setpriv: cannot drop CAP_NET_BIND_SERVICE")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "a")
    proc = subprocess.run([*drop, sys.executable, "-m", "sweeper.cli", "dashboard", "--storage", url, "--port", "1"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60,
                          env={**os.environ, "COLUMNS": "300"})
    assert proc.returncode == 2 and "Port 1 on 127.0.0.1 needs root" in proc.stderr, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr


def test_dashboard_stops_on_sigterm_as_on_ctrl_c(tmp_path):
    """`docker stop` sends SIGTERM to the container's PID 1, which ignores a signal it has no handler for: the
    dashboard sat there until the kill 10 s later. With a handler it stops at once, as Ctrl-C does (130)."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "a")
    proc = subprocess.Popen([sys.executable, "-m", "sweeper.cli", "dashboard", "--storage", url, "--port", "0"],
                            cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None and "/dashboard/" in proc.stdout.readline()
        proc.terminate()
        assert proc.wait(timeout=30) == 130
        assert "Traceback" not in proc.stdout.read()
    finally:
        proc.kill()
        proc.wait()


SERVED_IN_PROCESS = """
import os, signal, socket, sys, threading, time, urllib.request
from sweeper.dashboard import serve_dashboard

def free_port():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]

def answered(port):  # the server answers: serve_forever runs, its SIGTERM handler set before it
    for _ in range(600):
        try:
            return urllib.request.urlopen(f"http://127.0.0.1:{port}/api/studies", timeout=5).status
        except OSError:
            time.sleep(0.05)

def on_main_thread():
    ours = lambda signum, frame: None
    signal.signal(signal.SIGTERM, ours)
    port = free_port()
    threading.Thread(target=lambda: answered(port) and os.kill(os.getpid(), signal.SIGTERM), daemon=True).start()
    try:
        serve_dashboard(sys.argv[1], port=port)
    except KeyboardInterrupt:
        print("stopped by SIGTERM")
    print("handler put back:", signal.getsignal(signal.SIGTERM) is ours)

def on_another_thread():
    port = free_port()
    threading.Thread(target=lambda: serve_dashboard(sys.argv[1], port=port), daemon=True).start()
    print("served from a thread:", answered(port))

on_main_thread()
on_another_thread()
"""


def test_dashboard_served_in_process_puts_the_callers_sigterm_handler_back(tmp_path):
    """Served in a process of the caller's own (a test, a program calling it), the dashboard left its SIGTERM
    handler installed after it stopped; served from a thread it raised ValueError (signal only works in main
    thread) with its socket bound and left open."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "a")
    proc = subprocess.run([sys.executable, "-c", SERVED_IN_PROCESS, url], capture_output=True, text=True,
                          cwd=tmp_path, timeout=120)
    said = [line for line in proc.stdout.splitlines() if not line.startswith("optuna-dashboard for")]
    assert said == ["stopped by SIGTERM", "handler put back: True", "served from a thread: 200"], proc.stdout + \
        proc.stderr


@pytest.mark.slow
def test_dashboard_reading_during_a_sweep_fails_no_trial(ray_session, tmp_path, monkeypatch):
    """The dashboard polls the SQLite file the whole time a real sweep writes to it."""
    from sweeper.driver import SweepOptions, run_sweep

    monkeypatch.chdir(tmp_path)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"live-{uuid.uuid4().hex[:8]}"
    make_study(url, "other")  # the file exists before the dashboard starts
    (tmp_path / "scripted_train.py").write_text((FIXTURES / "scripted_train.py").read_text())
    space = tmp_path / "live.yaml"
    space.write_text(f"""name: {name}
entrypoint: scripted_train:train
objective: {{metric: score, direction: maximize}}
training: {{epochs: 4, sleep: 0.05}}
params:
  x: {{type: float, low: 0.1, high: 1.0}}
budget: {{trials: 10, max_concurrent: 2}}
resources: {{cpu: 1}}
""")
    with dashboard("--storage", url, cwd=tmp_path) as (base, _, _):
        polls: list[int] = []
        done = threading.Event()

        def poll() -> None:
            deadline = time.time() + 300
            while not done.is_set() and time.time() < deadline:
                for path in ("/api/studies", "/api/studies/1", "/api/studies/2"):
                    try:
                        with urllib.request.urlopen(base + path, timeout=30) as response:
                            polls.append(response.status)
                    except urllib.error.HTTPError as exc:  # study 2 exists only once the sweep created it
                        polls.append(exc.code)

        reader = threading.Thread(target=poll)
        reader.start()
        try:
            study = run_sweep(SweepOptions(space=str(space), storage=url))
        finally:
            done.set()
            reader.join()
    trials = study.get_trials()
    assert len(trials) == 10 and all(t.state == TS.COMPLETE for t in trials), [t.state for t in trials]
    assert len(polls) > 20 and set(polls) <= {200, 404}, polls[-10:]


def chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.slow
def test_dashboard_page_renders_the_study_in_headless_chromium(tmp_path):
    browser = chromium()
    if browser is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have Debian's chromium (.ci/run installs it)")
        pytest.skip("no chromium on this machine: apt-get install chromium")
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    name = f"rendered-{uuid.uuid4().hex[:8]}"
    make_study(url, name, trials=7)
    with dashboard("--storage", url, cwd=tmp_path) as (base, _, _):
        page = f"{base}/dashboard/studies/{study_id(base, name)}"
        dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                              f"--user-data-dir={tmp_path / 'chromium'}", "--virtual-time-budget=20000",
                              "--dump-dom", page], capture_output=True, text=True, timeout=120).stdout
    dom = re.sub(r"(?s)<(style|script)[^>]*>.*?</\1>", " ", dom)  # the page's visible text only
    text = " ".join(re.sub(r"<[^>]+>", " ", dom).split())
    assert f"{name} (id=" in text, text[:2000]
    # the learning-curve legend names every trial: the page shows all 7, and the best one
    assert {int(n) for n in re.findall(r"trial #(\d+)", text)} == set(range(7)), text[:2000]
    assert "Best Trial (number=6)" in text, text[:2000]


REPLACED_BY_ANOTHER_PROGRAM = """
import sys, optuna
url = sys.argv[1]
optuna.delete_study(study_name="a", storage=url)
study = optuna.create_study(study_name="b", storage=url, direction="minimize")
for value in (7.0, 8.0):
    study.add_trial(optuna.trial.create_trial(value=value))
print(study._study_id)
"""


def test_dashboard_shows_a_new_study_given_a_deleted_ones_id_as_stored(tmp_path):
    """SQLite gives a deleted study's id (and its trials' ids) to the next study created: a dashboard that had shown
    the deleted study kept its finished trials in Optuna's trial cache, keyed on that id, and showed them as the new
    study's (4 trials of 0.03 to 0.33 for a study of 2, 7 and 8)."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "other", trials=1)
    make_study(url, "a")
    with dashboard("--storage", url, cwd=tmp_path) as (base, _, _):
        shown = study_id(base, "a")
        assert len(get_json(f"{base}/api/studies/{shown}")["trials"]) == 4
        new_id = subprocess.run([sys.executable, "-c", REPLACED_BY_ANOTHER_PROGRAM, url], check=True, text=True,
                                capture_output=True, cwd=Path(__file__).parent.parent).stdout.split()[-1]
        assert int(new_id) == shown == study_id(base, "b")  # what it is about: the id given again
        time.sleep(2.2)  # past optuna-dashboard's own 2 s cache of a study's trials
        detail = get_json(f"{base}/api/studies/{shown}")
        assert detail["name"] == "b" and [t["values"] for t in detail["trials"]] == [[7.0], [8.0]], detail["trials"]
        assert [t["values"] for t in detail["best_trials"]] == [[7.0]]


def test_a_study_given_a_deleted_ones_id_is_read_again_once_under_concurrent_polls(tmp_path):
    """The page's requests (and each open tab's) read a study's trials in threads of their own: two that found the
    deleted study's trials cached at once both dropped them, and the second raised KeyError (a 500 to that poll)."""
    from sweeper.dashboard import _StudyCheckedCache

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    cache = _StudyCheckedCache(open_storage(url))

    def poll(study_id: int, barrier: threading.Barrier, shown: list) -> None:
        barrier.wait()
        try:
            shown.append(len(cache.get_all_trials(study_id, deepcopy=False)))
        except Exception as exc:  # what a poll's thread raised is the finding
            shown.append(repr(exc))

    for _ in range(10):
        make_study(url, "a", trials=2, epochs=1)
        study_id = optuna.study.load_study(study_name="a", storage=url)._study_id
        cache.get_all_trials(study_id, deepcopy=False)
        optuna.delete_study(study_name="a", storage=url)
        make_study(url, "a", trials=1, epochs=1)  # SQLite gives it the deleted study's id
        barrier, shown = threading.Barrier(8), []
        threads = [threading.Thread(target=poll, args=(study_id, barrier, shown)) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert shown == [1] * 8, shown  # the new study's one trial, in every poll
        optuna.delete_study(study_name="a", storage=url)


@pytest.mark.parametrize(("revision", "said"), [
    ("v9.9.9.a", b"seems outdated against the storage version"),  # a newer Optuna's `optuna storage upgrade`
    ("v3.0.0.d", b"no longer compatible with the table schema"),  # an older backup copied over it
])
def test_dashboard_shows_optuna_dashboards_schema_page_once_the_schema_changes_under_it(tmp_path, revision, said):
    """optuna-dashboard checks the storage's schema at every page load and shows its own page for one this Optuna
    cannot read; it skips the check for a storage that is not an RDBStorage, and since the dashboard reads through
    Optuna's trial cache it served the page on as if nothing had changed."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    make_study(url, "a")
    with dashboard("--storage", url, cwd=tmp_path) as (base, _, _):
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=30) as page:
            assert page.url == f"{base}/dashboard/"
        with sqlite3.connect(tmp_path / "sweeps.db") as db:
            db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=30) as page:
            assert page.url == f"{base}/incompatible-rdb-schema" and said in page.read()


@pytest.mark.parametrize(("revision", "said", "not_said"), [
    ("v9.9.9.a", "written by a newer Optuna version than this one", "optuna storage upgrade"),
    ("v3.0.0.d", "upgrade it with optuna storage upgrade --storage", "newer Optuna"),
])
def test_dashboard_of_a_schema_this_optuna_cannot_read_is_one_message_and_exit_2(tmp_path, revision, said, not_said):
    """A database of a newer Optuna's schema was told to run `optuna storage upgrade`, which cannot read it either
    and changes nothing; only a newer Optuna does."""
    make_study(f"sqlite:///{tmp_path / 'sweeps.db'}", "a")
    with sqlite3.connect(tmp_path / "sweeps.db") as db:
        db.execute("UPDATE alembic_version SET version_num = ?", (revision,))
    proc = refused_dashboard("--storage", "sqlite:///sweeps.db", "--port", "0", cwd=tmp_path)
    reason = proc.stderr.split("(driver said:")[0]
    assert proc.returncode == 2 and said in reason and not_said not in reason, proc.stderr


def test_dashboard_upgrades_no_schema_from_its_incompatible_schema_page(tmp_path):
    """optuna-dashboard's page for an older schema has a Migrate button that upgrades the database in place, with no
    backup, from any page that posts to it: sweeper's dashboard changes no schema (optuna storage upgrade does)."""
    make_study(f"sqlite:///{tmp_path / 'sweeps.db'}", "a")
    with dashboard("--storage", "sqlite:///sweeps.db", cwd=tmp_path) as (base, _, _):
        with sqlite3.connect(tmp_path / "sweeps.db") as db:
            db.execute("UPDATE alembic_version SET version_num = 'v3.0.0.d'")  # an older backup copied over it
        with urllib.request.urlopen(f"{base}/dashboard/", timeout=30) as page:
            assert page.url == f"{base}/incompatible-rdb-schema"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(urllib.request.Request(f"{base}/incompatible-rdb-schema", data=b""), timeout=30)
        assert refused.value.code == 403 and b"optuna storage upgrade" in refused.value.read()
    with sqlite3.connect(tmp_path / "sweeps.db") as db:
        assert db.execute("SELECT version_num FROM alembic_version").fetchall() == [("v3.0.0.d",)]
