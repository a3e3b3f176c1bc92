"""Where sweeps are recorded: Optuna RDB storages (SQLite by default, PostgreSQL for teams) and their studies.

Modules, one job each (import them directly; this package imports nothing so ``storage.errors`` stays cheap):

- ``storage.errors``: :class:`StorageError`, the one exception for problems the user can fix.
- ``storage.urls``: which URL wins (``--storage`` > ``SWEEPER_STORAGE`` > YAML > default), validation, masking.
- ``storage.engine``: ``open_storage`` with SQLite/PostgreSQL tuning and clear connection errors.
- ``storage.studies``: create or resume a study, fresh names, load one that must exist.
- ``storage.attrs``: the user-attr names every package writes and reads.
- ``storage.environment``: package versions and git commit for a study's ``environment`` attr.

No Ray, no ``sweeper``, no ``search_spaces`` here: callers pass plain dicts.
"""
