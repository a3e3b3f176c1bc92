"""A storage outage never ends a sweep: real servers restarted, real connections cut, a real SQLite lock.

The sweeps are real ``sweeper run`` commands over tests/fixtures/resumable_train.py (no torch: each epoch sleeps),
against a throwaway PostgreSQL server (tests/pg_server.py) that the test stops and starts, or reaches through
a TCP proxy that the test cuts. Afterwards every trial must be in the study exactly once, finished, with an
intermediate value for every epoch it trained.
"""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator

import optuna
import pytest
from pg_server import CuttableProxy, PostgresServer, postgres_bin, recorded_epochs
from test_resume import EPOCHS, alive, resumable_space, study_name, sweeper_cli, worker_pids

from storage import attrs
from storage.engine import close_storage, open_storage
from storage.retry import OutagePolicy, StorageUnavailable, Unreachable, is_transient
from sweeper.errors import STORAGE_UNAVAILABLE_EXIT_CODE

TS = optuna.trial.TrialState
TRIALS = 4  # two waves of max_concurrent 2: trials in flight through the outage, and trials asked after it


@pytest.fixture(scope="module")
def server() -> Iterator[PostgresServer]:
    bin_dir = postgres_bin()
    if bin_dir is None:
        if os.environ.get("SWEEPER_REQUIRE_POSTGRES") == "1":
            pytest.fail("SWEEPER_REQUIRE_POSTGRES=1 but PostgreSQL's initdb/pg_ctl are not installed")
        pytest.skip("PostgreSQL's initdb/pg_ctl are not installed")
    pg = PostgresServer(bin_dir)
    yield pg
    pg.close()


def fresh_database(server: PostgresServer, name: str) -> str:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{server.port}/postgres", autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    return server.url.rsplit("/", 1)[0] + f"/{name}"


def wait_for(condition, timeout: float = 120, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def wait_for_epochs(url: str, driver: subprocess.Popen, epochs: int = 3) -> None:
    """Until the sweep has recorded ``epochs`` epochs; the driver's output if it never does."""
    try:
        wait_for(lambda: driver.poll() is None and recorded_epochs(url) >= epochs, what=f"{epochs} epochs")
    except AssertionError:
        driver.kill()
        raise AssertionError(f"the sweep recorded no {epochs} epochs: {driver.communicate()[0]}") from None


def finish(driver: subprocess.Popen, timeout: float = 240) -> tuple[int, str]:
    out, _ = driver.communicate(timeout=timeout)
    return driver.returncode, out


def assert_recorded_once(url: str, name: str, trials: int = TRIALS, *, whole_curves: bool = True) -> None:
    """Exactly ``trials`` trials, all finished, no RUNNING ghost, no duplicate, and (``whole_curves``) every
    trained epoch's value: a sweep that gave up on its storage drops the reports it still held."""
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name=name, storage=storage)
        recorded = study.get_trials(deepcopy=False)
        assert len(recorded) == trials, [(t.number, t.state.name) for t in recorded]
        assert [t.number for t in recorded] == list(range(trials))
        assert all(t.state in (TS.COMPLETE, TS.PRUNED) for t in recorded), [t.state.name for t in recorded]
        for trial in recorded if whole_curves else []:
            last = EPOCHS if trial.state == TS.COMPLETE else int(trial.user_attrs["epochs_run"])
            assert sorted(trial.intermediate_values) == list(range(1, last + 1)), trial
        assert len({tuple(sorted(t.params.items())) for t in recorded}) == trials  # no trial told or asked twice
    finally:
        close_storage(storage)


def test_transient_failures_are_told_from_bad_input_by_real_errors(tmp_path, postgres_url):
    def error_of(operation) -> BaseException:
        try:
            operation()
        except Exception as exc:
            return exc
        raise AssertionError("no error")

    refused = error_of(lambda: open_storage("postgresql+psycopg://postgres@127.0.0.1:1/test"))
    with socket.socket() as silent:  # a server that takes the connection and never answers: ConnectionTimeout
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        hung = error_of(lambda: open_storage(
            f"postgresql+psycopg://postgres@127.0.0.1:{silent.getsockname()[1]}/test?connect_timeout=1"))
    no_role = error_of(lambda: open_storage(postgres_url.replace("postgres@", "no_such_role_x@")))
    bad_options = [error_of(lambda q=q: open_storage(f"{postgres_url}?{q}"))
                   for q in ("sslmode=bogus", "keepalives=x", "bogusopt=1", "target_session_attrs=nonsense")]
    path = tmp_path / "locked.db"
    close_storage(open_storage(f"sqlite:///{path}"))
    holder = sqlite3.connect(path)
    holder.execute("BEGIN EXCLUSIVE")
    contender = sqlite3.connect(path, timeout=0.1)
    locked = error_of(lambda: contender.execute("INSERT INTO version_info VALUES (2, 'x', 'y')"))
    holder.rollback()
    capped = sqlite3.connect(tmp_path / "capped.db")  # as a full disk does: SQLITE_FULL, "database or disk is full"
    capped.execute("PRAGMA max_page_count = 2")
    full = error_of(lambda: capped.executescript("CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000));"))
    storage = open_storage(f"sqlite:///{path}")
    duplicate = error_of(lambda: [storage.create_new_study([optuna.study.StudyDirection.MAXIMIZE], "same")
                                  for _ in range(2)])
    close_storage(storage)
    assert is_transient(refused) and is_transient(locked) and is_transient(hung), hung
    assert "disk is full" in str(full) and is_transient(full)  # resumable, exit 75; see fills_disk
    assert not is_transient(no_role) and not is_transient(duplicate) and not is_transient(ValueError("bug"))
    assert not any(is_transient(error) for error in bad_options), bad_options


def test_the_policy_waits_out_an_outage_once_and_gives_up_past_its_budget():
    events: list[str] = []
    failures = iter([True, True, True, False])

    def flaky() -> str:
        if next(failures):
            raise ConnectionResetError("connection reset by peer")
        return "written"

    policy = OutagePolicy(30, on_outage=lambda since, reason: events.append(f"away: {reason}"),
                          on_recovered=lambda seconds: events.append("back"), first_delay_s=0.01)
    assert policy.call(flaky) == "written"
    assert events == ["away: connection reset by peer", "back"] and not policy.in_outage

    short = OutagePolicy(0.3, first_delay_s=0.05, max_delay_s=0.05)
    with pytest.raises(Unreachable):
        short.attempt(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")))
    with pytest.raises(Unreachable):  # not due yet: no second try, no wait
        short.attempt(lambda: "never called")
    with pytest.raises(StorageUnavailable):
        short.call(lambda: (_ for _ in ()).throw(ConnectionRefusedError("refused")))
    with pytest.raises(ValueError):  # bad input or a bug: at once, no retry
        OutagePolicy(30).call(lambda: (_ for _ in ()).throw(ValueError("bug")))


def test_a_full_disk_under_a_sqlite_database_spends_the_outage_budget_at_once(tmp_path):
    """SQLite's "database or disk is full" was an outage, waited out for the whole --storage-timeout (10 minutes by
    default) although no wait empties that disk (the sweep's own, which its checkpoints fill): now its first failure
    stops every caller, in the words ``full`` gives, with no "storage unreachable" line. A PostgreSQL server's full
    disk (53100) is its server's to clear: still an outage."""
    from psycopg.errors import DiskFull

    capped = sqlite3.connect(tmp_path / "capped.db")  # as a full disk does: SQLITE_FULL, "database or disk is full"
    capped.execute("PRAGMA max_page_count = 2")
    events: list[str] = []
    policy = OutagePolicy(2, full=lambda: "make room under the database's folder", first_delay_s=0.01,
                          on_outage=lambda since, reason: events.append(reason))
    with pytest.raises(StorageUnavailable, match=r"^make room under the database's folder$") as stopped:
        policy.attempt(lambda: capped.executescript("CREATE TABLE t (x); INSERT INTO t VALUES (zeroblob(100000));"))
    assert isinstance(stopped.value.__cause__, sqlite3.OperationalError) and events == [] and policy.overdue()
    with pytest.raises(StorageUnavailable):  # for good: the writer, the asks and the heartbeats stop alike
        policy.call(lambda: "never called")
    server_full = OutagePolicy(2)
    with pytest.raises(Unreachable):
        server_full.attempt(lambda: (_ for _ in ()).throw(DiskFull("could not extend file")))
    assert server_full.in_outage and not server_full.overdue()


# a sweep's SQLite database, and a sort big enough to spill to a temporary file (a 64 KiB cache): SQLITE_FULL
SPILLING_SORT = """
import sqlite3, sys
from sweeper.stop_messages import database_full_message
from storage.retry import OutagePolicy, StorageUnavailable
db = sqlite3.connect(sys.argv[1])
db.execute("PRAGMA cache_size = -64")
db.execute("CREATE TABLE t (x)")
db.execute("WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 3000) "
           "INSERT INTO t SELECT randomblob(1000) FROM c")
db.commit()
try:
    OutagePolicy(5, full=database_full_message(f"sqlite:///{sys.argv[1]}", "the same command")).call(
        lambda: db.execute("SELECT x FROM t ORDER BY x").fetchall())
except StorageUnavailable as stopped:
    print(stopped)
"""


def test_a_full_sqlite_temporary_folder_on_another_disk_is_named_not_the_databases_folder(tmp_path):
    """SQLite writes big sorts and statement journals to SQLITE_TMPDIR (else TMPDIR, else /var/tmp), maybe a small
    tmpfs that other files fill (Ray's): its "database or disk is full" said "make room under" the database's
    folder, a disk with room; now the full temporary folder is named, and the variable that moves it."""
    (temp := tmp_path / "temp").mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(temp)], capture_output=True).returncode:
        pytest.skip("a small disk of its own needs root (mount -t tmpfs)")
    try:
        subprocess.run(["dd", "if=/dev/zero", f"of={temp / 'filler'}", "bs=4k"], capture_output=True)
        proc = subprocess.run([sys.executable, "-c", SPILLING_SORT, str(tmp_path / "sweeps.db")], capture_output=True,
                              text=True, timeout=60, env={**os.environ, "SQLITE_TMPDIR": str(temp)})
    finally:
        subprocess.run(["umount", str(temp)], check=True)
    said = " ".join(proc.stdout.split())
    assert proc.returncode == 0 and said.startswith(f"the sweep stopped: {temp}, where SQLite writes the temporary "
                                                    "files of its database"), proc.stdout + proc.stderr
    assert "make room there, or set SQLITE_TMPDIR to a folder with room, and run the same command" in said, said
    assert f"make room under {tmp_path}" not in said, said


@pytest.mark.slow
def test_a_postgres_restart_mid_sweep_loses_and_duplicates_nothing(tmp_path, server):
    url = fresh_database(server, "restart")
    space = resumable_space(tmp_path, trials=TRIALS, sleep=0.4)
    driver = sweeper_cli("run", str(space), "--storage", url, "--results-dir", str(tmp_path / "runs"), cwd=tmp_path)
    wait_for_epochs(url, driver)
    server.stop()
    time.sleep(3)  # trials train on; their reports wait
    server.start()
    code, out = finish(driver)
    assert code == 0, out
    assert "storage unreachable" in out and "storage back after" in out and "Traceback" not in out, out
    assert_recorded_once(url, study_name(space))


@pytest.mark.slow
def test_connections_cut_mid_sweep_lose_and_duplicate_nothing(tmp_path, server):
    url = fresh_database(server, "cut")
    proxy = CuttableProxy(server.port)
    via_proxy = url.replace(f":{server.port}/", f":{proxy.port}/")
    space = resumable_space(tmp_path, trials=TRIALS, sleep=0.4)
    driver = sweeper_cli("run", str(space), "--storage", via_proxy, "--results-dir", str(tmp_path / "runs"),
                         cwd=tmp_path)
    try:
        wait_for_epochs(url, driver)
        proxy.cut(4)
        code, out = finish(driver)
    finally:
        proxy.close()
    assert code == 0, out
    assert "storage unreachable" in out and "storage back after" in out and "Traceback" not in out, out
    assert_recorded_once(url, study_name(space))


def test_the_reads_of_a_new_study_once_ray_has_started_ride_out_a_dropped_connection(ray_session, tmp_path,
                                                                                       monkeypatch):
    """The first reads of a new study once Ray had started (its checkpoint folder, its work_dir) went around the
    outage policy: a connection cut then crashed the sweep with Optuna's traceback (found by an exploratory test,
    with a proxy cut 2.5 s into the sweep; here the cut is the next read's, for certain)."""
    import psycopg
    import sqlalchemy.exc

    from sweeper import driver
    from sweeper.driver import SweepOptions, run_sweep

    opened, dropped = driver.open_study, []

    def open_then_drop(*args, **kwargs):
        study, created = opened(*args, **kwargs)
        read = study._storage.get_study_user_attrs

        def drop_once(*a, **k):
            if not dropped:
                dropped.append(a)
                raise sqlalchemy.exc.OperationalError("SELECT", {}, psycopg.OperationalError(
                    "server closed the connection unexpectedly"))
            return read(*a, **k)

        monkeypatch.setattr(study._storage, "get_study_user_attrs", drop_once)
        return study, created

    monkeypatch.setattr(driver, "open_study", open_then_drop)
    monkeypatch.chdir(tmp_path)
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    study = run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(tmp_path / "runs")))
    assert dropped and [t.state for t in study.get_trials()] == [TS.COMPLETE, TS.COMPLETE]


@pytest.mark.parametrize("fresh", [False, True])
def test_an_outage_past_the_budget_as_the_study_is_opened_says_how_to_carry_on(ray_session, tmp_path, monkeypatch,
                                                                               capsys, fresh):
    """A server gone between the checks before the sweep and the study's open (Ray's start-up, seconds) past
    --storage-timeout: exit 75 said the policy's bare words, neither --storage-timeout nor how to carry the sweep on,
    with the reason nested in itself twice ("Cannot reach storage ... (driver said: Cannot open storage ...)"). After
    --fresh, the same command starts yet another study and leaves this one's trials RUNNING: the exit says
    ``sweeper resume NAME``, as Ctrl-C does (found by an exploratory test, mid-sweep too); but not before the study
    is opened: a --fresh study not made yet is no NAME sweeper resume finds ("No study named ..."), and the same
    command makes it."""
    from sweeper import driver
    from sweeper.driver import SweepOptions, run_sweep

    opened = driver.open_study
    refused = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # as a server that went away: connection refused
    monkeypatch.setattr(driver, "open_study", lambda spec, url, *args, **kw: opened(spec, refused, *args, **kw))
    monkeypatch.chdir(tmp_path)
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    with pytest.raises(StorageUnavailable) as stopped:
        run_sweep(SweepOptions(space=str(space), storage=url, results_dir=str(tmp_path / "runs"), fresh=fresh,
                               storage_timeout=1))
    assert "more than 1 s (--storage-timeout)" in str(stopped.value), stopped.value
    assert "Run the same command again" in str(stopped.value) and "resume" not in str(stopped.value), stopped.value
    assert study_name(space) not in optuna.get_all_study_names(url)  # what sweeper resume NAME would look for
    out = capsys.readouterr().out
    assert "storage unreachable" in out and out.count("storage sqlite") + out.count("storage postgresql") == 1, out


@pytest.mark.slow
def test_an_outage_past_the_storage_timeout_stops_cleanly_and_resumes(tmp_path, server):
    url = fresh_database(server, "timeout")
    space = resumable_space(tmp_path, trials=TRIALS, sleep=0.4)
    name = study_name(space)
    args = ("run", str(space), "--storage", url, "--results-dir", str(tmp_path / "runs"))
    driver = sweeper_cli(*args, "--storage-timeout", "3s", cwd=tmp_path)
    wait_for_epochs(url, driver)
    server.stop()
    try:
        code, out = finish(driver, timeout=120)
    finally:
        server.start()
    assert code == STORAGE_UNAVAILABLE_EXIT_CODE, out
    assert "Traceback" not in out and out.count("error:") == 1, out
    assert "stayed unreachable for more than 3 s" in out and "Run the same command again" in out, out
    workers = worker_pids(tmp_path, name)
    assert workers
    wait_for(lambda: not alive(workers), timeout=30, what="the workers to exit")

    code, out = finish(sweeper_cli(*args, cwd=tmp_path))
    assert code == 0 and "resumed" in out, out
    assert_recorded_once(url, name, whole_curves=False)


@pytest.mark.slow
def test_a_sqlite_lock_held_past_the_busy_timeout_is_waited_out(tmp_path):
    """The URL's busy timeout (?timeout=, 10 s by default) is the sweep's: it was set to 10 s whatever the URL said."""
    url = f"sqlite:///{tmp_path / 'sweeps.db'}?timeout=1"
    space = resumable_space(tmp_path, trials=TRIALS, sleep=0.4)
    driver = sweeper_cli("run", str(space), "--storage", url, "--results-dir", str(tmp_path / "runs"), cwd=tmp_path)
    wait_for_epochs(url, driver)

    def hold_lock(seconds: float) -> None:  # another process's writer, e.g. a backup tool or a stuck script
        holder = sqlite3.connect(tmp_path / "sweeps.db", timeout=30)
        holder.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        holder.rollback()
        holder.close()

    locker = threading.Thread(target=hold_lock, args=(3,))  # past the URL's 1 s busy timeout
    locker.start()
    code, out = finish(driver)
    locker.join()
    assert code == 0, out
    assert "storage unreachable" in out and "storage back after" in out and "Traceback" not in out, out
    assert_recorded_once(url, study_name(space))


@pytest.mark.slow
def test_a_postgres_table_locked_past_the_statement_timeout_is_waited_out(tmp_path, server):
    """Another session holding Optuna's tables (a migration, a VACUUM FULL, a transaction left open) stalls every
    write until the server cancels it at statement_timeout (the URL's 1 s here; 1 min by default); the outage
    policy retries it, so the sweep carries on once the lock goes."""
    import psycopg

    plain = fresh_database(server, "locked_tables")
    url = plain + "?options=-cstatement_timeout%3D1s"  # the URL's own limit is kept: sweeper sets one only if unset
    space = resumable_space(tmp_path, trials=4, sleep=0.4)
    driver = sweeper_cli("run", str(space), "--storage", url, "--results-dir", str(tmp_path / "runs"), cwd=tmp_path)
    wait_for_epochs(url, driver)
    with psycopg.connect(plain.replace("postgresql+psycopg", "postgresql")) as holder:
        holder.execute("LOCK TABLE trials, trial_intermediate_values IN ACCESS EXCLUSIVE MODE")
        time.sleep(4)
        holder.rollback()
    code, out = finish(driver)
    assert code == 0, out
    assert "storage unreachable" in out and "storage back after" in out and "Traceback" not in out, out
    assert "waited past statement_timeout" in out and "pg_locks" in out, out
    assert "Caught an error from sqlalchemy" not in out and "SELECT" not in out, out  # no SQL on the console
    assert_recorded_once(url, study_name(space), trials=4)


@pytest.mark.slow
def test_a_frozen_postgres_server_stops_the_sweep_at_its_storage_timeout_and_it_resumes(tmp_path, server):
    """A server that stops answering while its kernel still acknowledges packets (a paused VM, a hung disk;
    SIGSTOP here) enforces no statement_timeout, and TCP sees nothing wrong, so a statement sent to it waits for
    as long as the freeze lasts. sweeper cuts a connection stuck for twice statement_timeout plus 5 s (the URL's
    1 s here; 1 min by default), so the outage policy's budget holds (reconnecting waits for connect_timeout, 2 s
    here; 10 s by default): the sweep stops, resumable, while the server is still frozen, and resumes once it is
    back."""
    url = fresh_database(server, "frozen") + "?options=-cstatement_timeout%3D1s&connect_timeout=2"
    space = resumable_space(tmp_path, trials=4, sleep=0.2)  # the freeze lasts seconds: trials are still in flight
    args = ("run", str(space), "--storage", url, "--results-dir", str(tmp_path / "runs"))
    driver = sweeper_cli(*args, "--storage-timeout", "3s", cwd=tmp_path)
    wait_for_epochs(url, driver)
    with server.frozen():
        try:
            code, out = finish(driver, timeout=120)
        except subprocess.TimeoutExpired:
            os.killpg(driver.pid, signal.SIGKILL)
            pytest.fail(f"the driver still waits on the frozen server after 120 s: {driver.communicate()[0]}")
    assert code == STORAGE_UNAVAILABLE_EXIT_CODE, out
    assert "has not answered a statement for" in out and "stayed unreachable for more than 3 s" in out, out
    assert "Traceback" not in out, out

    code, out = finish(sweeper_cli(*args, cwd=tmp_path))
    assert code == 0 and "resumed" in out, out
    assert_recorded_once(url, study_name(space), trials=4, whole_curves=False)


@pytest.mark.slow
def test_read_only_commands_ride_out_a_restart_then_fail_in_one_line(tmp_path, server):
    import subprocess as sp
    import sys

    url = fresh_database(server, "inspect")
    storage = open_storage(url)
    study = optuna.create_study(study_name="kept", storage=storage)
    study.tell(study.ask(), 1.0)
    close_storage(storage)

    def status() -> sp.Popen:
        return sp.Popen([sys.executable, "-m", "sweeper.cli", "status", "--storage", url], cwd=tmp_path,
                        stdout=sp.PIPE, stderr=sp.STDOUT, text=True)

    server.stop()
    try:
        waiting = status()
        time.sleep(1.5)
    finally:
        server.start()
    code, out = finish(waiting, timeout=60)
    assert code == 0 and "kept" in out, out

    server.stop()
    try:
        started = time.monotonic()
        code, out = finish(status(), timeout=60)
        waited = time.monotonic() - started
    finally:
        server.start()
    assert code == 2 and "cannot reach a PostgreSQL server" in out and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1 and waited < 30, (waited, out)


def test_the_outage_budget_is_a_space_key_and_a_flag_and_bad_values_are_bad_input(tmp_path):
    import subprocess as sp
    import sys

    from search_spaces.loader import load_spec, resolve_space_path

    space = resolve_space_path("spaces/asl20.yaml")
    assert load_spec(space).budget.storage_timeout_seconds == 600
    assert load_spec(space, ("budget.storage_timeout=90s",)).budget.storage_timeout_seconds == 90
    for flag in ("soon", "0"):
        done = sp.run([sys.executable, "-m", "sweeper.cli", "run", "spaces/asl20.yaml", "--quick",
                       "--storage-timeout", flag], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert done.returncode == 2 and "--storage-timeout" in done.stderr and "Traceback" not in done.stderr
        assert not list(tmp_path.iterdir())  # nothing written: no sweeps.db, no results folder


def test_leaving_a_sqlite_file_another_process_holds_does_not_wait_its_busy_timeout_again(tmp_path):
    """A driver folds its WAL into the file as it leaves: where it leaves because another process held the file
    past --storage-timeout (exit 75), or on Ctrl-C while it did, the fold waited out SQLite's busy timeout again,
    10 s by default (a 5 s budget ended the sweep 11 s late; found by an exploratory test)."""
    from storage.engine import fold_sqlite_wal

    path = tmp_path / "sweeps.db"
    url = f"sqlite:///{path}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="held", storage=storage)
    study.tell(study.ask(), 1.0)
    close_storage(storage)
    holder = sqlite3.connect(path)  # another process's writer: a backup tool, a stuck script
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    fold_sqlite_wal(url)
    waited = time.monotonic() - started
    holder.rollback()
    holder.close()
    assert waited < 5, waited
    fold_sqlite_wal(url)  # the lock gone, the log folds in: the file alone holds the trial
    (tmp_path / "copy.db").write_bytes(path.read_bytes())
    assert sqlite3.connect(tmp_path / "copy.db").execute("SELECT count(*) FROM trials").fetchone() == (1,)


def lose_the_first_answer(monkeypatch, owner, name: str, when=lambda *args, **kwargs: True) -> list:
    """``owner.name`` commits, then, the first time ``when`` holds for its arguments, raises as a dropped connection
    would: the write landed, its answer is lost. Returns a list that holds that call's arguments once it happened."""
    import sqlalchemy.exc

    real, lost = getattr(owner, name), []

    def answer_lost(*args, **kwargs):
        done = real(*args, **kwargs)
        if not lost and when(*args, **kwargs):
            lost.append(args)
            raise sqlalchemy.exc.OperationalError(name, {}, ConnectionResetError("answer lost"))
        return done

    monkeypatch.setattr(owner, name, answer_lost)
    return lost


def test_ctrl_c_writes_what_is_queued_but_does_not_wait_for_a_storage_that_is_away(tmp_path):
    """``StudyWriter.drain``, what the driver calls on Ctrl-C: the backlog lands; a locked database is not awaited."""
    from sweeper.study_writer import StudyWriter

    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    storage = open_storage(url)
    study = optuna.create_study(study_name="drain", storage=storage)
    writer = StudyWriter(OutagePolicy(60))
    for i in range(20):
        writer.submit(lambda i=i: study.set_user_attr(f"epoch{i}", i))
    writer.drain(30)
    reader = open_storage(url)
    assert optuna.load_study(study_name="drain", storage=reader).user_attrs == {f"epoch{i}": i for i in range(20)}
    close_storage(reader)

    holder = sqlite3.connect(tmp_path / "sweeps.db")  # another writer holds the database past the busy timeout
    holder.execute("BEGIN EXCLUSIVE")
    writer.submit(lambda: study.set_user_attr("late", 1))
    started = time.monotonic()
    writer.drain(0.5)
    assert time.monotonic() - started < 5
    holder.rollback()
    holder.close()
    writer.flush()  # once the lock is gone the write goes through: drain gave up waiting, not the write
    assert study.user_attrs["late"] == 1
    close_storage(storage)


def test_ctrl_c_while_the_study_is_opened_in_an_outage_waits_for_one_try_not_for_the_outage(tmp_path):
    """The open held the lock an exit waits for (``Interrupts.unbroken``) through the whole outage: a Ctrl-C as a
    sweep started on a server that had just gone away ended after STUDY_OPEN_WAIT_S (30 s), silent, with a second
    Ctrl-C ignored (found by an exploratory test). Between tries nothing is half-written, so an exit may take it."""
    from search_spaces.loader import load_spec
    from sweeper.driver import open_study_whole
    from sweeper.interrupt_exit import Interrupts
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    refused = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # a server that is away: connection refused
    policy = OutagePolicy(4.0, first_delay_s=0.05, max_delay_s=0.2)
    interrupts = Interrupts(StudyWriter(policy), refused, None, "")
    unbroken = interrupts.unbroken
    failed: list[BaseException] = []

    def opening() -> None:
        try:
            open_study_whole(interrupts, policy, spec, refused, None, tmp_path, None)
        except StorageUnavailable as exc:
            failed.append(exc)

    opener = threading.Thread(target=opening)
    opener.start()
    wait_for(lambda: policy.in_outage, timeout=30, what="the outage")
    started = time.monotonic()
    taken = unbroken.acquire(timeout=2.0)  # what Interrupts.leave does, for up to STUDY_OPEN_WAIT_S
    waited = time.monotonic() - started
    if taken:
        unbroken.release()
    opener.join(30)
    assert taken and waited < 1.5, waited
    assert failed and not opener.is_alive()  # the open went on trying, and gave up at its budget


CTRL_C_AS_A_FRESH_STUDY_IS_OPENED_IN_AN_OUTAGE = """
import os, signal, sys, threading
from sweeper import cli, driver
from sweeper.driver import SweepOptions

opened = driver.open_study
refused = "postgresql+psycopg://postgres@127.0.0.1:1/test"  # as a server that went away after the checks

def open_study(spec, url, *args, **kw):  # a Ctrl-C once the open is in its outage
    threading.Timer(1.0, os.kill, (os.getpid(), signal.SIGINT)).start()
    driver.open_study = lambda spec, url, *args, **kw: opened(spec, refused, *args, **kw)
    return driver.open_study(spec, url, *args, **kw)

driver.open_study = open_study
cli._sweep(SweepOptions(space=sys.argv[1], storage=sys.argv[2], fresh=True, storage_timeout=120, results_dir="runs"))
"""


def test_ctrl_c_before_a_fresh_study_is_made_names_the_same_command_not_its_resume(tmp_path):
    """Ctrl-C as a --fresh sweep's study was opened in an outage said "sweeper resume NAME-2 carries it on", of a
    study that was never made ("No study named 'NAME-2'"), where exit 75 at that point says the same command (found
    by a review)."""
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    optuna.create_study(study_name=study_name(space), storage=url)  # taken: --fresh makes NAME-2
    proc = subprocess.run([sys.executable, "-c", CTRL_C_AS_A_FRESH_STUDY_IS_OPENED_IN_AN_OUTAGE, str(space), url],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert "the same command carries it on" in proc.stderr and "sweeper resume" not in proc.stderr, proc.stderr
    assert [s.study_name for s in optuna.get_all_study_summaries(url)] == [study_name(space)]


CTRL_C_ONCE_A_FRESH_STUDY_IS_MADE = """
import os, signal, sys, time
from sweeper import cli, driver
from sweeper.driver import SweepOptions

interrupted = getattr(driver, sys.argv[3])

def ctrl_c_first(*args, **kw):  # a Ctrl-C as the sweep gets there (a wait on the storage, seconds, or an outage)
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
    return interrupted(*args, **kw)

setattr(driver, sys.argv[3], ctrl_c_first)
cli._sweep(SweepOptions(space=sys.argv[1], storage=sys.argv[2], fresh=True, results_dir="runs"))
"""


# the study made, the trials not started; every trial recorded, the final table not read yet
@pytest.mark.parametrize("where", ["trial_actors_on_prestarted_workers", "final_summary"])
def test_ctrl_c_once_a_fresh_study_is_made_names_its_resume_before_the_trials_start(tmp_path, where):
    """Between the study's opening and the trials' start a Ctrl-C left through the CLI's own "the same command
    carries it on": run again, --fresh made NAME-3 beside the NAME-2 it had just made (found by a review). So did
    one as the final summary read the study (in an outage, up to --storage-timeout), which may leave trials RUNNING
    for the next run (budget.time): they were in NAME-2, and the same command started NAME-3."""
    space = resumable_space(tmp_path, trials=2, sleep=0.0)
    url = f"sqlite:///{tmp_path / 'sweeps.db'}"
    optuna.create_study(study_name=study_name(space), storage=url)  # taken: --fresh makes NAME-2
    proc = subprocess.run([sys.executable, "-c", CTRL_C_ONCE_A_FRESH_STUDY_IS_MADE, str(space), url, where],
                          cwd=tmp_path, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 130, proc.stdout + proc.stderr
    assert f"sweeper resume {study_name(space)}-2" in proc.stderr, proc.stderr


def test_an_answer_lost_while_taking_an_enqueued_trial_leaves_no_ghost(tmp_path, storage_url, monkeypatch):
    """The commit that makes an enqueued trial RUNNING lands but its answer is lost: the retry must take that same
    trial, not the next one, which would leave the first RUNNING with nobody to run it (and counted in the budget)."""
    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter
    from sweeper.trainable import META_KEY

    spec = load_spec("spaces/asl20.yaml", quick=True)
    storage = open_storage(storage_url)
    study = optuna.create_study(study_name=f"lost-pop-{time.time_ns()}", storage=storage)
    for row in spec.enqueue:
        study.enqueue_trial(row)
    policy = OutagePolicy(60, first_delay_s=0.05)
    searcher = StudySearcher(study, spec, checkpoints=str(tmp_path), budget=5, driver=Driver.current(),
                             policy=policy, writer=StudyWriter(policy))
    lose_the_first_answer(monkeypatch, study._storage, "set_trial_state_values",
                          lambda trial_id, state, values=None: state == TS.RUNNING)
    assert searcher.suggest("ray-1") is None  # the storage looks away: Tune is told "not now"
    deadline = time.monotonic() + 10
    while (config := searcher.suggest("ray-1")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert config[META_KEY]["number"] == 0 and config["dropout"] == spec.enqueue[0]["dropout"]
    assert [t.state for t in study.get_trials(deepcopy=False)] == [TS.RUNNING, TS.WAITING]
    close_storage(storage)


def test_an_ask_retried_after_its_trial_was_never_created_counts_the_trials_again(tmp_path, storage_url,
                                                                                  monkeypatch):
    """The connection drops before the new trial is written, and another driver on the study creates the last
    trial of the budget meanwhile: the retry must count again, not create one past the budget (it took the
    count of its first try as still true)."""
    import sqlalchemy.exc

    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    name = f"never-created-{time.time_ns()}"
    storages = [open_storage(storage_url) for _ in range(2)]  # each driver with its own
    studies = [optuna.create_study(study_name=name, storage=storages[0])]
    studies.append(optuna.load_study(study_name=name, storage=storages[1]))
    policy = OutagePolicy(60)
    this, other = (StudySearcher(study, spec, checkpoints=str(tmp_path), budget=1, driver=Driver(host, 1, None),
                                 policy=policy, writer=StudyWriter(policy))
                   for study, host in zip(studies, ("host-a", "host-b"), strict=True))

    def dropped(*args, **kwargs):
        raise sqlalchemy.exc.OperationalError("create_new_trial", {}, ConnectionResetError("connection dropped"))

    with monkeypatch.context() as cut:
        cut.setattr(studies[0]._storage, "create_new_trial", dropped)
        with pytest.raises(sqlalchemy.exc.OperationalError):
            this._next_trial()
    assert other._next_trial() is not None  # the other driver takes the budget's last trial
    assert this._next_trial() is None
    assert len(studies[0].get_trials(deepcopy=False)) == 1
    for storage in storages:
        close_storage(storage)


def test_a_tell_whose_answer_was_lost_is_retried_without_losing_the_trials_after_it(tmp_path, storage_url,
                                                                                     monkeypatch):
    """The tell commits but its answer is lost: the writer runs the recording again, which must find the trial
    finished and leave it so, not fail on its attrs and drop every later write (trials left RUNNING)."""
    from types import SimpleNamespace

    from search_spaces.loader import load_spec
    from sweeper.recorder import StudyRecorder
    from sweeper.study_writer import StudyWriter
    from sweeper.trainable import FINAL_FLAG, RESULT_KEYS

    spec = load_spec("spaces/asl20.yaml", quick=True)
    storage = open_storage(storage_url)
    study = optuna.create_study(study_name=f"lost-tell-{time.time_ns()}", storage=storage, direction="maximize")
    first, second = study.ask(), study.ask()
    lost = lose_the_first_answer(monkeypatch, study._storage, "set_trial_state_values",
                                 lambda trial_id, state, values=None: state == TS.COMPLETE)
    writer = StudyWriter(OutagePolicy(60, first_delay_s=0.05))
    recorded = []
    searcher = SimpleNamespace(study=study, trials={"ray-1": first, "ray-2": second}, carried_on=set())
    recorder = StudyRecorder(searcher, spec, recorded.append, writer)
    for ray_id, value in (("ray-1", 0.5), ("ray-2", 0.7)):
        result = {"val_top3": value, "test_top3": value, "epoch": 3, FINAL_FLAG: True, RESULT_KEYS: ["test_top3"]}
        recorder.on_trial_complete(0, [], SimpleNamespace(trial_id=ray_id, last_result=result))
    writer.flush()
    trials = study.get_trials(deepcopy=False)
    assert lost and [(t.state, t.value, t.user_attrs["test_top3"]) for t in trials] == \
        [(TS.COMPLETE, 0.5, 0.5), (TS.COMPLETE, 0.7, 0.7)]
    assert sorted(t.number for t in recorded) == [0, 1]
    close_storage(storage)


def test_a_study_created_before_a_lost_answer_still_gets_the_spaces_enqueued_points(tmp_path, storage_url,
                                                                                     monkeypatch):
    """Opening the study is retried whole: the retry finds the study the first try created, without trials, and
    must still treat it as new (enqueue the seeds' points), not as a resumed study."""
    from search_spaces.loader import load_spec
    from sweeper.driver import open_study

    spec = load_spec("spaces/asl20.yaml", quick=True, overrides=[f"name=lost-create-{time.time_ns()}"])
    lost = lose_the_first_answer(monkeypatch, optuna.Study, "set_user_attr")  # the first write after the creation
    study, created = OutagePolicy(60, first_delay_s=0.05).call(lambda: open_study(spec, storage_url, None))
    assert lost and created
    waiting = study.get_trials(deepcopy=False, states=(TS.WAITING,))
    assert [t.system_attrs["fixed_params"] for t in waiting] == spec.enqueue
    close_storage(study._storage._backend)  # Optuna wraps the RDB storage in a cache


def test_a_trial_another_driver_finished_meanwhile_drops_this_drivers_writes_and_the_sweep_goes_on(tmp_path,
                                                                                                      capsys):
    """A driver cut off from the storage past the grace period is taken for dead: another carries its trial on and
    finishes it. When the storage is back, the first one's queued epochs of that trial found it finished, and the
    sweep crashed with UpdateFinishedTrialError."""
    from sweeper.study_writer import StudyWriter

    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    taken = study.ask()
    study.tell(taken, 0.9)  # by the other driver
    writer = StudyWriter(OutagePolicy(30.0))
    for epoch in (3, 4):
        writer.submit(lambda epoch=epoch: taken.report(0.5, step=epoch))
    writer.flush()  # raises nothing: the sweep goes on
    assert writer.error is None and study.trials[0].intermediate_values == {}
    err = capsys.readouterr().err
    assert err.count("Trial#0 has already finished") == 1 and "Another driver carried it on" in err, err


def test_ctrl_c_does_not_wait_for_writes_the_storage_is_refusing():
    """On Ctrl-C the driver drains the writes queued so far, but not during an outage: they run again on resume,
    and the user should not wait the drain's 10 s for a database that is away."""
    from sweeper.study_writer import StudyWriter

    def refused() -> None:
        raise sqlite3.OperationalError("database is locked")  # what SQLite says while another process holds it

    writer = StudyWriter(OutagePolicy(30.0))
    writer.submit(refused)
    wait_for(lambda: writer.policy.in_outage, timeout=60, what="the outage")  # its first failure; slow under load
    started = time.monotonic()
    writer.drain(10.0)
    assert time.monotonic() - started < 2


def test_a_sweep_past_its_outage_budget_does_not_wait_for_a_write_hung_on_a_frozen_server():
    """The exit-75 path waited for the write in flight (a statement a frozen server never answers, until the stall
    watch cut it 125 s later): a 20 s --storage-timeout stopped the sweep after 159 s (found by an exploratory
    test)."""
    import threading

    from sweeper.study_writer import StudyWriter

    writing, hung = threading.Event(), threading.Event()
    writer = StudyWriter(OutagePolicy(30.0))
    writer.submit(lambda: writing.set() or hung.wait(30))
    writer.submit(lambda: None)
    assert writing.wait(10)
    writer.fail(StorageUnavailable("The storage stayed unreachable for more than 20 s"))  # as stop_all does
    started = time.monotonic()
    with pytest.raises(StorageUnavailable, match="more than 20 s"):
        writer.flush()
    assert time.monotonic() - started < 2
    hung.set()


def test_asks_during_an_outage_start_no_threads():
    """Tune's loop drains the writer before every ask, about every 0.1 s: a drain that left a thread waiting on the
    queue behind it piled up thousands in a 10-minute outage, each alive until the storage answered."""
    from sweeper.study_writer import StudyWriter

    away = threading.Event()
    away.set()

    def write() -> None:
        if away.is_set():
            raise sqlite3.OperationalError("database is locked")

    writer = StudyWriter(OutagePolicy(60.0, first_delay_s=0.05, max_delay_s=0.05))
    writer.submit(write)
    wait_for(lambda: writer.policy.in_outage, timeout=60, what="the outage")  # its first failure; slow under load
    assert writer.policy.in_outage
    before = threading.active_count()
    for _ in range(200):
        writer.drain(2.0)
    assert threading.active_count() == before
    away.clear()  # the storage is back: the write lands and the outage ends
    writer.flush()
    assert not writer.policy.in_outage and writer.error is None


def test_asks_during_an_outage_leave_the_probing_to_the_writer(tmp_path):
    """Tune's loop asks for a trial about every 0.1 s, and each ask probed the storage too: on a SQLite file another
    process locked, a probe waits out the 10 s busy timeout, so Tune's loop stood still, and with it the check that
    ends the sweep at --storage-timeout (a 5 s budget ran out after a minute)."""
    import sqlalchemy

    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(study_name="probes", storage=storage, direction="maximize")
    away = threading.Event()
    away.set()

    def write() -> None:
        if away.is_set():
            time.sleep(0.5)  # SQLite's busy wait (10 s), shortened
            raise sqlite3.OperationalError("database is locked")

    policy = OutagePolicy(60.0, first_delay_s=0.05, max_delay_s=0.05)
    writer = StudyWriter(policy)
    searcher = StudySearcher(study, load_spec("spaces/asl20.yaml", quick=True), checkpoints=str(tmp_path), budget=3,
                             driver=Driver.current(), policy=policy, writer=writer, orphans=[])
    writer.submit(write)
    wait_for(lambda: policy.in_outage, timeout=60, what="the outage")  # its first failure; slow under load
    statements = []
    sqlalchemy.event.listen(storage.engine, "before_cursor_execute", lambda *args: statements.append(args[2]))
    time.sleep(0.2)  # the writer is inside its next probe, and the policy's probe time has passed
    assert policy.in_outage and searcher.suggest("ray-1") is None and statements == []
    away.clear()  # the storage is back: the writer's probe finds it, and asks go on
    writer.flush()
    assert not policy.in_outage
    asked = []  # an ask past ASK_WAIT_S (a loaded machine) says "not now", and a later call takes its trial
    wait_for(lambda: asked.append(searcher.suggest("ray-1")) or asked[-1] is not None, timeout=60, what="an ask")
    close_storage(storage)


def test_an_ask_after_a_stop_signal_takes_no_trial_and_waits_for_no_lock(tmp_path):
    """The exit on a stop signal waits for the lock an ask holds as it takes its trial; asks after the signal took it
    again and again (each waiting out a SQLite file another process held), and the exit waited its 30 s."""
    from concurrent.futures import ThreadPoolExecutor

    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(study_name="leaving", storage=storage, direction="maximize")
    policy = OutagePolicy(60.0)
    searcher = StudySearcher(study, load_spec("spaces/asl20.yaml", quick=True), checkpoints=str(tmp_path), budget=3,
                             driver=Driver.current(), policy=policy, writer=StudyWriter(policy), orphans=[])
    searcher.interrupted.set()
    searcher.unbroken.acquire()  # held: by the exit leaving, or by an ask a locked file holds
    with ThreadPoolExecutor(1) as pool:
        asked = pool.submit(searcher._next_trial)
        try:
            assert asked.result(timeout=5) is None
        finally:
            searcher.unbroken.release()  # an ask blocked on it (the bug) then finishes, and the pool can close
    assert study.trials == []
    close_storage(storage)


def test_an_ask_that_a_locked_sqlite_file_holds_does_not_hold_tunes_loop(tmp_path, monkeypatch):
    """An ask for a new trial waits out SQLite's 10 s busy timeout on a file another process holds locked, and the
    outage policy tries it again: on Tune's loop it held the sweep's results, and its check of --storage-timeout,
    that long. The ask runs on a thread of its own, and a later call takes its trial."""
    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper import searcher as searcher_module
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter
    from sweeper.trainable import META_KEY

    monkeypatch.setattr(searcher_module, "ASK_WAIT_S", 0.3)
    storage = open_storage(f"sqlite:///{tmp_path / 'sweeps.db'}")
    study = optuna.create_study(study_name="held", storage=storage, direction="maximize")
    policy = OutagePolicy(60.0)
    searcher = StudySearcher(study, load_spec("spaces/asl20.yaml", quick=True), checkpoints=str(tmp_path), budget=3,
                             driver=Driver.current(), policy=policy, writer=StudyWriter(policy), orphans=[])
    holder = sqlite3.connect(tmp_path / "sweeps.db", timeout=30)  # another process's writer: a backup, a script
    holder.execute("BEGIN EXCLUSIVE")
    started = time.monotonic()
    assert searcher.suggest("ray-1") is None and searcher.suggest("ray-2") is None
    assert time.monotonic() - started < 2  # not the busy timeout's 10 s
    holder.rollback()
    holder.close()
    configs = []
    wait_for(lambda: configs.append(searcher.suggest("ray-3")) or configs[-1] is not None, timeout=30,
             what="the ask to finish once the lock is gone")
    assert set(searcher.trials) == {"ray-3"} and len(study.get_trials()) == 1  # one trial, not one per call
    assert configs[-1][META_KEY]["number"] == study.get_trials()[0].number

    # the sweep ends while an ask is held
    holder = sqlite3.connect(tmp_path / "sweeps.db", timeout=30, check_same_thread=False)
    holder.execute("BEGIN EXCLUSIVE")
    assert searcher.suggest("ray-4") is None

    def release() -> None:  # later than the loop waits for an ask: the end of the sweep waits longer
        time.sleep(1.0)
        holder.rollback()
        holder.close()

    threading.Thread(target=release).start()
    searcher.drop_unstarted()
    searcher.writer.flush()
    asked = study.get_trials()[1]  # started by nobody: not RUNNING, which a resume would carry on
    assert asked.state == TS.PRUNED and asked.user_attrs[attrs.STOP_REASON] == attrs.STOP_NEVER_STARTED, asked
    assert set(searcher.trials) == {"ray-3"}
    close_storage(storage)


def test_a_connection_cut_by_a_proxy_is_named_in_words(server):
    """pgbouncer's or HAProxy's cut ("server closed the connection unexpectedly") had no plain-words reason."""
    import sqlalchemy

    from storage.engine import as_storage_error

    proxy = CuttableProxy(server.port)
    url = server.url.replace(f":{server.port}/", f":{proxy.port}/")
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            connection.execute(sqlalchemy.text("SELECT 1"))
            proxy.cut(0)
            with pytest.raises(sqlalchemy.exc.OperationalError) as cut:
                connection.execute(sqlalchemy.text("SELECT 1"))
    finally:
        engine.dispose()
        proxy.close()
    assert is_transient(cut.value)
    assert f"the server at 127.0.0.1:{proxy.port}" in str(as_storage_error(cut.value, url, "reach"))
    assert "cut the connection: it may be restarting" in str(as_storage_error(cut.value, url, "reach"))


def test_an_outage_with_no_trial_training_says_no_count_of_them(capsys):
    """As the final summary read the study in an outage, every trial recorded: "storage unreachable since ...; 0
    trials still training, results wait" (found by an exploratory test)."""
    from datetime import datetime
    from types import SimpleNamespace

    from sweeper.outage_lines import OutageLines

    lines = OutageLines()
    lines.searcher = SimpleNamespace(trials={})
    lines.outage(datetime.now(), "gone")
    lines.searcher.trials = {"a": None, "b": None}
    lines.outage(datetime.now(), "gone")
    said = capsys.readouterr().out.splitlines()
    assert said[0].endswith(": gone") and "training" not in said[0], said
    assert "; 2 trials still training, results wait: gone" in said[1], said


# the statement that writes own()'s mark on a trial just asked for: an upsert (INSERT ... ON CONFLICT) from Optuna 5
# on, a SELECT and then an INSERT before
DRIVER_MARK = b"INSERT INTO trial_user_attributes"


def searcher_through(proxy: CuttableProxy, url: str, tmp_path) -> tuple:
    """A driver's searcher on a new study at ``url``, reached through ``proxy``."""
    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    study = optuna.create_study(study_name="lost", storage=open_storage(url), direction="maximize")
    policy = OutagePolicy(60, first_delay_s=0.05)
    return spec, study, StudySearcher(study, spec, checkpoints=str(tmp_path), budget=5, driver=Driver.current(),
                                      policy=policy, writer=StudyWriter(policy))


def ask_through_a_lost_answer(proxy: CuttableProxy, searcher, statement: bytes) -> dict:
    """The config of the searcher's next trial, whose write of ``statement`` committed without an answer."""
    from sweeper.trainable import META_KEY

    proxy.lose_answer(statement)
    deadline = time.monotonic() + 30
    while (config := searcher.suggest("ray-1")) is None:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert proxy.lost == 1 and config[META_KEY]["number"] == 0
    return config


@pytest.mark.parametrize("lost", ["ask", "enqueue"])
def test_a_trial_whose_creation_committed_without_an_answer_is_created_once(tmp_path, server, lost):
    """A real server commits the new trial, and the connection drops before its answer: Optuna's own five tries at
    creating a trial made a second one, a RUNNING trial nobody ran (or an enqueued point trained twice)."""
    from search_spaces.loader import load_spec
    from sweeper.driver import open_study

    proxy = CuttableProxy(server.port)
    url = fresh_database(server, f"lost_create_{lost}").replace(f":{server.port}/", f":{proxy.port}/")
    try:
        if lost == "ask":
            _, study, searcher = searcher_through(proxy, url, tmp_path)
            ask_through_a_lost_answer(proxy, searcher, b"INSERT INTO trials")
            assert [(t.number, t.state) for t in study.get_trials(deepcopy=False)] == [(0, TS.RUNNING)]
        else:
            spec = load_spec("spaces/asl20.yaml", quick=True)
            close_storage(open_storage(url))  # the tables: the study's first write is the lost one
            proxy.lose_answer(b"INSERT INTO trials")
            study, _ = OutagePolicy(60, first_delay_s=0.05).call(lambda: open_study(spec, url, None))
            assert proxy.lost == 1
            assert [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)] == spec.enqueue
        close_storage(study._storage._backend)
    finally:
        proxy.close()


def test_a_param_whose_write_committed_without_an_answer_is_the_one_the_trial_trains_on(tmp_path, server):
    """The first param's write commits and its answer is lost: the retried ask drew that param anew, so the trial
    trained on the new draw while the study kept the first (Optuna ignores the second write of a param)."""
    proxy = CuttableProxy(server.port)
    url = fresh_database(server, "lost_param").replace(f":{server.port}/", f":{proxy.port}/")
    try:
        spec, study, searcher = searcher_through(proxy, url, tmp_path)
        config = ask_through_a_lost_answer(proxy, searcher, b"INSERT INTO trial_params")
        stored = study.get_trials(deepcopy=False)[0].params
        assert stored == {name: config[name] for name in spec.distributions()}
        close_storage(study._storage._backend)
    finally:
        proxy.close()


def test_a_never_started_trial_whose_tell_committed_without_an_answer_is_not_said_taken(server, capsys):
    """Its tell commits and the answer is lost: the retry found it finished and said another driver had carried it
    on and that what this one trained of it was dropped, of a trial this driver had just recorded itself."""
    from sweeper.searcher import never_started
    from sweeper.study_writer import StudyWriter

    proxy = CuttableProxy(server.port)
    url = fresh_database(server, "lost_never_started").replace(f":{server.port}/", f":{proxy.port}/")
    try:
        study = optuna.create_study(study_name="lost", storage=open_storage(url))
        writer = StudyWriter(OutagePolicy(60, first_delay_s=0.05))
        asked = study.ask()
        proxy.lose_answer(b"UPDATE trials SET")
        writer.submit(never_started(study, asked))
        writer.flush()
        trial = study.get_trials(deepcopy=False)[0]
        assert proxy.lost == 1 and writer.error is None
        assert trial.state == TS.PRUNED and trial.user_attrs[attrs.STOP_REASON] == attrs.STOP_NEVER_STARTED
        assert "Another driver" not in capsys.readouterr().err
        close_storage(study._storage._backend)
    finally:
        proxy.close()


def test_a_connection_dropped_as_an_existing_study_is_loaded_is_waited_out(server):
    """Creating a study that exists fails on its name's unique violation; the load after it ran in that except, so
    a connection dropped during the load carried the violation in its chain, and the outage policy took it for a
    bug: a resumed sweep (or the retry of a creation whose answer was lost) crashed with a traceback."""
    from storage.studies import create_or_load_study

    proxy = CuttableProxy(server.port)
    url = fresh_database(server, "dropped_load").replace(f":{server.port}/", f":{proxy.port}/")
    storage = open_storage(url)
    try:
        optuna.create_study(study_name="resumed", storage=storage)
        proxy.lose_answer(b"study_directions")
        _, created = OutagePolicy(60, first_delay_s=0.05).call(lambda: create_or_load_study(storage, "resumed",
                                                                                            "minimize"))
        assert proxy.lost == 1 and not created
    finally:
        close_storage(storage)
        proxy.close()


def test_a_new_study_whose_enqueued_row_committed_without_an_answer_is_opened_as_new(tmp_path, server):
    """The first enqueued row's commit lands unanswered as a new study is opened: the retried open found the study
    holding that WAITING row, called it resumed and moved the seed on by one, so the sweep drew other configs than
    the same sweep whose answer came back."""
    from search_spaces.loader import load_spec
    from sweeper.driver import open_study_whole
    from sweeper.interrupt_exit import Interrupts
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True)
    policy = OutagePolicy(60, first_delay_s=0.05)
    drawn, news = [], []
    for lose in (False, True):
        proxy = CuttableProxy(server.port)
        url = fresh_database(server, f"lost_enqueue_{lose}").replace(f":{server.port}/", f":{proxy.port}/")
        try:
            close_storage(open_storage(url))  # the tables: the study's own writes come next
            if lose:
                proxy.lose_answer(b"INSERT INTO trials")
            interrupts = Interrupts(StudyWriter(policy), url, None, "")
            study, created = open_study_whole(interrupts, policy, spec, url, None, tmp_path, None)
            assert proxy.lost == lose
            news.append(created)
            assert [t.system_attrs["fixed_params"] for t in study.get_trials(deepcopy=False)] == spec.enqueue
            for _ in spec.enqueue:
                study.tell(study.ask(), 0.5)
            drawn.append(study.ask(spec.distributions()).params)  # the first config the sampler draws
            close_storage(study._storage._backend)
        finally:
            proxy.close()
    assert drawn[0] == drawn[1] and news == [True, True], (drawn, news)


def test_a_connection_dropped_as_the_loser_of_two_creations_of_one_database_looks_is_waited_out(server):
    """Two drivers create one new database: the loser's CREATE TABLE fails on the winner's (a unique violation), and
    it looks for the winner's tables; that look ran in the except, so a connection refused there carried the
    violation in its chain, and the outage policy took it for a bug: the sweep stopped instead of waiting."""
    import psycopg
    from optuna.storages._rdb.models import BaseModel
    from sqlalchemy.dialects import postgresql
    from sqlalchemy.schema import CreateTable

    proxy = CuttableProxy(server.port)
    direct = fresh_database(server, "lost_race").replace("postgresql+psycopg", "postgresql")
    winner = psycopg.connect(direct)  # creates the studies table, not committed yet: the loser's CREATE TABLE waits
    winner.execute(str(CreateTable(BaseModel.metadata.tables["studies"]).compile(dialect=postgresql.dialect())))
    url = direct.replace("postgresql:", "postgresql+psycopg:").replace(f":{server.port}/", f":{proxy.port}/")
    opened: list = []
    loser = threading.Thread(target=lambda: opened.append(OutagePolicy(60, first_delay_s=0.05).call(
        lambda: open_storage(url))), daemon=True)
    try:
        loser.start()
        with psycopg.connect(direct, autocommit=True) as watch:
            wait_for(lambda: watch.execute("SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND "
                                           "query LIKE '%CREATE TABLE studies%'").fetchone(), 30, "the loser to wait")
        proxy.refuse(1.0)  # its look for the winner's tables, next, is refused
        winner.commit()
        loser.join(60)
        assert opened, "the loser's open failed (its traceback above)"
        close_storage(opened[0])
    finally:
        winner.close()
        proxy.close()


def test_a_new_trial_whose_ask_failed_before_it_was_taken_is_not_left_running_at_the_stop(tmp_path, server):
    """The ask created the trial, then its owner's write committed without an answer; the sweep stopped (a met
    target) before an ask tried again: only a trial the ask had taken was recorded as never started, so this one
    stayed RUNNING, owned by a driver that had exited (found by an exploratory chaos sweep with stop_on_target)."""
    proxy = CuttableProxy(server.port)
    url = fresh_database(server, "lost_own").replace(f":{server.port}/", f":{proxy.port}/")
    try:
        _, study, searcher = searcher_through(proxy, url, tmp_path)
        proxy.lose_answer(DRIVER_MARK)  # own(): the driver's mark on the trial just made
        assert searcher.suggest("ray-1") is None
        wait_for(lambda: searcher._asking is None or searcher._asking.done(), 30, "the ask")
        assert proxy.lost == 1 and searcher._pending is None  # the ask failed before it took the trial
        searcher.stopped = True
        searcher.drop_unstarted(at_target=True)
        searcher.writer.flush()
        assert [(t.state, t.user_attrs.get(attrs.STOP_REASON)) for t in study.get_trials(deepcopy=False)] == [
            (TS.PRUNED, attrs.STOP_NEVER_STARTED)]
        close_storage(study._storage._backend)
    finally:
        proxy.close()


@pytest.mark.parametrize("statement", [DRIVER_MARK, b"INSERT INTO trial_params"])
def test_a_trial_asked_for_as_budget_time_ran_out_is_handed_back_to_the_next_run(tmp_path, server, statement,
                                                                                    capsys):
    """budget.time ran out as the storage held an ask (an answer lost, then retried): the trial it made was recorded
    never started, which counted it in budget.trials untrained, so the same command carried the sweep on to one
    trained trial fewer (an exploratory chaos sweep's first enqueued config never trained). Now it stays RUNNING
    without a driver, as a fused group's set-aside trial does, and the next run trains it first."""
    from storage.resume import orphaned_trials

    proxy = CuttableProxy(server.port)
    url = fresh_database(server, f"lost_time_{len(statement)}").replace(f":{server.port}/", f":{proxy.port}/")
    try:
        _, study, searcher = searcher_through(proxy, url, tmp_path)
        proxy.lose_answer(statement)  # own()'s mark, or a param's insert
        assert searcher.suggest("ray-1") is None
        wait_for(lambda: searcher._asking is None or searcher._asking.done(), 30, "the ask")
        assert proxy.lost == 1
        searcher.stopped = searcher.timed_out = True  # budget.time is spent: Tune asks for no more
        searcher.drop_unstarted()
        searcher.writer.flush()
        [ghost] = study.get_trials(deepcopy=False)
        assert ghost.state == TS.RUNNING and ghost.user_attrs[attrs.DRIVER] is None
        assert attrs.STOP_REASON not in ghost.user_attrs
        assert [t.number for t in orphaned_trials(study)] == [0]
        assert searcher.handed_back == {0}  # said once, by this driver: not "of a driver that is gone"
        assert "trial #0 was still waiting to run when the sweep ended; it stays RUNNING for the next run" in \
            " ".join(capsys.readouterr().out.split())
        close_storage(study._storage._backend)
    finally:
        proxy.close()
