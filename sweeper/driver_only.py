"""Driver objects that Ray Tune must never write to disk: they hold the study, and so the storage password.

Tune pickles its searcher, scheduler, callbacks and stopper into ``tuner.pkl`` and ``search_gen_state-*.json``
under the results folder (and Ray's session folder) for a ``Tuner.restore`` that sweeper never does: a sweep
resumes from the study. Those folders are often shared (``--results-dir`` on a cluster) or world-readable
(``/tmp/ray``), so what Tune writes of these objects is only their class name.
"""

from __future__ import annotations

from typing import Any, NoReturn


class DriverOnly:
    """Pickles to a stub (:class:`NotSaved`); ``copy.deepcopy`` (Tune copies experiment specs) keeps the object."""

    def __reduce__(self) -> tuple[Any, tuple[str]]:
        return NotSaved, (type(self).__name__,)

    def __deepcopy__(self, memo: dict[int, Any]) -> DriverOnly:
        return self


class NotSaved:
    """What Tune reads back of a driver object: its name, and any use says why the object is not there. Tune reads
    its experiment state back at the end of a sweep that started no trial (budget.time spent during Ray's
    start-up), so loading must not fail."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __getattr__(self, attr: str) -> NoReturn:
        if attr.startswith("__"):  # copy, pickle and friends look for optional hooks
            raise AttributeError(attr)
        self()

    def __call__(self, *args: Any, **kwargs: Any) -> NoReturn:  # a stopper is called
        raise RuntimeError(f"sweeper's {self.name} is not saved with Ray's results: resume the study with sweeper "
                           "run or sweeper resume, not Tuner.restore.")
