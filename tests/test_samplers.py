"""Parallel TPE: random start-up is counted in trials started, so concurrency does not flood the study."""

import optuna
import pytest
from optuna.distributions import FloatDistribution

from sweeper.samplers import ParallelTPESampler

SPACE = {"x": FloatDistribution(0.0, 1.0), "y": FloatDistribution(0.0, 1.0)}
CONCURRENCY, STARTUP, TRIALS = 8, 5, 40

# TPE's multivariate and constant_liar, which Optuna 4 still calls experimental, built here without build_sampler
TPE_AS_BUILT_HERE = pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")


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


@TPE_AS_BUILT_HERE
def test_stock_tpe_samples_at_random_until_startup_trials_finish(tmp_path):
    stock = optuna.samplers.TPESampler(n_startup_trials=STARTUP, multivariate=True, constant_liar=True, seed=0)
    modelled = simulate(stock, tmp_path, "stock")
    # with 8 in flight the first trial finishes at the 9th ask, the fifth at the 13th: 12 random trials
    assert modelled.index(True) == STARTUP + CONCURRENCY - 1


@TPE_AS_BUILT_HERE
def test_parallel_tpe_models_from_the_first_trial_after_startup_it_can(tmp_path):
    ours = ParallelTPESampler(n_startup_trials=STARTUP, multivariate=True, seed=0)
    modelled = simulate(ours, tmp_path, "ours")
    assert not any(modelled[:STARTUP])
    # the model needs two finished trials: with 8 in flight the 10th ask is the first with two results
    first = modelled.index(True)
    assert first == CONCURRENCY + 1 < STARTUP + CONCURRENCY - 1
    assert all(modelled[first:])


@TPE_AS_BUILT_HERE
def test_constant_liar_is_on_so_running_trials_repel_new_ones():
    assert ParallelTPESampler()._tpe._constant_liar


@TPE_AS_BUILT_HERE
def test_trials_asked_before_tpe_has_results_never_repeat_the_startup_trials(tmp_path):
    """With many trials in flight TPE samples at random too; it must not replay the random sampler's draws."""
    sampler = ParallelTPESampler(n_startup_trials=3, seed=0)
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'study.db'}", sampler=sampler)
    asked = [study.ask(SPACE) for _ in range(8)]  # none finished: trials 3..7 are TPE's random fallback
    assert len({tuple(sorted(t.params.items())) for t in asked}) == 8


def test_a_resumed_grid_search_keeps_its_seed_and_visits_every_point_once(tmp_path):
    """The study holds positions in the seeded shuffle of the grid: a new seed on resume would repeat some points
    and never visit others."""
    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler

    spec = load_spec("spaces/asl20.yaml", overrides=[
        "sampler={type: grid, seed: 0}", "params={warmup_epochs: {type: categorical, choices: [0, 1, 2, 3]},"
        " dropout: {type: categorical, choices: [0.1, 0.2]}}", "enqueue=[]"])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'grid.db'}", sampler=build_sampler(spec))
    objective = lambda t: sum(t.suggest_categorical(n, d.choices) for n, d in spec.distributions().items())  # noqa: E731
    study.optimize(objective, n_trials=3)
    study.sampler = build_sampler(spec, resumed_after=3)
    study.optimize(objective, n_trials=5)
    points = [tuple(sorted(t.params.items())) for t in study.trials]
    assert len(points) == len(set(points)) == 8


def test_scheduler_periods_stay_below_the_last_epoch():
    """A rung on the last epoch would stop a trial that has trained fully, before it returns (PRUNED, no test
    metrics); max_t defaults to just below the planned epochs, wherever they come from."""
    from search_spaces.loader import load_spec, spec_from_dict
    from sweeper.schedulers import build_scheduler

    def scheduler(*overrides):
        return build_scheduler(load_spec("spaces/asl20.yaml", overrides=overrides))

    assert scheduler("training.epochs=12", "scheduler.reduction_factor=4")._max_t == 11  # not a rung at 12
    assert scheduler("training={}")._max_t == 29  # the core's default, 30 epochs
    assert scheduler("params.epochs={type: int, low: 10, high: 40}", "quick={}")._max_t == 39
    hyperband = scheduler("scheduler={type: hyperband}", "training.epochs=9")
    assert hyperband._max_t == 8 and len(hyperband._brackets) == 2 and not hyperband._stop_last_trials  # 3^1 <= 8
    assert scheduler("scheduler={type: median}")._grace_period == 1  # epochs, not Ray's 60 (seconds)
    # a grace period of all the epochs: the first rung would be the last epoch, where it could only prune
    # trials that trained fully; nothing is left to schedule (a new space is refused; a smoke run or a study that
    # ran so goes on)
    short = ("params.warmup_epochs={type: fixed, value: 0}", "enqueue=[]")
    quick = load_spec("spaces/asl20.yaml", overrides=[*short, "scheduler.grace_period=3"], quick=True)
    assert type(build_scheduler(quick)).__name__ == "FIFOScheduler"
    ran = load_spec("spaces/asl20.yaml", overrides=[*short, "training.epochs=1", "scheduler={type: hyperband}"],
                    quick=True)
    stored = spec_from_dict({k: v for k, v in ran.to_yaml_dict().items() if k != "quick"}, stored=True)
    assert type(build_scheduler(stored)).__name__ == "FIFOScheduler"


def test_schedulers_record_but_do_not_judge_a_resumed_trials_replayed_epochs():
    """A resumed trial reports its checkpointed epochs again; a fresh scheduler must not prune it at a rung it
    passed before its driver died (its last metrics would be an old epoch's)."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    class Trial:  # what a scheduler reads of Tune's trials
        def __init__(self, trial_id: str) -> None:
            self.trial_id, self.last_result, self.status = trial_id, {}, "RUNNING"

    scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[
        "scheduler={type: asha, grace_period: 1, reduction_factor: 2}"]))
    good, replayed, fresh = Trial("good"), Trial("replayed"), Trial("fresh")
    for trial in (good, replayed, fresh):
        scheduler.on_trial_add(None, trial)
    for epoch in (1, 2):
        assert scheduler.on_trial_result(None, good, {"epoch": epoch, "val_top3": 0.9}) == TrialScheduler.CONTINUE
    poor = {"epoch": 2, "val_top3": 0.1}
    assert scheduler.on_trial_result(None, replayed, {**poor, "replayed": True}) == TrialScheduler.CONTINUE
    assert scheduler.on_trial_result(None, fresh, poor) == TrialScheduler.STOP  # the same result, not a replay


def test_hyperband_stops_trials_when_fewer_run_at_once_than_its_brackets_hold(ray_session, tmp_path):
    """Ray's synchronous HyperBand waits for a whole bracket at each rung, and 2 trials at a time stopped none;
    sweeper's hyperband (HyperBand's brackets, asynchronously) stops the poor ones as they report."""
    import time

    from ray import tune

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    spec = load_spec("spaces/asl20.yaml", overrides=["scheduler={type: hyperband, reduction_factor: 2}",
                                                    "training.epochs=8"])

    def train(config: dict) -> None:
        for epoch in range(1, 9):
            time.sleep(0.02)
            tune.report({"epoch": epoch, "val_top3": config["x"] * epoch / 8})

    tuner = tune.Tuner(train, param_space={"x": tune.grid_search([1 - i / 8 for i in range(8)])},  # worse and worse
                       tune_config=tune.TuneConfig(scheduler=build_scheduler(spec), max_concurrent_trials=2,
                                                   reuse_actors=True),
                       run_config=tune.RunConfig(storage_path=str(tmp_path), verbose=0))
    epochs = sorted(result.metrics["epoch"] for result in tuner.fit())
    assert len(epochs) == 8 and epochs.count(8) <= 4 and epochs[-1] == 8, epochs


def test_two_drivers_on_one_study_never_draw_the_same_configurations(tmp_path):
    """A team's shared study: two drivers that load it at the same point (same seed, same trials held) ask in
    turn. Seeded as one stream per driver, they drew the very same start-up configurations."""
    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler

    url = f"sqlite:///{tmp_path / 'shared.db'}"
    for kind in ("tpe", "random", "cmaes", "gp", "qmc"):  # CMA-ES and GP: their start-up draws
        spec = load_spec("spaces/asl20.yaml", overrides=[f"sampler={{type: {kind}, seed: 3}}", "enqueue=[]"])
        first = optuna.create_study(storage=url, study_name=kind, direction="maximize", sampler=build_sampler(spec))
        for _ in range(2):  # the trials held before both load it
            first.ask(spec.distributions())
        drivers = [optuna.load_study(study_name=kind, storage=url, sampler=build_sampler(spec, resumed_after=2))
                   for _ in range(2)]
        asked = [driver.ask(spec.distributions()).params for _ in range(4) for driver in drivers]
        assert len({tuple(sorted(p.items())) for p in asked}) == len(asked) == 8, kind
        once, twice = (optuna.create_study(sampler=build_sampler(spec)) for _ in range(2))
        assert [once.ask(spec.distributions()).params for _ in range(3)] == \
            [twice.ask(spec.distributions()).params for _ in range(3)], "one seed still gives one sweep"


def test_a_new_trial_is_sampled_after_the_result_that_freed_its_slot_is_written(tmp_path):
    """Tune asks for the next trial as soon as one finishes, while that trial's tell still waits on the writer's
    thread: the sampler would see it RUNNING (a bad result, to TPE's constant liar), not its value."""
    import time

    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True, overrides=["enqueue=[]"])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    policy = OutagePolicy(30)
    searcher = StudySearcher(study, spec, checkpoints=str(tmp_path), budget=3, driver=Driver.current(),
                             policy=policy, writer=StudyWriter(policy))
    searcher.suggest("first")
    finished = searcher.trials.pop("first")
    searcher.writer.submit(lambda: (time.sleep(0.3), study.tell(finished, 0.5)))  # a commit that takes a while
    searcher.suggest("second")
    first, second = study.get_trials()
    assert first.state == optuna.trial.TrialState.COMPLETE and first.datetime_complete < second.datetime_start


def test_an_interrupted_sweep_asks_for_no_trial_while_its_driver_drains_its_writes(tmp_path):
    """Where the CLI's watcher leaves on Ctrl-C, Tune's loop runs on while the queued writes drain: an ask that was
    waiting on them, or a new one, created a RUNNING trial that nobody ran (a resume carried it on from the start)."""
    import time

    from ray.tune.search import Searcher

    from search_spaces.loader import load_spec
    from storage.resume import Driver
    from storage.retry import OutagePolicy
    from sweeper.searcher import StudySearcher
    from sweeper.study_writer import StudyWriter

    spec = load_spec("spaces/asl20.yaml", quick=True, overrides=["enqueue=[]"])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 's.db'}", direction="maximize")
    policy = OutagePolicy(30)
    searcher = StudySearcher(study, spec, checkpoints=str(tmp_path), budget=3, driver=Driver.current(),
                             policy=policy, writer=StudyWriter(policy))
    # the stop signal comes while the ask waits for a queued tell
    searcher.writer.submit(lambda: (time.sleep(0.3), searcher.interrupted.set()))
    assert searcher.suggest("first") == Searcher.FINISHED
    assert searcher.suggest("second") == Searcher.FINISHED
    assert study.get_trials() == [] and searcher.trials == {}


SHORT = ("training.epochs=4", "params.warmup_epochs={type: fixed, value: 0}", "enqueue=[]")


class _TuneController:
    """What the median rule asks of Tune's controller: the trials waiting to run (none here)."""

    def get_live_trials(self) -> list:
        return []


TUNE = _TuneController()


class _Trial:
    """What a scheduler reads of Tune's trials (and of fused members): an id, the config, a status."""

    def __init__(self, trial_id: str, number: int = 0, epochs: int | None = None) -> None:
        self.trial_id, self.last_result, self.status = trial_id, {}, "RUNNING"
        self.config = {"_sweeper": {"number": number}, **({"epochs": epochs} if epochs else {})}


def test_the_median_rule_averages_each_epoch_once_not_the_final_report_again():
    """Tune hands the final report (the last epoch, with the best epoch's metrics) to on_trial_result and again to
    on_trial_complete; Ray's median rule appended both to the trial's curve, and pruned a trial its rule keeps."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler
    from sweeper.trainable import FINAL_FLAG

    scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[
        *SHORT, "objective={metric: val_loss}", "scheduler={type: median, grace_period: 1, min_samples_required: 1}"]))
    done, judged = _Trial("done", 0), _Trial("judged", 1)
    for trial in (done, judged):
        scheduler.on_trial_add(TUNE, trial)
    for epoch, loss in ((1, 1.7933), (2, 1.7802), (3, 1.7583)):  # it stopped early, after epoch 3
        scheduler.on_trial_result(TUNE, done, {"epoch": epoch, "val_loss": loss})
    final = {"epoch": 3, "val_loss": 1.7583, FINAL_FLAG: True}
    assert scheduler.on_trial_result(TUNE, done, final) == TrialScheduler.CONTINUE
    scheduler.on_trial_complete(TUNE, done, final)
    # its running mean to epoch 3 is 1.7773; the judged trial's best, 1.7736, is better: it trains on
    decisions = [scheduler.on_trial_result(TUNE, judged, {"epoch": epoch, "val_loss": loss})
                 for epoch, loss in ((1, 1.7873), (2, 1.7831), (3, 1.7736))]
    assert decisions == [TrialScheduler.CONTINUE] * 3


def test_no_scheduler_stops_a_trial_at_its_own_last_epoch():
    """Stopping it there saves nothing, and records a trial that trained to its end as PRUNED, without its test
    metrics: a grace period or a max_t of all the epochs, or a sampled number of epochs, put a rung there."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    def decisions(section: str, curves: dict[str, tuple[int | None, list[float]]]) -> dict[str, list[str]]:
        scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[*SHORT, f"scheduler={section}"]))
        trials = {name: _Trial(name, n, epochs) for n, (name, (epochs, _)) in enumerate(curves.items())}
        for trial in trials.values():
            scheduler.on_trial_add(TUNE, trial)
        return {name: [scheduler.on_trial_result(TUNE, trials[name], {"epoch": epoch, "val_top3": value})
                       for epoch, value in enumerate(values, 1)] for name, (_, values) in curves.items()}

    keep, stop = TrialScheduler.CONTINUE, TrialScheduler.STOP
    median = decisions("{type: median, grace_period: 2, min_samples_required: 1}", {
        "good": (None, [0.9] * 4), "poor": (2, [0.1] * 2), "early": (None, [0.1] * 2)})
    assert median["poor"] == [keep] * 2  # judged at epoch 2 only, its last (a grace period of all the space's
    assert median["early"] == [keep, stop]  # epochs is refused: it would stop no trial)
    asha = decisions("{type: asha, grace_period: 1, reduction_factor: 2, max_t: 4}", {
        "good": (None, [0.9] * 4), "late": (None, [0.9, 0.9, 0.9, 0.1]), "short": (2, [0.9, 0.1]),
        "early": (None, [0.9, 0.1])})
    assert asha["late"] == [keep] * 4 and asha["short"] == [keep] * 2  # the rungs at 4 and 2 are their last epochs
    assert asha["early"] == [keep, stop]  # before its last epoch a trial is judged as ever


class _BusyController(_TuneController):
    """Trials waiting for a slot (max_concurrent above what the machine runs at once)."""

    def get_live_trials(self) -> list:
        waiting = _Trial("waiting")
        waiting.status = "PENDING"
        return [waiting]


def test_the_median_rule_survives_an_overruled_stop_and_never_pauses_a_trial():
    """A replayed epoch it would stop (a resumed trial) is overruled; Ray's rule had marked the trial stopped and
    asserted on its next result, ending the sweep. With trials waiting it paused running ones, which restarted
    from their checkpoints and replayed."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler
    from trials.config import REPLAYED

    scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[
        *SHORT, "scheduler={type: median, grace_period: 1, min_samples_required: 1}"]))
    good, poor, lone = _Trial("good", 0), _Trial("poor", 1), _Trial("lone", 2)
    for trial in (good, poor, lone):
        scheduler.on_trial_add(TUNE, trial)
    busy = _BusyController()
    assert scheduler.on_trial_result(busy, lone, {"epoch": 1, "val_top3": 0.5}) == TrialScheduler.CONTINUE
    for epoch in (1, 2, 3):
        scheduler.on_trial_result(TUNE, good, {"epoch": epoch, "val_top3": 0.9})
    replayed = [scheduler.on_trial_result(busy, poor, {"epoch": epoch, "val_top3": 0.1, REPLAYED: True})
                for epoch in (1, 2)]
    assert replayed == [TrialScheduler.CONTINUE] * 2
    assert scheduler.on_trial_result(busy, poor, {"epoch": 3, "val_top3": 0.1}) == TrialScheduler.STOP


def test_hyperband_draws_each_trials_bracket_from_the_seed_and_every_bracket_has_a_rung():
    from ray.tune.schedulers.async_hyperband import _Bracket

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler, hyperband_brackets

    def brackets(seed: int) -> list[int]:
        scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[
            "scheduler={type: hyperband, reduction_factor: 2}", "training.epochs=17", f"sampler.seed={seed}"]))
        trials = [_Trial(f"t{n}", n) for n in range(40)]
        for trial in trials:
            scheduler.on_trial_add(TUNE, trial)
        return [scheduler._brackets.index(scheduler._trial_info[t.trial_id]) for t in trials]

    assert brackets(0) == brackets(0) != brackets(1) and len(set(brackets(0))) == 5  # max_t 16: 5 brackets
    for max_t, grace, factor in ((243, 1, 3), (27, 3, 3), (8, 2, 2), (3, 3, 3), (100, 1, 3)):
        count = hyperband_brackets(max_t, grace, factor)  # bracket 0 has the most rungs, the last has one
        assert [len(_Bracket(grace, max_t, factor, s, False)._rungs) for s in range(count)] == \
            list(range(count, 0, -1)), (max_t, grace, factor)


def test_asha_brackets_the_epochs_leave_without_a_rung_are_refused_as_ray_builds_them():
    """Ray builds a bracket without a rung where the epochs allow fewer brackets than asked (epochs 4, grace 1,
    factor 4: one of 5), and the trials drawn into it (60% of them) ran unjudged. A space is refused at
    scheduler.brackets exactly where Ray's scheduler would have a bracket judging no trial before its last epoch."""
    from search_spaces.errors import SpecError
    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    short = ["params.warmup_epochs={type: fixed, value: 0}", "enqueue=[]"]
    for epochs, grace, factor, max_t in ((4, 1, 4, ""), (17, 1, 4, ""), (30, 2, 3, ""), (1001, 1, 10, ""),
                                         (30, 1, 2, ", max_t: 5"), (8, 1, 2, ", max_t: 100")):
        for count in range(1, 7):  # at most 5 have a rung here
            asked = [*short, f"training.epochs={epochs}", f"scheduler={{type: asha, grace_period: {grace}, "
                     f"reduction_factor: {factor}, brackets: {count}{max_t}}}"]
            ray = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[*asked, "quick={}"], quick=True))
            idle = any(not bracket._rungs or bracket._rungs[-1][0] >= epochs for bracket in ray._brackets)
            try:
                load_spec("spaces/asl20.yaml", overrides=asked)
                assert not idle, (epochs, grace, factor, max_t, count)
            except SpecError as exc:
                assert idle and [i.field for i in exc.issues] == ["scheduler.brackets"], (exc, count)


def test_sampler_options_that_fail_only_when_the_model_samples_are_refused_before_anything_is_written(tmp_path):
    """TPE's n_ei_candidates: 0 passed validation, then the sweep crashed at its first TPE trial (exit 1), a
    RUNNING trial left in the study it had written; so did a float range numpy cannot draw from, GP's too."""
    import os
    import subprocess
    import sys
    import textwrap

    spaces = {
        "candidates.yaml": """\
            training: {epochs: 1, dataset: {classes: 5, samples_per_class: 4}}
            params: {dropout: {type: float, low: 0.0, high: 0.5}}
            sampler: {type: tpe, n_startup_trials: 0, n_ei_candidates: 0, seed: 0}
            """,
        "overflow.yaml": """\
            entrypoint: own:fit
            objective: {metric: acc, direction: maximize}
            params: {x: {type: float, low: -1.0e+308, high: 1.0e+308}}
            sampler: {type: random}
            """,
        "overflow-gp.yaml": """\
            entrypoint: own:fit
            objective: {metric: acc, direction: maximize}
            params: {x: {type: float, low: -1.0e+308, high: 1.0e+308}}
            sampler: {type: gp}
            """,
    }
    (tmp_path / "own.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'acc': 0.5}\n")
    for name, text in spaces.items():
        (tmp_path / name).write_text(textwrap.dedent(text))
        proc = subprocess.run([sys.executable, "-m", "sweeper.cli", "run", name], cwd=tmp_path, capture_output=True,
                              text=True, timeout=120, env={**os.environ, "COLUMNS": "300"})
        assert proc.returncode == 2 and "Traceback" not in proc.stderr, proc.stderr
        assert f"{name}:" in proc.stderr and "sampler: " in proc.stderr and "fails when it samples" in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["candidates.yaml", "overflow-gp.yaml", "overflow.yaml",
                                                          "own.py"]


def test_a_resumed_sweeps_scheduler_judges_new_trials_beside_the_studys_finished_ones():
    """A resumed or extended sweep starts a new scheduler: without the study's trials its first ones passed every
    rung unjudged, and an uninterrupted sweep would have pruned them (found by an exploratory test)."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    TrialState, nan = optuna.trial.TrialState, float("nan")
    study = optuna.create_study(direction="maximize")
    for state, curve in ((TrialState.COMPLETE, [0.9] * 4), (TrialState.PRUNED, [0.8]), (TrialState.FAIL, [nan]),
                         (TrialState.RUNNING, [0.1])):  # RUNNING: carried on in this sweep, judged as it reports
        study.add_trial(optuna.trial.create_trial(state=state, value=curve[-1] if state == TrialState.COMPLETE
                                                  else None, intermediate_values=dict(enumerate(curve, 1))))
    history = study.get_trials(deepcopy=False)

    def decision(section: str, finished: list, value: float) -> str:
        scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[*SHORT, f"scheduler={section}"]),
                                    finished)
        new = _Trial("new", 10)
        scheduler.on_trial_add(TUNE, new)
        return scheduler.on_trial_result(TUNE, new, {"epoch": 1, "val_top3": value})

    asha = "{type: asha, grace_period: 1, reduction_factor: 2}"
    median = "{type: median, grace_period: 1, min_samples_required: 2}"
    for section in (asha, median):
        assert decision(section, [], 0.5) == TrialScheduler.CONTINUE, section  # nothing to judge it beside
        assert decision(section, history, 0.5) == TrialScheduler.STOP, section  # below 0.9 and 0.8
        assert decision(section, history, 0.95) == TrialScheduler.CONTINUE, section
    assert decision(asha, history[2:], 0.05) == TrialScheduler.CONTINUE  # the RUNNING trial's 0.1 is not on a rung


def test_schedulers_pass_over_a_report_whose_objective_is_none_instead_of_ending_the_sweep():
    """A function reporting ``val_top3: None`` for an epoch it did not evaluate: Ray's ASHA multiplied it and its
    median rule averaged it, and the TypeError ended the sweep with a traceback (exit 1) on the first such report."""
    from ray.tune.schedulers import TrialScheduler

    from search_spaces.loader import load_spec
    from sweeper.schedulers import build_scheduler

    for section in ("{type: asha, grace_period: 1, reduction_factor: 2, max_t: 3}",
                    "{type: median, grace_period: 1, min_samples_required: 1}"):
        scheduler = build_scheduler(load_spec("spaces/asl20.yaml", overrides=[*SHORT, f"scheduler={section}"]))
        good, quiet = _Trial("good", 0), _Trial("quiet", 1)
        for trial in (good, quiet):
            scheduler.on_trial_add(TUNE, trial)
        for epoch in (1, 2, 3):
            scheduler.on_trial_result(TUNE, good, {"epoch": epoch, "val_top3": 0.9})
        for result in ({"epoch": 1, "val_top3": None}, {"epoch": 2, "val_top3": "n/a"}, {"epoch": None}):
            assert scheduler.on_trial_result(TUNE, quiet, result) == TrialScheduler.CONTINUE, section
        assert scheduler.on_trial_result(TUNE, quiet, {"epoch": 3, "val_top3": 0.1}) == TrialScheduler.STOP, section


def test_a_sampler_optuna_calls_experimental_is_built_without_a_raw_warning():
    """QMC, TPE's group and CMA-ES' with_margin made Optuna print an ExperimentalWarning on every sweep, with the file
    and line of sweeper's code as if it were at fault: the space chose them, and validated them."""
    import warnings

    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler

    for sampler in ("{type: qmc, seed: 0}", "{type: tpe, multivariate: true, group: true}",
                    "{type: cmaes, with_margin: true}", "{type: gp, deterministic_objective: true}"):
        spec = load_spec("spaces/asl20.yaml", overrides=[f"sampler={sampler}"])
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            build_sampler(spec)
            build_sampler(spec, resumed_after=3)
        assert [str(w.message) for w in caught] == [], sampler


def test_cma_es_says_once_which_params_it_samples_at_random_not_for_each_of_each_trial():
    """CMA-ES models numbers only: Optuna warned for each categorical param of each trial it sampled at random (two
    lines a trial here, ~80 on a 40-trial sweep). The sweep says it once, in sweeper's words, as it starts."""
    import logging

    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler, cmaes_note

    spec = load_spec("asl50", quick=True, overrides=[
        "sampler={type: cmaes, seed: 0}", "params.batch_size={type: categorical, choices: [16, 32]}",
        "params.seed={type: categorical, choices: [1]}"])  # one choice: not sampled
    said = []
    handler = logging.Handler()
    handler.emit = lambda record: said.append(record.getMessage())
    optuna.logging.get_logger("optuna").addHandler(handler)
    try:
        study = optuna.create_study(direction="maximize", sampler=build_sampler(spec))
        for number in range(6):
            study.tell(study.ask(spec.distributions()), float(number % 3))
    finally:
        optuna.logging.get_logger("optuna").removeHandler(handler)
    assert [line for line in said if "sampled independently" in line] == []
    assert cmaes_note(spec) == ("note: CMA-ES models numeric params only: it samples the categorical params "
                                "model.size, batch_size independently, at random, in every trial")
    assert cmaes_note(load_spec("asl20", overrides=["sampler={type: cmaes}"])) is None  # no categorical param
    asked = load_spec("asl50", overrides=["sampler={type: cmaes, warn_independent_sampling: true}"])
    assert cmaes_note(asked) is None and build_sampler(asked)._warn_independent_sampling  # Optuna's, as asked


def test_a_grid_runs_no_point_twice_when_an_enqueued_row_is_already_in_the_study(tmp_path):
    """A repeated row (or one added on resume that a grid trial had run) is not queued again, yet it counted in the
    grid's budget: the spent grid was asked once more and re-ran a point, with Optuna's "grid has been exhausted"."""
    from search_spaces.loader import load_spec
    from sweeper.driver import trial_budget
    from sweeper.samplers import build_sampler

    row = {"warmup_epochs": 1, "dropout": 0.2}
    spec = load_spec("spaces/asl20.yaml", overrides=[
        "sampler={type: grid, seed: 0}", "params={warmup_epochs: {type: categorical, choices: [0, 1, 2, 3]},"
        " dropout: {type: categorical, choices: [0.1, 0.2]}}", f"enqueue=[{row}, {row}]", "budget.trials=20"])
    study = optuna.create_study(storage=f"sqlite:///{tmp_path / 'grid.db'}", sampler=build_sampler(spec))
    for point in spec.enqueue:  # as the driver queues them
        study.enqueue_trial(point, skip_if_exists=True)
    budget = trial_budget(spec, lambda: study.get_trials(deepcopy=False))
    study.optimize(lambda t: sum(t.suggest_categorical(n, d.choices) for n, d in spec.distributions().items()),
                   n_trials=budget)
    grid_points = [tuple(sorted(t.params.items())) for t in study.trials if "grid_id" in t.system_attrs]
    assert budget == 9 and len(grid_points) == len(set(grid_points)) == 8


def test_a_resumed_tpe_sweep_one_trial_at_a_time_samples_what_the_uninterrupted_one_would(tmp_path):
    """A quick TPE sweep of 10 trials, 1 at a time, killed after #6 and resumed, sampled other params from #7 on
    than the same sweep run through: the resumed sampler's seed moved on by the trials held. TPE's draws are now
    seeded by (seed, trial number), as random draws are, so the study's trials alone decide them."""
    from search_spaces.loader import load_spec
    from sweeper.samplers import build_sampler

    spec = load_spec("spaces/asl20.yaml", overrides=["enqueue=[]", "sampler.n_startup_trials=3"])

    def objective(trial: optuna.Trial) -> float:  # a deterministic stand-in for training
        return -sum((trial.suggest_float(n, d.low, d.high, log=d.log) - d.low) / (d.high - d.low)
                    for n, d in spec.distributions().items())

    through = optuna.create_study(direction="maximize", sampler=build_sampler(spec))
    through.optimize(objective, n_trials=8)
    url = f"sqlite:///{tmp_path / 'resumed.db'}"
    cut = optuna.create_study(storage=url, study_name="tpe", direction="maximize", sampler=build_sampler(spec))
    cut.optimize(objective, n_trials=5)
    resumed = optuna.load_study(study_name="tpe", storage=url, sampler=build_sampler(spec, resumed_after=5))
    resumed.optimize(objective, n_trials=3)
    assert [t.params for t in resumed.trials] == [t.params for t in through.trials]
