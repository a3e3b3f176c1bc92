"""Parallel TPE: random start-up is counted in trials started, so concurrency does not flood the study."""

import optuna
from optuna.distributions import FloatDistribution

from sweeper.samplers import ParallelTPESampler

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
CONCURRENCY, STARTUP, TRIALS = 8, 5, 40


def simulate(sampler, tmp_path, name):
    """Keep CONCURRENCY trials running; finish the oldest each time a new one is asked (a real SQLite study)."""
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", study_name=name, sampler=sampler,
                                direction="minimize")
    running, modelled = [], []
    for _ in range(TRIALS):
        if len(running) == CONCURRENCY:
            done = running.pop(0)
            study.tell(done, (done.params["x"] - 0.9) ** 2 + (done.params["y"] - 0.2) ** 2)
        trial = study.ask()  # no search space: lets us see whether the sampler used a model for this trial
        frozen = study._storage.get_trial(trial._trial_id)
        modelled.append(bool(sampler.sample_relative(study, frozen, SPACE)))
        trial.suggest_float("x", 0.0, 1.0)
        trial.suggest_float("y", 0.0, 1.0)
        running.append(trial)
    return modelled


def test_stock_tpe_samples_at_random_until_startup_trials_finish(tmp_path):
    stock = optuna.samplers.TPESampler(n_startup_trials=STARTUP, multivariate=True, constant_liar=True, seed=0)
    modelled = simulate(stock, tmp_path, "stock")
    # with 8 in flight the first trial finishes at the 9th ask, the fifth at the 13th: 12 random trials
    assert modelled.index(True) == STARTUP + CONCURRENCY - 1


def test_parallel_tpe_models_from_the_first_trial_after_startup_it_can(tmp_path):
    ours = ParallelTPESampler(n_startup_trials=STARTUP, multivariate=True, seed=0)
    modelled = simulate(ours, tmp_path, "ours")
    assert not any(modelled[:STARTUP])
    # the model needs two finished trials: with 8 in flight the 10th ask is the first with two results
    first = modelled.index(True)
    assert first == CONCURRENCY + 1 < STARTUP + CONCURRENCY - 1
    assert all(modelled[first:])


def test_constant_liar_is_on_so_running_trials_repel_new_ones():
    assert ParallelTPESampler()._tpe._constant_liar


def test_trials_asked_before_tpe_has_results_never_repeat_the_startup_trials(tmp_path):
    """With many trials in flight TPE samples at random too; it must not replay the random sampler's draws."""
    sampler = ParallelTPESampler(n_startup_trials=3, seed=0)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", sampler=sampler)
    asked = [study.ask(SPACE) for _ in range(8)]  # none finished: trials 3..7 are TPE's random fallback
    assert len({tuple(sorted(t.params.items())) for t in asked}) == 8
