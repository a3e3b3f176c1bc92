"""A study's trials as a table: one row per trial, for a spreadsheet, pandas or a script (``sweeper export``).

The study is the source of truth, so the export is built from it alone: params, state, objective value, every
user attr the driver stored (metrics, epochs, stop reason, error...), start/end times and durations. Columns are
the same for every row (missing values are empty in CSV, ``null`` in JSON) so the file loads as one table.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, TextIO

import optuna

from storage import attrs

FORMATS = ("csv", "json")

FIXED_COLUMNS = ("number", "state", "value", "datetime_start", "datetime_complete", "duration_seconds",
                 "n_intermediate_values", "last_step")
PARAM_PREFIX = "params_"


def trial_rows(trials: Sequence[optuna.trial.FrozenTrial], lengths: Mapping[int, int] | None = None
               ) -> list[dict[str, Any]]:
    """One dict per trial, every dict with the same keys in the same order (see :func:`columns`); ``lengths``:
    how many intermediate values each trial reported, by trial id, where ``trials`` hold the last only."""
    names = columns(trials)
    return [{name: row.get(name) for name in names} for row in (_row(t, lengths) for t in trials)]


def columns(trials: Sequence[optuna.trial.FrozenTrial]) -> list[str]:
    """number, state, value (and ``values_N`` in a multi-objective study), ``params_*`` (in the order trials first
    used them), user attrs, then times and the intermediate values' count and last step.

    A user attr whose name collides with a fixed column (an entrypoint reporting ``state``) is exported as
    ``user_attrs_<name>`` instead of silently replacing it.
    """
    params = _first_seen(t.params for t in trials)
    user = _first_seen(t.user_attrs for t in trials)
    # metrics first, in the order a reader looks for them (attrs.TRIAL_ATTRS); other user attrs sorted by name
    ordered = [a for a in attrs.TRIAL_ATTRS if a in user] + sorted(a for a in user if a not in attrs.TRIAL_ATTRS)
    head, tail = FIXED_COLUMNS[:3], FIXED_COLUMNS[3:]
    objectives = max((len(t.values or ()) for t in trials), default=0)  # several: a multi-objective study
    values = [f"values_{i}" for i in range(objectives)] if objectives > 1 else []
    return [*head, *values, *(PARAM_PREFIX + p for p in params), *(_attr_column(a) for a in ordered), *tail]


def write_rows(rows: list[dict[str, Any]], fmt: str, out: TextIO) -> None:
    """Write ``rows`` to the text stream ``out`` as CSV (header + one line per trial) or a JSON list of objects.

    JSON has no NaN or infinity, so non-finite numbers become ``null`` there (and ``nan``/``inf`` in CSV, which
    spreadsheets and pandas read back); nested values (a dict attr) are JSON text in a CSV cell.
    """
    if fmt == "json":
        json.dump([{k: json_safe(v) for k, v in row.items()} for row in rows], out, indent=2, allow_nan=False)
        out.write("\n")
        return
    if fmt != "csv":
        raise ValueError(f"format must be one of {FORMATS}, not {fmt!r}")
    names = list(rows[0]) if rows else list(FIXED_COLUMNS)
    writer = csv.DictWriter(out, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: _csv_cell(v) for k, v in row.items()})


def _row(trial: optuna.trial.FrozenTrial, lengths: Mapping[int, int] | None) -> dict[str, Any]:
    start, end = trial.datetime_start, trial.datetime_complete
    row: dict[str, Any] = {
        "number": trial.number,
        "state": trial.state.name,
        "value": trial.value if len(trial.values or ()) <= 1 else None,
        "datetime_start": _iso(start),
        "datetime_complete": _iso(end),
        "duration_seconds": (end - start).total_seconds() if start and end else None,
        "n_intermediate_values": len(trial.intermediate_values) if lengths is None else
        lengths.get(trial._trial_id, 0),
        "last_step": max(trial.intermediate_values, default=None),
    }
    if len(trial.values or ()) > 1:
        row.update({f"values_{i}": value for i, value in enumerate(trial.values)})
    row.update({PARAM_PREFIX + name: value for name, value in trial.params.items()})
    row.update({_attr_column(name): value for name, value in trial.user_attrs.items()})
    reason = row.get(attrs.STOP_REASON)  # another tool's attr of that name may hold anything
    if isinstance(reason, str) and reason in attrs.LEGACY_STOP_REASONS:  # an earlier sweeper's trial
        row[attrs.STOP_REASON] = attrs.LEGACY_STOP_REASONS[reason]
    return row


def _attr_column(name: str) -> str:
    return f"user_attrs_{name}" if name in FIXED_COLUMNS or name.startswith(PARAM_PREFIX) else name


def _first_seen(dicts: Iterable[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for d in dicts:
        seen.update(dict.fromkeys(d))
    return list(seen)


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None


def json_safe(value: Any) -> Any:
    """``value`` with non-finite floats as None, nested dicts and lists included (JSON has no NaN)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: json_safe(v) for k, v in value.items()}
    if isinstance(value, list):
        return [json_safe(v) for v in value]
    return value


def _csv_cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, (dict, list)):
        return json.dumps(json_safe(value))
    return value
