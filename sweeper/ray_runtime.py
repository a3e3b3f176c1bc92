"""Starting, tuning and leaving Ray for one sweep: a local instance of our own, or a cluster's.

A local Ray's start-up is most of a short sweep's overhead on a small machine (bench/overhead.py), so this
module also holds the few settings that make it start quicker without changing what runs.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import optuna

from storage.urls import mask_in_text, mask_url
from sweeper.errors import BadInput

# Tune must not chdir trials into its results folder (relative data paths would break), nor take over
# Ctrl-C (we want KeyboardInterrupt, exit 130 and a resumable study), nor write its own loggers per trial.
# PL_DISABLE_FORK is what Tune itself sets for every trial actor (ray-project/ray#28197).
RAY_ENV = {
    "RAY_CHDIR_TO_TRIAL_DIR": "0",
    "TUNE_DISABLE_SIGINT_HANDLER": "1",
    "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
    "TUNE_DISABLE_STRICT_METRIC_CHECKING": "1",
    "RAY_USAGE_STATS_ENABLED": "0",
    "RAY_DEDUP_LOGS": "0",
    "RAY_AIR_NEW_OUTPUT": "0",  # with verbose=0 the legacy reporter prints nothing; our own lines say it all
    "PL_DISABLE_FORK": "1",
}
QUIET_LOGGERS = ("ray.tune.analysis.experiment_analysis", "ray.tune.search.searcher", "ray.tune.tune")
# Ray's logs of a failed trial: its frames around the user's, once per trial, then a list of them all. The recorder
# prints the user's frames and the FAIL line says the rest.
TRIAL_FAILURE_LOGS = {"ray.tune.execution.tune_controller": "Trial task failed for trial",
                      "ray.tune.tune": "Trials did not complete"}
# Ray's log, with a pyarrow traceback, of each failed save of its experiment state (a full or read-only results
# folder), which only a Tuner.restore reads, never a sweep: one line, once (``_OneLine``)
EXPERIMENT_STATE_LOG = ("ray.tune.execution.experiment_state", "Saving experiment state to storage at")
# Says "Token authentication is enabled for this Ray cluster" on every new local Ray: news for someone who runs a
# cluster, noise for the Ray a sweep starts for itself. Token authentication itself stays on.
LOCAL_QUIET_LOGGERS = ("ray._private.authentication.authentication_token_setup",)
# Imported by every worker of a local Ray, those it starts ahead of time (one per CPU, where a sweep's trials fill
# them) too, so a sweep's first trials do not wait a second for Tune's import: what every trial actor imports anyway
# (about 110 MB per worker).
WORKER_PRELOAD = ("ray.tune", "sweeper.trainable")
LOCAL_SYSTEM_CONFIG = {
    "preload_python_modules": list(WORKER_PRELOAD),
    # Retry the raylet's first connection to its object store every 50 ms, not every 1000 ms: same 10 s budget,
    # a second less idle waiting at start-up (bench/overhead.py).
    "raylet_client_connect_timeout_milliseconds": 50,
    "raylet_client_num_connect_attempts": 200,
}


ADDRESS_TIMEOUT_S = 5.0
_ADDRESS = re.compile(r"(?:ray://)?(\[[0-9a-fA-F:]+\]|[^\s:/\[\]]+):(\d{1,5})")


def check_ray_address(address: str | None) -> None:
    """Refuse an address Ray cannot join before anything starts: a malformed one raises deep inside ``ray.init``,
    and one where nothing listens has it retry for minutes. ``auto`` and ``local`` are Ray's own words."""
    if address is not None and not address.strip():  # a script's unset $HEAD: the sweep ran here, on no cluster
        raise BadInput("--address is empty; give HOST:PORT of a Ray head (e.g. 10.0.0.5:6379), ray://HOST:PORT, "
                       "auto or local, or leave it out (RAY_ADDRESS, else a Ray of the sweep's own)")
    flag = "--address" if address else "RAY_ADDRESS"
    address = ray_address(address)
    if address in ("auto", "local"):
        return
    match = _ADDRESS.fullmatch(address)
    if match is None or not 0 < int(match[2]) < 65536:
        raise BadInput(f"{flag} {address!r}: expected HOST:PORT of a Ray head (e.g. 10.0.0.5:6379), "
                       "ray://HOST:PORT, auto (the cluster `ray start` left on this machine) or local")
    try:
        head = socket.create_connection((match[1].strip("[]"), int(match[2])), timeout=ADDRESS_TIMEOUT_S)
    except OSError as exc:
        own = "leave out --address" if flag == "--address" else "unset RAY_ADDRESS"  # what the user set
        raise BadInput(f"{flag} {address!r}: no Ray head answers there ({exc.strerror or exc}); start one with "
                       f"`ray start --head`, or {own} for a Ray of the sweep's own") from None
    # Ray's head speaks gRPC, whose first answer is an HTTP/2 SETTINGS frame; Ray retries another service at the
    # address (a Redis on 6379) for many minutes
    with head:
        if os.environ.get("RAY_USE_TLS", "0").lower() in ("1", "true"):  # TLS first: no SETTINGS frame to read
            return
        answer = b""
        with contextlib.suppress(OSError):  # no answer within ADDRESS_TIMEOUT_S is no Ray head either
            head.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(3) + b"\x04" + bytes(5))
            while len(answer) < 4 and (part := head.recv(9)):
                answer += part
    if answer[3:4] != b"\x04":
        raise BadInput(f"{flag} {address!r}: something listens there, but not a Ray head (it does not speak Ray's "
                       "gRPC): give the head's port (`ray start --head --port`, 6379 by default)")


def ray_address(address: str | None) -> str:
    """The Ray the sweep uses: ``--address``, else ``RAY_ADDRESS``, else ``local`` (an instance of its own).

    Never Ray's own default: a bare ``ray.init()`` joins whatever `ray start` left on this machine
    (/tmp/ray/ray_current_cluster), and waits forever on a cluster that has since been stopped."""
    return (address or os.environ.get("RAY_ADDRESS") or "local").strip()


def joins_cluster(address: str | None) -> bool:
    """Whether the sweep joins a Ray that others started rather than starting its own."""
    return ray_address(address) != "local"


def local_gpus() -> int:
    """The GPUs a Ray of our own would offer: what ``ray.init`` counts here, ``CUDA_VISIBLE_DEVICES`` included."""
    from ray._private.accelerators import get_accelerator_manager_for_resource

    manager = get_accelerator_manager_for_resource("GPU")
    visible = manager.get_current_process_visible_accelerator_ids()
    count = manager.get_current_node_num_accelerators()
    return count if visible is None else min(count, len(visible))


class _Muted(logging.Filter):
    def __init__(self, muted: str) -> None:
        super().__init__()
        self.muted = muted

    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith(self.muted)


class _OneLine(logging.Filter):
    """A log starting ``shortened`` in one line, its exception's first line beside it, and each such line once."""

    def __init__(self, shortened: str) -> None:
        super().__init__()
        self.shortened, self.said = shortened, set()

    def filter(self, record: logging.LogRecord) -> bool:
        if not str(record.msg).startswith(self.shortened):
            return True
        error = record.exc_info[1] if record.exc_info else None
        line = f"{record.getMessage().rstrip(': ')}: {type(error).__name__}: {error}" if error else record.getMessage()
        if line in self.said:
            return False
        self.said.add(line)
        record.msg = f"{line.splitlines()[0]} (Ray's own results, which a sweep never reads: the study has every trial)"
        record.args, record.exc_info, record.exc_text = None, None, None
        return True


def start_ray(address: str | None = None, *, workers_ahead: bool = True) -> None:
    """Start (or join, with ``address``/``RAY_ADDRESS``) Ray once per process, with the environment Tune needs.

    ``workers_ahead``: a Ray of our own starts a worker per CPU as it starts, each importing Tune (about 110 MB, 2-3 s
    of CPU), ready for the first trials. A sweep that runs fewer trials at once than there are CPUs would leave the
    rest idle all sweep long, holding their memory: it asks for none ahead, and its trials' workers start on demand."""
    os.environ.update({k: v for k, v in RAY_ENV.items() if k not in os.environ})
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.ERROR)
    for name, muted in TRIAL_FAILURE_LOGS.items():
        logger = logging.getLogger(name)
        if not any(getattr(f, "muted", None) == muted for f in logger.filters):  # once, however often Ray starts
            logger.addFilter(_Muted(muted))
    logger = logging.getLogger(EXPERIMENT_STATE_LOG[0])
    if not any(getattr(f, "shortened", None) for f in logger.filters):
        logger.addFilter(_OneLine(EXPERIMENT_STATE_LOG[1]))
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    import ray
    from ray._private import ray_constants
    from ray._private import utils as ray_utils

    if ray.is_initialized():
        return
    address = ray_address(address)
    # Ray's C++ failure handler takes SIGTERM from Python during ray.init's last moments and aborts the driver on
    # it; the driver's Python handler says what a SIGTERM does (the workers, processes of their own, keep theirs)
    ray_constants.RAY_DISABLE_FAILURE_SIGNAL_HANDLER = True
    # ray.init installs SIGTERM handlers that end the driver its own way (sys.exit(15), or (1) after killing its
    # processes); a program with a handler of its own (the driver's: a Ctrl-C) keeps it throughout
    on_sigterm = signal.getsignal(signal.SIGTERM)
    keep = callable(on_sigterm) and threading.current_thread() is threading.main_thread()
    install = ray_utils.set_sigterm_handler
    if keep:
        ray_utils.set_sigterm_handler = lambda handler: None
    mask_passwords_in_command_line()
    try:
        _init_ray(address, workers_ahead)
    finally:
        ray_utils.set_sigterm_handler = install


def mask_passwords_in_command_line() -> None:
    """Retitle this process with every storage password in its command line masked.

    ``ray.init`` records the driver's command line as its job's entrypoint, which anyone with access to the cluster
    can list for as long as it runs; a ``--storage`` URL there would carry its password into Ray's job table. (The
    title is what ``ps`` shows from now on too.) Only where ``/proc`` says what the command line is.
    """
    try:
        args = [arg.decode(errors="replace") for arg in Path("/proc/self/cmdline").read_bytes().split(b"\0")[:-1]]
    except OSError:
        return
    masked = [masked_arg(arg) for arg in args]
    if masked != args:
        from ray._raylet import setproctitle

        setproctitle(subprocess.list2cmdline(masked))


def masked_arg(arg: str) -> str:
    """One argument (or a ``--set`` expression), its passwords masked; the URL of ``--storage=URL``, ``--set
    storage=URL`` and ``--set=storage=URL`` whole (a password with a space is still in it: free text's masking stops
    at the space), also in the quotes --set's YAML takes (a password holding ' #' needs them)."""
    flag, equals, value = arg.partition("=")
    if not equals or "://" in flag:
        return mask_url(arg)
    return mask_in_text(f"{flag}={masked_arg(value)}", value.strip().strip("'\""))


def _ray_temp_folder() -> str:
    """The folder a local Ray keeps its sessions under, chosen as Ray chooses it (``ray._common.utils``):
    RAY_TMPDIR, else TMPDIR on Linux even where it is missing, else /tmp; not Python's choice, which reads TEMP
    and TMP too and passes over a TMPDIR it cannot write."""
    if "RAY_TMPDIR" in os.environ:
        return os.environ["RAY_TMPDIR"]
    if sys.platform.startswith("linux") and "TMPDIR" in os.environ:
        return os.environ["TMPDIR"]
    return "/tmp" if sys.platform.startswith(("linux", "darwin")) else tempfile.gettempdir()


def check_ray_temp_folder() -> None:
    """A local Ray's sockets live under its temp folder, their paths in at most 107 bytes of ASCII (an HPC job's
    scratch folder is often too long): refused before the study is written, not after Ray failed to start."""
    folder = _ray_temp_folder()
    if os.path.exists(folder) and not os.path.isdir(folder):
        raise BadInput(f"Ray cannot start here: {_start_advice(NotADirectoryError(folder))}")
    socket_path = os.path.join(folder, "ray", f"session_2026-01-01_00-00-00_000000_{os.getpid()}", "sockets",
                               "plasma_store")  # the longest Ray makes there
    if not socket_path.isascii() or len(socket_path.encode()) > 107:
        raise BadInput(f"Ray cannot start with its temp folder {folder}: its sockets' paths there would be "
                       f"{len(socket_path.encode())} bytes{'' if socket_path.isascii() else ' and not ASCII'}, and "
                       "Ray needs at most 107 in ASCII (set RAY_TMPDIR to a short ASCII path, such as /tmp/ray)")


def _start_advice(exc: BaseException) -> str:
    """What to change where a local Ray did not start: its token's folder under HOME, else its temp folder."""
    if isinstance(exc, OSError) and ".ray" in Path(str(exc.filename or "")).parts:
        return f"it keeps its auth token in {Path.home() / '.ray'}: make that writable, or set RAY_AUTH_TOKEN"
    folder = _ray_temp_folder()
    if os.path.exists(folder) and not os.path.isdir(folder):
        return f"its temp folder {folder} is not a folder (set RAY_TMPDIR to a folder: a short ASCII path, such " \
               "as /tmp/ray)"
    free = shutil.disk_usage(folder).free / 2**20 if os.path.isdir(folder) else 0.0
    # a full temp folder, mostly (check_ray_temp_folder refused a long or non-ASCII path before Ray started)
    return f"its temp folder {folder} has {free:.0f} MiB free (set RAY_TMPDIR to another folder: a short ASCII " \
           "path, such as /tmp/ray)"


def _private_token() -> None:
    """Ray writes the token that guards a local Ray (which listens on every interface) as the umask leaves it,
    readable by every user of a machine whose home folders are open: the owner's alone."""
    if not os.environ.get("RAY_AUTH_TOKEN_PATH"):  # a token file of the user's choosing is theirs to mind
        with contextlib.suppress(OSError):
            token = Path.home() / ".ray" / "auth_token"
            if token.stat().st_mode & 0o077:
                token.chmod(0o600)


def _init_ray(address: str, workers_ahead: bool) -> None:
    import ray

    if address == "local":  # our own instance: its workers already have our environment
        for name in LOCAL_QUIET_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        try:
            with processes_in_their_own_session():
                ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False,
                         _system_config={**LOCAL_SYSTEM_CONFIG, "prestart_worker_first_driver": workers_ahead})
        except Exception as exc:  # a full temp folder: a bare Exception ("timed out during startup")
            raise BadInput(f"Ray could not start here ({str(exc)[:200]}); {_start_advice(exc)}") from None
        finally:
            _private_token()
    else:  # a cluster's nodes were started by `ray start`, with their own environment and settings
        try:
            ray.init(address=address, log_to_driver=False, configure_logging=False,
                     runtime_env={"env_vars": {k: os.environ[k] for k in RAY_ENV}})
        except (RuntimeError, ConnectionError) as exc:  # after Ray's retries (RAY_gcs_server_port_wait_time_s)
            # Ray says why (a wrong token: "Unauthenticated") only in its log lines above, not in the exception
            none_there = "Could not find any running Ray instance" in str(exc)  # address auto, nothing started
            raise BadInput(f"could not join Ray at {address!r} ({str(exc)[:200]})" + (
                "" if none_there else ". A cluster with token authentication needs its RAY_AUTH_MODE=token and "
                "RAY_AUTH_TOKEN in this shell too (docs/clusters.md)")) from None


_OWN_GROUPS: list[subprocess.Popen] = []  # Ray's processes that lead a session of their own (and its group)


@contextlib.contextmanager
def processes_in_their_own_session() -> Iterator[None]:
    """The processes a local ``ray.init`` starts (GCS, raylet: their workers and agents follow) in a session of
    their own, where a signal to the driver's process group (``timeout``, ``scancel``, Ctrl-C) does not reach them:
    the driver stops them as it leaves (:func:`kill_local_ray_before_exit`). A SIGTERM to the group as the driver
    registered with its raylet stopped the raylet under a call that holds the GIL, so no thread of the driver could
    leave: Ray's C++ ended it 13 s later, exit 1 ("Failed to register worker to Raylet").

    Only where the kernel ends them with the driver (Linux's parent-death signal, which Ray sets where it can): a
    ``kill -9`` of the driver must not leave them running. Elsewhere Ray's reaper stops them by process group. The
    raylet's two agents (dashboard, runtime env) have no such signal: after a ``kill -9`` of the driver, or now of
    its whole group too, they see their raylet die and exit about a minute later (reporting it to a GCS that is
    gone blocks them that long); nothing of the study depends on them.
    Each one's group is noted in :data:`_OWN_GROUPS`: a driver that leaves while ``ray.init`` still starts them
    stops the raylet's agents too, which would otherwise run on for a minute, until they found their raylet gone."""
    from ray._private import services
    from ray._private.utils import detect_fate_sharing_support

    popen = getattr(services, "ConsolePopen", None)  # private: without it, Ray starts as it always did
    if popen is None or not detect_fate_sharing_support():
        yield
        return

    class OwnSession(popen):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **{**kwargs, "start_new_session": True})
            _OWN_GROUPS.append(self)

    services.ConsolePopen = OwnSession
    try:
        yield
    finally:
        services.ConsolePopen = popen


def is_local_ray() -> bool:
    """Whether this process started the Ray it is connected to (and so its workers inherit our environment)."""
    worker = sys.modules.get("ray._private.worker")  # not imported here: a Ctrl-C may have cut Ray's import short
    node = getattr(worker, "_global_node", None)
    return node is not None and node.is_head()


def trial_actors_on_prestarted_workers() -> None:
    """On a local Ray, create Tune's trial actors without Tune's per-actor runtime env.

    Tune gives every trial actor a runtime env holding a few environment variables (``PL_DISABLE_FORK`` and
    whichever of ``RAY_CHDIR_TO_TRIAL_DIR``, AWS credentials... the driver has). Ray hands an actor only a worker
    started with the same runtime env, so the workers a local Ray starts ahead of time, with Tune already
    imported, sit idle and are killed, while each first trial waits for a fresh worker to start and import Tune:
    1.2 s of a 5 s trial on 2 cores. A local Ray's workers inherit this process's environment, where
    :data:`RAY_ENV` already put those variables, so there the runtime env adds nothing. A cluster keeps it.
    Call after ``start_ray`` and importing Tune; without the (private) class it patches, sweeps only start slower.
    """
    if not is_local_ray():
        return
    import ray
    from ray.tune.execution import class_cache

    cache_cls = getattr(class_cache, "_ActorClassCache", None)
    if cache_cls is None or not hasattr(cache_cls, "get"):
        return

    def get(self, trainable_cls):  # Tune's _ActorClassCache.get, minus the runtime env
        if trainable_cls not in self._cache:
            self._cache[trainable_cls] = ray.remote(trainable_cls)
        return self._cache[trainable_cls]

    cache_cls.get = get


def kill_local_ray_before_exit() -> None:
    """Kill the Ray processes this process started, for a process about to ``os._exit``.

    Only once the driver has written what it will write (every result at a sweep's end; on Ctrl-C, the queued
    writes, drained for a few seconds: what is left runs again on resume). The graceful
    ``ray.shutdown()`` costs seconds (a fixed sleep, then waiting on each process); a joined cluster is left alone.
    Nothing of Ray may be used afterwards: the driver's own connection is not closed, the process exits.
    """
    for leader in _OWN_GROUPS:
        if leader.returncode is None:  # not reaped: its pid, the group's id, is nobody else's yet
            with contextlib.suppress(OSError):
                os.killpg(leader.pid, signal.SIGKILL)
    if not is_local_ray():
        return
    import psutil  # vendored by Ray, on sys.path once ray is imported
    from ray._private import worker

    processes = []
    for infos in worker._global_node.all_processes.values():
        for info in infos:
            try:
                parent = psutil.Process(info.process.pid)
                processes += [*parent.children(recursive=True), parent]  # agents and workers the raylet started
            except psutil.Error:
                continue
    for process in processes:
        with contextlib.suppress(psutil.Error):
            process.kill()


@contextlib.contextmanager
def environment_without(name: str) -> Iterator[None]:
    """``os.environ`` without ``name`` for the duration: processes started meanwhile never see it."""
    value = os.environ.pop(name, None)
    try:
        yield
    finally:
        if value is not None:
            os.environ[name] = value
