"""search_spaces: YAML search spaces, their validation messages (file:line: field: message) and Optuna objects."""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Callable
from pathlib import Path

import optuna
import pytest
import yaml

import search_spaces.sections as sections
from search_spaces.errors import SpecError
from search_spaces.loader import (
    BUILTIN_DIR,
    list_builtin_spaces,
    load_spec,
    read_yaml_value,
    render_spec,
    resolve_space_path,
    spec_from_dict,
)
from search_spaces.schema import Spec
from search_spaces.sections import duration_seconds, fraction
from storage.view import targets_met
from sweeper.samplers import ParallelTPESampler, build_sampler, default_sampler_options
from sweeper.standalone import prepare
from trials.entrypoint import import_target

BUILTINS = ["asl20", "asl50", "asl100", "nslt1000"]
MINIMAL = """\
params:
  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
"""


def space(extra: str) -> str:
    return MINIMAL + textwrap.dedent(extra)


def write(tmp_path: Path, text: str, name: str = "space.yaml") -> Path:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return path


def errors(path: Path, **kwargs) -> SpecError:
    with pytest.raises(SpecError) as info:
        load_spec(path, **kwargs)
    return info.value


def find(err: SpecError, field: str) -> str:
    """The rendered issue for ``field`` (fails with every issue shown when there is none)."""
    for issue in err.issues:
        if issue.field == field:
            return str(issue)
    raise AssertionError(f"no issue for {field!r} in:\n{err}")


# ----------------------------------------------------------------------------------------------------------------
# Built-in spaces
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("name", BUILTINS)
def test_builtin_space_loads_and_builds(name: str, quick: bool) -> None:
    spec = load_spec(name, quick=quick)
    assert spec.name == (f"{name}-quick" if quick else name)
    distributions = spec.distributions()
    for key in ("label_smoothing", "warmup_epochs", "weight_decay", "dropout", "mixup_alpha", "lr"):
        assert key in distributions
    low, high = (1e-5, 1e-2) if name == "asl50" else (1e-4, 3e-3)  # asl50: wider, calibrated (README)
    assert distributions["lr"] == optuna.distributions.FloatDistribution(low, high, log=True)
    assert isinstance(build_sampler(spec), ParallelTPESampler)
    assert spec.objective.metric == "val_top3" and spec.direction == "maximize"
    assert spec.scheduler.type == "asha"
    assert spec.enqueue, "the seeds' default config is enqueued first"
    for row in spec.enqueue:
        config = spec.trial_config(row)
        assert config["objective"] == "val_top3"
        assert all(spec.params[key].admit(value) == value for key, value in row.items())
    if quick:
        assert spec.quick_applied and spec.training["epochs"] == 3 and spec.budget.trials == 6
        assert spec.training["dataset.samples_per_class"] <= 12
    else:
        assert spec.budget.trials == 40 and spec.budget.max_concurrent == 2 and spec.resources.cpu == 1


CHECKOUT = Path(__file__).resolve().parents[1]
SHIPPED = [*sorted(BUILTIN_DIR.glob("*.yaml")), *sorted((CHECKOUT / "bench" / "spaces").glob("*.yaml")),
           *sorted((CHECKOUT / "examples").rglob("*.yaml"))]


@pytest.mark.parametrize("quick", [False, True])
@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.relative_to(CHECKOUT).as_posix())
def test_every_shipped_space_validates_with_and_without_quick(path: Path, quick: bool, capsys) -> None:
    """Four benchmark spaces refused --quick: their warmup range (up to 6 epochs) outgrew the quick profile's 3."""
    from sweeper.cli import validate

    validate(str(path), [], quick=quick)
    assert ("# with --quick" in capsys.readouterr().out) == quick


def test_builtin_figures_from_the_seeds() -> None:
    asl20, asl50, asl100, nslt = (load_spec(n) for n in BUILTINS)
    assert asl20.targets == {"test_top3": 0.8}
    assert asl20.baseline is not None and asl20.baseline.metrics == {"test_top1": 0.4247, "test_top3": 0.7529}
    assert asl50.baseline is not None and asl50.baseline.metrics == {"test_top1": 0.4727, "test_top3": 0.5091}
    assert asl50.training["dataset.classes"] == 50 and "model.size" in asl50.distributions()
    assert asl100.baseline is None and asl100.training["model.size"] == "medium"
    assert nslt.training["dataset.classes"] == 1000 and nslt.training["class_weights"] is True
    assert nslt.training["model.hidden"] == 512 and nslt.enqueue[0]["warmup_epochs"] == 10.0
    assert nslt.enqueue[0]["dropout"] == 0.5
    assert [n for n, _ in list_builtin_spaces()] == sorted(BUILTINS)
    assert all(description for _, description in list_builtin_spaces())


def test_resolve_space_path_builtins_from_another_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    expected = (BUILTIN_DIR / "asl50.yaml").resolve()
    for arg in ("spaces/asl50.yaml", "asl50.yaml", "asl50"):
        assert resolve_space_path(arg).resolve() == expected
    assert load_spec("spaces/asl50.yaml").name == "asl50"


def test_local_file_wins_over_builtin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spaces").mkdir()
    write(tmp_path / "spaces", "description: mine\n" + MINIMAL, "asl50.yaml")
    assert resolve_space_path("spaces/asl50.yaml") == Path("spaces/asl50.yaml")
    spec = load_spec("spaces/asl50.yaml")
    assert spec.description == "mine" and spec.name == "asl50"
    assert resolve_space_path("asl50") == resolve_space_path("asl50.yaml") == Path("spaces/asl50.yaml")  # NAME too
    write(tmp_path / "spaces", MINIMAL, "mine.yaml")
    assert resolve_space_path("mine") == Path("spaces/mine.yaml")
    assert resolve_space_path("asl20").resolve() == (BUILTIN_DIR / "asl20.yaml").resolve()


def test_unknown_space_lists_builtins() -> None:
    with pytest.raises(SpecError) as info:
        resolve_space_path("asl5O")
    assert "asl20, asl50" in str(info.value) and "did you mean 'asl50'" in str(info.value)


# ----------------------------------------------------------------------------------------------------------------
# Validation messages: file:line: field: message
# ----------------------------------------------------------------------------------------------------------------
def test_low_must_be_below_high(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2}
          dropout:
            type: float
            low: 0.5
            high: 0.1
        """)
    err = errors(path)
    assert str(err) == f"{path}:5: params.dropout.low: must be < high (got low=0.5, high=0.1)"
    assert (err.file, err.line, err.field) == (str(path), 5, "params.dropout.low")
    assert err.message == "must be < high (got low=0.5, high=0.1)"


@pytest.mark.parametrize("name", ["/tmp/elsewhere", "..", "team/asl20", "a\\b", ".hidden"])
def test_a_study_name_that_would_leave_the_results_folder_is_refused(tmp_path: Path, name: str) -> None:
    """The name is also the folder of the sweep's Ray results and checkpoints, which a sweep deletes trials from."""
    path = write(tmp_path, yaml.safe_dump({"name": name}) + MINIMAL)
    assert find(errors(path), "name") == f"{path}:1: name: {name!r} cannot name a study: it is also a folder name, " \
        "so it may not start with '.' or hold / or \\ (e.g. asl20-lr)"
    assert "--set name=.." in str(errors(write(tmp_path, MINIMAL), overrides=["name=.."]))
    assert load_spec(write(tmp_path, "name: asl20-lr_v2.1\n" + MINIMAL)).name == "asl20-lr_v2.1"


@pytest.mark.parametrize(("param", "field", "line", "text"), [
    ("{type: float, low: 0, high: 1, log: true}", "params.x.low", 3, "must be > 0 when log: true"),
    ("{type: float, low: 0.1, high: 1, log: true, step: 0.1}", "params.x.step", 3, "cannot be combined with log"),
    ("{type: int, low: 1, high: 64, log: true, step: 2}", "params.x.step", 3, "an int's in steps of 1"),
    ("{type: float, low: 0, high: 1, step: 0.3}", "params.x.step", 3, "multiple of step"),
    ("{type: int, low: 1.5, high: 4}", "params.x.low", 3, "should be a valid integer, got a number with a fractional"),
    ("{type: categorical, choices: []}", "params.x.choices", 3, "needs at least 1 item (got [])"),
    ("{type: float, low: , high: 1}", "params.x.low", 3, "has no value: give it one, or leave the key out"),
    ("{type: categorical, choices: [a, a]}", "params.x.choices.1", 3, "duplicate choice 'a'"),
    ("{type: categorical, choices: [1, true]}", "params.x.choices.1", 3,
     "True is the choice 1 to Optuna (True == 1, False == 0): keep one, or use strings"),
    ("{type: fixed}", "params.x.value", 3, "params.x.value: is required"),
    ("{type: float, high: 1}", "params.x.low", 3, "params.x.low: is required"),
    ("{type: categorical, choices: [a], low: 1}", "params.x.low", 3,
     "unknown key 'low' for a categorical param; allowed: type, choices"),
    ("{type: int, low: 0, high: 1, choices: [a]}", "params.x.choices", 3,
     "unknown key 'choices' for an int param; allowed: type, low, high, log, step"),
    ("{type: flaot, low: 0, high: 1}", "params.x.type", 3, "did you mean 'float'"),
    ("{typ: float, low: 0, high: 1}", "params.x.typ", 3, "unknown key 'typ' (did you mean 'type'?)"),
])
def test_param_rules(tmp_path: Path, param: str, field: str, line: int, text: str) -> None:
    path = write(tmp_path, "params:\n  lr: {type: float, low: 0.001, high: 0.01}\n  x: " + param + "\n")
    assert f"{path}:{line}: {field}: " in find(errors(path), field)
    assert text in find(errors(path), field)


def test_params_must_be_settings_of_the_core(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        params:
          label_smothing: {type: float, low: 0.0, high: 0.3}
        """)
    message = find(errors(path), "params.label_smothing")
    assert message.startswith(f"{path}:2: params.label_smothing: unknown setting 'label_smothing'")
    assert "did you mean 'label_smoothing'" in message


def test_every_problem_of_a_file_is_reported_in_one_go(tmp_path: Path) -> None:
    """A misspelt param, a row naming no param, stop_on_target without targets, a param the core takes for the
    objective and a misspelt quick: key each waited for the params' own errors to be fixed: a validate for each.
    What needs a valid param to be judged (an enqueued value of a refused param) waits still."""
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          dropout: {type: float, low: 0.5, high: 0.1}
          dropot: {type: float, low: 0.0, high: 0.3}
          objective: {type: categorical, choices: [val_top1, val_top3]}
        budget: {stop_on_target: true}
        enqueue:
          - {lr: 0.001, dropout: 0.9, dropuot: 0.2}
        quick:
          params.dropot.high: 0.2
          budget.trails: 3
        """)
    err = errors(path)
    assert [(i.line, i.field, i.source) for i in err.issues] == [
        (3, "params.dropout.low", None), (4, "params.dropot", None), (5, "params.objective", None),
        (6, "budget.stop_on_target", None), (8, "enqueue.0.dropuot", None), (11, "budget.trails", "--quick")], str(err)
    assert "unknown setting 'dropot' (did you mean 'dropout'?); allowed: dataset.name," in find(err, "params.dropot")
    assert "unknown param 'dropuot' (did you mean 'dropout'?); allowed: lr, dropout" in \
        find(err, "enqueue.0.dropuot")  # not a refused name (dropot, objective): the row would take on its mistake
    assert find(err, "budget.trails").startswith(
        f"{path}:11: --quick: budget.trails: unknown key 'trails' (did you mean 'trials'?); allowed: trials,")


def test_a_set_that_cannot_apply_is_reported_beside_the_files_problems(tmp_path: Path) -> None:
    """A --set naming nothing, or no KEY=VALUE at all, was the only problem said: the file's own waited for the
    next validate. A --set quick.KEY that names nothing is said once, though the quick profile refuses it too."""
    path = write(tmp_path, """\
        params:
          dropout: {type: float, low: 0.5, high: 0.1}
        quick:
          budget.trials: 2
        """)
    for quick in (False, True):
        err = errors(path, overrides=["nope=1", "bad", "quick.trainng.epochs=2"], quick=quick)
        assert [(i.line, i.field) for i in err.issues if i.line] == [(2, "params.dropout.low")], str(err)
        sources = sorted(str(i.source) for i in err.issues if i.line is None)
        assert sources == sorted(["--set nope=1", "--set bad", "--quick (--set quick.trainng.epochs=2)" if quick
                                  else "--set quick.trainng.epochs=2"]), str(err)
        assert "'nope' is neither a section of the space" in str(err) and "expected KEY=VALUE" in str(err)


def test_each_row_of_a_set_enqueue_is_reported_though_its_words_are_the_same(tmp_path: Path) -> None:
    """Saying a --set quick.KEY once kept one problem per --set and message: of --set enqueue=[...] with the same
    unknown param in two rows, the second row's went unsaid."""
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        """)
    for quick in (False, True):
        err = errors(path, overrides=["enqueue=[{nope: 1}, {nope: 1}]"], quick=quick)
        assert [i.field for i in err.issues] == ["enqueue.0.nope", "enqueue.1.nope"], str(err)


def test_a_field_the_full_sweep_and_its_quick_profile_both_refuse_is_reported_once(tmp_path: Path) -> None:
    """The quick: section is checked beside a refused full spec: a param range wrong in both (the quick key changes
    the bound the message quotes) was reported twice, the second time as --quick's problem."""
    err = errors(write(tmp_path, """\
        params:
          dropout: {type: float, low: 0.6, high: 0.5}
        quick:
          params.dropout.high: 0.4
        """))
    assert [(i.line, i.field, i.source) for i in err.issues] == [(2, "params.dropout.low", None)], str(err)


@pytest.mark.parametrize("params", ["params:\n  dropot: {type: float, low: 0.0, high: 0.5}\n",  # the name's mistake
                                    "parms:\n  dropout: {type: float, low: 0.0, high: 0.5}\n",  # no params at all
                                    "params:\n  - dropout: {type: float, low: 0.0, high: 0.5}\n", ""])
def test_a_row_is_not_blamed_for_a_refused_param_name(tmp_path: Path, params: str) -> None:
    """A row naming the param as it should be named was refused beside the param's own error, and told to use the
    misspelt name (unknown param 'dropout' (did you mean 'dropot'?)); with the params section missing, misspelt or
    a list, every row key was an unknown param (allowed: (none)). The params' own error says what is wrong."""
    for key in ("dropout", "dropot"):  # the name it should have, or the refused one itself
        err = errors(write(tmp_path, params + f"enqueue:\n  - {{{key}: 0.1}}\n"))
        assert not [i for i in err.issues if i.field.startswith("enqueue")], str(err)
    err = errors(write(tmp_path, params + "enqueue:\n  - {dropuot: 0.1}\n"))  # no setting: named no param
    assert [i.field for i in err.issues if i.field.startswith("enqueue")] == (["enqueue.0.dropuot"] * ("dropot" in
                                                                                                      params)), str(err)


def test_a_row_is_blamed_beside_a_param_refused_for_another_reason(tmp_path: Path) -> None:
    """A param refused for what it is, not for its name (objective), hides no setting a row may misname: the row's
    unknown param is reported in the same go, not once the objective param is gone."""
    err = errors(write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          objective: {type: categorical, choices: [val_top1, val_top3]}
        enqueue:
          - {dropout: 0.1, lr: 0.001}
        """))
    assert [i.field for i in err.issues] == ["params.objective", "enqueue.0.dropout"], str(err)
    assert "unknown param 'dropout'; allowed: lr" in find(err, "enqueue.0.dropout")


def test_unknown_keys_everywhere_with_hints(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        objectve: {metric: val_top3}
        training:
          dataset:
            clases: 50
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
        sampler:
          type: tpe
          n_startup_trails: 5
        scheduler: {type: asha, grace_periods: 2}
        budget: {trails: 4}
        """)
    err = errors(path)
    assert "did you mean 'objective'" in find(err, "objectve") and f"{path}:1:" in find(err, "objectve")
    assert find(err, "training.dataset.clases").startswith(f"{path}:4: training.dataset.clases: unknown setting")
    assert "did you mean 'dataset.classes'" in find(err, "training.dataset.clases")
    group = find(errors(path, overrides=["training.dataset=3"]), "training.dataset")  # not "did you mean dataset.seed"
    assert "'dataset' names a group of settings, not one setting: set one of dataset.name, dataset.path" in group
    assert f"{path}:9:" in find(err, "sampler.n_startup_trails")
    assert "did you mean 'n_startup_trials'" in find(err, "sampler.n_startup_trails")
    assert "did you mean 'grace_period'" in find(err, "scheduler.grace_periods")
    assert f"{path}:11:" in find(err, "budget.trails") and "did you mean 'trials'" in find(err, "budget.trails")
    assert len(str(err).splitlines()) == len(err.issues) == 5  # every problem, one per line, in file order
    assert [i.line for i in err.issues] == sorted(i.line for i in err.issues)


def test_hint_names_the_setting_a_short_key_abbreviates(tmp_path: Path) -> None:
    """`classes` is dataset.classes, not class_weights; `grace` is grace_period, not brackets (difflib's picks)."""
    path = write(tmp_path, MINIMAL + "training: {classes: 20, size: medium}\nscheduler: {type: asha, grace: 2}\n")
    err = errors(path)
    assert "did you mean 'dataset.classes'" in find(err, "training.classes")
    assert "did you mean 'model.size'" in find(err, "training.size")
    assert "did you mean 'grace_period'" in find(err, "scheduler.grace")


def test_a_scheduler_that_would_stop_no_trial_is_refused(tmp_path: Path) -> None:
    """A first rung (grace period) at a trial's last epoch or later stops no trial: no trial is stopped at its last
    epoch. It ran silently as no scheduler; a full sweep's space is refused at its line, a smoke run goes on."""
    path = write(tmp_path, MINIMAL + "training: {epochs: 5}\nscheduler: {type: asha, grace_period: 5}\n")
    assert str(errors(path)) == (
        f"{path}:4: scheduler.grace_period: asha would stop no trial early: it judges a trial first at epoch 5, but a "
        "trial trains epochs=5, and none is stopped at its last epoch (that saves nothing); give a grace_period below "
        "5, train more epochs, or use scheduler type: none")
    assert load_spec(path, overrides=["scheduler.grace_period=4"]).scheduler.options == {"grace_period": 4}
    err = errors(path, overrides=["params.epochs={type: int, low: 2, high: 5}"])  # the most it samples
    assert "but a trial trains at most epochs=5, and" in find(err, "scheduler.grace_period")
    assert load_spec(path, quick=True).idle_scheduler() is None  # the built-in profile's grace period is 1
    err = errors(path, overrides=["training.epochs=4", "scheduler={type: asha, reduction_factor: 4, brackets: 5}"])
    assert find(err, "scheduler.brackets").endswith(  # Ray builds 4 of them without a rung: 60% of trials unjudged
        "scheduler.brackets: asha would stop no trial in 4 of its 5 brackets, and run their trials unjudged: bracket k "
        "judges first at epoch grace_period x reduction_factor^k, at most 3, below a trial's last epoch (4), so at "
        "most 1 can: give brackets: 1 or fewer, a smaller reduction_factor, or train more epochs")
    assert load_spec(path, overrides=["training.epochs=17", "scheduler={type: asha, brackets: 3}"])  # 1, 4, 16
    err = errors(path, overrides=["training.epochs=17", "scheduler={type: asha, brackets: 2, max_t: 3}"])
    assert "at most 3 (max_t), so at most 1 can" in find(err, "scheduler.brackets")
    err = errors(path, overrides=["params.epochs={type: int, low: 2, high: 5}", "scheduler={type: asha, brackets: 3}"])
    assert "at most 4, below a trial's last epoch (at most 5), so at most 2 can" in find(err, "scheduler.brackets")
    err = errors(path, overrides=["scheduler={type: median, grace_period: 6}"])
    assert "median would stop no trial early" in find(err, "scheduler.grace_period")
    err = errors(path, overrides=["epochs=1", "scheduler={type: hyperband}"])
    assert find(err, "scheduler.type").startswith(f"{path}: --set scheduler={{type: hyperband}}: scheduler.type: "
                                                  "hyperband would stop no trial early")
    err = errors("asl20", overrides=["epochs=3", "params.warmup_epochs.high=3", "enqueue=[]"])
    assert str(err).endswith(":70: --set epochs=3: scheduler.grace_period: asha would stop no trial early: it judges "
                             "a trial first at epoch 3, but a trial trains epochs=3, and none is stopped at its last "
                             "epoch (that saves nothing); give a grace_period below 3, train more epochs, or use "
                             "scheduler type: none; with --set epochs=3, change scheduler.grace_period too")
    # a --set for the full sweep is not refused for the smoke run's 3 epochs; that run says so as it starts
    assert load_spec("asl20", overrides=["scheduler.grace_period=5"]).scheduler.options == {"grace_period": 5}
    quick = load_spec("asl20", overrides=["scheduler.grace_period=3"], quick=True)
    assert quick.idle_scheduler()[0] == "grace_period"
    stored = spec_from_dict(quick.to_yaml_dict(), stored=True)  # a study that ran so goes on
    assert stored.idle_scheduler() is not None


def test_a_median_rule_that_needs_more_trials_than_the_sweep_runs_is_refused() -> None:
    """It judges a trial beside min_samples_required others: as many as budget.trials or more, and it stopped none."""
    err = errors("asl50", overrides=["scheduler={type: median, min_samples_required: 40}"])
    assert str(err).endswith(
        ": --set scheduler={type: median, min_samples_required: 40}: scheduler.min_samples_required: median would "
        "stop no trial early: it compares a trial with min_samples_required=40 others, but a sweep of "
        "budget.trials=40 gives a trial at most 39; give a min_samples_required below 40, or more trials")
    assert load_spec("asl50", overrides=["scheduler={type: median, min_samples_required: 39}"])
    err = errors("asl50", overrides=["scheduler.type=median", "budget.trials=3"])  # its default, 3
    assert "min_samples_required=3 others" in find(err, "scheduler.min_samples_required")
    assert load_spec("asl50", overrides=["scheduler.type=median", "budget.trials=3"], quick=True)  # says so, runs


def test_sampler_and_scheduler_options(tmp_path: Path, optuna_deprecates: Callable[..., bool]) -> None:
    path = write(tmp_path, space("""\
        sampler: {type: tpe, gamma: 3, constant_liar: 3}
        scheduler: {type: median, brackets: 2, grace_period: 0}
        """))
    err = errors(path)
    assert "takes a Python object" in find(err, "sampler.gamma")
    assert "constant_liar=3 is not allowed: expected bool" in find(err, "sampler.constant_liar")
    assert "unknown key 'brackets' for a median scheduler; allowed: type, grace_period, min_samples_required" in \
        find(err, "scheduler.brackets")
    assert "Input should be greater than or equal to 1 (got 0)" in find(err, "scheduler.grace_period")
    path = write(tmp_path, MINIMAL + "scheduler: {type: asha, grace_period: 10, max_t: 5}\n")
    assert "must be <= max_t" in find(errors(path), "scheduler.grace_period")
    # Ray builds every bracket and rung up front: these took all the memory there was
    path = write(tmp_path, MINIMAL + "scheduler: {type: asha, brackets: 100000000, reduction_factor: 1.0000001}\n")
    assert "less than or equal to 10" in find(errors(path), "scheduler.brackets")
    assert "greater than or equal to 1.1" in find(errors(path), "scheduler.reduction_factor")
    path = write(tmp_path, MINIMAL + "scheduler: {type: hyperband, reduction_factor: 1.0000001}\n")
    assert "greater than or equal to 1.1" in find(errors(path), "scheduler.reduction_factor")

    # options whose default is None are typed from their annotation; values reach the sampler converted
    err = errors(write(tmp_path, MINIMAL + "sampler: {type: tpe, multivariate: maybe, prior_weight: heavy}\n"))
    assert "multivariate='maybe' is not allowed: expected bool" in find(err, "sampler.multivariate")
    assert "expected float" in find(err, "sampler.prior_weight")
    spec = load_spec(write(tmp_path, MINIMAL + "sampler: {type: cmaes, n_startup_trials: '3', popsize: '8'}\n"))
    assert spec.sampler.options == {"n_startup_trials": 3, "popsize": 8}
    # Optuna takes these without a word at validation: a negative count counts nothing, and a deprecated option
    # printed a FutureWarning at the sweep's start (restart_strategy does nothing any more)
    err = errors(write(tmp_path, MINIMAL + "sampler: {type: tpe, n_startup_trials: -3}\n"))
    assert "is -3: a count, a whole number >= 0" in find(err, "sampler.n_startup_trials")
    deprecated = {"{type: cmaes, restart_strategy: ipop}": ("CmaEsSampler", {"restart_strategy": "ipop"}),
                  "{type: tpe, prior_weight: 2}": ("TPESampler", {"prior_weight": 2.0})}
    for option, (sampler, options) in deprecated.items():
        if not optuna_deprecates(sampler, **options):  # from Optuna 5 on; setup.cfg's floor is 4.5
            continue
        err = errors(write(tmp_path, MINIMAL + f"sampler: {option}\n"))
        assert "is deprecated by Optuna: " in str(err) and "Leave it out" in str(err) and len(err.issues) == 1, err


def test_metrics_must_be_reported(tmp_path: Path) -> None:
    path = write(tmp_path, space("""\
        objective: {metric: val_top4}
        targets: {test_top9: 80%}
        baseline: {source: paper, test_acc: 50%}
        """))
    err = errors(path)
    assert "unknown metric 'val_top4'" in find(err, "objective.metric")
    assert f"{path}:4: targets.test_top9: unknown metric" in find(err, "targets.test_top9")
    assert f"{path}:5: baseline.test_acc: unknown metric" in find(err, "baseline.test_acc")
    path = write(tmp_path, MINIMAL + "objective: {metric: test_top3}\n")
    assert "not reported every epoch" in find(errors(path), "objective.metric")
    path = write(tmp_path, MINIMAL + "objective: {metric: val_loss, direction: maximize}\n")
    assert "direction should be minimize" in find(errors(path), "objective.direction")
    assert load_spec(write(tmp_path, MINIMAL + "objective: {metric: val_loss}\n")).direction == "minimize"


def test_training_values_are_type_checked(tmp_path: Path) -> None:
    path = write(tmp_path, space("""\
        training:
          epochs: many
          model: {size: huge}
        """))
    err = errors(path)
    assert find(err, "training.epochs") == f"{path}:4: training.epochs: epochs='many' is not allowed: expected int"
    path = write(tmp_path, MINIMAL + "training:\n  model: {hidden: 100}\n")
    assert "multiple of the number of heads" in find(errors(path), "training.model.hidden")
    path = write(tmp_path, MINIMAL + "training:\n  lr: 1e-3\n  epochs: 5\n")
    assert load_spec(path).training == {"lr": 1e-3, "epochs": 5}  # YAML text 1e-3 becomes a float


def test_param_range_checked_against_the_core(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        training: {epochs: 4}
        params:
          warmup_epochs: {type: float, low: 0.0, high: 6.0}
          model.size: {type: categorical, choices: [small, huge]}
        """)
    err = errors(path)
    assert "refused by trials:run: warmup_epochs=6.0" in find(err, "params.warmup_epochs.high")
    assert find(err, "params.warmup_epochs.high").endswith("a number in [0, epochs] (epochs=4)")  # what it is now
    assert f"{path}:4: params.model.size.choices.1: refused by trials:run" in find(err, "params.model.size.choices.1")


def test_related_params_are_judged_by_the_values_their_partners_sample(tmp_path: Path) -> None:
    """min_lr, warmup_epochs and the model's shape are checked against the params they depend on at those params'
    extremes, not at the training block's values, which no trial uses when the space samples them; a value is
    refused only where no sampled partner lets it pass (a few failing pairings fail their own trials)."""
    lr = "lr: {type: float, low: %s, high: %s, log: true}"
    accepted = [
        ("", f"{lr % ('1.0e-3', '1.0e-2')}\n  min_lr: {{type: float, low: 1.0e-6, high: 5.0e-4, log: true}}"),
        ("training: {min_lr: 5.0e-4}", lr % ("1.0e-3", "1.0e-2")),  # the default lr (1e-4) is below it
        ("", f"{lr % ('1.0e-4', '1.0e-2')}\n  min_lr: {{type: float, low: 1.0e-6, high: 5.0e-4, log: true}}"),
        ("training: {epochs: 2}", "epochs: {type: int, low: 5, high: 10}\n  warmup_epochs: {type: fixed, value: 3}"),
        ("training: {epochs: 2}", "epochs: {type: int, low: 5, high: 10}\n"
                                  "  warmup_epochs: {type: float, low: 0, high: 4}"
                                  f"\n  {lr % ('1.0e-3', '1.0e-2')}\n  min_lr: {{type: float, low: 0, high: 5.0e-4}}"
                                  "\nenqueue: [{warmup_epochs: 3, min_lr: 5.0e-4}]"),
        ("", "model.hidden: {type: categorical, choices: [40, 64]}\n"
             "  model.heads: {type: categorical, choices: [8, 16]}"),
    ]
    for training, params in accepted:
        load_spec(write(tmp_path, f"{training}\nparams:\n  {params}\n"))
    path = write(tmp_path, f"""\
        training: {{lr: 1.0e-4, epochs: 4}}
        params:
          min_lr: {{type: float, low: 1.0e-6, high: 5.0e-4, log: true}}
          warmup_epochs: {{type: float, low: 5, high: 6}}
          {lr % ('1.0e-3', '1.0e-2')}
          model.hidden: {{type: categorical, choices: [40, 64]}}
          model.heads: {{type: categorical, choices: [16]}}
        enqueue: [{{min_lr: 5.0e-4}}, {{lr: 0.001, min_lr: 5.0e-4}}]
        """)
    err = errors(path)
    assert find(err, "params.model.hidden.choices.0").endswith("model.hidden=40 is not allowed: a multiple of the "
                                                               "number of heads (16)")
    assert "warmup_epochs=5.0 is not allowed" in find(err, "params.warmup_epochs.low")
    assert "warmup_epochs=6.0 is not allowed" in find(err, "params.warmup_epochs.high")
    assert {i.field for i in err.issues} == {"params.model.hidden.choices.0", "params.warmup_epochs.low",
                                             "params.warmup_epochs.high"}  # min_lr passes beside lr 1e-3 and up
    path = write(tmp_path, f"params:\n  {lr % ('1.0e-4', '1.0e-2')}\n  min_lr: {{type: float, low: 0, high: 5.0e-4}}"
                           "\nenqueue: [{lr: 1.0e-4, min_lr: 5.0e-4}, {min_lr: 5.0e-4}]\n")
    assert [i.field for i in errors(path).issues] == ["enqueue.0"]  # the row pins both


def test_a_related_setting_is_still_refused_by_its_own_rules(tmp_path: Path) -> None:
    """Only the rules between related settings wait for the values a space samples: a value bad on its own (a
    model.size no preset has, a zero lr) is refused where it is written, however many partners it has, and the
    checks of the data before a sweep take the training block as valid beside the sampled params."""
    from sweeper.preflight import check_data_found

    six = "[32, 64, 96, 128, 160, 192]"
    path = write(tmp_path, f"params:\n  model.size: {{type: categorical, choices: [small, Medium]}}\n"
                           f"  model.hidden: {{type: categorical, choices: {six}}}\n"
                           f"  model.heads: {{type: categorical, choices: [1, 2, 4, 8, 16, 32]}}\n")
    assert [i.field for i in errors(path).issues] == ["params.model.size.choices.1"]
    path = write(tmp_path, "params:\n  model.size: {type: categorical, choices: [Small, Medium]}\n"
                           "  model.heads: {type: categorical, choices: [4, 8]}\nenqueue: [{model.heads: 4}]\n")
    assert [i.field for i in errors(path).issues] == ["params.model.size.choices.0", "params.model.size.choices.1"]
    path = write(tmp_path, "training: {lr: -1.0}\nparams:\n  min_lr: {type: float, low: 1.0e-7, high: 1.0e-6}\n")
    assert [str(i) for i in errors(path).issues] == [
        f"{path}:1: training.lr: trials:run refuses the training config: lr=-1.0 is not allowed: a positive number"]
    path = write(tmp_path, "params:\n  warmup_epochs: {type: float, low: 0.0, high: 3.0}\n")
    issue = errors(path, overrides=["epochs=0"]).issues[0]
    assert (issue.field, issue.source) == ("training.epochs", "--set epochs=0")
    path = write(tmp_path, "training: {objective: val_topz}\nparams:\n  lr: {type: float, low: 1.0e-4, high: 0.01}\n")
    assert "training.objective: trials:run refuses the training config: objective='val_topz' is not allowed: one " \
           "of train_loss" in str(errors(path))
    path = write(tmp_path, "training: {min_lr: 5.0e-4}\nparams:\n  lr: {type: float, low: 1.0e-3, high: 0.01}\n")
    assert check_data_found(load_spec(path)).startswith("synthetic")  # generated data: the generator's version


def test_the_core_lists_every_rule_a_config_breaks_and_raises_the_first() -> None:
    from trials.config import ConfigError, TrainConfig

    config = TrainConfig.from_flat({"dropout": 2, "min_lr": 1e-3, "model.size": "huge"}, validate=False)
    assert [p.key for p in config.problems()] == ["model.size", "dropout", "min_lr"]
    with pytest.raises(ConfigError, match=r"model\.size='huge' is not allowed"):
        config.validate()
    assert TrainConfig.from_flat({"model.heads": 3}, validate=False).problems()[0].key == "model.heads"
    assert [p.key for p in TrainConfig.from_flat({"model.hidden": 30}, validate=False).problems()] == ["model.hidden"]


def test_enqueue_rules(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}
          model.size: {type: categorical, choices: [small, medium]}
          seed: {type: fixed, value: 1}
        enqueue:
          - {lr: 0.1, model.size: smal}
          - {seed: 2, dropot: 0.1}
        """)
    err = errors(path)
    assert find(err, "enqueue.0.lr") == f"{path}:6: enqueue.0.lr: 0.1 is outside [0.0001, 0.01]"
    assert "did you mean 'small'" in find(err, "enqueue.0.model.size")
    assert "fixed param" in find(err, "enqueue.1.seed") and f"{path}:7:" in find(err, "enqueue.1.seed")
    assert "unknown param 'dropot'" in find(err, "enqueue.1.dropot")



def test_an_enqueued_rows_values_are_checked_while_another_param_is_refused(tmp_path: Path) -> None:
    """A refused param (lr's low above its high) left every row's values unchecked: the user fixed lr, ran again,
    and only then heard that the row's dropout lies outside its param's range, and that seed is fixed."""
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 1.0e-2, high: 1.0e-4}
          dropout: {type: float, low: 0.0, high: 0.3}
          seed: {type: fixed, value: 1}
        enqueue:
          - {dropout: 5.0, lr: 1.0e-3, seed: 2}
        """)
    err = errors(path)
    assert "must be < high" in find(err, "params.lr.low")
    assert find(err, "enqueue.0.dropout") == f"{path}:6: enqueue.0.dropout: 5.0 is outside [0.0, 0.3]"
    assert "fixed param" in find(err, "enqueue.0.seed")
    assert not [i for i in err.issues if i.field == "enqueue.0.lr"]  # its param's problem, said once, at the param

def test_grid_sampler(tmp_path: Path) -> None:
    path = write(tmp_path, """\
        params:
          lr: {type: float, low: 0.001, high: 0.003, step: 0.001}
          batch_size: {type: int, low: 16, high: 64, step: 16}
          model.layers: {type: int, low: 2, high: 4}
          model.size: {type: categorical, choices: [small, medium]}
          seed: {type: fixed, value: 7}
        sampler: {type: grid, seed: 1}
        """)
    spec = load_spec(path)
    assert spec.grid_search_space() == {"lr": [0.001, 0.002, 0.003], "batch_size": [16, 32, 48, 64],
                                        "model.layers": [2, 3, 4], "model.size": ["small", "medium"]}
    assert spec.grid_size() == 72
    assert isinstance(build_sampler(spec), optuna.samplers.GridSampler)
    path = write(tmp_path, MINIMAL + "  dropout: {type: float, low: 0.0, high: 0.5}\nsampler: {type: grid}\n")
    message = str(errors(path))
    assert f"{path}:4: sampler: the grid sampler needs a finite set of values, but params.lr is a log range" in message
    assert "params.dropout is a float range without a step" in message
    # counted, not listed: validating a step of 1e-12 took all the memory there was
    path = write(tmp_path, """\
        params:
          dropout: {type: float, low: 0.0, high: 0.5, step: 1.0e-12}
          batch_size: {type: int, low: 1, high: 20000}
        sampler: {type: grid}
        """)
    assert "the grid has 10,000,000,000,020,000 points" in find(errors(path), "sampler")


def test_budget_resources_and_durations(tmp_path: Path) -> None:
    assert [duration_seconds(t) for t in ("90s", "30m", "2h", "1h30m", 45)] == [90, 1800, 7200, 5400, 45]
    spec = load_spec(write(tmp_path, MINIMAL + "budget: {time: 1h30m}\nresources: {cpu: 0.5, gpu: 0.25}\n"))
    assert spec.budget.time_seconds == 5400 and spec.resources.gpu == 0.25
    err = errors(write(tmp_path, MINIMAL + "budget: {time: 5 minutes, trials: 0}\nresources: {cpu: 0}\n"))
    assert "expected a duration such as 90s" in find(err, "budget.time")
    assert ":3: budget.trials: Input should be greater than or equal to 1" in find(err, "budget.trials")
    assert "greater than 0" in find(err, "resources.cpu")
    for value in (".nan", ".inf", "-1"):
        err = errors(write(tmp_path, MINIMAL + f"budget: {{storage_timeout: {value}}}\n"))
        assert "must be a positive, finite duration" in find(err, "budget.storage_timeout")


def test_a_duration_written_as_a_tiny_or_huge_number_reads_back(tmp_path: Path) -> None:
    """budget.time: 1.0e-7 was stored as '1e-07s', which sweeper resume then refused (found by an exploratory test)."""
    for written, seconds in (("1.0e-7", 1e-7), ("1.0e+20", 1e20)):
        spec = load_spec(write(tmp_path, MINIMAL + f"budget: {{time: {written}}}\n"))
        again = spec_from_dict(spec.to_yaml_dict(), stored=True)  # what sweeper resume reads from the study
        assert again.budget.time_seconds == spec.budget.time_seconds == seconds


def test_on_gpu_resources_replace_the_others_only_on_a_cluster_with_a_gpu(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL + "resources: {cpu: 2, on_gpu: {gpu: 0.5, fuse: 8}}\n"))
    assert spec.resources.on_cluster(0) == spec.resources  # no GPU: what is written outside on_gpu
    on_gpu = spec.resources.on_cluster(1)
    assert (on_gpu.cpu, on_gpu.gpu, on_gpu.fuse, on_gpu.on_gpu) == (1, 0.5, 8, None)  # unset keys: the defaults
    assert load_spec(BUILTIN_DIR / "asl20.yaml").resources.on_gpu.fuse == 16
    assert spec_from_dict(spec.to_yaml_dict()).resources == spec.resources  # what a study stores reads back
    assert "on_gpu" not in spec.to_yaml_dict()["resources"]["on_gpu"]  # validate prints no on_gpu: null
    err = errors(write(tmp_path, MINIMAL + "resources:\n  on_gpu: {gpu: 0, on_gpu: {gpu: 1}}\n"))
    assert ":4: resources.on_gpu.gpu: must be above 0" in find(err, "resources.on_gpu.gpu")
    assert "is not allowed inside on_gpu" in find(err, "resources.on_gpu.on_gpu")
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=["resources.on_gpu.fuze=8"])
    assert find(err, "resources.on_gpu.fuze").endswith(  # on_gpu's own keys, without on_gpu
        "unknown key 'fuze' (did you mean 'fuse'?); allowed: cpu, gpu, fuse, custom")


def test_a_grid_search_refuses_a_partial_enqueued_row() -> None:
    """Optuna's grid sampler samples no missing key of an enqueued trial: it would fail the sweep."""
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=[
        "sampler={type: grid}", "enqueue=[{dropout: 0.1}]",
        "params={dropout: {type: categorical, choices: [0.1, 0.2]}, lr: {type: categorical, choices: [0.001, 0.002]}}"])
    assert find(err, "enqueue.0").endswith("enqueue.0: the grid sampler needs every param in an enqueued row; "
                                           "missing: lr")


def test_yaml_problems(tmp_path: Path) -> None:
    err = errors(write(tmp_path, "params:\n  lr: [1, 2\n  x: 3\n"))
    assert err.line == 3 and "invalid YAML" in str(err)
    err = errors(write(tmp_path, "params:\n  lr: [1, 2\n"))  # never closed: the line that opened it, not the end
    assert err.line == 2 and "expected ',' or ']', but got '<stream end>'" in str(err)
    assert errors(write(tmp_path, 'name: "abc\nparams: {}\n')).line == 1  # the quote that opened it
    assert "the file is empty" in str(errors(write(tmp_path, "# nothing\n")))
    err = errors(write(tmp_path, "- a\n- b\n"))
    assert err.line == 1 and "must be a mapping" in err.message
    err = errors(write(tmp_path, MINIMAL + "budget: {trials: 3}\nparams: {}\n"))
    assert str(err) == f"{tmp_path / 'space.yaml'}:4: params: duplicate key (first at line 1)"
    err = errors(write(tmp_path, MINIMAL + "budget: {trials: 3, trials: 4}\n"))
    assert str(err) == f"{tmp_path / 'space.yaml'}:3: budget.trials: duplicate key (first at line 3)"
    merged = load_spec(write(tmp_path, "params:\n  lr: &range\n    type: float\n    low: 0.001\n    high: 0.01\n"
                                       "  weight_decay:\n    <<: *range\n    high: 0.2\n"))  # a merge key is no repeat
    assert (merged.params["weight_decay"].low, merged.params["weight_decay"].high) == (0.001, 0.2)
    err = errors(write(tmp_path, "params:\n  lr: &r {type: float, low: 0.001, high: 0.01}\n"
                                 "  wd:\n    <<: *r\n    high: 0.2\n    high: 0.3\n"))
    assert str(err) == f"{tmp_path / 'space.yaml'}:6: params.wd.high: duplicate key (first at line 5)"
    err = errors(write(tmp_path, MINIMAL + "training: &t\n  epochs: 3\n  again: *t\n"))  # would recurse forever
    assert str(err) == f"{tmp_path / 'space.yaml'}:5: training.again: an alias that contains itself"
    laughs = ["a: &a [x, x, x, x, x, x, x, x, x, x]"] + [f"{c}: &{c} [{', '.join(['*' + p] * 10)}]"
                                                        for p, c in zip("abcdefg", "bcdefgh", strict=True)]
    err = errors(write(tmp_path, MINIMAL + "\n".join(laughs) + "\n"))  # 10**8 values: gigabytes, minutes
    assert err.message == "more than 100,000 values once aliases are expanded"
    err = errors(write(tmp_path, MINIMAL + "description: " + "[" * 3000 + "]" * 3000 + "\n"))  # a RecursionError
    assert err.message.startswith("invalid YAML: maximum recursion depth exceeded")
    with pytest.raises(SpecError, match="cannot read the value"):
        load_spec(write(tmp_path, MINIMAL), overrides=["description=" + "[" * 3000 + "]" * 3000])
    err = errors(write(tmp_path, MINIMAL + f"name: {'x' * 241}\n"))  # Ray's folder would fail after Ray started
    assert str(err) == f"{tmp_path / 'space.yaml'}:3: name: is 241 bytes long; a study name is also a folder name: " \
                       "at most 240"
    assert load_spec(write(tmp_path, MINIMAL + f"name: {'x' * 240}\n")).name == "x" * 240
    only_fixed = write(tmp_path, "params:\n  seed: {type: fixed, value: 1}\n")
    assert "needs at least one param to tune" in str(errors(only_fixed))
    assert str(errors(write(tmp_path, "params:\n"))) == \
        f"{tmp_path / 'space.yaml'}:1: params: needs at least one param to tune (float, int or categorical)"
    empty = load_spec(write(tmp_path, MINIMAL + "name:\nscheduler:\ndescription:\nsampler:\n"))  # empty: defaults
    assert (empty.name, empty.scheduler.type, empty.description, empty.sampler.type) == ("space", "none", "", "tpe")
    err = errors(write(tmp_path, MINIMAL + "objectve:\n"))  # a misspelt section fails even when empty
    assert len(err.issues) == 1 and "did you mean 'objective'" in find(err, "objectve")


# ----------------------------------------------------------------------------------------------------------------
# Percentages, --set, --quick
# ----------------------------------------------------------------------------------------------------------------
def test_percentages(tmp_path: Path) -> None:
    assert fraction("80%") == 0.8 and fraction("42.47%") == 0.4247 and fraction(0.8) == 0.8 and fraction("0.5") == 0.5
    spec = load_spec(write(tmp_path, space("""\
        targets: {test_top3: 80%, test_top1: 0.5}
        baseline: {source: paper, test_top3: "75.29%"}
        """)))
    assert spec.targets == {"test_top3": 0.8, "test_top1": 0.5}
    assert spec.baseline is not None and spec.baseline.metrics == {"test_top3": 0.7529}
    assert targets_met({"test_top3": 0.81, "test_top1": 0.5}, spec.targets, spec.metric_direction)
    assert not targets_met({"test_top3": 0.9}, spec.targets, spec.metric_direction)
    assert not targets_met({"test_top3": float("nan"), "test_top1": 0.5}, spec.targets, spec.metric_direction)
    err = errors(write(tmp_path, MINIMAL + "targets: {test_top3: 80, test_top1: lots}\n"))
    assert "looks like a percentage; write '80%' or 0.8" in find(err, "targets.test_top3")
    assert "expected a number or a percentage" in find(err, "targets.test_top1")


@pytest.mark.parametrize("value", ["", "[1, 2]", "{a: 1}", ".nan", "-5%", "true"])
def test_a_target_that_is_no_number_is_one_clear_error(tmp_path: Path, value: str) -> None:
    err = errors(write(tmp_path, MINIMAL + f"targets: {{test_top3: {value}}}\n"))
    assert len(err.issues) == 1
    assert ("below 0%, which test_top3 cannot reach" if value == "-5%" else "expected a number or a percentage"
            ) in find(err, "targets.test_top3")


def test_set_overrides(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "  dropout: {type: float, low: 0.0, high: 0.5}\nenqueue:\n  - {lr: 1.0e-3}\n")
    spec = load_spec(path, overrides=["budget.trials=4", "training.dataset.classes=50", "params.dropout.high=0.4",
                                      "enqueue.0.lr=2e-3", "targets.test_top3=80%", "params.lr.log=false"])
    assert spec.budget.trials == 4 and spec.training["dataset.classes"] == 50
    assert spec.params["dropout"].high == 0.4 and spec.enqueue == [{"lr": 2e-3}] and spec.targets["test_top3"] == 0.8
    assert not spec.params["lr"].log and spec.overrides[0] == "budget.trials=4"
    assert "# with --set budget.trials=4" in render_spec(spec)
    # 1e-3 is a number, as in YAML 1.2 (PyYAML's 1.1 reads it as text): choices and fixed values reach the
    # training function as numbers; the text '1e-3' stays text, and the resolved spec writes it back quoted
    spec = load_spec(write(tmp_path, "params:\n  lr: {type: categorical, choices: [1e-3, 1E4, '1e-5']}\n"
                                     "  weight_decay: {type: fixed, value: 2.5e-4}\n", "numbers.yaml"),
                     overrides=["params.weight_decay.value=3e-2"])
    assert spec.params["lr"].choices == [1e-3, 1e4, "1e-5"] and spec.fixed_params() == {"weight_decay": 0.03}
    assert "- '1e-5'" in render_spec(spec)

    err = errors(path, overrides=["budget.trials=x"])
    assert str(err).startswith(f"{path}: --set budget.trials=x: budget.trials: Input should be a valid integer")
    assert err.line is None and err.source == "--set budget.trials=x"
    assert "expected KEY=VALUE" in str(errors(path, overrides=["budget.trials"]))
    assert "has no item '3'" in str(errors(path, overrides=["enqueue.3.lr=1"]))
    err = errors("asl50", overrides=["params.model.size.choices=[small]"])  # an enqueued row no longer fits
    assert find(err, "enqueue.1.model.size").endswith(": --set params.model.size.choices=[small]: enqueue.1.model"
                                                      ".size: 'medium' is not one of the choices ['small']")
    err = errors("asl20", overrides=["scheduler.max_t=2"])  # the file's grace_period, made wrong by a --set
    assert str(err).endswith(":70: --set scheduler.max_t=2: scheduler.grace_period: must be <= max_t "
                             "(got grace_period=3, max_t=2)")
    err = errors(path, overrides=["params.dropout.high=-0.1", "budget.trails=3"])
    assert "did you mean 'trials'" in find(err, "budget.trails") and "--set budget.trails=3" in str(err)
    assert find(err, "params.dropout.low") == \
        f"{path}:3: --set params.dropout.high=-0.1: params.dropout.low: must be < high (got low=0.0, high=-0.1)"


def test_quick_profile_from_the_file(tmp_path: Path) -> None:
    path = write(tmp_path, space("""\
        training: {epochs: 30}
        budget: {trials: 50}
        quick:
          training.epochs: 2
          budget.trials: 4
        """))
    spec = load_spec(path, quick=True)
    assert spec.name == "space-quick" and spec.training["epochs"] == 2 and spec.budget.trials == 4
    assert load_spec(path, quick=True, overrides=["budget.trials=5"]).budget.trials == 5  # --set wins
    assert load_spec(path).training["epochs"] == 30
    edited = load_spec(path, quick=True, overrides=["quick.budget.trials=3"])  # the section as --set left it
    assert edited.budget.trials == 3 and edited.quick["budget.trials"] == 3 and edited.training["epochs"] == 2
    err = errors(path, quick=True, overrides=["quick.budget.trials=0"])
    assert find(err, "budget.trials").startswith(
        f"{path}: --quick (--set quick.budget.trials=0): budget.trials: Input should")
    bad = write(tmp_path, MINIMAL + "quick:\n  budget.trials: 0\n  trainig.epochs: 2\n")
    err = errors(bad, quick=True)
    assert find(err, "budget.trials").startswith(f"{bad}:4: --quick: budget.trials: Input should be greater")
    assert "did you mean 'training'" in find(err, "quick.trainig.epochs")
    nested = write(tmp_path, MINIMAL + "training: {epochs: 30, dataset: {classes: 5}}\nscheduler: {type: asha, "
                   "grace_period: 3}\nquick:\n  training:\n    epochs: 2\n  scheduler: {type: none}\n  budget:\n"
                   "    trials: 0\n")  # written as the sections are: each leaf is one override, the rest stays
    err = errors(nested, quick=True)
    assert find(err, "budget.trials").startswith(f"{nested}:10: --quick: budget.trials: Input should be greater")
    spec = load_spec(nested, quick=True, overrides=["quick.budget.trials=2"])
    assert spec.training == {"epochs": 2, "dataset.classes": 5} and spec.scheduler.type == "none"


@pytest.mark.parametrize("quick", [False, True])
def test_a_quick_profile_changed_by_set_is_named_as_the_quick_profile_with_quick_advice(tmp_path: Path,
                                                                                        quick: bool) -> None:
    """A --set quick... problem carried the --set alone, and its advice ("with --set quick=..., change
    params.warmup_epochs.high too") read as if the full sweep were wrong; a quick key's sibling (max_concurrent) took
    the blame, at the full sweep's line, for a value the --set gave (budget.trials=0)."""
    path = write(tmp_path, space("""\
          warmup_epochs: {type: float, low: 0.0, high: 3.0}
        training: {epochs: 10}
        budget: {trials: 8, max_concurrent: 2}
        quick:
          training.epochs: 4
          budget.trials: 4
          budget.max_concurrent: 1
        """))
    err = errors(path, quick=quick, overrides=["quick.training.epochs=2"])
    assert find(err, "params.warmup_epochs.high") == (
        f"{path}:3: --quick (--set quick.training.epochs=2): params.warmup_epochs.high: refused by trials:run: "
        "warmup_epochs=3.0 is not allowed: -1 (10% of epochs) or a number in [0, epochs] (epochs=2); the quick "
        "profile's problem, not the full sweep's: override params.warmup_epochs.high in it too (key "
        "quick.params.warmup_epochs.high)"), str(err)
    whole = errors(path, quick=quick, overrides=["quick={training.epochs: 2}"])
    assert find(whole, "params.warmup_epochs.high").startswith(
        f"{path}:3: --quick (--set quick={{training.epochs: 2}}): params.warmup_epochs.high: refused by trials:run")
    assert load_spec(path, quick=quick, overrides=["quick.training.epochs=2", "quick.params.warmup_epochs.high=2"])
    trials = errors(path, quick=quick, overrides=["quick.budget.trials=0"])
    assert find(trials, "budget.trials") == f"{path}: --quick (--set quick.budget.trials=0): budget.trials: Input " \
        "should be greater than or equal to 1 (got 0)"
    in_file = errors(write(tmp_path, space("""\
          warmup_epochs: {type: float, low: 0.0, high: 3.0}
        quick: {training.epochs: 2}
        """)), quick=quick)
    assert find(in_file, "params.warmup_epochs.high").endswith(
        "(epochs=2); the quick profile's problem, not the full sweep's: override params.warmup_epochs.high in it "
        "too (key quick.params.warmup_epochs.high)") and in_file.issues[0].source == "--quick"
    # the built-in profile (3 epochs): a quick: section of the file's own replaces it whole, so it must say so
    built_in = errors(write(tmp_path, space("""\
          warmup_epochs: {type: float, low: 0.0, high: 5.0}
        training: {epochs: 10}
        """)), quick=True)
    assert find(built_in, "params.warmup_epochs.high").endswith(
        "(epochs=3); the built-in quick profile's problem, not the full sweep's: a quick: section in the file replaces "
        "that profile; give it the epochs and trials a smoke run should have, and quick.params.warmup_epochs.high too")


def test_a_quick_section_whose_keys_have_no_line_is_not_called_the_built_in_profile(tmp_path: Path) -> None:
    """The built-in profile was told from a file's quick: section by its key's line being unknown: a section given
    through a YAML merge key, or a spec from a dict (no lines at all), got the built-in profile's advice (add a
    quick: section) for the quick: section it has."""
    body = "  warmup_epochs: {type: float, low: 0.0, high: 3.0}\ntraining: {epochs: 10}\n"
    merged = errors(write(tmp_path, MINIMAL + body + "quick:\n  <<: {training.epochs: 2}\n"), quick=True)
    with pytest.raises(SpecError) as from_dict:
        spec_from_dict({**yaml.safe_load(MINIMAL + body), "name": "x", "quick": {"training.epochs": 2}}, quick=True)
    for err in (merged, from_dict.value):
        assert find(err, "params.warmup_epochs.high").endswith(
            "(epochs=2); the quick profile's problem, not the full sweep's: override params.warmup_epochs.high in it "
            "too (key quick.params.warmup_epochs.high)"), str(err)


def test_default_quick_profile(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "name: study\nscheduler: {type: asha, grace_period: 5}\n")
    spec = load_spec(path, quick=True)
    assert spec.name == "study-quick" and spec.scheduler.type == "asha" and spec.scheduler.options["grace_period"] == 1
    assert spec.training["epochs"] == 3 and spec.training["dataset.samples_per_class"] == 8
    assert spec.budget.trials == 6 and spec.budget.max_concurrent == 2
    raw = {"name": "x", "params": {"lr": {"type": "float", "low": 0.1, "high": 1}}, "budget": {"trials": 100}}
    assert spec_from_dict(raw, quick=True).budget.model_dump(include={"trials", "max_concurrent"}) == \
        {"trials": 6, "max_concurrent": 2} and raw["budget"] == {"trials": 100}
    small = write(tmp_path, MINIMAL + "training: {epochs: 2, dataset: {samples_per_class: 5}}\n"
                  "budget: {trials: 4, max_concurrent: 1}\nscheduler: {type: asha, max_t: 2}\n")
    spec = load_spec(small, quick=True)  # smaller, never larger
    assert spec.training["epochs"] == 2 and spec.training["dataset.samples_per_class"] == 5
    assert spec.budget.trials == 4 and spec.budget.max_concurrent == 1 and spec.scheduler.options["max_t"] == 1


# ----------------------------------------------------------------------------------------------------------------
# User entrypoints
# ----------------------------------------------------------------------------------------------------------------
def test_user_entrypoint_settings_and_metrics(tmp_path: Path) -> None:
    module = f"user_train_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text(textwrap.dedent("""\
        def run(config, report, checkpoint_dir=None):
            return {"score": 1.0}
        run.settings = {"lr": 0.1, "width": 32}
        run.metrics = ["score", "loss"]
        """), encoding="utf-8")
    path = write(tmp_path, f"""\
        entrypoint: {module}:run
        objective: {{metric: score, direction: maximize}}
        targets: {{los: 0.1}}
        training: {{width: 64}}
        params:
          lr: {{type: float, low: 0.01, high: 1.0, log: true}}
          dropout: {{type: float, low: 0.0, high: 0.5}}
        """)
    err = errors(path)
    assert find(err, "params.dropout").startswith(f"{path}:7: params.dropout: unknown setting 'dropout'")
    assert "did you mean 'loss'" in find(err, "targets.los")
    good = write(tmp_path, f"entrypoint: {module}:run\nobjective: {{metric: score, direction: maximize}}\n"
                           "params:\n  lr: {type: float, low: 0.01, high: 1.0, log: true}\n", "good.yaml")
    spec = load_spec(good, quick=True)
    assert spec.trial_config({"lr": 0.1}) == {"lr": 0.1}  # default quick leaves training alone off the core
    pruned = write(tmp_path, f"entrypoint: {module}:run\nobjective: {{metric: score, direction: maximize}}\n"
                             "scheduler: {type: asha, grace_period: 3}\nparams:\n  lr: {type: float, low: 0.01, "
                             "high: 1.0}\n", "pruned.yaml")  # its epochs are not cut: ASHA judges them as in full
    assert load_spec(pruned, quick=True).scheduler.options["grace_period"] == 3
    late = write(tmp_path, pruned.read_text().replace("grace_period: 3", "grace_period: 3, max_t: 2"), "late.yaml")
    assert str(errors(late, quick=True)) == str(errors(late)) == \
        f"{late}:3: scheduler.grace_period: must be <= max_t (got grace_period=3, max_t=2)"  # the file's, not --quick's
    assert import_target(spec.entrypoint, spec.base_dir)({}, print, None) == {"score": 1.0}
    # values reach the function in their settings' types, as the training block's do; a float range for an int
    # setting would hand it fractions
    typed = load_spec(write(tmp_path, f"entrypoint: {module}:run\nobjective: {{metric: score, direction: maximize}}"
                                      "\nparams:\n  lr: {type: categorical, choices: [1, 2]}\n"
                                      "  width: {type: fixed, value: 1e3}\n", "typed.yaml"))
    assert typed.trial_config({"lr": 1}) == {"width": 1000, "lr": 1.0}
    assert type(typed.trial_config({"lr": 1})["width"]) is int
    err = errors(write(tmp_path, f"entrypoint: {module}:run\nobjective: {{metric: score, direction: maximize}}\n"
                                 "params:\n  width: {type: float, low: 8, high: 64}\n", "floaty.yaml"))
    assert find(err, "params.width.type").endswith("width is an int setting of " + module +
                                                   ":run; a float range would give it fractions: write type: int")


def test_a_user_function_imports_its_sibling_modules_when_it_runs(tmp_path: Path, monkeypatch) -> None:
    """The space's folder stays on sys.path (last) after the import: a lazy import inside the function works."""
    tag = uuid.uuid4().hex[:8]
    folder = tmp_path / "space"
    folder.mkdir()
    (folder / f"fit_{tag}.py").write_text(f"def fit(config, report, checkpoint_dir):\n    import helper_{tag}\n"
                                          f"    return {{'score': helper_{tag}.SCORE}}\n", encoding="utf-8")
    (folder / f"helper_{tag}.py").write_text("SCORE = 0.5\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)  # elsewhere, as a Ray worker or `sweeper train ../space/x.yaml` is
    monkeypatch.setattr(sys, "path", list(sys.path))
    fit = import_target(f"fit_{tag}:fit", folder)
    assert fit({}, print, None) == {"score": 0.5} and sys.path[-1] == str(folder.resolve())
    assert str(tmp_path.resolve()) not in sys.path  # the working directory is not kept


def test_a_module_that_fails_as_it_is_imported_is_named_with_the_file_and_line_that_failed(tmp_path: Path) -> None:
    """``cannot import module 'fit_x': RuntimeError: x``, and no word of where: a raise at the module's top, in a
    sibling module it imports, argparse exiting, a SyntaxError. Now the user's own file and line, whichever it is."""
    tag = uuid.uuid4().hex[:8]
    sources = {f"top_{tag}": 'import os\n\nraise RuntimeError("x")\n',
               f"sibling_{tag}": f"import helper_{tag}\n",
               f"argv_{tag}": 'import argparse\n\nargparse.ArgumentParser().parse_args(["--no-such-flag"])\n',
               f"syntax_{tag}": "def run(config, report, checkpoint_dir)\n    return {}\n"}
    (tmp_path / f"helper_{tag}.py").write_text("def f():\n    raise ValueError('bad')\n\nf()\n", encoding="utf-8")
    for module, source in sources.items():
        (tmp_path / f"{module}.py").write_text(source + "def run(config, report, checkpoint_dir):\n    return {}\n",
                                               encoding="utf-8")
    said = {module: str(errors(write(tmp_path, f"entrypoint: {module}:run\n" + MINIMAL))) for module in sources}
    assert f"cannot import module 'top_{tag}': RuntimeError: x (at {tmp_path / f'top_{tag}.py'}, line 3)" \
        in said[f"top_{tag}"]
    assert f"ValueError: bad (at {tmp_path / f'helper_{tag}.py'}, line 2)" in said[f"sibling_{tag}"]
    assert f"SystemExit: 2 (at {tmp_path / f'argv_{tag}.py'}, line 3)" in said[f"argv_{tag}"]  # not argparse's line
    assert f"SyntaxError: expected ':' (at {tmp_path / f'syntax_{tag}.py'}, line 1)" in said[f"syntax_{tag}"]


def test_user_entrypoint_without_attributes_accepts_anything(tmp_path: Path) -> None:
    module = f"user_free_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("from pathlib import Path\ndef run(config, report, checkpoint_dir):\n"
                                           "    return {}\ndef wrong(config):\n    return {}\n", encoding="utf-8")
    path = write(tmp_path, f"""\
        entrypoint: {module}:run
        objective: {{metric: anything, direction: minimize}}
        training: {{whatever: {{nested: 1}}}}
        params:
          knob: {{type: int, low: 1, high: 4}}
        """)
    spec = load_spec(path)
    assert spec.trial_config({"knob": 2}) == {"whatever.nested": 1, "knob": 2} and spec.direction == "minimize"
    err = errors(write(tmp_path, f"entrypoint: {module}:wrong\n" + MINIMAL))
    assert err.line == 1 and err.field == "entrypoint" and "must accept (config, report, checkpoint_dir)" in str(err)
    err = errors(write(tmp_path, f"entrypoint: {module}:rum\n" + MINIMAL))
    assert f"module '{module}' has no attribute 'rum' (did you mean 'run'?)" in str(err)
    err = errors(write(tmp_path, f"entrypoint: {module}:Pth\n" + MINIMAL))  # what it imports is no suggestion
    assert "has no attribute 'Pth'" in str(err) and "did you mean" not in str(err)
    err = errors(write(tmp_path, "entrypoint: no_such_module_here:run\n" + MINIMAL))
    assert "cannot import module 'no_such_module_here'" in str(err)
    assert f"looked for it in {tmp_path.resolve()} and {Path.cwd().resolve()} (the space file's folder" in str(err)
    # a module that parses sys.argv (or exits) when imported, and one whose metrics are not a list
    exits, odd = f"user_exits_{uuid.uuid4().hex[:8]}", f"user_odd_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{exits}.py").write_text("import sys\nsys.exit(2)\n", encoding="utf-8")
    (tmp_path / f"{odd}.py").write_text("def run(config, report, checkpoint_dir):\n    return {}\nrun.metrics = 5\n",
                                        encoding="utf-8")
    err = errors(write(tmp_path, f"entrypoint: {exits}:run\n" + MINIMAL))
    assert err.field == "entrypoint" and f"cannot import module '{exits}': SystemExit: 2" in str(err)
    err = errors(write(tmp_path, f"entrypoint: {odd}:run\n" + MINIMAL))
    assert err.field == "entrypoint" and "metrics must be a list of metric names" in str(err)
    assert "package.module:function" in str(errors(write(tmp_path, "entrypoint: not a target\n" + MINIMAL)))
    # a module named as one of sweeper's packages: sweeper's, imported first, came back ("has no attribute 'fit'")
    (tmp_path / "storage.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n", encoding="utf-8")
    err = errors(write(tmp_path, "entrypoint: storage:fit\n" + MINIMAL))
    assert err.field == "entrypoint" and f"{tmp_path / 'storage.py'} is hidden by sweeper's own package 'storage'" \
        in str(err) and "rename your module" in str(err)
    # a package of that name: import looks for trials.mine in sweeper's trials only, and said "No module named
    # 'trials.mine'; looked for it in" the very folder that holds trials/mine.py
    (tmp_path / "trials").mkdir()
    (tmp_path / "trials" / "__init__.py").write_text("", encoding="utf-8")
    (tmp_path / "trials" / "mine.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n",
                                                 encoding="utf-8")
    err = errors(write(tmp_path, "entrypoint: trials.mine:fit\n" + MINIMAL))
    assert err.field == "entrypoint" and f"{tmp_path / 'trials' / 'mine.py'} is hidden by sweeper's own package " \
        "'trials'" in str(err) and "looked for it" not in str(err)
    err = errors(write(tmp_path, "entrypoint: trials.nosuch:fit\n" + MINIMAL))  # not there: where it looked
    assert "No module named 'trials.nosuch'; looked for it in" in str(err)


# ----------------------------------------------------------------------------------------------------------------
# Optuna objects and the resolved spec
# ----------------------------------------------------------------------------------------------------------------
def test_tpe_defaults_and_options() -> None:
    spec = load_spec("asl20", quick=True)
    assert default_sampler_options(spec) == {"multivariate": True, "constant_liar": True, "n_startup_trials": 5}
    assert default_sampler_options(load_spec("asl20"))["n_startup_trials"] == 10
    spec = load_spec("asl20", overrides=["sampler.n_startup_trials=3", "sampler.constant_liar=false"])
    assert default_sampler_options(spec) == {"multivariate": True, "constant_liar": False, "n_startup_trials": 3}
    random = build_sampler(load_spec("asl20", overrides=["sampler.type=random", "sampler.seed=5"]))
    assert isinstance(random, optuna.samplers.RandomSampler)


def test_sampler_needs_its_optional_packages(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections, "find_spec", lambda name: None)
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=["sampler.type=cmaes"])
    assert "needs the Python package(s) cmaes" in find(err, "sampler.type")


@pytest.mark.filterwarnings("ignore::optuna.exceptions.ExperimentalWarning")
@pytest.mark.parametrize(("kind", "package"), [("cmaes", "cmaes"), ("qmc", "scipy"), ("gp", "scipy")])
def test_optional_samplers_build_when_installed(kind: str, package: str) -> None:
    pytest.importorskip(package)
    sampler = build_sampler(load_spec("asl20", overrides=[f"sampler.type={kind}"]))
    assert type(sampler).__name__ == sections.SAMPLER_CLASSES[kind]


def test_resolved_spec_round_trips() -> None:
    for name in BUILTINS:
        spec = load_spec(name)
        data = yaml.safe_load(render_spec(spec))
        assert data == spec.to_yaml_dict()
        again = spec_from_dict(data)
        assert again.to_yaml_dict() == spec.to_yaml_dict() and again.distributions() == spec.distributions()
    assert "resolved from" in render_spec(load_spec("asl20"))


def test_a_text_that_reads_as_a_number_is_written_quoted(tmp_path: Path) -> None:
    """'09' and '-.5' are numbers in YAML 1.2, as a space reads them, but not in PyYAML's 1.1: validate printed them
    bare, and the printed space read the study name '09' as the number 9, and a choice '-.5' as -0.5."""
    module = f"user_fit_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n")
    spec = load_spec(write(tmp_path, f"name: '09'\nentrypoint: {module}:fit\n"
                                     "objective: {metric: m, direction: maximize}\n"
                                     "params:\n  p: {type: categorical, choices: ['08', '-.5', '+.5', 1]}\n"))
    again = load_spec(write(tmp_path, render_spec(spec), "rendered.yaml"))
    assert again.name == "09" and again.params["p"].choices == ["08", "-.5", "+.5", 1]


def test_a_resolved_spec_whose_set_replaced_what_its_quick_section_changes_loads(tmp_path: Path) -> None:
    """asl20's quick: section sets scheduler.grace_period, nslt1000's enqueue.0.warmup_epochs: validate with a --set
    that replaced the scheduler or pinned the param printed them beside a hyperband scheduler or a fixed param, and
    the printed space was refused. It runs with --quick as the space with its --set does: the --set comes last. A
    --set of a type that takes them (median, a float) kept none of them."""
    def without_quick(spec: Spec) -> dict:
        return {k: v for k, v in spec.to_yaml_dict().items() if k != "quick"}

    for name, expr in [("asl20", "scheduler.type=hyperband"), ("asl20", "params.warmup_epochs={type: fixed, value: 1}"),
                       ("nslt1000", "params.warmup_epochs={type: fixed, value: 1.0}"), ("asl20", "epochs=10"),
                       ("asl20", "budget={trials: 9}"), ("asl20", "params.epochs={type: int, low: 10, high: 30}"),
                       ("asl20", "scheduler.type=median"), ("asl20", "params.warmup_epochs.type=float")]:
        spec = load_spec(name, [expr])
        again = load_spec(write(tmp_path, render_spec(spec)))
        assert again.to_yaml_dict() == spec.to_yaml_dict() and again.distributions() == spec.distributions()
        assert spec_from_dict(spec.to_yaml_dict()).to_yaml_dict() == spec.to_yaml_dict()
        quick = load_spec(name, [expr], quick=True)
        assert load_spec(write(tmp_path, render_spec(quick))).to_yaml_dict() == quick.to_yaml_dict()
        if "params.epochs" not in expr:  # else the quick training.epochs, which the param wins over, is left out
            assert without_quick(load_spec(write(tmp_path, render_spec(spec)), quick=True)) == without_quick(quick)
    assert load_spec("asl20", ["epochs=10"]).to_yaml_dict()["quick"]["scheduler.grace_period"] == 1  # what it kept
    # a new type keeps what --quick applied before it and it takes (median: grace_period), so the printed space, run
    # with --quick, judged first at the file's grace period 3 of 3 quick epochs where the --set's run judged at 1
    assert load_spec("asl20", ["scheduler.type=median"]).to_yaml_dict()["quick"]["scheduler.grace_period"] == 1
    nested = write(tmp_path, MINIMAL + "scheduler: {type: asha}\n"  # each leaf is a step of --quick
                                       "quick: {scheduler: {grace_period: 1}, budget: {trials: 2}}\n", "nested.yaml")
    spec = load_spec(nested, ["scheduler.type=hyperband"])
    assert load_spec(write(tmp_path, render_spec(spec))).to_yaml_dict()["quick"] == {"budget.trials": 2}


def test_a_set_of_one_enqueued_value_or_a_pinned_param_leaves_out_the_quick_section_s_value_there(tmp_path: Path
                                                                                                   ) -> None:
    """quick: enqueue.0.lr beside --set enqueue.0.lr=...: validate printed both, and the printed space run with
    --quick enqueued the quick's lr, where the space with its --set, run with --quick, enqueues the --set's."""
    path = write(tmp_path, MINIMAL + "enqueue: [{lr: 1.0e-3}, {lr: 2.0e-3}]\n"
                                     "quick: {enqueue.0.lr: 3.0e-3, enqueue.1.lr: 4.0e-3}\n")
    spec = load_spec(path, ["enqueue.0.lr=5.0e-3"])
    assert spec.to_yaml_dict()["quick"] == {"enqueue.1.lr": 4.0e-3}  # another row's stays
    printed = load_spec(write(tmp_path, render_spec(spec), "printed.yaml"), quick=True)
    assert printed.enqueue == load_spec(path, ["enqueue.0.lr=5.0e-3"], quick=True).enqueue \
        == [{"lr": 5.0e-3}, {"lr": 4.0e-3}]
    # a param's --set leaves the rows' quick values, which --quick applies and the --set keeps (nslt1000's printed
    # space with --set params.warmup_epochs.low=0.5 was refused: its row's 10.0, not quick's 1.0, outside [0.5, 3]);
    # a param pinned leaves the rows, and every row's quick value with it
    for expr in ("params.lr.high=2.0e-2", "params.lr.log=false"):
        printed = load_spec(write(tmp_path, render_spec(load_spec(path, [expr])), "printed.yaml"), quick=True)
        assert printed.enqueue == load_spec(path, [expr], quick=True).enqueue == [{"lr": 3.0e-3}, {"lr": 4.0e-3}]
    nslt = load_spec("nslt1000", ["params.warmup_epochs.low=0.5"])
    assert load_spec(write(tmp_path, render_spec(nslt), "nslt.yaml"), quick=True).enqueue == \
        load_spec("nslt1000", ["params.warmup_epochs.low=0.5"], quick=True).enqueue
    two = write(tmp_path, MINIMAL + "  dropout: {type: float, low: 0, high: 0.5}\n"
                                    "enqueue: [{lr: 1.0e-3, dropout: 0.2}]\nquick: {enqueue.0.lr: 3.0e-3}\n", "2.yaml")
    pin = "params.lr={type: fixed, value: 2.0e-3}"
    assert "quick" not in load_spec(two, [pin]).to_yaml_dict()
    assert load_spec(write(tmp_path, render_spec(load_spec(two, [pin])), "pinned.yaml"), quick=True).enqueue == \
        load_spec(two, [pin], quick=True).enqueue == [{"dropout": 0.2}]


def test_a_setting_and_a_dotted_one_under_it_round_trip_in_either_order(tmp_path: Path) -> None:
    """sched.min_lr written before sched (or sched added by --set) was dropped from the resolved spec: validate printed
    a space without it, and a resumed study's trials ran with the function's default min_lr."""
    module = f"user_fit_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n"
                                           "fit.settings = {'sched': 'cosine', 'sched.min_lr': 1e-06, 'x': 0.5}\n"
                                           "fit.metrics = ['score']\n")
    path = write(tmp_path, f"entrypoint: {module}:fit\nobjective: {{metric: score, direction: maximize}}\n"
                           "training: {sched.min_lr: 1.0e-5}\nparams:\n  x: {type: float, low: 0.1, high: 0.9}\n")
    for spec in (load_spec(path, ["sched=linear"]), load_spec(write(tmp_path, path.read_text().replace(
            "{sched.min_lr: 1.0e-5}", "{sched.min_lr: 1.0e-5, sched: linear}"), "both.yaml"))):
        assert spec.training == {"sched.min_lr": 1e-5, "sched": "linear"}
        assert spec_from_dict(spec.to_yaml_dict(), base_dir=tmp_path, stored=True).training == spec.training
        assert load_spec(write(tmp_path, render_spec(spec), "rendered.yaml")).training == spec.training


def test_trial_config_is_training_plus_fixed_plus_sampled(tmp_path: Path) -> None:
    spec = load_spec(write(tmp_path, MINIMAL + "  seed: {type: fixed, value: 3}\ntraining: {epochs: 5, lr: 1.0e-4}\n"))
    assert spec.fixed_params() == {"seed": 3} and list(spec.distributions()) == ["lr"]
    assert spec.trial_config({"lr": 0.002}) == {"epochs": 5, "lr": 0.002, "objective": "val_top3", "seed": 3}


def modules_loaded_by(code: str, roots: tuple[str, ...]) -> list[str]:
    """The modules under ``roots`` that ``code`` imports, run in a fresh interpreter from the repository root."""
    probe = f"import sys; {code}; print(sorted({{m for m in sys.modules if m.split('.')[0] in {roots!r}}}))"
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            cwd=Path(__file__).parents[1])
    assert result.returncode == 0, result.stderr
    return ast.literal_eval(result.stdout.strip().splitlines()[-1])


def test_no_ray_storage_or_sweeper_imports() -> None:
    assert modules_loaded_by("from search_spaces.loader import load_spec; load_spec('asl50').distributions()",
                             ("ray", "storage", "sweeper", "torch")) == []
    # the CLI's error handling names SpecError and ConfigError before any space is read: lighter still (NumPy took
    # half of `sweeper --help`'s start)
    assert modules_loaded_by("import sweeper.errors, sweeper.cli",
                             ("pydantic", "optuna", "torch", "ray", "yaml", "numpy")) == []
    # the driver's sampler is as light: building it pulls in no Ray, storage or torch either
    assert modules_loaded_by("from search_spaces.loader import load_spec; from sweeper.samplers import build_sampler; "
                             "build_sampler(load_spec('asl50'))", ("ray", "storage", "torch")) == []
    # `sweeper validate` of a built-in space, whose resources.on_gpu.fuse it checks, imports neither Ray nor torch
    # (the fusing checks lived beside the fused searcher: 1.6 s of imports for a command that trains nothing)
    assert modules_loaded_by("from sweeper.cli import validate; validate('asl20')", ("ray", "torch")) == []


# ----------------------------------------------------------------------------------------------------------------
# One --set vocabulary, switching a type, the quick: section, messages that say what to write
# ----------------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", BUILTINS)
def test_set_switches_a_type_and_drops_the_old_types_options(name: str) -> None:
    spec = load_spec(name, quick=True, overrides=["scheduler.type=none"])
    assert spec.scheduler.type == "none" and spec.scheduler.options == {}
    assert spec.to_yaml_dict()["scheduler"] == {"type": "none"}
    median = load_spec(name, overrides=["scheduler.type=median", "scheduler.min_samples_required=2"])
    assert median.scheduler.options == {"grace_period": 3, "min_samples_required": 2}  # median takes grace_period
    choices = [0.1, 0.2, 0.3, 0.35, 0.4, 0.5]  # the enqueued rows' values among them
    spec = load_spec(name, overrides=["params.dropout.type=categorical", f"params.dropout.choices={choices}"])
    assert spec.params["dropout"].choices == choices
    spec = load_spec(name, overrides=["sampler.type=random"])
    assert spec.sampler.options == {} and spec.sampler.seed == 0  # seed belongs to every sampler
    err = errors(BUILTIN_DIR / f"{name}.yaml", overrides=["scheduler.type=asha", "scheduler.grace_periods=1"])
    assert "did you mean 'grace_period'" in find(err, "scheduler.grace_periods")  # a same-type --set drops nothing


@pytest.mark.parametrize(("override", "allowed"), [("params.lr.type=[1]", "float, int, categorical, fixed"),
                                                   ("sampler.type=[1]", "tpe, random, grid"),
                                                   ("scheduler.type={a: 1}", "none, asha, hyperband, median")])
def test_a_type_that_is_no_name_is_refused_not_a_crash(override: str, allowed: str) -> None:
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=[override])
    assert err.source == f"--set {override}" and f"must be one of {allowed}" in find(err, override.split("=")[0])


def test_set_takes_training_keys_where_unambiguous(tmp_path: Path) -> None:
    spec = load_spec("asl20", overrides=["epochs=10", "model.size=large", "training.batch_size=16"])
    assert spec.training["epochs"] == 10 and spec.training["model.size"] == "large"
    assert spec.training["batch_size"] == 16 and "# with --set epochs=10" in render_spec(spec)
    err = errors(BUILTIN_DIR / "asl50.yaml", overrides=["model.size=large"])  # a param there: it would win
    assert err.source == "--set model.size=large" and len(err.issues) == 1
    assert "model.size is a param of this space (params.model.size)" in str(err)
    assert "'params.model.size={type: fixed, value: ...}'" in str(err)
    added = load_spec("asl20", overrides=["params.model.size={type: categorical, choices: [small, medium]}"])
    assert added.params["model.size"].choices == ["small", "medium"]  # a new param keeps its dotted name
    pinned = load_spec("asl20", overrides=["params.epochs={type: fixed, value: 5}"], quick=True)  # quick yields
    assert pinned.fixed_params() == {"epochs": 5} and pinned.trial_config({})["epochs"] == 5
    err = errors(BUILTIN_DIR / "asl50.yaml", overrides=["training.model.size=large"])  # spelled out: the same
    assert err.source == "--set training.model.size=large" and "model.size is a param of this space" in str(err)
    pinned = load_spec("asl50", overrides=["params.model.size={type: fixed, value: large}", "enqueue="])
    assert pinned.fixed_params() == {"model.size": "large"} and pinned.enqueue == []
    pinned = load_spec("asl50", overrides=["params.model.size={type: fixed, value: large}"])  # as the error says
    assert pinned.fixed_params() == {"model.size": "large"} and len(pinned.enqueue) == 2
    assert all("model.size" not in row and "lr" in row for row in pinned.enqueue)  # the pinned value wins there
    assert load_spec("asl20", overrides=["params.lr.type=fixed", "params.lr.value=0.002"]).fixed_params() == \
        {"lr": 0.002}
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=["epocs=3"])
    assert "'epocs' is neither a section of the space (name, description" in str(err)
    assert "nor a setting of trials:run (did you mean 'epochs'?)" in str(err)
    assert "did you mean 'budget'" in str(errors(BUILTIN_DIR / "asl20.yaml", overrides=["bugdet.trials=3"]))
    quick = load_spec(write(tmp_path, MINIMAL + "quick: {epochs: 2}\n"), quick=True)
    assert quick.training["epochs"] == 2  # quick: keys follow the same rule
    module = f"user_open_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def run(config, report, checkpoint_dir):\n    return {}\n")
    user = write(tmp_path, f"entrypoint: {module}:run\nobjective: {{metric: m, direction: maximize}}\n"
                           "params:\n  knob: {type: int, low: 1, high: 4}\n", "user.yaml")
    assert "a setting of " + module + ":run is written training.width" in str(errors(user, overrides=["width=3"]))
    assert load_spec(user, overrides=["training.width=3"]).trial_config({}) == {"width": 3}


def test_a_set_map_of_training_keys_sets_those_keys_and_keeps_the_rest() -> None:
    """--set training={epochs: 2} replaced the whole block: the space's dataset, model and lr were gone, and the
    core's defaults trained. A map given to training or a group of it is its keys, each its own --set."""
    spec = load_spec("asl20", quick=True, overrides=["training={epochs: 3, model: {size: medium}}"])
    assert spec.training == load_spec("asl20", quick=True, overrides=["epochs=3", "model.size=medium"]).training
    assert spec.training["dataset.samples_per_class"] == 8 and spec.training["lr"] == 1e-4  # --quick's and the file's
    for group in ("training.dataset={classes: 10}", "dataset={classes: 10}"):
        assert load_spec("asl20", overrides=[group]).training == load_spec("asl20", overrides=["dataset.classes=10"]
                                                                            ).training
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=["training={lr: 0.001}"])  # a param would win, as for lr=
    assert err.source == "--set training={lr: 0.001}" and "lr is a param of this space (params.lr)" in str(err)
    assert load_spec("asl20", overrides=["training={}"]).training == {}  # empty: replaced, the core's defaults
    # a param, the sampler or the scheduler given a map is replaced whole: a new type drops the old one's options
    assert load_spec("asl20", overrides=["scheduler={type: median}"]).scheduler.options == {}


@pytest.mark.parametrize(("overrides", "quick"), [
    (["epochs=2"], False), (["params.dropout.high=0.4", "epochs=2"], False),
    (["epochs=2", "params.dropout.high=0.4"], False), (["epochs=2"], True)],
    ids=["alone", "after-a-params-set", "before-a-params-set", "with-quick"])
def test_the_set_that_made_a_value_wrong_is_named_and_no_other(overrides: list[str], quick: bool) -> None:
    """--set epochs=2 makes asl20's warmup range and enqueued rows (warmup_epochs 3.0) too long, and its grace period
    (3; --quick's is 1) too. The rows blamed the last --set params.* (any one) or --quick, the range the file, or
    --quick, whose warmup fitted its own epochs."""
    err = errors(BUILTIN_DIR / "asl20.yaml", overrides=overrides, quick=quick)
    fields = ["params.warmup_epochs.high", *["scheduler.grace_period"] * (not quick), "enqueue.0", "enqueue.1"]
    assert [(i.field, i.source) for i in err.issues] == [(field, "--set epochs=2") for field in fields], str(err)
    assert err.line == 53 and find(err, "enqueue.1").startswith(f"{BUILTIN_DIR / 'asl20.yaml'}:93: --set epochs=2:")
    assert find(err, "params.warmup_epochs.high").endswith(
        "a number in [0, epochs] (epochs=2); with --set epochs=2, change params.warmup_epochs.high too")


def test_empty_set_value_is_null_as_in_yaml() -> None:
    spec = load_spec("asl20", overrides=["sampler.seed=1", "sampler.seed="])
    assert spec.sampler.seed is None


def test_standalone_config_speaks_the_same_keys(tmp_path: Path) -> None:
    def run(space: str | Path | None, *flags: str) -> tuple[str, str | None, dict]:
        """``sweeper train``'s (entrypoint, base_dir, config)."""
        chosen, base_dir = prepare(space, flags)
        return chosen.entrypoint, base_dir, chosen.config

    entrypoint, base_dir, config = run("asl20", "training.epochs=2", "dataset.samples_per_class=4", "lr=0.01")
    assert entrypoint == "trials:run" and base_dir == str(BUILTIN_DIR)
    assert config["epochs"] == 2 and config["lr"] == 0.01 and config["dataset.classes"] == 20
    assert run(None, "epochs=3", "class_weights=true")[2] == {"epochs": 3, "class_weights": True}
    with pytest.raises(SpecError, match=r"^--set budget.trials: budget.trials belongs to a sweep, not to one"):
        run(None, "budget.trials=3")
    refused = r"^asl20: --set dropout: trials:run refuses the training config: dropout=2.0 is not allowed: a number " \
              r"in \[0, 1\)"
    with pytest.raises(SpecError, match=refused):
        run("asl20", "dropout=2")
    with pytest.raises(SpecError, match=r"^--set epochs: expected KEY=VALUE"):
        run(None, "epochs")
    module = f"user_fit_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n"
                                           "fit.settings = {'width': 8, 'lr': 0.1}\nfit.metrics = ['score']\n")
    space_file = write(tmp_path, f"entrypoint: {module}:fit\nobjective: {{metric: score, direction: maximize}}\n"
                                 "training: {width: 16}\nparams:\n  lr: {type: float, low: 0.01, high: 1.0}\n")
    # lr, sampled by the space, at the function's declared default: a trial always has a value for it
    assert run(space_file, "width=32") == (f"{module}:fit", str(tmp_path.resolve()), {"width": 32, "lr": 0.1})
    with pytest.raises(SpecError, match="did you mean 'width'"):
        run(space_file, "widht=3")


def test_a_map_the_function_declares_with_number_keys_reaches_it_with_number_keys(tmp_path: Path) -> None:
    """fit.settings = {w: {0: 1.0, 1: 2.0}}, the space's w: {0: 5.0}: its keys became text ('0') for every trial
    (sweeper run, train and resume), so fit's w[0] found none; a resumed study's stored spec gave '0' before."""
    import json

    module = f"keyed_fit_{uuid.uuid4().hex[:8]}"
    (tmp_path / f"{module}.py").write_text("def fit(config, report, checkpoint_dir):\n    return {}\n"
                                           "fit.settings = {'w': {0: 1.0, 1: 2.0}, 'x': 0.5}\n")
    space_file = write(tmp_path, f"entrypoint: {module}:fit\nobjective: {{metric: score, direction: maximize}}\n"
                                 "training:\n  w: {0: 5.0}\nparams:\n  x: {type: float, low: 0.1, high: 1.0}\n")
    spec = load_spec(space_file)
    assert spec.base_config()["w"] == {0: 5.0}
    stored = json.loads(json.dumps(spec.to_yaml_dict()))  # as the study keeps it, for resume and best
    assert spec_from_dict(stored, base_dir=str(tmp_path), stored=True).trial_config({"x": 0.5})["w"] == {0: 5.0}
    assert prepare(space_file, [])[0].config["w"] == {0: 5.0}  # sweeper train
    # sweeper best's command (a map's --set sets each key), and a key of it set: the key, not a '0' beside 0
    assert prepare(space_file, ["w={0: 5.0}"])[0].config["w"] == {0: 5.0}
    assert prepare(space_file, ["w.0=7"])[0].config["w"] == {0: 7}
    mixed = write(tmp_path, space_file.read_text().replace("{0: 5.0}", "{0: 5.0, b: 1.0}"), "mixed.yaml")
    assert load_spec(mixed).base_config()["w"] == {"0": 5.0, "b": 1.0}  # text, which a driver can sort


def test_quick_section_is_checked_without_quick(tmp_path: Path) -> None:
    path = write(tmp_path, MINIMAL + "training: {epochs: 10}\nquick:\n  training.epochs: 0\n  budget.trials: 2\n")
    err = errors(path)
    assert str(err) == f"{path}:5: --quick: training.epochs: trials:run refuses the training config: epochs=0 is not " \
                       f"allowed: an integer >= 1"
    path = write(tmp_path, MINIMAL + "  warmup_epochs: {type: float, low: 0.0, high: 5.0}\nquick: {epochs: 2}\n")
    err = errors(path)  # a range that fits the file's epochs but not the quick ones
    assert find(err, "params.warmup_epochs.high").startswith(f"{path}:3: --quick: params.warmup_epochs.high: refused")


def test_a_refused_section_the_configs_do_not_read_hides_no_problem_of_the_configs(tmp_path: Path) -> None:
    """pydantic checks the trials' configs only once every field passed: budget.trials 0 hid the training block's
    epochs 0, and the quick profile's epochs 0; a user fixed one, ran again, and only then heard of the next."""
    path = write(tmp_path, MINIMAL + "training: {epochs: 0}\nbudget: {trials: 0}\n")
    err = errors(path)
    assert "trials:run refuses the training config: epochs=0" in find(err, "training.epochs")
    assert "greater than or equal to 1" in find(err, "budget.trials") and len(err.issues) == 2
    err = errors(write(tmp_path, MINIMAL + "training: {epochs: 0}\nname: a/b\n"))  # a required section refused
    assert "epochs=0 is not allowed" in find(err, "training.epochs") and "cannot name a study" in find(err, "name")
    path = write(tmp_path, MINIMAL + "budget: {trials: 0}\nquick: {training.epochs: 0}\n")
    err = errors(path)
    assert find(err, "training.epochs").startswith(f"{path}:4: --quick: training.epochs: trials:run refuses")
    assert "greater than or equal to 1" in find(err, "budget.trials") and len(err.issues) == 2


def test_a_data_path_param_needs_no_path_in_the_training_block(tmp_path: Path) -> None:
    """``dataset.path: {type: categorical, choices: [a.npz, b.npz]}`` (the docs' example) beside dataset.name npz was
    refused as the training block's empty dataset.path, a value no trial gets, at params.dataset.path.value (a key
    a categorical param has not); --set dataset.path could not help (the param wins), only a dummy path in the file."""
    spec = load_spec(write(tmp_path, """\
        training: {dataset: {name: npz, classes: 3}}
        objective: {metric: val_top1}
        params:
          dataset.path: {type: categorical, choices: [a.npz, b.npz]}
          lr: {type: float, low: 1.0e-4, high: 1.0e-2}
        """))
    assert spec.sampled_params()["dataset.path"].choices == ["a.npz", "b.npz"]
    err = errors(write(tmp_path, """\
        training: {dataset: {name: npz, classes: 3}}
        objective: {metric: val_top1}
        params:
          dataset.path: {type: categorical, choices: [a.npz, ""]}
        """))
    assert "dataset.path='' is not allowed: a file or folder is required" in find(err, "params.dataset.path.choices.1")
    err = errors(write(tmp_path, "training: {dataset: {name: npz}}\n" + MINIMAL))  # no param gives it a path
    assert "dataset.path='' is not allowed: a file or folder is required" in find(err, "training")


def test_the_second_check_judges_no_section_beside_the_defaults_of_a_refused_one(tmp_path: Path) -> None:
    """budget.max_concurrent: 0 refused, the loader's second check judged the median rule's min_samples_required 25
    beside the default budget.trials 20, not the file's 40: 'budget.trials=20 gives a trial at most 19', false."""
    path = write(tmp_path, MINIMAL + "scheduler: {type: median, min_samples_required: 25}\n"
                                     "budget: {trials: 40, max_concurrent: 0}\n")
    err = errors(path)
    assert "greater than or equal to 1" in find(err, "budget.max_concurrent") and len(err.issues) == 1


def test_the_second_check_judges_the_scheduler_beside_a_budget_that_passed(tmp_path: Path) -> None:
    """A refused sampler hid a median rule that could stop no trial beside the file's own budget.trials: the second
    check took the configs' problems only, and the scheduler's came after the sampler was fixed (found by a review)."""
    path = write(tmp_path, MINIMAL + "scheduler: {type: median, min_samples_required: 25}\n"
                                     "budget: {trials: 20}\nsampler: {type: tpe, n_startup_trials: -3}\n")
    err = errors(path)
    assert "budget.trials=20 gives a trial at most 19" in find(err, "scheduler.min_samples_required")
    assert "a whole number >= 0" in find(err, "sampler.n_startup_trials") and len(err.issues) == 2


def test_messages_say_what_to_write(tmp_path: Path) -> None:
    err = errors(write(tmp_path, MINIMAL + "targets: {test_top3: 197%}\n"))
    assert find(err, "targets.test_top3").endswith(": 197% is above 100%, which test_top3 cannot reach")
    path = write(tmp_path, MINIMAL + "sampler: {type: grid}\n")
    assert "params.lr is a log range; drop log: true and give it a step, or list the values as categorical choices" \
        in str(errors(path))


def test_values_that_would_quietly_mean_something_else_are_refused(tmp_path: Path) -> None:
    """Each was accepted and ran: an objective param (trials picked their best epoch by another metric than the
    study compared), a target on a metric without a better way (judged as the objective's), a data path without
    dataset.name (a sweep on generated data), an empty storage (the default file), a study name holding a
    right-to-left override (listed as another name)."""
    err = errors(write(tmp_path, MINIMAL + "  objective: {type: categorical, choices: [val_loss, val_top1]}\n"))
    assert "trials are judged by objective.metric ('val_top3')" in find(err, "params.objective")
    (tmp_path / "xgb_fit.py").write_text("def fit(config, report, checkpoint_dir):\n    return {'auc': 0.5}\n")
    spec = load_spec(write(tmp_path, """\
        entrypoint: xgb_fit:fit
        objective: {metric: auc, direction: maximize}
        params:
          objective: {type: categorical, choices: [reg_squarederror, reg_pseudohubererror]}
        """))  # a function of its own whose objective is its loss function, not the sweep's metric
    assert spec.params["objective"].choices == ["reg_squarederror", "reg_pseudohubererror"]
    err = errors(write(tmp_path, space("""\
        targets: {epoch_seconds: 1000}
        storage: ""
        """)))
    assert "neither larger nor smaller is better" in find(err, "targets.epoch_seconds")
    assert "is empty; give a storage URL" in find(err, "storage")
    for unset in ("storage=", "storage= "):  # --set storage=$URL with URL unset: the default would take the sweep
        assert "storage is empty; give a storage URL" in str(errors(write(tmp_path, MINIMAL), overrides=[unset]))
    err = errors(write(tmp_path, MINIMAL + "training: {epochs: 2, dataset: {path: data.npz}}\n"))
    assert "set dataset.name: npz or wlasl" in find(err, "training.dataset.path")
    err = errors(write(tmp_path, MINIMAL + "name: \"asl\\u202e02lsa\"\n"))
    assert "holds '\\u202e'" in find(err, "name")
    assert load_spec(write(tmp_path, MINIMAL + "name: 'über straße #1'\n")).name == "über straße #1"


def test_plain_values_are_read_as_yaml_1_2_reads_them(tmp_path: Path) -> None:
    """PyYAML reads YAML 1.1: `time: 1:30` was 90 s (base 60), `classes: 010` eight (octal), and a date a date
    object. Booleans stay 1.1's: as text, a `no` would reach a function without fit.settings as a true value."""
    spec = load_spec(write(tmp_path, space("""\
        training: {dataset: {classes: 010}}
        baseline: {source: 2024-05-01, test_top3: 0.5}
        """)))
    assert spec.training["dataset.classes"] == 10 and spec.baseline.source == "2024-05-01"
    assert read_yaml_value("[small, on, yes, off, no, true, '0o17']") == ["small", True, True, False, False, True,
                                                                        "0o17"]
    assert "expected a duration" in find(errors(write(tmp_path, MINIMAL + "budget: {time: 1:30}\n")), "budget.time")
    assert load_spec("asl20", overrides=["sampler.seed=0x10", "min_lr=1e-7"]).sampler.seed == 16


def test_quick_caps_what_params_sample_and_takes_its_own_keys_from_set(tmp_path: Path) -> None:
    """--quick left a sampled epochs param at 6-7 epochs (the param won over its 3); --set quick.budget.trials=3
    on a space without a quick: section was "unknown key 'quick.budget.trials'", and --set 'quick={...}' was ignored."""
    path = write(tmp_path, MINIMAL + "  epochs: {type: int, low: 6, high: 7}\n"
                                     "  dataset.samples_per_class: {type: categorical, choices: [10, 20]}\n")
    spec = load_spec(path, quick=True)
    assert spec.base_config()["epochs"] == 3 and spec.base_config()["dataset.samples_per_class"] == 8
    assert "epochs" not in spec.sampled_params() and "lr" in spec.sampled_params()
    assert load_spec(path, ["quick.budget.trials=3"], quick=True).budget.trials == 3
    assert load_spec(path, ["quick={budget.trials: 4}"], quick=True).budget.trials == 4


def test_a_tab_and_a_capitalised_name_say_what_to_write(tmp_path: Path) -> None:
    err = errors(write(tmp_path, "params: {lr: {type: float,\tlow: 0.1, high: 0.2}}\n"))
    assert "found character '\\t' that cannot start any token (YAML indents and separates with spaces" in str(err)
    err = errors(write(tmp_path, MINIMAL + "scheduler: {type: ASHA}\n"))
    assert "did you mean 'asha'?" in find(err, "scheduler.type")


def test_a_top_k_target_that_any_model_meets_is_refused(tmp_path: Path) -> None:
    """With k at least the classes every label is in the top k: a model below chance met 'test_top5: 90%' on 3
    classes (found by an exploratory test). The objective was refused there already; a target was not."""
    def targets(classes: str) -> str:
        return space(f"  dataset.classes: {classes}\nobjective: {{metric: val_top1}}\n"
                     "targets: {test_top5: 90%, val_top3: 50%, val_top1: 40%}\n")

    err = errors(write(tmp_path, targets("{type: fixed, value: 3}")))
    assert "with 3 classes every label is in the top 5, so any model meets it" in find(err, "targets.test_top5")
    assert "top 3" in find(err, "targets.val_top3") and "val_top1" not in str(err)
    err = errors(write(tmp_path, targets("{type: categorical, choices: [10, 4]}")))  # the fewest it samples
    assert "with 4 classes every label is in the top 5" in find(err, "targets.test_top5")
    assert "val_top3" not in str(err)
    assert load_spec(write(tmp_path, targets("{type: fixed, value: 6}"))).targets["test_top5"] == 0.9


def test_quick_caps_fixed_params_and_refuses_a_training_key_its_space_samples(tmp_path: Path) -> None:
    """--quick ran a space's fixed 30 epochs and 40 samples a class at full length, and a quick: section's
    training.epochs beside a sampled epochs param was dropped without a word, though --set refuses it
    (found by an exploratory test)."""
    fixed = load_spec(write(tmp_path, MINIMAL + "  epochs: {type: fixed, value: 30}\n"
                            "  dataset.samples_per_class: {type: fixed, value: 40}\n"), quick=True)
    assert fixed.fixed_params() == {"epochs": 3, "dataset.samples_per_class": 8}
    assert load_spec(write(tmp_path, MINIMAL + "  epochs: {type: fixed, value: 2}\n"), quick=True).fixed_params() \
        == {"epochs": 2}  # smaller, never larger
    sampled = write(tmp_path, MINIMAL + "  epochs: {type: int, low: 10, high: 30}\nquick: {training.epochs: 3}\n")
    for quick in (True, False):  # the quick: section is checked whether used or not
        err = errors(sampled, quick=quick)
        assert err.issues[0].line == 4 and "epochs is a param of this space (params.epochs)" in str(err), str(err)


def test_a_seed_past_numpy_s_a_stop_without_targets_and_a_cma_step_of_zero_are_refused(tmp_path: Path) -> None:
    """A seed of 2**32 - 1 was refused as "TPESampler fails when it samples this space", and a resume past it
    crashed; stop_on_target without targets did nothing; sigma0: 0 sampled the centre forever (found by an
    exploratory test)."""
    from sweeper.samplers import build_sampler

    assert "less than 4294967296" in find(errors(write(tmp_path, MINIMAL + "sampler: {seed: 4294967296}\n")),
                                          "sampler.seed")
    top = load_spec(write(tmp_path, MINIMAL + "sampler: {seed: 4294967295}\n"))
    build_sampler(top, resumed_after=3)  # the seed moves on, modulo numpy's range
    build_sampler(top.model_copy(update={"sampler": top.sampler.model_copy(update={"type": "cmaes"})}),
                  resumed_after=3)
    assert "names no targets to stop at" in find(errors(write(tmp_path, MINIMAL + "budget: {stop_on_target: true}\n")),
                                                 "budget.stop_on_target")
    assert "a number > 0" in find(errors(write(tmp_path, MINIMAL + "sampler: {type: cmaes, sigma0: 0}\n")),
                                  "sampler.sigma0")


def test_an_int_log_range_may_say_its_step_of_1(tmp_path: Path) -> None:
    """Optuna's int log ranges take step 1, and only that: it was refused as "samples log ranges continuously"
    (found by an exploratory test)."""
    spec = load_spec(write(tmp_path, MINIMAL + "  batch_size: {type: int, low: 8, high: 256, log: true, step: 1}\n"))
    assert spec.distributions()["batch_size"] == optuna.distributions.IntDistribution(8, 256, log=True, step=1)


def test_a_quoted_number_for_a_numeric_choice_says_so(tmp_path: Path) -> None:
    """"'0.1' is not one of the choices [0.0, 0.1, 0.2] (did you mean '0.1'?)" (found by an exploratory test)."""
    err = errors(write(tmp_path, MINIMAL + "  dropout: {type: categorical, choices: [0.0, 0.1, 0.2]}\n"
                                           "enqueue:\n  - {dropout: '0.1'}\n"))
    assert "'0.1' (str) is not one of the choices [0.0, 0.1, 0.2]: the choice is 0.1 (float)" in \
        find(err, "enqueue.0.dropout")


def test_a_number_not_among_numeric_choices_gets_no_hint_from_their_decimals(tmp_path: Path) -> None:
    """2 among the choices [0.1, 0.2, 0.3] was "did you mean '0.2'?": a number's part after its dot is no key's
    last part, which a short key abbreviates (found by a regression check)."""
    err = errors(write(tmp_path, MINIMAL + "  dropout: {type: categorical, choices: [0.1, 0.2, 0.3]}\n"
                                           "enqueue:\n  - {dropout: 2}\n"))
    assert find(err, "enqueue.0.dropout").endswith("2 is not one of the choices [0.1, 0.2, 0.3]")
    err = errors(write(tmp_path, MINIMAL + "  batch_size: {type: categorical, choices: [1000, 2000]}\n"
                                           "enqueue:\n  - {batch_size: 100}\n"))
    assert "(did you mean '1000'?)" in find(err, "enqueue.0.batch_size")  # difflib's, as before


def test_a_seeded_qmc_sampler_validates_without_optunas_seedless_warning(tmp_path: Path) -> None:
    """The deprecation check built each option's sampler without the seed: a space's `qmc, seed: 0, scramble: true`
    printed Optuna's "No seed is provided for QMCSampler" (found by a regression check)."""
    import logging

    said: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = said.append  # type: ignore[method-assign]
    logging.getLogger("optuna").addHandler(handler)  # Optuna's own handler prints to stderr, without propagating
    try:
        spec = load_spec(write(tmp_path, MINIMAL + "sampler: {type: qmc, seed: 0, scramble: true}\n"))
    finally:
        logging.getLogger("optuna").removeHandler(handler)
    assert spec.sampler.options == {"scramble": True}
    assert not [r.getMessage() for r in said if "No seed" in r.getMessage()]
