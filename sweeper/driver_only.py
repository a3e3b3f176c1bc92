"""Driver objects that Ray Tune must never write to disk: they hold the study, and so the storage password.

Tune pickles its searcher, scheduler, callbacks and stopper into ``tuner.pkl`` and ``search_gen_state-*.json``
under the results folder (and Ray's session folder) for a ``Tuner.restore`` that sweeper never does: a sweep
resumes from the study. Those folders are often shared (``--results-dir`` on a cluster) or world-readable
(``/tmp/ray``), so what Tune writes of these objects is only their class name.
"""

from __future__ import annotations

from typing import Any, NoReturn


class DriverOnly:
    """Pickles to a stub that refuses to load; ``copy.deepcopy`` (Tune copies experiment specs) keeps the object."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return _not_restorable, (type(self).__name__,)

    def __deepcopy__(self, memo: dict[int, Any]) -> DriverOnly:
        return self


def _not_restorable(name: str) -> NoReturn:
    raise RuntimeError(f"sweeper's {name} is not saved with Ray's results: resume the study with sweeper run or "
                       "sweeper resume, not Tuner.restore.")
