"""Fixtures shared by the suite: the storages every storage-touching test runs on."""

from __future__ import annotations

import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from storage.engine import close_storage, open_storage
from storage.errors import StorageError

# The suite trains on the CPU everywhere (tiny data, exactness against runs alone): a developer's GPU stays out of
# it, for Ray, torch and every process they start, or the built-in spaces' resources.on_gpu would fuse on it.
os.environ["CUDA_VISIBLE_DEVICES"] = ""


def pytest_configure(config: pytest.Config) -> None:
    """A suite started in the background (``nohup make test &``) inherits SIGINT ignored, and every driver it starts
    would too (Python keeps an inherited SIG_IGN), so the Ctrl-C tests' SIGINT would be lost. They stand for
    a Ctrl-C at a terminal: the suite takes SIGINT back, and the drivers it starts get the default."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    # nohup's SIGHUP ignored, inherited likewise, would keep the closed-terminal tests' drivers running: the suite
    # still outlives a hangup (a handler of its own), and what it starts gets the default (exec resets a handler)
    if signal.getsignal(signal.SIGHUP) == signal.SIG_IGN:
        signal.signal(signal.SIGHUP, lambda signum, frame: None)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """SWEEPER_TEST_POSTGRES_URL if it points at a reachable server; skip with the reason otherwise.

    CI sets SWEEPER_REQUIRE_POSTGRES=1: there an unreachable server fails the run instead of skipping.
    """
    url = os.environ.get("SWEEPER_TEST_POSTGRES_URL", "").strip()
    if not url:
        if os.environ.get("SWEEPER_REQUIRE_POSTGRES") == "1":
            pytest.fail("SWEEPER_REQUIRE_POSTGRES=1 but SWEEPER_TEST_POSTGRES_URL is not set")
        pytest.skip("SWEEPER_TEST_POSTGRES_URL not set")
    try:
        close_storage(open_storage(url))
        url = _database_of_this_worker(url)
    except StorageError as exc:
        if os.environ.get("SWEEPER_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"SWEEPER_REQUIRE_POSTGRES=1 but PostgreSQL is not usable: {exc}")
        pytest.skip(f"PostgreSQL from SWEEPER_TEST_POSTGRES_URL is not usable: {exc}")
    return url


def _database_of_this_worker(url: str) -> str:
    """Under pytest-xdist, a database of this worker's own beside the URL's (``test_gw0``...), made on first use:
    some tests list every study of their storage, and the other worker's sweeps would be among them."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return url
    import sqlalchemy
    from sqlalchemy.engine import make_url

    base = make_url(url)
    name = f"{base.database or base.username or 'postgres'}_{worker}"  # libpq's default database: the user's name
    admin = sqlalchemy.create_engine(base, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            found = conn.execute(sqlalchemy.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}).first()
            if found is None:
                quoted = '"' + name.replace('"', '""') + '"'
                conn.execute(sqlalchemy.text(f"CREATE DATABASE {quoted}"))
    except sqlalchemy.exc.SQLAlchemyError as exc:
        raise StorageError(f"could not create the worker's database {name}: {exc}") from exc
    finally:
        admin.dispose()
    own = base.set(database=name).render_as_string(hide_password=False)
    close_storage(open_storage(own))
    return own


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The same test on a fresh SQLite file and on the test PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'sweeps.db'}"
    return request.getfixturevalue("postgres_url")


CHECKOUT = Path(__file__).resolve().parents[1]
# What sweeper writes by default into the folder it runs in (--results-dir, --storage, a report, an export)
DEFAULT_OUTPUTS = ("sweeper_runs", "runs", "checkpoints", "*.db", "*.db-*", "report*.html", "*.csv", "*.json")


@pytest.fixture(autouse=True)
def _checkout_left_alone() -> Iterator[None]:
    """A test writes only in its own folders: the checkout is the working folder of both pytest workers at once
    (and of a developer's own sweeps), and .gitignore hides what lands there."""
    def outputs() -> set[str]:
        return {path.name for pattern in DEFAULT_OUTPUTS for path in CHECKOUT.glob(pattern)}

    before = outputs()
    yield
    made = sorted(outputs() - before)
    assert not made, f"{made} appeared in the checkout {CHECKOUT}: run the test in tmp_path (monkeypatch.chdir)"


@pytest.fixture(scope="session")
def ray_session():
    """One local Ray instance for every in-process sweep of the session (starting Ray costs seconds)."""
    import ray

    from sweeper.ray_runtime import start_ray

    start_ray()
    yield
    ray.shutdown()


@pytest.fixture
def failed_ray_trial(ray_session, tmp_path: Path):
    """``make(error, failures)``: a Ray trial as Tune leaves it after ``failures`` failures with ``error`` (its
    error files written as Tune writes them), for the recorders' ``on_trial_error``."""
    import uuid

    from ray.train._internal.storage import StorageContext
    from ray.tune.experiment import Trial

    def make(error: Exception, failures: int = 3, max_failures: int = 2, trial_id: str | None = None) -> Trial:
        place = StorageContext(str(tmp_path / "ray"), "failed", trial_dir_name=f"trial-{uuid.uuid4().hex}")
        trial = Trial("run_trial", config={}, trial_id=trial_id, max_failures=max_failures, stub=True, storage=place)
        trial.init_local_path()
        for _ in range(failures):
            trial.handle_error(error)
        return trial

    return make


def _optuna_deprecates(sampler: str, **options: object) -> bool:
    """Whether the installed Optuna says (a FutureWarning) that these options of ``optuna.samplers.<sampler>`` are
    deprecated: the tests of what sweeper does with such options need one, and Optuna deprecates them by release."""
    import warnings

    import optuna

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        getattr(optuna.samplers, sampler)(seed=0, **options)
    return any(issubclass(w.category, FutureWarning) for w in caught)


@pytest.fixture
def optuna_deprecates() -> Callable[..., bool]:
    return _optuna_deprecates


@pytest.fixture
def optuna_deprecates_prior_weight() -> None:
    """TPE's prior_weight, the deprecated option these tests use, is deprecated from Optuna 5 on; an older Optuna
    (setup.cfg's floor is 4.5) takes it without a word, so there is nothing to test."""
    import optuna

    if not _optuna_deprecates("TPESampler", prior_weight=2.0):
        pytest.skip(f"Optuna {optuna.__version__} does not deprecate TPESampler's prior_weight")
