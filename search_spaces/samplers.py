"""TPE for parallel trials: start-up counted in trials started, not trials finished.

Optuna's TPE samples at random until ``n_startup_trials`` trials have *finished*: with ``k`` trials running at
once that is ``n_startup + k - 1`` random trials, most of a short sweep. Here the first ``n_startup`` trials
*asked* are random and every later one uses TPE, whose constant liar counts the still-running trials as bad
results so that it does not propose near-copies of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

MIN_FINISHED_FOR_TPE = 2  # TPE's model needs at least a couple of results; until then it keeps sampling at random


class ParallelTPESampler(BaseSampler):
    def __init__(self, *, n_startup_trials: int = 10, seed: int | None = None, **tpe_options: Any) -> None:
        self.n_startup_trials = n_startup_trials
        self._random = RandomSampler(seed=seed)
        tpe_options.setdefault("constant_liar", True)
        # Another seed for TPE: while fewer than MIN_FINISHED_FOR_TPE trials have finished it samples at random
        # too, and with the random sampler's seed it would repeat the first random trials' params exactly.
        tpe_seed = None if seed is None else seed + 1
        self._tpe = TPESampler(seed=tpe_seed, n_startup_trials=min(MIN_FINISHED_FOR_TPE, n_startup_trials),
                               **tpe_options)

    def _pick(self, trial: FrozenTrial) -> BaseSampler:
        return self._random if trial.number < self.n_startup_trials else self._tpe

    def infer_relative_search_space(self, study: optuna.Study, trial: FrozenTrial) -> dict[str, BaseDistribution]:
        return self._pick(trial).infer_relative_search_space(study, trial)

    def sample_relative(self, study: optuna.Study, trial: FrozenTrial, search_space: dict[str, BaseDistribution]
                        ) -> dict[str, Any]:
        return self._pick(trial).sample_relative(study, trial, search_space)

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        return self._pick(trial).sample_independent(study, trial, param_name, param_distribution)

    def before_trial(self, study: optuna.Study, trial: FrozenTrial) -> None:
        self._tpe.before_trial(study, trial)

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        self._tpe.after_trial(study, trial, state, values)

    def reseed_rng(self) -> None:
        self._random.reseed_rng()
        self._tpe.reseed_rng()
