"""The one error the storage layer raises for problems the user can fix (bad URL, server down, wrong password).

It subclasses ``ValueError`` so the CLI can treat it like any other bad input: print the message, exit 2.
Messages never contain a password: build them with :func:`storage.urls.mask_url` / ``mask_in_text``.
"""

from __future__ import annotations


class StorageError(ValueError):
    """A storage URL that is wrong, or a database that cannot be opened; the message says what to change."""


class NotAStudyDatabase(StorageError):
    """A database without Optuna's tables: ``empty`` (no tables at all), or holding other tables only or too."""

    def __init__(self, message: str, *, empty: bool) -> None:
        super().__init__(message)
        self.empty = empty


class StudyDeleted(StorageError):
    """The study was deleted while a sweep wrote to it (optuna-dashboard's Delete, ``optuna delete-study``)."""

    def __init__(self) -> None:
        super().__init__("the study was deleted from its storage while this sweep ran (optuna-dashboard's Delete, "
                         "optuna delete-study or another program): nothing more can be recorded, so the sweep stopped")

    @staticmethod
    def explains(exc: BaseException) -> bool:
        """Whether ``exc`` is what Optuna's database storage raises for a study or trial that is not there: its
        KeyError, or an update of a row deleted meanwhile (SQLAlchemy's StaleDataError, "0 were matched")."""
        if isinstance(exc, KeyError) and exc.args == ("Record does not exist.",):
            return True
        return type(exc.__cause__).__name__ == "StaleDataError" and "0 were matched" in str(exc.__cause__)
