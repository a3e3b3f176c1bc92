"""Bad input the user can fix: every such error is printed as one message and exits with code 2."""

from __future__ import annotations

from search_spaces.errors import SpecError
from storage.errors import StorageError
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


class NothingFinished(RuntimeError):
    """A sweep whose every trial failed: its table is empty, and a script running it must not read success."""
