"""A study's trials as the reading commands need them: every field, but of each learning curve its last value.

Optuna's ``get_all_trials`` makes an ORM object of every intermediate value: listing a study of 5,000 trials of
200 epochs took 25 s and 1.8 GB. ``status``, ``best``, ``report`` and ``export`` need a trial's last value (its
rung, its epochs), a curve's length, and the whole curves of a few top trials only. Those come from Optuna's tables
through SQLAlchemy Core (the schema Optuna's migrations keep: a test compares both reads on SQLite and PostgreSQL).
"""

from __future__ import annotations

import json
import math
import weakref
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import optuna
import sqlalchemy as sa
from optuna.distributions import json_to_distribution
from optuna.storages import RDBStorage
from optuna.trial import FrozenTrial, TrialState

TABLES = ("trials", "trial_values", "trial_params", "trial_user_attributes", "trial_system_attributes",
          "trial_intermediate_values")
UTC_STORED = int(optuna.__version__.split(".")[0]) >= 5
_STORED = {"INF_POS": math.inf, "INF_NEG": -math.inf, "NAN": math.nan}  # a value's type where it is not FINITE


_REFLECTED: weakref.WeakKeyDictionary[sa.Engine, dict[str, sa.Table]] = weakref.WeakKeyDictionary()


def _tables(storage: RDBStorage, study: optuna.Study) -> tuple[dict[str, sa.Table], Any]:
    """Optuna's tables, and a subquery of the study's trial ids. Reflected once per engine: ``status`` reads every
    study of a storage, and asking for the schema again was 3,300 of the 4,100 statements of 50 studies on SQLite."""
    if (tables := _REFLECTED.get(storage.engine)) is None:
        metadata = sa.MetaData()
        metadata.reflect(storage.engine, only=TABLES)
        tables = _REFLECTED[storage.engine] = dict(metadata.tables)
    trials = tables["trials"]
    study_id = storage.get_study_id_from_name(study.study_name)
    return tables, sa.select(trials.c.trial_id).where(trials.c.study_id == study_id).scalar_subquery()


def _local(moment: datetime | None) -> datetime | None:
    """Optuna 5 stores naive UTC and gives local time, as Optuna 4 stored it (optuna/storages/_rdb/models.py)."""
    if moment is None or not UTC_STORED:
        return moment
    return moment.replace(tzinfo=UTC).astimezone().replace(tzinfo=None)


def _value(value: float | None, kind: Any) -> float:
    return _STORED.get(getattr(kind, "name", kind), value)  # type: ignore[arg-type]


def trials_with_last_values(storage: optuna.storages.BaseStorage, study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials in order, each with only its last intermediate value; all of each where ``storage`` is
    not a database."""
    if not isinstance(storage, RDBStorage):
        return study.get_trials(deepcopy=False)
    t, ids = _tables(storage, study)
    fields: dict[str, dict[int, Any]] = {name: defaultdict(dict) for name in ("values", "params", "user", "system")}
    distributions: dict[int, dict[str, Any]] = defaultdict(dict)
    iv = t["trial_intermediate_values"]
    last = sa.select(iv.c.trial_id, sa.func.max(iv.c.step).label("step")).where(iv.c.trial_id.in_(ids)) \
        .group_by(iv.c.trial_id).subquery()
    with storage.engine.connect() as db:
        rows = db.execute(sa.select(t["trials"]).where(t["trials"].c.trial_id.in_(ids))
                          .order_by(t["trials"].c.trial_id)).all()
        for row in db.execute(sa.select(t["trial_values"]).where(t["trial_values"].c.trial_id.in_(ids))):
            fields["values"][row.trial_id][row.objective] = _value(row.value, row.value_type)
        params = t["trial_params"]
        for row in db.execute(sa.select(params).where(params.c.trial_id.in_(ids)).order_by(params.c.param_id)):
            distribution = json_to_distribution(row.distribution_json)
            distributions[row.trial_id][row.param_name] = distribution
            fields["params"][row.trial_id][row.param_name] = distribution.to_external_repr(row.param_value)
        for key, table in (("user", "trial_user_attributes"), ("system", "trial_system_attributes")):
            for row in db.execute(sa.select(t[table]).where(t[table].c.trial_id.in_(ids))):
                fields[key][row.trial_id][row.key] = json.loads(row.value_json)
        curves = {row.trial_id: {row.step: _value(row.intermediate_value, row.intermediate_value_type)}
                  for row in db.execute(sa.select(iv).join(last, (iv.c.trial_id == last.c.trial_id)
                                                           & (iv.c.step == last.c.step)))}
    return [FrozenTrial(
        number=row.number, state=TrialState[getattr(row.state, "name", row.state)], value=None,
        values=[v for _, v in sorted(fields["values"][row.trial_id].items())] or None,
        datetime_start=_local(row.datetime_start), datetime_complete=_local(row.datetime_complete),
        params=fields["params"][row.trial_id], distributions=distributions[row.trial_id],
        user_attrs=fields["user"][row.trial_id], system_attrs=fields["system"][row.trial_id],
        intermediate_values=curves.get(row.trial_id, {}), trial_id=row.trial_id) for row in rows]


def curve_lengths(storage: optuna.storages.BaseStorage, study: optuna.Study) -> dict[int, int]:
    """How many intermediate values each trial of the study reported, by trial id (none: absent)."""
    if not isinstance(storage, RDBStorage):
        return {trial._trial_id: len(trial.intermediate_values) for trial in study.get_trials(deepcopy=False)}
    t, ids = _tables(storage, study)
    iv = t["trial_intermediate_values"]
    with storage.engine.connect() as db:
        return dict(db.execute(sa.select(iv.c.trial_id, sa.func.count()).where(iv.c.trial_id.in_(ids))
                               .group_by(iv.c.trial_id)).all())


def whole_curves(storage: optuna.storages.BaseStorage, trials: Iterable[FrozenTrial]) -> dict[int, dict[int, float]]:
    """Every intermediate value of ``trials`` (a few: the report's top ones), by trial id."""
    return {trial._trial_id: storage.get_trial(trial._trial_id).intermediate_values for trial in trials}
