"""The data error, in a module without torch: the CLI catches it without paying for importing torch."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset problem, with one message naming the file (or ``synthetic``) and the offending item."""
