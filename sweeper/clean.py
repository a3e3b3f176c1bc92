"""``sweeper clean``: delete the checkpoints of a study's finished trials, but the ones worth keeping.

Every trial's checkpoint stays when it ends, so the best trials' weights are there to use, and they add up: a
``state.pt`` is 16 bytes a parameter (350 MB for nslt1000's model). Only a RUNNING trial's is read again (a resume
carries it on), so the folders of COMPLETE, PRUNED and FAIL trials may go, while a sweep runs too; the best
``keep`` COMPLETE trials' stay, and those of the trials that met the targets (the first, and the best). The study
is only read, each trial's output file (``trial-N.log``) stays, and it deletes only in the folder it runs in (or
below) or under the ``--results-dir`` given.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

from storage import attrs
from storage.view import StudyView
from sweeper.console import console
from sweeper.errors import BadInput
from sweeper.folders import here_or_below, study_checkpoints, trial_checkpoint_dir
from sweeper.inspection import is_sweepers


def clean_checkpoints(view: StudyView, url: str, keep: int, results_root: Path, dry_run: bool = False) -> None:
    """Delete (with ``dry_run``, list) the checkpoint folders of the finished trials not worth keeping."""
    name = view.study.study_name
    folder = study_checkpoints(view.study, url, results_root)
    # the folder is a study attr, which anyone who may write the database sets: only where the user points
    if not here_or_below(folder) and not folder.resolve().is_relative_to(results_root.resolve()):
        raise BadInput(f"study {name!r} keeps its checkpoints in {folder}, which is neither in this folder nor under "
                       f"--results-dir {results_root}: sweeper clean deletes only there; give the run's results "
                       f"folder (--results-dir {folder.parent.parent}) or run it from a folder above")
    if not folder.is_dir():  # not "kept the best 3" of checkpoints clean never saw
        if attrs.CHECKPOINTS not in view.study.user_attrs and not is_sweepers(view):
            raise BadInput(f"study {name!r} holds no sweeper spec: another program made it, and recorded no "
                           "checkpoint folder for sweeper clean to delete in")
        if attrs.CHECKPOINTS not in view.study.user_attrs and any(t.state.is_finished() for t in view.trials):
            raise BadInput(f"study {name!r} was made by an earlier sweeper, which did not record where its checkpoints "
                           f"are, and {folder} does not exist: give the --results-dir its first run had (from the "
                           "folder it ran in, for a relative one); if its checkpoints are gone, there is nothing to "
                           "clean")  # a guess at where they are, which missed
        console.print(f"nothing to delete: {folder}, where {name} keeps its checkpoints, does not exist (deleted or "
                      "moved, or the study trained on another machine)", markup=False)
        return
    best = [t.number for t in view.complete[:keep]]
    met = list(dict.fromkeys(t.number for t in (view.first_meeting_targets(), view.best_meeting_targets())
                             if t is not None and t.number not in best))
    kept = {*best, *met}
    doomed = [path for t in view.trials if t.state.is_finished() and t.number not in kept
              if (path := trial_checkpoint_dir(str(folder), t.number)).is_dir() and not path.is_symlink()]
    first_and_best = "the first to meet the targets" if len(met) == 1 else "the first and the best to meet the targets"
    saying = ", ".join([*([f"the best {len(best)} ({_numbers(best)})"] if best else []),
                        *([f"{first_and_best} ({_numbers(met)})"] if met else []),
                        "every unfinished trial's"])
    if not doomed:
        console.print(f"nothing to delete in {folder}: kept {saying}", markup=False)
        return
    size = deleted = gone = 0
    for path in doomed:
        if dry_run:
            size += _size(path)
            console.print(f"would delete {path}", markup=False)
            continue
        try:
            freed = _size(path)
            if _delete(path):
                size, deleted = size + freed, deleted + 1
            else:
                gone += 1
        except OSError as exc:  # a read-only disk, another user's folder: said in one line, not a traceback
            raise BadInput(f"cannot delete {path}: {exc.strerror or exc}; it deleted {deleted} of the "
                           f"{len(doomed)} folders before it (run it as the user who ran the sweep, where the disk "
                           "takes writes)") from None
    count = len(doomed) if dry_run else deleted
    already = f" ({gone} more went meanwhile: another sweeper clean, or a user, deleted them)" if gone else ""
    console.print(f"{'would free' if dry_run else 'freed'} {_human(size)}: the checkpoints of "
                  f"{count} finished trial{'s' * (count != 1)} of {name} in {folder}{already}; kept "
                  f"{saying}", markup=False)


def _delete(path: Path) -> bool:
    """Delete ``path``, a folder; False where it was gone first. Two cleans of one study (or a user's rm) delete the
    same folders at once: a file or folder the other deleted first is no failure ("cannot delete ...: No such file
    or directory", exit 2, from a clean that had nothing left to do)."""
    while True:
        try:
            shutil.rmtree(path)
            return True
        except FileNotFoundError:  # a part of it went meanwhile: what is left, again
            if not os.path.lexists(path):
                return False


def _numbers(numbers: list[int]) -> str:
    return ", ".join(f"#{n}" for n in numbers)


def _size(folder: Path) -> int:
    """The bytes of the files in ``folder`` that are still there: another clean may be deleting them."""
    sizes = []
    for root, _, files in os.walk(folder):
        for file in files:
            with contextlib.suppress(FileNotFoundError):
                sizes.append(os.lstat(os.path.join(root, file)).st_size)
    return sum(sizes)


def _human(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
