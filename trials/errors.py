"""The training core's errors, in a module without torch or NumPy: the CLI catches them without importing either."""

from __future__ import annotations


class DataError(ValueError):
    """A dataset problem, with one message naming the file (or ``synthetic``) and the offending item."""


class ConfigError(ValueError):
    """A configuration key or value that the training core does not accept; ``key`` names the setting at fault,
    ``partners`` the settings a rule judges it beside (``lr`` for ``min_lr <= lr``)."""

    def __init__(self, message: str, key: str = "", partners: tuple[str, ...] = ()) -> None:
        super().__init__(message)
        self.key, self.partners = key, partners
