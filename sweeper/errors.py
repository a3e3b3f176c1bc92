"""Bad input the user can fix: every such error is printed as one message and exits with code 2."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from search_spaces.errors import SpecError
from storage.errors import StorageError
from storage.retry import error_chain
from trials.errors import ConfigError, DataError

USAGE_EXIT_CODE = 2
NOTHING_FINISHED_EXIT_CODE = 1
INTERRUPTED_EXIT_CODE = 130  # 128 + SIGINT, as a shell reports Ctrl-C; SIGTERM too
STORAGE_UNAVAILABLE_EXIT_CODE = 75  # sysexits' EX_TEMPFAIL: the storage was away too long; run again to resume


class BadInput(ValueError):
    """A flag, file or value that the user gave and must correct."""


BAD_INPUT = (BadInput, ConfigError, DataError, SpecError, StorageError)  # every "the user's input is wrong"


class DiskUnavailable(RuntimeError):
    """A trial's disk took no more writes (full, over quota, read-only): the sweep stopped with its running trials
    RUNNING, and the same command carries them on once there is room. Exit 75, as for a storage that went away."""


DISK_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS)
# torch.save's C++ writer running out of room (it names no errno), or its open failing for one of DISK_ERRNOS
TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "basic_ios::clear", *map(os.strerror, DISK_ERRNOS))


def disk_problem(exc: BaseException, folder: Path) -> str | None:
    """What is wrong with the disk, where ``exc`` says it is full or read-only: every trial would fail alike, and
    a resume once there is room carries them on. torch.save says it only in its C++ writer's words."""
    for error in error_chain(exc):
        if isinstance(error, OSError) and error.errno in DISK_ERRNOS:
            return f"{os.strerror(error.errno)}: {error.filename or folder}"
        if isinstance(error, RuntimeError) and any(w in str(error) for w in TORCH_WRITE_FAILED):
            return f"torch.save could not write, near {folder}: is its disk full? ({str(error).splitlines()[0]})"
    return None


class NothingFinished(RuntimeError):
    """A sweep whose every trial failed: its table is empty, and a script running it must not read success."""
