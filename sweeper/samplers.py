"""The Optuna sampler a sweep runs, built from a :class:`Spec`, and TPE for parallel trials.

Choosing the sampler's defaults and seeding it on resume is the driver's policy, not the schema's:
``search_spaces`` only says what the space file asks for.

``ParallelTPESampler`` counts TPE's start-up in trials started, not trials finished. Optuna's TPE samples at
random until ``n_startup_trials`` trials have *finished*: with ``k`` trials running at once that is
``n_startup + k - 1`` random trials, most of a short sweep. Here the first ``n_startup`` trials *asked* are
random and every later one uses TPE, whose constant liar counts the still-running trials as bad results so that
it does not propose near-copies of them.

Random draws are seeded per trial number (:class:`NumberedRandomSampler`), and so are TPE's: trial numbers are unique
in a study, so drivers that share one never draw the same configuration, while one seed still gives one sweep, and
a resumed one (one trial at a time) samples what it would have sampled uninterrupted.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np
import optuna
from optuna.distributions import BaseDistribution
from optuna.samplers import BaseSampler, RandomSampler, TPESampler
from optuna.trial import FrozenTrial, TrialState

from search_spaces import sections
from search_spaces.schema import Spec

MIN_FINISHED_FOR_TPE = 2  # TPE's model needs at least a couple of results; until then it keeps sampling at random


class NumberedRandomSampler(RandomSampler):
    """Optuna's random sampler, seeded by ``(seed, trial number)`` for each trial instead of one stream per driver.

    Two drivers on one study (a team's PostgreSQL study, or a resume beside a live driver) would otherwise draw
    the same stream from the same seed: the same configurations, trained twice.
    """

    def __init__(self, seed: int | None = None) -> None:
        super().__init__(seed=seed)
        self._seed, self._number, self._drawing = seed, -1, None  # _drawing: the sampler of trial _number

    def sample_independent(self, study: optuna.Study, trial: FrozenTrial, param_name: str,
                           param_distribution: BaseDistribution) -> Any:
        if self._seed is None:
            return super().sample_independent(study, trial, param_name, param_distribution)
        if trial.number != self._number:
            derived = int(np.random.SeedSequence([self._seed, trial.number]).generate_state(1)[0])
            self._drawing, self._number = RandomSampler(seed=derived), trial.number
        return self._drawing.sample_independent(study, trial, param_name, param_distribution)

    def reseed_rng(self) -> None:
        super().reseed_rng()
        self._seed = None


class ParallelTPESampler(BaseSampler):
    def __init__(self, *, n_startup_trials: int = 10, seed: int | None = None, **tpe_options: Any) -> None:
        self.n_startup_trials = n_startup_trials
        self._random = NumberedRandomSampler(seed=seed)
        tpe_options.setdefault("constant_liar", True)
        # Another seed for TPE: while fewer than MIN_FINISHED_FOR_TPE trials have finished it samples at random
        # too, and with the random sampler's seed it would repeat the first random trials' params exactly.
        self._tpe_seed = None if seed is None else (seed + 1) % 2**32
        self._tpe = TPESampler(seed=self._tpe_seed, n_startup_trials=min(MIN_FINISHED_FOR_TPE, n_startup_trials),
                               **tpe_options)
        self._tpe_number = -1  # the trial TPE's generators are seeded for

    def _pick(self, trial: FrozenTrial) -> BaseSampler:
        if trial.number < self.n_startup_trials:
            return self._random
        if self._tpe_seed is not None and trial.number != self._tpe_number:
            # one stream per trial number, not per driver: a resumed sweep's draws for trial N are the uninterrupted
            # one's (its study holding the same trials), and two drivers sharing a study draw apart
            tpe, fallback = np.random.SeedSequence([self._tpe_seed, trial.number]).generate_state(2)
            self._tpe._rng.rng.seed(int(tpe))
            self._tpe._random_sampler._rng.rng.seed(int(fallback))  # TPE's own, while under 2 trials have finished
            self._tpe_number = trial.number
        return self._tpe

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
        self._tpe_seed = None


class BudgetedGridSampler(optuna.samplers.GridSampler):
    """Optuna's grid, without its ``study.stop()`` after the last point: outside ``Study.optimize`` that raises,
    on the tell of the last grid trial. The driver's budget (at most the grid's size) ends the sweep instead."""

    def after_trial(self, study: optuna.Study, trial: FrozenTrial, state: TrialState,
                    values: Sequence[float] | None) -> None:
        pass


def default_sampler_options(spec: Spec) -> dict[str, Any]:
    """The constructor options ``build_sampler`` passes (the spec's options over sweeper's defaults)."""
    if spec.sampler.type == "cmaes":  # Optuna's warning came for each categorical param of each trial: see cmaes_note
        return {"warn_independent_sampling": False, **spec.sampler.options}
    if spec.sampler.type != "tpe":
        return spec.sampler.options
    # constant_liar: parallel trials count the pending ones as bad, which spreads the work
    return {"multivariate": True, "constant_liar": True,
            "n_startup_trials": max(5, min(10, spec.budget.trials // 4)), **spec.sampler.options}


def sampler_defaults(kind: Any, spec: Spec) -> dict[str, Any]:
    """The options a sampler of ``kind`` takes where a space leaves them out: sweeper's, else Optuna's."""
    if kind not in sections.SAMPLER_CLASSES:
        return {}
    optuna_defaults = {name: option.default for name, option in sections.sampler_options(kind).items()
                       if option.default is not option.empty}
    sampler = sections.Sampler.model_construct(type=kind)  # no validation: it would build an Optuna sampler
    return {**optuna_defaults, **default_sampler_options(spec.model_copy(update={"sampler": sampler}))}


def build_sampler(spec: Spec, resumed_after: int = 0) -> optuna.samplers.BaseSampler:
    """The spec's sampler; ``resumed_after``: how many trials the study already holds when resuming it.

    A resumed sweep must not replay the random numbers the first run used (with a fixed seed, CMA-ES and GP would
    repeat their draws), so their seed moves on by the trials already there; the random sampler's and TPE's draws
    are seeded per trial number, so theirs keeps it. QMC and grid keep their seed: the study holds positions in the
    sequence or the shuffled grid, which must stay the same.
    """
    with warnings.catch_warnings():
        # Optuna's ExperimentalWarning for QMC and some options (TPE's group, CMA-ES' with_margin, GP's
        # deterministic_objective) came raw, naming this file and line, on every run of a space that chose them
        warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
        return _new_sampler(spec, resumed_after)


def _new_sampler(spec: Spec, resumed_after: int) -> optuna.samplers.BaseSampler:
    seed = spec.sampler.seed
    if seed is not None and resumed_after and spec.sampler.type not in ("qmc", "grid", "random", "tpe"):
        seed = (seed + resumed_after) % 2**32  # numpy's seeds end there
    if spec.sampler.type == "grid":
        return BudgetedGridSampler(spec.grid_search_space(), seed=seed)
    if spec.sampler.type == "random":
        return NumberedRandomSampler(seed=seed)
    if spec.sampler.type == "tpe":
        return ParallelTPESampler(seed=seed, **default_sampler_options(spec))
    # CMA-ES, GP and QMC draw their first trials (and params outside their model) from a random sampler of the seed:
    # one per trial number, or two drivers on one study train the same first configuration twice
    kind = getattr(optuna.samplers, sections.SAMPLER_CLASSES[spec.sampler.type])
    return kind(seed=seed, independent_sampler=NumberedRandomSampler(seed=seed), **default_sampler_options(spec))


def cmaes_note(spec: Spec) -> str | None:
    """What CMA-ES, which models numbers only, samples at random in every trial: said once as a sweep starts, where
    Optuna said it for each categorical param of each trial (three lines a trial on a space with three)."""
    categorical = [name for name, param in spec.sampled_params().items()
                   if isinstance(param, sections.CategoricalParam) and not param.distribution().single()]
    if spec.sampler.type != "cmaes" or not categorical or default_sampler_options(spec)["warn_independent_sampling"]:
        return None
    return (f"note: CMA-ES models numeric params only: it samples the categorical param{'s' * (len(categorical) > 1)} "
            f"{', '.join(categorical)} independently, at random, in every trial")


def check_sampling(spec: Spec) -> None:
    """Ask the sweep's sampler for trials of the space, in memory, past its start-up: Optuna takes some options at
    construction that fail only when its model samples (TPE's ``n_ei_candidates: 0``), which would crash the sweep
    at its first model-drawn trial, a RUNNING trial left in a study already written. Raises SpecError."""
    from search_spaces.loader import refusal

    distributions = spec.distributions()
    if spec.sampler.type == "grid" or not distributions:
        return
    model_draws = 0 if spec.sampler.type == "gp" else 2  # GP's model takes seconds to fit: built, not asked
    startup = default_sampler_options(spec).get("n_startup_trials", getattr(
        sections.sampler_options(spec.sampler.type).get("n_startup_trials"), "default", 0))
    random_first = max(0, min(int(startup), 100)) if isinstance(startup, int) else 0
    verbosity = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.ERROR)  # "A new study created in memory", "sampled independently"
    values = np.random.default_rng(0)
    try:
        study = optuna.create_study(direction=spec.direction, sampler=RandomSampler(seed=0))
        with warnings.catch_warnings(action="ignore"):  # experimental samplers say so on every ask
            sampler = build_sampler(spec)
            for number in range(max(random_first + model_draws, 1)):
                if number == random_first and model_draws:
                    study.sampler = sampler  # the draws so far stand for its start-up's
                trial = study.ask(distributions)
                study.tell(trial, float(values.random()))
    except Exception as exc:
        raise refusal(spec, ("sampler",), f"{sections.SAMPLER_CLASSES[spec.sampler.type]} fails when it samples "
                                          f"this space: {type(exc).__name__}: {exc}") from None
    finally:
        optuna.logging.set_verbosity(verbosity)
