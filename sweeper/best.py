"""``sweeper best``: the best trial's params and metrics against the targets, and how to train it again.

The reproduce command is ``sweeper train [SPACE] --set KEY=VALUE ...`` (the space file only for a user
entrypoint, which ``train`` finds through it) over the trial's whole flat config (the space's
training block, fixed params, the trial's sampled params), not just its params: the space file may have changed
or be gone since, and the study's stored spec is what the trial actually ran. Values are written so they parse
back exactly (floats with every digit, YAML scalars that keep their type, shell-quoted). A user entrypoint's
command runs the space file as it is now, so it is printed only when it trains the trial's config; a note says
what changed, or why no command can reproduce the trial.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import optuna
import yaml
from rich.table import Table

from search_spaces.loader import SpaceDumper, read_yaml_value
from search_spaces.schema import Spec
from storage import attrs
from storage.resume import orphaned_trials
from storage.view import StudyView
from sweeper.console import console, format_value, shell_command, target_gap
from sweeper.errors import BadInput
from sweeper.folders import here_or_below, study_checkpoints, trial_checkpoint_dir
from trials.config import STATE_FILE, flatten
from trials.entrypoint import DEFAULT_ENTRYPOINT, with_torch_threads


def best_trial(view: StudyView, url: str | None = None) -> optuna.trial.FrozenTrial:
    """The best COMPLETE trial; PRUNED trials carry an early-epoch value and are never "best". ``url``: the
    storage's, for the command that carries on an interrupted study."""
    if not view.complete:
        states = ", ".join(f"{n} {state}" for state, n in view.states().items()) or "no trials"
        raise BadInput(f"Study {view.study.study_name!r} has no COMPLETE trial yet ({states}).{_going_on(view, url)}")
    return view.complete[0]


def _going_on(view: StudyView, url: str | None) -> str:
    """How the RUNNING trials of a study with none COMPLETE go on: ``sweeper resume`` for those whose driver is gone
    (its process on this host, else its heartbeat, as storage.resume tells), or a live driver's finishing one."""
    from sweeper.inspection import carried_on, is_sweepers, storage_option

    if not view.states().get("RUNNING") or not is_sweepers(view):  # another tool's trials: not sweeper's to resume
        return ""
    if not (orphans := orphaned_trials(view.study, view.trials)):
        return (" Their driver still seems to be running them (its process on this host, or a fresh heartbeat): try "
                "again once one finishes.")
    was, its = ("was", "its") if len(orphans) == 1 else ("were", "their")
    resume = shell_command("resume", view.study.study_name, storage_option(url, writing=True))
    return (f" {', '.join(f'#{t.number}' for t in orphans)} {was} running when {its} driver stopped (Ctrl-C, a kill, "
            f"a lost machine): {resume} {carried_on(view, url, orphans)}.")


def trial_config(view: StudyView, trial: optuna.trial.FrozenTrial) -> tuple[dict[str, Any], str, str | None]:
    """``(config, entrypoint, note)``: the flat config the trial's training function was called with.

    Built by the spec itself when the stored spec still validates (the one code path the driver used); else, e.g.
    for a user entrypoint whose module is not importable here, assembled from the stored spec as written, with a
    note saying so.
    """
    from search_spaces.errors import SpecError
    from search_spaces.loader import spec_from_dict

    data = view.study.user_attrs.get(attrs.SPEC)
    if not isinstance(data, dict):
        return dict(trial.params), "?", "the study has no stored spec: only the trial's params are known"
    entrypoint = str(data.get("entrypoint") or DEFAULT_ENTRYPOINT)
    space_dir = view.study.user_attrs.get(attrs.SPACE_DIR)  # absolute; older studies only have the file as typed
    space_file = view.study.user_attrs.get(attrs.SPACE_FILE)
    if isinstance(space_dir, str) and Path(space_dir).is_dir():
        base_dir: Path | None = Path(space_dir)
    elif isinstance(space_file, str) and Path(space_file).parent.is_dir():
        base_dir = Path(space_file).parent
    else:
        base_dir = None
    if entrypoint != DEFAULT_ENTRYPOINT and base_dir is not None and not here_or_below(base_dir):
        note = (f"the study's space folder {base_dir} is not in this folder, and reading a study imports no code "
                "from elsewhere (the folder is a study attr): run sweeper best from it, or from a folder above it")
        return _raw_config(data, trial, entrypoint), entrypoint, note
    try:
        spec = spec_from_dict(attrs.spec_as_ran(data), base_dir=base_dir, stored=True)
    except SpecError as exc:
        note = f"the stored spec does not validate here ({_first_line(exc)}): the config is read from it as written"
        return _raw_config(data, trial, entrypoint), entrypoint, note
    config = with_torch_threads(spec.trial_config(trial.params), entrypoint, _trial_cpus(spec, trial))
    return config, entrypoint, _fused_note(trial)


def _trial_cpus(spec: Spec, trial: optuna.trial.FrozenTrial) -> float:
    """The CPUs the trial's torch threads came from: those it recorded (a core trial since 2026-12-07), else its
    resources by the stored spec, which a resume with other ``resources`` rewrites (on_gpu's on a GPU)."""
    recorded = trial.user_attrs.get(attrs.THREADS)
    if isinstance(recorded, int) and not isinstance(recorded, bool) and recorded > 0:
        return recorded
    on_gpu = str(trial.user_attrs.get(attrs.DEVICE, "")).startswith("cuda")
    return spec.resources.on_cluster(1 if on_gpu else 0).cpu


def _fused_note(trial: optuna.trial.FrozenTrial) -> str | None:
    """Why the command repeats a fused group's member only approximately: ``sweeper train`` trains it alone, and a
    member's numbers are its own run's only to float rounding (the stacked model sums in another order); on CUDA the
    group draws dropout and mixup for all its members at once. A member's ray id is ``GROUP/K`` (sweeper.fused)."""
    group, _, member = str(trial.user_attrs.get(attrs.RAY_TRIAL_ID) or "").partition("/")
    if not member:
        return None
    return (f"#{trial.number} trained in a fused group (resources.fuse; Ray trial {group}, member {member}); the "
            "command trains it alone, which repeats its numbers only to float rounding on a CPU, and on a GPU with "
            "other dropout masks and mixup draws than the group's")


def reproduce_command(config: Mapping[str, Any], space: Path | None = None) -> str:
    """``sweeper train [SPACE] --set k=v ...`` whose ``--set`` flags parse back (``read_set_flags``) to ``config``.

    The built-in core needs no space; a user entrypoint is found through its space file, whose training block the
    flags then override key by key. A setting named like a section of a space is written ``training.name``.
    """
    head = ["sweeper", "train", *([shlex.quote(str(space))] if space is not None else [])]
    return " ".join([*head, *(f"--set {shlex.quote(flag)}" for flag in set_flags(config))])


def set_flags(config: Mapping[str, Any]) -> list[str]:
    """``KEY=VALUE`` per config key, as ``sweeper train --set`` reads them back (see :func:`reproduce_command`)."""
    keys = {k: f"training.{k}" if k.split(".")[0] in Spec.model_fields else k for k in config}
    return [f"{keys[k]}={yaml_scalar(v)}" for k, v in config.items()]


def _space_file(view: StudyView, *, anywhere: bool = False) -> Path | None:
    """The space file a user entrypoint's study was run from, if it is still where it was (and in this folder or
    below, unless ``anywhere``)."""
    if (space := attrs.space_file(view.study.user_attrs)) is None:
        return None
    path = Path(space)
    return path if path.is_file() and (anywhere or here_or_below(path.parent)) else None


def yaml_scalar(value: Any) -> str:
    """``value`` as the YAML scalar ``--set`` reads back to the same value and type.

    PyYAML writes floats with ``repr``'s digits and adds the ``.0`` YAML 1.1 needs (``1e-05`` -> ``1.0e-05``,
    which would otherwise read back as a string), and quotes strings that look like numbers or booleans.
    """
    text = yaml.dump(value, Dumper=SpaceDumper, default_flow_style=True, width=float("inf"), allow_unicode=True)
    text = text.removesuffix("\n").removesuffix("\n...").strip()
    back = read_yaml_value(text) if text else ""
    same = back == value or (isinstance(value, float) and value != value and back != back)
    if not same or type(back) is not type(value):
        raise BadInput(f"{value!r} cannot be written as a --set value that reads back the same.")
    return text


def saved_checkpoint(view: StudyView, trial: optuna.trial.FrozenTrial, url: str | None) -> Path | None:
    """The trial's checkpoint folder where it still holds files (for the built-in core, ``state.pt``: the best
    epoch's weights and the config that trained them); a copied or moved project's own, as its next run takes it."""
    folder = trial_folder(view, trial, url)
    return folder if folder.is_dir() and any(folder.iterdir()) else None


def trial_folder(view: StudyView, trial: optuna.trial.FrozenTrial, url: str | None) -> Path:
    return trial_checkpoint_dir(str(study_checkpoints(view.study, url)), trial.number)


def best_summary(view: StudyView, url: str | None = None) -> dict[str, Any]:
    """What ``best --format json`` prints. Keys are stable (README, "Inspecting studies")."""
    trial = best_trial(view, url)
    checkpoint = saved_checkpoint(view, trial, url)
    values = {k: v for k, v in view.values(trial).items() if k not in (*_EXTRA_ATTRS, attrs.RESUMED)}  # in attrs
    config, entrypoint, note = trial_config(view, trial)
    command, note = _reproduce(config, entrypoint, view, note)
    return {
        "study": view.study.study_name,
        "number": trial.number,
        "objective": {"metric": view.metric, "direction": "maximize" if view.maximize else "minimize"},
        "value": trial.value,
        "params": trial.params,
        "metrics": values,
        "targets": {m: {"target": t, "value": values.get(m),
                        "met": None if values.get(m) is None else view.met_target(m, values[m])}
                    for m, t in view.targets.items()},
        # the best objective need not meet the targets (a validation objective, a test target): who did
        "target_met_by": _number(view.first_meeting_targets()),
        "best_meeting_targets": _number(view.best_meeting_targets()),
        "baseline": dict(view.baseline),
        "attrs": {k: trial.user_attrs[k] for k in _EXTRA_ATTRS if k in trial.user_attrs},
        "entrypoint": entrypoint,
        "config": config,
        "reproduce": command,
        "note": note,
        "checkpoint": None if checkpoint is None else str(checkpoint),
    }


def _reproduce(config: dict[str, Any], entrypoint: str, view: StudyView, note: str | None
               ) -> tuple[str | None, str | None]:
    """``(command or None, note)``. The core's command needs no space file; a user entrypoint's runs the space file
    as it is now, so it is checked against what the trial ran: ``--set`` resets every key the trial had, but cannot
    unset a key the file added since, nor call another entrypoint."""
    if entrypoint == DEFAULT_ENTRYPOINT:
        return in_work_dir(view, config, reproduce_command(config)), note
    space = _space_file(view) if note is None else None
    if space is None:
        return None, note
    return _checked_command(config, entrypoint, space)


def in_work_dir(view: StudyView, config: Mapping[str, Any], command: str) -> str:
    """``cd FOLDER && command`` where the trial read a relative data path from its study's first folder (the study
    attr ``work_dir``), which is not this one: run from here, the command would read another file."""
    folder = view.study.user_attrs.get(attrs.WORK_DIR)
    path = config.get("dataset.path")  # a WLASL split_file and landmarks_dir are read inside it, wherever it is
    relative = isinstance(path, str) and path and not Path(path).expanduser().is_absolute()
    if not relative or not isinstance(folder, str) or Path(folder) == Path.cwd():
        return command
    return f"cd {shlex.quote(folder)} && {command}"


def _checked_command(config: dict[str, Any], entrypoint: str, space: Path) -> tuple[str | None, str | None]:
    from search_spaces.errors import SpecError
    from search_spaces.loader import load_spec
    from sweeper.standalone import prepare

    try:
        spec = load_spec(space, keep_deprecated=True)  # its sampler is not used: sweeper train takes the file too
    except SpecError as exc:
        return None, f"the space file {space} no longer loads ({_first_line(exc)}), so sweeper train cannot run it"
    if spec.entrypoint != entrypoint:
        return None, (f"the space file {space} now names entrypoint {spec.entrypoint}, but the trial ran "
                      f"{entrypoint}: sweeper train {space} would call the other function")
    settings = (spec.entrypoint_info.settings if spec.entrypoint_info else None) or {}
    added = [k for k in spec.base_config() if k not in config]  # set by the file now, absent from the trial's config
    if unknown := [k for k in added if k not in settings]:
        return None, (f"the space file {space} now sets {', '.join(unknown)}, which the trial's config did not have "
                      f"and {entrypoint} declares no default for; --set cannot unset a key, so no sweeper train "
                      "command reproduces the trial")
    # the function merges its defaults itself (README): an absent key ran with its fit.settings default
    wanted = {**config, **{k: settings[k] for k in added}}
    try:
        run, _ = prepare(space, set_flags(wanted))
    except SpecError as exc:
        return None, f"sweeper train {space} now refuses the trial's config ({_first_line(exc)})"
    if run.config != wanted:  # a safety net: never print a command that trains something else
        changed = sorted(k for k in {*run.config, *wanted} if run.config.get(k, ...) != wanted.get(k, ...))
        return None, f"sweeper train {space} would not train the trial's config (differs in {', '.join(changed)})"
    note = None if not added else (
        f"the space file {space} now sets {', '.join(added)}, which the trial's config did not have: the command "
        f"sets {'it' if len(added) == 1 else 'them'} to {entrypoint}'s default, which the trial ran with")
    return reproduce_command(wanted, space), note


def _first_line(exc: Exception) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def _unrecorded_folder(view: StudyView) -> str:
    """Why the folder looked in is a guess: a study of a sweeper before the ``checkpoints`` attr kept them under
    its first run's --results-dir; another program's study recorded none."""
    from sweeper.inspection import is_sweepers

    if attrs.CHECKPOINTS in view.study.user_attrs:
        return ""
    if not is_sweepers(view):
        return "; another program made this study (it holds no sweeper spec) and recorded no checkpoint folder"
    return ("; an earlier sweeper made this study and recorded no checkpoint folder: a first run given --results-dir "
            "DIR kept them in DIR/checkpoints/NAME, which sweeper resume --results-dir DIR records")


_EXTRA_ATTRS = (attrs.BEST_EPOCH, attrs.EPOCHS_RUN, attrs.STOP_REASON, attrs.DEVICE, attrs.PARAMETERS, attrs.THREADS,
                attrs.WALL_SECONDS)


def show_best(view: StudyView, fmt: str = "table", url: str | None = None) -> None:
    """Params (exact values), metrics against targets and baseline, its checkpoint, and the reproduce command."""
    if fmt == "json":
        from sweeper.inspection import print_json

        print_json(best_summary(view, url))
        return
    trial = best_trial(view, url)
    console.print(f"best trial of {view.study.study_name}: #{trial.number}, {view.metric} "
                  f"{format_value(view.metric, trial.value)} (of {len(view.complete)} COMPLETE)", markup=False)
    if view.targets:  # in the final table's words: the best objective need not be a trial that meets them
        met = view.met_by()
        console.print(f"targets {met or 'not met'}" + ("" if met is None or view.met(trial) else
                                                       f" (#{trial.number} does not meet them)"), markup=False)
    params = Table(title="params", title_justify="left")
    params.add_column("param", overflow="fold")  # a narrow terminal folds the digits, never cuts them off
    params.add_column("value", justify="right", overflow="fold")
    params.add_column("exact", overflow="fold")
    for name, value in trial.params.items():
        params.add_row(name, format_value(name, value), repr(value))
    console.print(params)
    console.print(_metrics_table(view, trial))
    extras = {k: trial.user_attrs[k] for k in _EXTRA_ATTRS[:-1] if k in trial.user_attrs}
    if attrs.WALL_SECONDS in trial.user_attrs:  # a function of one's own may return any value under that name
        wall = trial.user_attrs[attrs.WALL_SECONDS]
        extras[attrs.WALL_SECONDS] = f"{wall:.1f}" if isinstance(wall, (int, float)) else wall
    if extras:
        console.print("  ".join(f"{k} {v}" for k, v in extras.items()), markup=False)
    config, entrypoint, note = trial_config(view, trial)
    if (checkpoint := saved_checkpoint(view, trial, url)) is not None:
        weights = checkpoint / STATE_FILE
        console.print(f"weights: {weights} (its 'best_model' is epoch {trial.user_attrs.get(attrs.BEST_EPOCH)}'s, "
                      "'config' what trained it)" if entrypoint == DEFAULT_ENTRYPOINT and weights.is_file() else
                      f"checkpoint folder: {checkpoint}", markup=False)
    else:  # said, not left out: the folder may be gone (sweeper clean) or on the machine that trained it
        core = entrypoint == DEFAULT_ENTRYPOINT  # it always saves; a function of one's own may save nothing
        console.print(f"{'weights' if core else 'checkpoint folder'}: none on this machine (not in "
                      f"{trial_folder(view, trial, url)}: removed by sweeper clean, "
                      f"{'or trained elsewhere' if core else 'trained elsewhere, or the function saved none'}"
                      f"{_unrecorded_folder(view)})", markup=False)
    command, note = _reproduce(config, entrypoint, view, note)
    if note:
        console.print(f"note: {note}", markup=False)
    if command is not None:
        console.print("reproduce it:" if entrypoint == DEFAULT_ENTRYPOINT else
                      f"reproduce it (sweeper train finds {entrypoint} through its space file):", markup=False)
        console.print(command, markup=False)
        if entrypoint == DEFAULT_ENTRYPOINT or "seed" in config:  # the best of many trials is also the luckiest
            console.print("the same with --seeds 1,2,3 trains it once per seed: how much of it is luck",
                          markup=False)
        return
    if entrypoint == "?":  # a study sweeper did not write: which function ran is unknown
        console.print("the trial's params:", markup=False)
    elif _space_file(view) is not None:  # the file is here but no longer trains the trial: the note says why
        console.print(f"no sweeper train command reproduces it; the trial called {entrypoint}(config, report, "
                      "checkpoint_dir) with this config:", markup=False)
    else:  # a file outside this folder is there, but sweeper imports no code from outside it (the note says so)
        where = "outside this folder" if _space_file(view, anywhere=True) is not None else "not here"
        console.print(f"{entrypoint} is not the built-in core, and sweeper train runs it only from its space file, "
                      f"which is {where}; the trial called {entrypoint}(config, report, checkpoint_dir) with "
                      "this config:", markup=False)
    for key, value in config.items():
        console.print(f"  {key}: {_config_text(value)}", markup=False)


def _metrics_table(view: StudyView, trial: optuna.trial.FrozenTrial) -> Table:
    values = view.values(trial)
    others = [m for m in values if m not in (*attrs.RECORDED_METRICS, *_EXTRA_ATTRS, attrs.RESUMED)]  # a function's
    shown = list(dict.fromkeys([view.metric, *view.targets, *view.baseline,
                                *(m for m in attrs.RECORDED_METRICS if m in values), *others]))
    table = Table(title="metrics", title_justify="left")
    for column in ("metric", "value", "target", "", "baseline", "vs baseline"):
        table.add_column(column, justify="left" if column in ("metric", "") else "right", overflow="fold")
    for metric in shown:
        value = values.get(metric)
        target, base = view.targets.get(metric), view.baseline.get(metric)
        met = "" if target is None or value is None else (
            "met" if view.met_target(metric, value) else "not met")
        versus = "-" if value is None or base is None else target_gap(metric, value, base, view.direction(metric))
        table.add_row(metric, _fmt(metric, value), _fmt(metric, target), met, _fmt(metric, base), versus)
    return table


def _number(trial: optuna.trial.FrozenTrial | None) -> int | None:
    return None if trial is None else trial.number


def _fmt(metric: str, value: float | None) -> str:
    return "-" if value is None else format_value(metric, value)


def _config_text(value: Any) -> str:
    try:
        return yaml_scalar(value)
    except BadInput:
        return repr(value)


def _raw_config(data: Mapping[str, Any], trial: optuna.trial.FrozenTrial, entrypoint: str) -> dict[str, Any]:
    """Training keys (nested ones joined with dots) + fixed params + sampled params, as the spec would merge them;
    for the core also the objective and the torch threads the trial recorded, as the driver gave them."""
    training = data.get("training")
    config = flatten(training if isinstance(training, Mapping) else {})[0]
    space = data.get("params")
    for name, param in (space.items() if isinstance(space, Mapping) else ()):
        if isinstance(param, Mapping) and param.get("type") == "fixed":
            config[name] = param.get("value")
    config.update(trial.params)
    if entrypoint == DEFAULT_ENTRYPOINT:  # its checkpoint's epoch and its float rounding depend on them
        objective = data.get("objective")
        if isinstance(metric := objective.get("metric") if isinstance(objective, Mapping) else None, str):
            config.setdefault("objective", metric)
        if type(threads := trial.user_attrs.get(attrs.THREADS)) is int and threads > 0:
            config.setdefault("threads", threads)
    return config
