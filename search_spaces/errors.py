"""Errors that point at the YAML line (or the ``--set`` override) that caused them."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class SpecIssue:
    """One problem in a search-space file.

    ``line`` is 1-based and ``None`` when the value did not come from a line of the file (a missing section, a
    default). ``source`` names where the value came from when it was not the file itself: ``--set budget.trials=x``
    or ``--quick``.
    """

    file: str
    line: int | None
    field: str
    message: str
    source: str | None = None

    def __str__(self) -> str:
        where = self.file if self.line is None else f"{self.file}:{self.line}"
        parts = [where] if where else []
        if self.source:
            parts.append(self.source)
        if self.field:
            parts.append(self.field)
        parts.append(self.message)
        return ": ".join(parts)


class SpecError(ValueError):
    """A search-space file that cannot be used; ``str()`` lists every problem, one per line.

    ``file``, ``line``, ``field`` and ``message`` describe the first problem; ``issues`` holds them all.
    """

    def __init__(self, issues: Iterable[SpecIssue] | SpecIssue) -> None:
        found = [issues] if isinstance(issues, SpecIssue) else list(issues)
        if not found:
            raise ValueError("SpecError needs at least one issue")
        self.issues: list[SpecIssue] = found
        first = found[0]
        self.file = first.file
        self.line = first.line
        self.field = first.field
        self.message = first.message
        self.source = first.source
        super().__init__("\n".join(str(issue) for issue in found))

    def __reduce__(self) -> tuple[type[SpecError], tuple[list[SpecIssue]]]:
        return (type(self), (self.issues,))

    @classmethod
    def single(cls, file: str, message: str, *, line: int | None = None, field: str = "",
               source: str | None = None) -> SpecError:
        return cls(SpecIssue(file=file, line=line, field=field, message=message, source=source))
