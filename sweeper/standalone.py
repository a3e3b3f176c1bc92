"""``sweeper train``: one training run outside any sweep, of the built-in core or of a space's own entrypoint.

The smoke test before a sweep must train what the sweep would train: the function named by the space's
``entrypoint``, called as a trial calls it (``spec.trial_config``: the training block and fixed params, no
sampled params) with ``--set`` on top, with a ``report`` that prints a line per epoch and an optional
checkpoint folder. No Ray, no study. Without a space it is the built-in core over its defaults.

``--seeds`` trains the same config once per seed and summarises the final metrics: a sweep's best trial is the
luckiest of many, so "it reached 80% Top-3" means more when its config reaches it on other seeds too.
"""

from __future__ import annotations

import copy
import math
import statistics
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from rich.table import Table

from sweeper.console import console, epoch_line, forgiving_streams, format_value, plain, recorded, valued
from sweeper.errors import BadInput, DiskUnavailable, disk_problem
from sweeper.overrides import read_set_flags
from trials.config import REPLAYED, text_keys
from trials.entrypoint import (
    DEFAULT_ENTRYPOINT,
    EntrypointError,
    EntrypointInfo,
    objective_key,
    objective_problem,
    report_problem,
    returned_metrics,
)


class FunctionFailed(Exception):
    """A space's own training function raised; ``__cause__`` is its exception, from its own first frame."""


@dataclass(frozen=True)
class Standalone:
    """What ``sweeper train`` runs: ``fn(config, report, checkpoint_dir)``."""

    entrypoint: str
    config: dict[str, Any]
    epochs: int | None  # planned epochs, for "epoch 3/10"; None when the function does not say
    targets: Mapping[str, tuple[float, str]] = field(default_factory=dict)  # the space's: metric -> (value, direction)
    objective: str | None = None  # the space's objective metric

    @property
    def is_core(self) -> bool:
        return self.entrypoint == DEFAULT_ENTRYPOINT

    def function(self, base_dir: str | None) -> Callable[..., Any]:
        if self.is_core:
            from trials.train import run

            return run
        from trials.entrypoint import import_target

        return import_target(self.entrypoint, base_dir)


def prepare(space: str | Path | None, set_flags: Iterable[str], seeds: Iterable[int] = ()
            ) -> tuple[Standalone, str | None]:
    """``(run, base_dir)``: the space's training block and fixed params (without a space, the core's defaults), then
    ``--set`` on top, checked by the entrypoint before any work. A param the space samples is a plain setting here,
    at the entrypoint's declared default (a trial always has a value for it; the core fills in its own defaults).
    ``seeds``: each must be a ``seed`` the entrypoint takes, checked here so that a bad one trains nothing."""
    from search_spaces.errors import SpecError
    from search_spaces.loader import load_spec, resolve_space_path
    from search_spaces.schema import Spec
    from trials.entrypoint import describe

    # a sampler option Optuna deprecated passes: one training run samples nothing, and a study that ran with one
    # goes on from this very file (sweeper.preflight.kept_deprecated)
    spec = load_spec(resolve_space_path(str(space)), keep_deprecated=True) if space is not None else None
    entry = spec._entrypoint if spec is not None else describe(DEFAULT_ENTRYPOINT)
    assert entry is not None
    file, config = str(space or ""), spec.base_config() if spec is not None else {}
    if spec is not None and entry.settings:  # a sampled param: its declared default, as the core fills in its own
        config = {**{k: entry.settings[k] for k in spec.sampled_params() if k in entry.settings}, **config}
    # a map given to a group of settings, or to a setting that holds a map, sets each key, as in sweeper run
    flags = read_set_flags(set_flags, split_maps=entry.settings is not None)
    for key, value, explicit in flags:
        if not explicit and key.split(".")[0] in Spec.model_fields and key not in (entry.settings or {}):
            raise SpecError.single(file, f"{key} belongs to a sweep, not to one training run; sweeper train takes "
                                         f"the settings of {entry.target} (e.g. epochs=3)", source=f"--set {key}")
        try:
            if not set_in_map(config, key, value, entry):
                config[key] = entry.coerce(key, value)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=f"--set {key}") from None
    if problems := entry.problems(config):  # named by the --set at fault, as sweeper run names it
        at_fault = [key for key, _, _ in flags if key in (problems[0].key, *problems[0].partners)]
        raise SpecError.single(file, f"{entry.target} refuses the training config: {problems[0]}",
                               source=f"--set {at_fault[-1]}" if at_fault else None)
    for seed in seeds:
        try:
            if problems := entry.problems({**config, "seed": entry.coerce("seed", seed)}):
                raise problems[0]
        except ValueError as exc:
            raise SpecError.single(file, f"{entry.target} takes no seed {seed}: {exc}", source="--seeds") from None
    if entry.target == DEFAULT_ENTRYPOINT:
        from trials.config import TrainConfig

        epochs = TrainConfig.from_flat(config).epochs
    else:
        epochs = config.get("epochs", (entry.settings or {}).get("epochs"))
    targets = {m: (v, spec.metric_direction(m)) for m, v in spec.targets.items()} if spec is not None else {}
    run = Standalone(entry.target, config, epochs if isinstance(epochs, int) else None, targets,
                     spec.objective.metric if spec is not None else None)
    return run, spec.base_dir if spec is not None else None


def set_in_map(config: dict[str, Any], key: str, value: Any, entry: EntrypointInfo) -> bool:
    """Set ``opts.a`` inside ``config``'s map ``opts``, a setting whose default is a map, keeping its other keys as
    ``sweeper run`` keeps them (:meth:`EntrypointInfo.with_declared_map`); False where ``key`` is in no such map.
    Raises ValueError where the map holds no mapping at that place (``opts: 3``), as run and validate do."""
    from search_spaces.loader import set_path

    if (held := entry.map_holding(key)) is None:
        return False
    config.update(entry.with_declared_map(copy.deepcopy(config), key))  # not the space's own maps, set in place
    if isinstance(config[held], Mapping):  # opts.0 names its key 0, which it keeps in the key type declared
        config[held] = text_keys(config[held])
    set_path(config, key, value)
    config[held] = entry.coerce(held, config[held])
    return True


def train(run: Standalone, base_dir: str | None, checkpoint_dir: Path | None) -> dict[str, Any]:
    """Train once, printing each report as one line and the returned metrics at the end. Returns what a trial of
    the sweep would record: the returned metrics over each reported metric's last value (a report's None is no
    value for that epoch, as :func:`sweeper.trainable._run_trial` keeps it)."""
    fn = run.function(base_dir)
    if checkpoint_dir is not None:  # a folder, as a trial's is (the flag checked it can be made): torch.save makes none
        make_checkpoint_dir(checkpoint_dir)
    started = time.perf_counter()
    last = [started]
    reported: dict[str, Any] = {}
    replayed: list[Any] = []  # the epochs a resumed run reports again from its checkpoint, said in one line

    def say_resumed() -> None:
        if replayed:
            console.print(f"resumed from {checkpoint_dir} after epoch {replayed[-1]}", markup=False)
            replayed.clear()

    def report(metrics: dict[str, Any]) -> None:
        if not run.is_core and (problem := report_problem(run.entrypoint, metrics)):
            raise EntrypointError(problem)  # a trial fails on it: refused here, not trained past
        reported.update(recorded(metrics))
        if metrics.get(REPLAYED):  # trained in an earlier run: its line, with that run's speed, is in its log
            replayed.append(metrics.get("epoch"))
            return
        say_resumed()
        now = time.perf_counter()
        console.print(epoch_line(metrics, run.epochs or 0) if run.is_core else
                      metrics_line(plain(metrics), run.epochs, now - last[0]), markup=False)
        last[0] = now

    if run.is_core:
        from trials.train import NonFiniteLossError

        try:
            result = fn(run.config, report, checkpoint_dir)
        except NonFiniteLossError as exc:
            raise BadInput(f"{exc}; a trial of the sweep fails on it (stop_reason diverged)") from None
        except (OSError, RuntimeError) as exc:  # torch.save's own words for a full disk were a traceback
            if checkpoint_dir is None or not (disk := disk_problem(exc, checkpoint_dir)):
                raise
            raise DiskUnavailable(f"--checkpoint-dir {checkpoint_dir} took no more writes ({disk}); make room and "
                                  "run the same command: it resumes from the last checkpoint") from None
        say_resumed()
        _print_core_result(result)
        return {**reported, **result}
    try:
        with forgiving_streams():  # its own prints, to a reader that may have gone (| head -1)
            returned = fn(run.config, report, str(checkpoint_dir) if checkpoint_dir is not None else None)
    except EntrypointError as exc:  # report's refusal of what the function reported
        raise BadInput(str(exc)) from None
    except (Exception, SystemExit) as exc:  # the user's own code failed (or exited): its frames, not typer's
        exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ else None
        raise FunctionFailed(f"{run.entrypoint} raised {type(exc).__name__}: {exc}") from exc
    say_resumed()
    try:
        result = plain(returned_metrics(run.entrypoint, returned) or {})
    except EntrypointError as exc:
        raise BadInput(str(exc)) from None
    # what a trial of the sweep would fail on, as Recorder._complete words it: an objective, returned or else last
    # reported, that is no number, NaN or ±inf (stop_reason diverged), or not there at all
    verb, judged = ("returned", result) if returned is not None else ("last reported", reported)
    final = {**reported, **valued(result)}
    if run.objective is not None:
        if problem := objective_problem(run.entrypoint, verb, judged, objective_key(judged, run.objective)):
            raise BadInput(f"{problem}; a trial of the sweep fails on it")
        value = final.get(key := objective_key(final, run.objective))
        if isinstance(value, float) and not math.isfinite(value):
            raise BadInput(f"{run.entrypoint} ended with {key} = {value}; a trial of the sweep fails on it "
                           "(stop_reason diverged)")
        if value is None:
            raise BadInput(f"{run.entrypoint} returned without reporting {run.objective!r}; a trial of the sweep "
                           "fails on it")
    console.print("final: " + ("  ".join(f"{k} {format_value(k, v)}" for k, v in result.items()
                                         if isinstance(v, (int, float, str, bool))) or "(nothing returned)"),
                  markup=False)
    console.print(f"{run.entrypoint}, {time.perf_counter() - started:.1f}s", markup=False)
    return final


def make_checkpoint_dir(folder: Path) -> None:
    """``folder``, made if missing; one that cannot be (a file in the way, no room) is bad input, not a traceback."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"--checkpoint-dir: cannot make the folder {folder}: {exc.strerror or exc}") from None


def train_seeds(run: Standalone, base_dir: str | None, checkpoint_dir: Path | None, seeds: list[int]
                ) -> list[dict[str, Any]]:
    """Train once per seed (each in ``checkpoint_dir/seed-N``), then one table of the final metrics across seeds
    and, for a space with targets, how many seeds reach each."""
    folders = [checkpoint_dir / f"seed-{seed}" for seed in seeds] if checkpoint_dir is not None else []
    for folder in folders:  # before the first seed trains, not after: the flag checked DIR, not what is in it
        if folder.exists() and not folder.is_dir():
            raise BadInput(f"--checkpoint-dir: {folder} is a file, not a folder; --seeds trains each seed in "
                           "DIR/seed-N")
    results = []
    for done, seed in enumerate(seeds):
        console.print(f"seed {seed} ({done + 1} of {len(seeds)})", markup=False)
        folder = checkpoint_dir / f"seed-{seed}" if checkpoint_dir is not None else None
        results.append(train(replace(run, config={**run.config, "seed": seed}), base_dir, folder))
    per_seed = [final_metrics(run, result) for result in results]
    console.print(seeds_table(seeds, per_seed))
    for line in target_lines(run, results):
        console.print(line, markup=False)
    if len(per_seed) > 1 and per_seed[0] and all(values == per_seed[0] for values in per_seed):
        console.print(f"note: every seed ended with the same metrics: does {run.entrypoint} read config['seed']?",
                      markup=False)
    return results


def numbers(result: Mapping[str, Any]) -> dict[str, float]:
    """The metrics of a run's result that are numbers."""
    return {k: float(v) for k, v in result.items() if isinstance(v, int | float) and not isinstance(v, bool)
            and k not in ("epoch", REPLAYED)}


def final_metrics(run: Standalone, result: Mapping[str, Any]) -> dict[str, float]:
    """The numbers to compare across seeds: the core's validation and test metrics (and any the space judges), or
    every one a user function returned or last reported."""
    judged = {*run.targets, run.objective}
    return {k: v for k, v in numbers(result).items()
            if not run.is_core or k.startswith(("test_", "val_")) or k in judged}


def seeds_table(seeds: list[int], per_seed: list[dict[str, float]]) -> Table:
    """A row per metric: its value per seed, then mean, standard deviation and range; without the seeds' columns
    where they would not fit (a CI log's 80 columns cut 8.10e-04 to 8.10e-… and three metrics' names to val_to…):
    each seed's values are on its own lines above."""
    table = _seeds_table(seeds, per_seed, with_seeds=True)  # as wide as its widest cells, unshrunk
    natural = console.measure(table, options=console.options.update_width(10**6)).maximum
    return table if natural <= console.width else _seeds_table(seeds, per_seed, with_seeds=False)


def _seeds_table(seeds: list[int], per_seed: list[dict[str, float]], with_seeds: bool) -> Table:
    title = f"final metrics over {len(seeds)} seeds" + ("" if with_seeds else " (per seed: in each seed's lines above)")
    table = Table(title=title, title_justify="left")
    for column in ("metric", *(f"seed {s}" for s in seeds if with_seeds), "mean", "sd", "min", "max"):
        table.add_column(column, justify="left" if column == "metric" else "right", overflow="fold")
    for metric in dict.fromkeys(k for values in per_seed for k in values):
        values = [v[metric] for v in per_seed if metric in v]
        finite = all(map(math.isfinite, values))  # statistics' exact sums take no NaN or inf
        sd = statistics.stdev(values) if len(values) > 1 and finite else 0.0 if len(values) <= 1 else math.nan
        seed_values = [format_value(metric, v[metric]) if metric in v else "-" for v in per_seed]
        table.add_row(metric, *(seed_values if with_seeds else ()),
                      *(format_value(metric, x) for x in (statistics.fmean(values), sd, min(values), max(values))))
    return table


def judged_values(run: Standalone, result: Mapping[str, Any]) -> dict[str, float]:
    """A seed's metrics as a sweep judges a trial's (``sweeper.recorder.meets_targets``): what it recorded, with
    the objective at its best epoch where the function says which (``best_<metric>``)."""
    values = numbers(result)
    if run.objective is not None and (best := values.get(f"best_{run.objective}", values.get(run.objective))) \
            is not None:
        values[run.objective] = best
    return values


def target_lines(run: Standalone, results: list[dict[str, Any]]) -> list[str]:
    """``test_top3 >= 80.00%: 2 of 3 seeds reach it (mean 80.41%)`` per target of the space."""
    from storage.view import targets_met  # the rule a sweep judges its trials by

    lines = []
    for metric, (target, direction) in run.targets.items():
        values = [v for result in results if (v := judged_values(run, result).get(metric)) is not None]
        reached = sum(targets_met({metric: v}, {metric: target}, lambda _, d=direction: d) for v in values)
        mean = f" (mean {format_value(metric, statistics.fmean(values))})" if values else ""
        lines.append(f"{metric} {'>=' if direction == 'maximize' else '<='} {format_value(metric, target)}: "
                     f"{reached} of {len(results)} seeds reach it{mean}")
    if len(run.targets) > 1:  # a sweep's trial meets the targets only all at once: one seed each proves nothing
        every = sum(targets_met(judged_values(run, result), {m: t for m, (t, _) in run.targets.items()},
                                lambda m: run.targets[m][1]) for result in results)
        lines.append(f"every target: {every} of {len(results)} seeds reach them all")
    return lines


def metrics_line(metrics: dict[str, Any], epochs: int | None, seconds: float) -> str:
    """``epoch 3/10  train_loss 0.3121  val_acc 0.9417  0.42s``: a user function's report, in its own names."""
    parts = []
    epoch = metrics.get("epoch")
    if epoch is not None:
        parts.append(f"epoch {epoch:>{len(str(epochs))}}/{epochs}" if epochs else f"epoch {epoch}")
    parts += [f"{k} {format_value(k, v)}" for k, v in metrics.items()
              if k not in ("epoch", REPLAYED) and isinstance(v, (int, float, str, bool))]
    parts.append(f"{seconds:.2f}s")
    return "  ".join(parts)


def _print_core_result(result: dict[str, Any]) -> None:
    console.print("final: " + "  ".join(
        f"{k} {format_value(k, v)}" for k, v in result.items() if k.startswith(("test_", "val_", "best_epoch"))),
        markup=False)
    console.print(f"{result['parameters']} parameters on {result['device']}, {result['wall_seconds']:.1f}s; "
                  f"{result['data']}", markup=False)
