"""Studies in a storage: create or resume one, pick a fresh name, load one that must exist, and tell what a
resume would change in its spec.

A study is created once and then resumed by name; here its user attrs (spec, targets, ...; see :mod:`storage.attrs`)
are only filled in where missing (``sweeper.driver.open_study`` updates the spec and baseline a resume may change).
Nothing here deletes a study: a fresh start gets a fresh name.
"""

from __future__ import annotations

import difflib
import json
import math
import re
from collections.abc import Mapping
from typing import Any

import optuna
from optuna.storages import BaseStorage
from optuna.study import StudyDirection
from optuna.trial import TrialState

from storage.errors import StorageError
from storage.urls import mask_url

MAX_STUDY_NAME_LENGTH = 512  # Optuna's studies.study_name column


def create_or_load_study(
    storage: BaseStorage,
    name: str,
    direction: str | StudyDirection,
    sampler: optuna.samplers.BaseSampler | None = None,
    *,
    study_attrs: Mapping[str, Any] | None = None,
    only_new: bool = False,
) -> tuple[optuna.Study, bool]:
    """The study called ``name``, created if it does not exist; returns ``(study, created)``.

    ``study_attrs`` are written on creation; on resume only keys the study lacks are added (it may gain
    ``environment``; its ``spec`` is left as stored, for the caller to update). Resuming with the opposite
    ``direction`` raises :class:`StorageError`: ``load_study`` takes the stored direction, so the sweep would
    optimise the wrong way. Two processes racing to create the same name both succeed; one creates. ``only_new``
    (``--fresh``, whose name was free a moment ago) raises :class:`StorageError` instead of loading, writing nothing.
    """
    wanted = _direction(direction)
    _check_name(name)
    attrs = dict(study_attrs or {})
    for key, value in attrs.items():
        try:
            json.dumps(value)
        except (TypeError, ValueError) as exc:
            raise StorageError(f"Study attr {key!r} cannot be stored (it must be plain JSON data): {exc}") from None
    try:
        study = optuna.create_study(storage=storage, study_name=name, direction=wanted, sampler=sampler)
        created = True
    except optuna.exceptions.DuplicatedStudyError:
        if only_new:
            raise StorageError(
                f"Study {name!r} was made a moment ago by another sweep (two --fresh runs started together?), and "
                "--fresh never joins a study: nothing was written. Run the same command again for a study of its "
                "own.") from None
        created = False
    if not created:  # loaded outside the except, so that a connection dropped meanwhile does not carry the duplicate
        # name's unique violation in its chain (the outage policy waits it out)
        study = optuna.load_study(storage=storage, study_name=name, sampler=sampler)
        if study.directions != [wanted]:
            found = ",".join(d.name.lower() for d in study.directions)
            raise StorageError(
                f"Study {name!r} already exists and optimises {found}, but this sweep asks to {wanted.name.lower()}: "
                "choose another study name, or fix the objective's direction."
            ) from None
    existing = {} if created else study.user_attrs
    for key, value in attrs.items():
        if key not in existing:
            study.set_user_attr(key, value)
    return study, created


def trials_counted(study: optuna.Study) -> int:
    """The trials that count against a sweep's budget: every one started (an enqueued one, WAITING, is not yet)."""
    started = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL, TrialState.RUNNING)
    return len(study.get_trials(deepcopy=False, states=started))


def holds_trials(storage: BaseStorage, study_id: int) -> bool:
    """Whether the study holds any trial, read as one row: Optuna numbers a study's trials from 0 and deletes none,
    so #0 is there exactly when one is. ``get_n_trials`` loads every trial with its whole learning curve to count
    them (3.8 s for a study of 2,000 trials of up to 50 epochs, on each ``sweeper run`` that resumed it)."""
    try:
        storage.get_trial_id_from_study_id_trial_number(study_id, 0)
    except KeyError:
        return False
    return True


def study_exists(storage: BaseStorage, name: str) -> bool:
    """Whether a study called ``name`` is in ``storage``."""
    try:
        storage.get_study_id_from_name(name)
    except KeyError:
        return False
    return True


def fresh_study_name(storage: BaseStorage, name: str) -> str:
    """``name`` if unused, else ``name-N`` with N one more than the highest taken (from 2): never a reused name.

    Used for "start over" so the old study stays for comparison; nothing is deleted.
    """
    _check_name(name)
    names = {study.study_name for study in storage.get_all_studies()}
    if name not in names:
        return name
    numbered = re.compile(re.escape(name) + r"-(\d+)")
    taken = [int(match[1]) for other in names if (match := numbered.fullmatch(other))]
    fresh = f"{name}-{max([1, *taken]) + 1}"
    _check_name(fresh)
    return fresh


def _direction(direction: str | StudyDirection) -> StudyDirection:
    if isinstance(direction, StudyDirection) and direction != StudyDirection.NOT_SET:
        return direction
    if direction not in ("maximize", "minimize"):
        raise StorageError(f"A study's direction is 'maximize' or 'minimize', not {direction!r}.")
    return StudyDirection[str(direction).upper()]


def _check_name(name: str) -> None:
    if not name or not name.strip():
        raise StorageError("A study needs a name.")
    if len(name) > MAX_STUDY_NAME_LENGTH:
        raise StorageError(f"Study names are at most {MAX_STUDY_NAME_LENGTH} characters; {name[:40]!r}... is longer.")


MAX_NAMES_LISTED = 20  # "Studies there: ..." stays one readable line on a server shared by a whole team


def load_existing_study(storage: BaseStorage, name: str, url: str) -> optuna.Study:
    """The study called ``name``, which must already exist: read-only commands must never create one.

    ``optuna.load_study`` on a missing name raises a bare ``KeyError``; this says where it looked (``url``,
    masked), the closest name, and what is there, so a typo is fixed in one go. Raises :class:`StorageError`.
    """
    if study_exists(storage, name):
        return optuna.load_study(study_name=name, storage=storage)
    names = [study.study_name for study in storage.get_all_studies()]
    where = mask_url(url)
    if not names:
        raise StorageError(f"There are no studies in {where} yet: run a sweep first (sweeper run SPACE).")
    # a name typed in another case (ALLFAIL for allfail) is too far off for difflib, which compares case
    close = [n for n in names if n.casefold() == name.casefold()] or difflib.get_close_matches(name, names, n=1)
    hint = f"; did you mean {close[0]!r}?" if close else "."
    listed = ", ".join(names[:MAX_NAMES_LISTED])
    if len(names) > MAX_NAMES_LISTED:
        listed += f" (and {len(names) - MAX_NAMES_LISTED} more)"
    raise StorageError(f"No study named {name!r} in {where}{hint} Studies there: {listed}")


# Sections of a spec that may change when a study is resumed: how much to run and where, and what reports compare
# with, not what is searched.
RESUMABLE_SECTIONS = frozenset({"budget", "resources", "storage", "description", "enqueue", "quick", "baseline"})
# Sections whose values reach the training function as written: 1, 1.0 and true are equal in Python, not to it.
AS_WRITTEN_SECTIONS = frozenset({"training", "params"})


def spec_changes(stored: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What differs between a study's stored spec and a new one, outside :data:`RESUMABLE_SECTIONS`.

    ``["training.epochs: 30 -> 40", "params.lr: added"]``; empty when resuming is safe. Both are the plain
    ``Spec.to_yaml_dict()`` form; the stored one went through JSON, so tuples became lists.
    """
    changes: list[str] = []
    _diff(_jsonish({k: v for k, v in stored.items() if k not in RESUMABLE_SECTIONS}),
          _jsonish({k: v for k, v in new.items() if k not in RESUMABLE_SECTIONS}), "", changes)
    return changes


def default_changes(ran: Any, now: Mapping[str, Any] | None, left: list[str]) -> list[str]:
    """``["noise: 0.5 -> 0.9"]``: the defaults of the settings ``left`` to them (a space sets neither) that the
    entrypoint declares ``now`` otherwise than when the study's trials ran (``ran``, the ``defaults`` attr; none
    for a study from before it, which has nothing to compare). A setting added or removed since is no change."""
    old, new = (_jsonish(dict(d)) if isinstance(d, Mapping) else {} for d in (ran, now))
    return [f"{key}: {old[key]!r} -> {new[key]!r}" for key in left
            if key in old and key in new and _differ(old[key], new[key], as_written=True)]


def _diff(old: Any, new: Any, where: str, out: list[str]) -> None:
    if isinstance(old, dict) and isinstance(new, dict):
        for key in sorted(set(old) | set(new), key=str):
            path = f"{where}.{key}" if where else str(key)
            if key not in new:
                out.append(f"{path}: removed")
            elif key not in old:
                out.append(f"{path}: added")
            else:
                _diff(old[key], new[key], path, out)
    elif _differ(old, new, as_written=where.split(".")[0] in AS_WRITTEN_SECTIONS):
        out.append(f"{where}: {old!r} -> {new!r}")


def _differ(old: Any, new: Any, as_written: bool) -> bool:
    if as_written:  # choices [1, 2] -> [1.0, 2.0] give a trial 1.0, which range() refuses; JSON tells them apart
        return json.dumps(old, sort_keys=True) != json.dumps(new, sort_keys=True)
    return old != new and not (_nan(old) and _nan(new))  # NaN != NaN, but a value that was NaN is unchanged


def _nan(value: Any) -> bool:
    return isinstance(value, float) and math.isnan(value)


def _jsonish(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))
