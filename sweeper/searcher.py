"""Ray Tune searcher that asks the Optuna study for every trial.

Asking the study (rather than keeping a private Optuna study as the stock ``OptunaSearch`` does) makes each
in-flight trial a RUNNING trial in storage from its first second: TPE's constant liar sees it, the dashboard
shows it, and a resumed sweep knows it existed. Results go back to the study through ``StudyRecorder``.
"""

from __future__ import annotations

import warnings
from typing import Any

import optuna
from ray.tune.search import Searcher

from search_spaces import Spec
from search_spaces.entrypoint import DEFAULT_ENTRYPOINT
from storage import attrs
from storage.resume import Driver, claim, own
from sweeper.schedulers import ray_mode
from sweeper.trainable import META_KEY, worst_value

TS = optuna.trial.TrialState
COUNTED = (TS.COMPLETE, TS.PRUNED, TS.FAIL, TS.RUNNING)  # enqueued (WAITING) trials are not started yet


class StudySearcher(Searcher):
    def __init__(self, study: optuna.Study, spec: Spec, *, checkpoint_root: str, budget: int, driver: Driver,
                 orphans: list[optuna.trial.FrozenTrial] = ()) -> None:
        super().__init__(metric=spec.objective.metric, mode=ray_mode(spec))
        self.study = study
        self.spec = spec
        self.checkpoint_root = checkpoint_root
        self.budget = budget
        self.driver = driver
        self.orphans = list(orphans)  # RUNNING trials of a dead driver: carried on before anything new is asked
        self.distributions = spec.distributions()
        self.trials: dict[str, optuna.Trial] = {}  # Ray trial id -> Optuna trial
        self.stopped = False

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.stopped:
            return Searcher.FINISHED
        if self.orphans:  # already counted against the budget: they were RUNNING when the last driver died
            orphan = self.orphans.pop(0)
            trial, params = claim(self.study, orphan, self.driver), orphan.params
        elif len(self.study.get_trials(deepcopy=False, states=COUNTED)) >= self.budget:
            return Searcher.FINISHED
        else:
            with warnings.catch_warnings():  # heartbeats are ours to record, not only Study.optimize's
                warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used")
                trial = self.study.ask(self.distributions)
            own(trial, self.driver)
            params = trial.params
        trial.set_user_attr(attrs.RAY_TRIAL_ID, trial_id)
        self.trials[trial_id] = trial
        config = self.spec.trial_config(params)
        if self.spec.entrypoint == DEFAULT_ENTRYPOINT and "threads" not in config:
            # torch would start a thread per core in every trial: oversubscribed cores spin and crawl
            config["threads"] = max(1, int(self.spec.resources.cpu))
        config[META_KEY] = {
            "number": trial.number,
            "study": self.study.study_name,
            "entrypoint": self.spec.entrypoint,
            "base_dir": self.spec.base_dir,
            "checkpoint_root": self.checkpoint_root,
            "metric": self.spec.objective.metric,
            "worst": worst_value(self.spec.direction),
        }
        return config

    def save(self, checkpoint_path: str) -> None:
        """The study is the searcher's state; nothing to write next to Ray's results."""

    def restore(self, checkpoint_path: str) -> None:
        """See ``save``: a resumed sweep reads the study."""

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Bookkeeping happens in ``StudyRecorder``, which also sees the error text; nothing to do here."""
