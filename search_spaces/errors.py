"""Errors that point at the YAML line (or the ``--set`` override) that caused them."""

from __future__ import annotations

from collections.abc import Iterable
from typing import NamedTuple


class SpecIssue(NamedTuple):
    """One problem in a space file. ``line`` is None when the value came from no line of the file (a default, a
    missing section); ``source`` names the ``--set budget.trials=x`` or ``--quick`` that produced the value."""

    file: str
    line: int | None
    field: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        return ": ".join(part for part in (where, self.source, self.field, self.message) if part)


class SpecError(ValueError):
    """A space file that cannot be used: ``str()`` lists every problem, one per line; the attributes are the first's."""

    def __init__(self, issues: Iterable[SpecIssue]) -> None:
        self.issues: list[SpecIssue] = list(issues)
        self.file, self.line, self.field, self.message, self.source = self.issues[0]
        super().__init__("\n".join(map(str, self.issues)))

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[SpecIssue]]]:
        return (type(self), (self.issues,))

    @classmethod
    def single(cls, file: str, message: str, *, line: int | None = None, field: str = "",
               source: str | None = None) -> SpecError:
        return cls([SpecIssue(file, line, field, message, source)])
