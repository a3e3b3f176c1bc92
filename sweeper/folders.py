"""Where a study's files lie: its checkpoint folder, each trial's folder and output, and a copied or moved
project's own folders. Free of Ray, so the reading commands say it too."""

from __future__ import annotations

import hashlib
import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storage import attrs
from storage.urls import sqlite_path
from sweeper.errors import BadInput

if TYPE_CHECKING:  # a type only: this module stays free of Optuna as of Ray
    import optuna

RESULTS_DIR = "sweeper_runs"  # --results-dir's default: checkpoints and Ray's results, under the folder it runs in


def check_folder_name(name: str) -> None:
    """A study name is a folder name too, which a locale whose file system encoding cannot hold it (LC_ALL=C with
    PYTHONUTF8=0: ASCII) refuses: ``sweeper run`` of a study named café wrote the study, then failed with a
    UnicodeEncodeError on its first folder and left its first trial RUNNING. Bad input instead, before any write."""
    try:
        os.fsencode(name)
    except UnicodeEncodeError:
        raise BadInput(f"The study name {name!r} is also a folder name, which this locale's file system encoding "
                       f"({sys.getfilesystemencoding()}) cannot hold: run sweeper under a UTF-8 locale (e.g. "
                       "LC_ALL=C.UTF-8) or with PYTHONUTF8=1, or name the study in ASCII (--set name=...).") from None


def checkpoint_folder(found: Mapping[str, Any], name: str, results_root: Path) -> Path:
    """Where the study ``name`` (its attrs ``found``) checkpoints: the folder its first run chose, wherever this run
    was started from; where that run's results folder is not on this machine, a folder of the same name under this
    run's.

    Only a folder shaped as a first run makes it (``.../checkpoints/NAME``): the attr is anyone's who may write the
    database, and trials write (and move aside) folders in it.
    """
    recorded = found.get(attrs.CHECKPOINTS)
    stored = Path(recorded) if isinstance(recorded, str) and recorded else results_root / "checkpoints" / name
    if stored.name in ("", ".", ".."):
        stored = Path(name)
    shaped = stored.is_absolute() and stored.parent.name == "checkpoints" and stored.parent.is_dir()
    return stored if shaped else results_root / "checkpoints" / stored.name


def study_checkpoints(study: optuna.Study, url: str | None, results_root: Path = Path(RESULTS_DIR)) -> Path:
    """The checkpoint folder of ``study`` in the storage at ``url``, as its next run takes it: a copied or moved
    project's own (:func:`relocated`; no storage named, the folder recorded). What every reader of a study (status,
    best, clean) asks; the driver, which reads the attrs riding out an outage, asks :func:`checkpoint_folder`."""
    found = study.user_attrs  # a read of the storage
    moved = relocated(found, url, results_root) if url is not None else None
    return checkpoint_folder({**found, **(moved or {})}, study.study_name, results_root)


def here_or_below(folder: Path) -> bool:
    """Whether a command may import a study's code from ``folder``, or delete in it (a study attr, which anyone who
    may write the database sets): only where it runs, or below."""
    return folder.resolve().is_relative_to(Path.cwd().resolve())


def trial_checkpoint_dir(checkpoints: str, number: int) -> Path:
    """A trial's own folder in its study's checkpoint folder (the study attr ``checkpoints``)."""
    return Path(checkpoints) / f"trial-{number:05d}"


def kept_checkpoint(checkpoints: str, number: int) -> bool:
    """Whether the trial saved anything in its folder: the folder itself is made before the function starts."""
    return any(trial_checkpoint_dir(checkpoints, number).glob("*"))


def trial_output_file(checkpoints: str, number: int) -> Path:
    """Beside the trial's folder, not in it: a training function may take any file there for a checkpoint."""
    return Path(checkpoints) / f"trial-{number:05d}.log"


def relocated(found: Mapping[str, Any], url: str, results_root: Path) -> dict[str, str] | None:
    """The study's folders where its SQLite file is not the one they were recorded with: a project copied or moved
    with its database (``cp -a``, ``mv``). The paths' common tail tells the first project's folder from this one's
    (``/a/proj/dbs/sweeps.db`` -> ``/b/copy/dbs/sweeps.db``: ``/a/proj`` is ``/b/copy``); a recorded folder under
    it moves to the same place under this one, else the checkpoints go to this run's results folder and the trials
    to this folder. A file moved or copied alone, whose project did not come with it (no checkpoints or space file
    at their places), keeps the study's folders. None for the same file, and for a server's study, which drivers in
    several folders share; a study of a sweeper before the ``database`` attr is told by the checkpoint folder a
    copy brought along."""
    database = sqlite_path(url)
    if database is None:
        return None
    database, checkpoints = database.resolve(), Path(str(found.get(attrs.CHECKPOINTS) or ""))
    recorded = found.get(attrs.DATABASE)
    if isinstance(recorded, str):
        if Path(recorded) == database:
            return None
        then, now = _moved_roots(Path(recorded), database)
        if not _came_along(found, then, now):
            return {attrs.DATABASE: str(database)}
    else:
        own = results_root.resolve() / "checkpoints" / checkpoints.name
        if checkpoints.name in ("", "..") or not own.is_dir() or own == checkpoints.resolve():
            return None
        then, now = _moved_roots(checkpoints, own)

    def carried(folder: Any, elsewhere: Path) -> str:  # moved where it came along, or where it is gone
        moves = isinstance(folder, str) and Path(folder).is_relative_to(then) and (
            (mapped := now / Path(folder).relative_to(then)).exists() or not Path(folder).exists())
        return str(mapped if moves else elsewhere)

    elsewhere = results_root.resolve() / "checkpoints" / checkpoints.name
    if elsewhere == checkpoints and isinstance(recorded, str) and Path(recorded).exists():  # a results folder that
        elsewhere = elsewhere.with_name(f"{checkpoints.name}-{_digest(database)}")  # both live copies share
    moved = {attrs.DATABASE: str(database), attrs.WORK_DIR: carried(found.get(attrs.WORK_DIR), Path.cwd())}
    if checkpoints.name not in ("", ".."):
        moved[attrs.CHECKPOINTS] = carried(str(checkpoints), elsewhere)
    if isinstance(space_dir := found.get(attrs.SPACE_DIR), str):
        moved[attrs.SPACE_DIR] = carried(space_dir, Path(space_dir))
    return moved


def _moved_roots(before: Path, after: Path) -> tuple[Path, Path]:
    """The two paths without their common tail: the folder that became the other."""
    common = 0
    while common < min(len(before.parts), len(after.parts)) - 1 and \
            before.parts[-1 - common] == after.parts[-1 - common]:
        common += 1
    return Path(*before.parts[:len(before.parts) - common]), Path(*after.parts[:len(after.parts) - common])


def _came_along(found: Mapping[str, Any], then: Path, now: Path) -> bool:
    """Whether the project came with its SQLite file: its checkpoint folder or its space file is at its place under
    ``now`` (where either is at one place or the other), else this run works where the first one did; with no
    sign either way it is taken to have come (a wrong guess fails loudly on the data)."""
    checkpoints, work_dir = found.get(attrs.CHECKPOINTS), found.get(attrs.WORK_DIR)
    signs, places = [], [checkpoints]
    if isinstance(found.get(attrs.SPACE_DIR), str):
        places.append(attrs.space_file(found))
    for path in places:
        if isinstance(path, str) and Path(path).is_relative_to(then):
            mapped = now / Path(path).relative_to(then)
            if mapped.exists() or Path(path).exists():
                signs.append(mapped.exists())
    if not signs and isinstance(work_dir, str) and Path(work_dir).is_relative_to(then):
        signs.append(Path.cwd().resolve() == now / Path(work_dir).relative_to(then))
    return any(signs) or not signs


def _digest(path: Path) -> str:
    return hashlib.sha256(str(path).encode()).hexdigest()[:8]
