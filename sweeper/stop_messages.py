"""What a sweep stopped by its storage says: an outage past ``--storage-timeout``, or a full SQLite disk. Each
names the storage (password masked), says that nothing is lost, and how to carry the sweep on."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

from storage.retry import sqlite_temp_folder
from storage.urls import mask_url, sqlite_path
from sweeper.interrupt_exit import SAME_COMMAND


def outage_message(timeout_s: float, url: str, how: str) -> str:
    """What a sweep stopped by an outage past ``--storage-timeout`` says: one text wherever it stood, that nothing
    is lost and that ``how`` (:func:`sweeper.driver.carry_on`) carries it on, so the user neither starts over
    nor waits."""
    again = "the same command again" if how == SAME_COMMAND else how
    return (f"The storage {mask_url(url)} stayed unreachable for more than {timeout_s:g} s "
            f"(--storage-timeout), so the sweep stopped; nothing it recorded is lost. Run {again} "
            "once the storage is back: finished trials are kept, unfinished ones carried on from their checkpoints.")


def database_full_message(url: str, how: str, clean: str | None = None, results_root: Path | None = None
                          ) -> Callable[[], str] | None:
    """What a sweep stopped by SQLite's "database or disk is full" says (None for a server's database), worded as it
    stops: where to make room, and that ``how`` carries it on. No wait empties that disk, so it stops at once, as for
    a trial's full disk; ``clean`` frees room where ``results_root``, which holds the checkpoints, shares it. The
    disk may be SQLite's temporary folder's (SQLITE_TMPDIR or TMPDIR, a small tmpfs that Ray's files fill): named
    where it is another disk, nearly full, while the database's has room; "make room under" the database's folder
    alone sent the user to a disk with gigabytes free."""
    if (path := sqlite_path(url)) is None:
        return None
    folder = path.absolute().parent

    def said() -> str:
        temp = sqlite_temp_folder()
        if temp is not None and not same_disk(folder, temp) and nearly_full(temp) and not nearly_full(folder):
            return (f"the sweep stopped: {temp}, where SQLite writes the temporary files of its database "
                    f"{mask_url(url)} (SQLITE_TMPDIR, else TMPDIR, else /var/tmp), took no more writes (database or "
                    f"disk is full); make room there, or set SQLITE_TMPDIR to a folder with room, and run {how}: it "
                    "carries the trials on")
        shared = clean is not None and results_root is not None and same_disk(folder, results_root)
        freed = f" ({clean} deletes finished trials' checkpoints, which are never read again)" if shared else ""
        return (f"the sweep stopped: the disk of its database {mask_url(url)} took no more writes (database or disk "
                f"is full); make room under {folder}{freed} and run {how}: it carries the trials on")
    return said


def nearly_full(folder: Path) -> bool:
    """Whether ``folder``'s disk has under 5% free, and under 64 MiB (not counting the blocks kept for root)."""
    try:
        usage = shutil.disk_usage(folder)
    except OSError:
        return False
    return usage.free < min(64 * 2**20, usage.total // 20)


def same_disk(first: Path, second: Path) -> bool:
    try:
        return first.stat().st_dev == second.stat().st_dev
    except OSError:
        return False
