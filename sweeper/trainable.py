"""What runs inside each Ray trial worker: the user's (or the shared) training function, unchanged.

The searcher puts a ``_sweeper`` entry (``META_KEY``) in every trial config: what the worker needs from the driver
(the study and the Optuna trial number, the entrypoint and where to import it from, the folder to work in, the
checkpoint folder, the objective and its worst value); the function gets the config without it. The checkpoint
folder is keyed by study and trial number, not by Ray's trial id, so a retried or resumed trial finds its epochs
again even when Ray's results folder is gone.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from ray import tune

from storage import attrs
from storage.retry import error_chain
from sweeper.console import plain, recorded, valued
from sweeper.errors import disk_problem
from sweeper.folders import trial_checkpoint_dir, trial_output_file

# here, not when a trial starts: Ray puts the driver's folder first on a worker's path by then, and a trials/
# folder or trials.py there (a user's own) would stand for sweeper's, failing every trial
from trials.config import ConfigError
from trials.entrypoint import (
    EntrypointError,
    import_target,
    objective_key,
    objective_problem,
    report_problem,
    returned_metrics,
    working_in,
)
from trials.errors import DataError

META_KEY = "_sweeper"
FINAL_FLAG = "sweeper_final"
FAILED_KEY = "sweeper_failed"  # why the trial failed at once, in one line that starts with the exception's name
# a diverged loss (trials.train's, caught by name): the one failure recorded with stop_reason diverged
NON_FINITE_ERROR = "NonFiniteLossError"
# True in a final report whose objective the function neither reported nor returned: the worst value there is a
# stand-in for Tune (which wants the metric in every result), not a value to record
NO_OBJECTIVE_KEY = "sweeper_no_objective"
STOPPED_FILE = "stopped.json"  # in a trial's checkpoint folder: the driver stopped it (see note_stopped)
NODE_KEY = "sweeper_node"  # which Ray node ran the trial, recorded as the trial's `node` attr
RESULT_KEYS = "sweeper_result_keys"  # names of what the training function returned, recorded as trial user attrs
# beside FAILED_KEY: the machine's disk failed the trial (full, over quota, read-only), not the trial itself
DISK_KEY = "sweeper_disk"

def unmade_problem(unmade: OSError | None, exc: BaseException, folder: Path) -> str | None:
    """The disk problem that kept ``folder`` from being made (``unmade``), where ``exc`` names the folder: the
    function's save into it failed for want of it (``open``'s FileNotFoundError, torch.save's "Parent directory
    ... does not exist"), not for the disk's own errno."""
    if unmade is None or not any(str(folder) in str(error) for error in error_chain(exc)):
        return None
    return disk_problem(unmade, folder)


class TrainingFunctionError(RuntimeError):
    """What reaches the driver when the training function raised: ``args`` are its ``ShapeError: ...`` line and
    its traceback from the function's own first frame. A stand-in, not the exception itself: Ray would record the
    TypeError of rebuilding one that pickle cannot (an ``__init__`` with other arguments than the message)."""

    def __str__(self) -> str:
        return "\n\n".join(self.args)


def stand_in(exc: Exception) -> TrainingFunctionError:
    user_frames = exc.__traceback__.tb_next if exc.__traceback__ else None  # not run_trial's own frame
    return TrainingFunctionError(f"{type(exc).__name__}: {exc}",
                                 "".join(traceback.format_exception(exc.with_traceback(user_frames))))


@contextlib.contextmanager
def output_kept(path: Path, *more: Path, header: str = "") -> Iterator[None]:
    """What the trial writes to stdout and stderr (prints, warnings, log lines, subprocesses, C code), appended to
    ``path``: a local Ray keeps its workers' output in its session's temp folder only, which a CI job or a cluster
    node takes with it. The process's descriptors 1 and 2 are pointed at the file while the trial runs, so every
    stream object (a logging handler an earlier trial or the module made) keeps working; where ``path`` cannot be
    written, the output goes where Ray sends it.

    With ``more`` paths (a fused group's members, one process for several trials) the output goes through a pipe
    to every file, each first given ``header``: a member's file says what its trial's process said, as a trial's
    alone does."""
    try:
        logs: list[int] = []
        for each in (path, *more):
            each.parent.mkdir(parents=True, exist_ok=True)
            logs.append(os.open(each, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644))
        for fd in logs if header else ():
            with contextlib.suppress(OSError):  # a full disk loses the line, as the tee loses output: the trial
                os.write(fd, header.encode())  # runs on (raised, it failed the group at once, with no disk stop)
        log, copier = (logs[0], None) if not more else _tee(logs)  # a pipe too many (EMFILE): no file kept open
    except OSError:
        for fd in logs:
            os.close(fd)
        yield
        return
    saved: list[int] = []
    try:
        for stream, fd in ((sys.stdout, 1), (sys.stderr, 2)):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()  # what an earlier trial left buffered goes where it was going
            saved.append(os.dup(fd))
            os.dup2(log, fd)
        yield
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError, AttributeError):
                stream.flush()  # into this trial's file, before the descriptors go back
        for fd, old in zip((1, 2), saved, strict=False):
            os.dup2(old, fd)
            os.close(old)
        os.close(log)
        if copier is not None:  # the pipe's last writer is gone: the copier reads to its end and closes the files
            copier.join(TEE_JOIN_S)  # (a subprocess the trial left running may hold the pipe: it copies on)


TEE_JOIN_S = 5.0


def _tee(logs: list[int]) -> tuple[int, threading.Thread]:
    """A pipe's writing end, and the thread that copies what comes through it into every one of ``logs``."""
    read_end, write_end = os.pipe()

    def copy() -> None:
        try:
            while chunk := os.read(read_end, 65536):
                for fd in logs:
                    with contextlib.suppress(OSError):  # a full disk loses output, as a direct write would
                        os.write(fd, chunk)
        finally:
            for fd in (read_end, *logs):
                os.close(fd)

    copier = threading.Thread(target=copy, name="sweeper-output-tee", daemon=True)
    copier.start()
    return write_end, copier


def note_stopped(checkpoints: str, number: int, user_attrs: dict[str, Any]) -> None:
    """Keep the driver's decision to stop a trial (PRUNED, and its attrs) beside the trial's checkpoints.

    The study is told through the writer's queue; should the storage stay away until the sweep gives up (exit 75),
    that tell is never written, and a resume would carry the trial on to its last epoch, unpruned. A note that
    cannot be written (a results folder this machine cannot reach) only loses that safety net.
    """
    with contextlib.suppress(OSError):
        folder = trial_checkpoint_dir(checkpoints, number)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / STOPPED_FILE).write_text(json.dumps(user_attrs))


def stopped_note(checkpoints: str, number: int) -> dict[str, Any] | None:
    """What :func:`note_stopped` kept for this trial, if anything."""
    try:
        note = json.loads((trial_checkpoint_dir(checkpoints, number) / STOPPED_FILE).read_text())
    except (OSError, ValueError):
        return None
    return note if isinstance(note, dict) else None


def without_meta(config: dict[str, Any]) -> dict[str, Any]:
    """A trial's config as its training function gets it: without the driver's ``META_KEY`` entry (a fused group's
    member's too), which is no training setting."""
    return {k: v for k, v in config.items() if k != META_KEY}


def run_trial(config: dict[str, Any]) -> None:
    """Tune function trainable: report every epoch, then once more with the final metrics and a final flag."""
    exit_when_orphaned()
    meta = config[META_KEY]
    with output_kept(trial_output_file(meta["checkpoints"], meta["number"])):  # the module's import says things too
        # from where the driver checked it, not from the study's work_dir (an attr anyone who may write the
        # database can set), which would put that folder on sys.path ahead of the module the driver found
        train = import_target(meta["entrypoint"], meta.get("base_dir"), meta.get("driver_dir"))
        with working_in(meta.get("work_dir")):
            _run_trial(config, train)


def _run_trial(config: dict[str, Any], train: Callable[..., Any]) -> None:
    """Call ``train`` and turn what it does into Tune reports the recorder reads: each of its reports as it comes,
    then one final report: its returned metrics with ``FINAL_FLAG``, or ``FAILED_KEY`` for a failure a retry would
    repeat (with ``DISK_KEY`` where the disk failed it: the sweep stops, resumable). Any other exception is raised
    for Ray to retry the trial, and Ray's own stop (a ``SystemExit`` from a report) goes through."""
    meta = config[META_KEY]
    trial_config = without_meta(config)
    checkpoint_dir = trial_checkpoint_dir(meta["checkpoints"], meta["number"])
    unmade: OSError | None = None  # why the folder could not be made: the function's first save into it fails
    try:  # a folder, as README promises: torch.save makes no parents
        checkpoint_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        unmade = exc
    reported: dict[str, Any] = {}  # everything the function reported, each key's last value
    node = current_node()
    returned, stopped = threading.Event(), threading.Event()

    def report(metrics: dict[str, Any]) -> None:
        if returned.is_set():  # a thread of the function's, after it returned: it would land in the next trial
            raise RuntimeError("report() was called after the training function returned")
        if problem := report_problem(meta["entrypoint"], metrics):  # a retry would train it all again
            raise EntrypointError(problem)
        metrics = own_names(plain(metrics))
        reported.update(recorded(metrics))  # the schedulers pass a None over too
        try:
            tune.report({**metrics, NODE_KEY: node})
        except SystemExit:  # how Ray stops a trial (a scheduler's STOP, the sweep's end): let it through
            stopped.set()
            raise

    def last() -> dict[str, Any]:  # the last epoch's metrics; the worst objective when none was reported
        return {"epoch": 0, meta["metric"]: meta["worst"], **reported, NODE_KEY: node}

    try:
        result = returned_metrics(meta["entrypoint"], train(trial_config, report, str(checkpoint_dir)))
    except EntrypointError as exc:  # it returned something else: that will not change on a retry
        tune.report({**last(), FAILED_KEY: f"TypeError: {exc}"})
        return
    except Exception as exc:
        # bad data, a refused config, a diverged loss: a retry would fail again, so fail now, in one line
        if isinstance(exc, ConfigError | DataError) or type(exc).__name__ == NON_FINITE_ERROR:
            tune.report({**last(), FAILED_KEY: f"{type(exc).__name__}: {exc}"})
            return
        # not a retry, not a FAIL: the sweep stops, resumable (a save into the folder a full disk kept from being
        # made says only that the folder is missing: the disk's error is the mkdir's)
        if disk := disk_problem(exc, checkpoint_dir) or unmade_problem(unmade, exc, checkpoint_dir):
            tune.report({**last(), FAILED_KEY: f"{type(exc).__name__}: {exc}", DISK_KEY: disk})
            return
        raise stand_in(exc) from None  # Ray copies every exception in the chain, and this one would fail again
    except SystemExit as exc:
        if stopped.is_set():
            raise
        # the function's own exit (argparse reading Ray's command line, a script's sys.exit): the same on a retry
        tune.report({**last(), FAILED_KEY: f"SystemExit: {meta['entrypoint']} exited ({exc.code!r}) instead of "
                                           "returning; does it call sys.exit, or parse the command line (argparse)?"})
        return
    finally:
        returned.set()
    verb = "returned" if result is not None else "last reported"
    result = own_names(plain(result)) if result is not None else dict(reported)  # nothing returned: its last report
    # the objective, which the last report must not silently stand in for
    if problem := objective_problem(meta["entrypoint"], verb, result, objective_key(result, meta["metric"])):
        tune.report({**last(), FAILED_KEY: f"TypeError: {problem}"})
        return
    given = {k for values in (reported, result) for k, v in values.items() if v is not None}  # None: no value
    # ...so it does not wipe out that metric's last report, which stands as for a key not returned
    returned_values = valued(result)
    tune.report({**last(), **returned_values, FINAL_FLAG: True, RESULT_KEYS: sorted(result),
                 NO_OBJECTIVE_KEY: meta["metric"] not in given and "best_" + meta["metric"] not in given})


def own_names(metrics: dict[str, Any]) -> dict[str, Any]:
    """The function's values under names Ray Tune sets itself as ``returned_NAME``: Ray's would replace them, and a
    ``done`` ended the trial after that epoch, recorded PRUNED with no scheduler to stop it."""
    return {f"returned_{k}" if k in attrs.RAY_RESULT_KEYS else k: v for k, v in metrics.items()}


def current_node() -> str:
    """``10.0.0.7/3f2a9c1b``: the node's IP and the start of its Ray node id (two nodes may share an IP)."""
    import ray

    return f"{ray.util.get_node_ip_address()}/{ray.get_runtime_context().get_node_id()[:8]}"


_watching = threading.Lock()
ORPHAN_POLL_S = 2.0


def exit_when_orphaned() -> None:
    """End this worker process as soon as the raylet that started it is gone.

    Ray starts each worker in a process group of its own, so ``kill -9`` of a driver's process group takes the
    local raylet with it but not the workers: they train on, holding a GPU, until they block on a report nobody
    reads. A worker whose parent changed has lost its raylet and can never report again; it exits within
    :data:`ORPHAN_POLL_S`. Its epochs are checkpointed, so the resumed sweep carries the trial on. One watcher
    per process (Tune reuses actors across trials).
    """
    if not _watching.acquire(blocking=False):
        return
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(ORPHAN_POLL_S)
        os._exit(1)

    threading.Thread(target=watch, name="sweeper-orphan-watch", daemon=True).start()


def worst_value(direction: str) -> float:
    return -math.inf if direction == "maximize" else math.inf
