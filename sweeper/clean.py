"""``sweeper clean``: delete the checkpoints of a study's finished trials, but the best few's.

Every trial's checkpoint stays when it ends, so the best trials' weights are there to use, and they add up: a
``state.pt`` is 16 bytes a parameter (350 MB for nslt1000's model). Only a RUNNING trial's is read again (a resume
carries it on), so the folders of COMPLETE, PRUNED and FAIL trials may go, while a sweep runs too; the best
``keep`` COMPLETE trials' stay. The study is only read, and each trial's output file (``trial-N.log``) stays.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from storage.report import StudyView
from sweeper.console import console
from sweeper.folders import study_checkpoints, trial_checkpoint_dir


def clean_checkpoints(view: StudyView, url: str, keep: int, results_root: Path, dry_run: bool = False) -> None:
    """Delete (with ``dry_run``, list) the checkpoint folders of the finished trials but the ``keep`` best."""
    name = view.study.study_name
    folder = study_checkpoints(view.study.user_attrs, name, url, results_root)
    kept = [t.number for t in view.complete[:keep]]
    doomed = [path for t in view.trials if t.state.is_finished() and t.number not in kept
              if (path := trial_checkpoint_dir(str(folder), t.number)).is_dir() and not path.is_symlink()]
    if not doomed:
        console.print(f"nothing to delete in {folder}: no finished trial of {name} but the best {len(kept)} has a "
                      "checkpoint folder there", markup=False)
        return
    size = sum(_size(path) for path in doomed)
    for path in doomed:
        if dry_run:
            console.print(f"would delete {path}", markup=False)
        else:
            shutil.rmtree(path)
    best = f"kept the best {len(kept)} ({', '.join(f'#{n}' for n in kept)})" if kept else "kept no COMPLETE trial's"
    console.print(f"{'would free' if dry_run else 'freed'} {_human(size)}: the checkpoints of {len(doomed)} finished "
                  f"trials of {name} in {folder}; {best} and every unfinished trial's", markup=False)


def _size(folder: Path) -> int:
    return sum(os.lstat(os.path.join(root, file)).st_size for root, _, files in os.walk(folder) for file in files)


def _human(size: float) -> str:
    for unit in ("bytes", "KB", "MB"):
        if size < 1000:
            return f"{size:.0f} bytes" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1000
    return f"{size:.1f} GB"
