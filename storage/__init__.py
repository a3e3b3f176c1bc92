"""Where sweeps are recorded: Optuna RDB storages (SQLite by default, PostgreSQL for teams) and their studies.

Modules, one job each (import them directly; this package imports nothing so ``storage.errors`` stays cheap):

- ``storage.errors``: :class:`StorageError`, the one exception for problems the user can fix.
- ``storage.urls``: which URL wins (typed > ``SWEEPER_STORAGE`` > YAML > default), validation, masking.
- ``storage.engine``: ``open_storage`` with SQLite/PostgreSQL tuning and clear connection errors.
- ``storage.studies``: create or resume a study, fresh names, load one that must exist, spec changes on resume.
- ``storage.attrs``: the user-attr names every package writes and reads.
- ``storage.environment``: package versions and git commit for a study's ``environment`` attr.
- ``storage.retry``: the one retry policy for storage operations (an outage is a pause, not a crash).
- ``storage.stall``: cutting a PostgreSQL connection the server never answers.
- ``storage.resume``: heartbeats, and which RUNNING trials belong to a driver that is gone.
- ``storage.locks``: the lock drivers sharing a study take to count its trials and create one.
- ``storage.target``: time to target (when the targets were first met, and at what cost).
- ``storage.reading``: trials for the reading commands, without loading every learning curve.
- ``storage.view``: the study view every reader shares, and when a trial meets the targets.
- ``storage.report``: the HTML report.
- ``storage.export``: one row per trial, as CSV or JSON.

No Ray, no ``sweeper``, no ``search_spaces`` here (``trials.metrics`` alone, for what a metric is): callers
pass plain dicts.
"""
