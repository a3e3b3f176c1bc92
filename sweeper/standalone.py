"""``sweeper train``: one training run outside any sweep, of the built-in core or of a space's own entrypoint.

The smoke test before a sweep must train what the sweep would train: the function named by the space's
``entrypoint``, called as a trial calls it (``spec.trial_config``: the training block and fixed params, no
sampled params) with ``--set`` on top, with a ``report`` that prints a line per epoch and an optional
checkpoint folder. No Ray, no study. Without a space it is the built-in core over its defaults.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sweeper.console import console, epoch_line, format_value, plain
from sweeper.errors import BadInput
from sweeper.overrides import read_set_flags
from trials.entrypoint import DEFAULT_ENTRYPOINT, EntrypointError, returned_metrics


class FunctionFailed(Exception):
    """A space's own training function raised; ``__cause__`` is its exception, from its own first frame."""


@dataclass(frozen=True)
class Standalone:
    """What ``sweeper train`` runs: ``fn(config, report, checkpoint_dir)``."""

    entrypoint: str
    config: dict[str, Any]
    epochs: int | None  # planned epochs, for "epoch 3/10"; None when the function does not say

    @property
    def is_core(self) -> bool:
        return self.entrypoint == DEFAULT_ENTRYPOINT

    def function(self, base_dir: str | None) -> Callable[..., Any]:
        if self.is_core:
            from trials.train import run

            return run
        from trials.entrypoint import import_target

        return import_target(self.entrypoint, base_dir)


def prepare(space: Path | None, set_flags: Iterable[str]) -> tuple[Standalone, str | None]:
    """``(run, base_dir)``: the space's training block and fixed params (without a space, the core's defaults), then
    ``--set`` on top, checked by the entrypoint before any work. A param the space samples is a plain setting here."""
    from search_spaces.errors import SpecError
    from search_spaces.loader import load_spec, resolve_space_path
    from search_spaces.schema import Spec
    from trials.entrypoint import describe

    spec = load_spec(resolve_space_path(str(space))) if space is not None else None
    entry = spec._entrypoint if spec is not None else describe(DEFAULT_ENTRYPOINT)
    assert entry is not None
    file, config = str(space or ""), spec.base_config() if spec is not None else {}
    for key, value, explicit in read_set_flags(set_flags):
        if not explicit and key.split(".")[0] in Spec.model_fields and key not in (entry.settings or {}):
            raise SpecError.single(file, f"{key} belongs to a sweep, not to one training run; sweeper train takes "
                                         f"the settings of {entry.target} (e.g. epochs=3)", source=f"--set {key}")
        try:
            config[key] = entry.coerce(key, value)
        except ValueError as exc:
            raise SpecError.single(file, str(exc), source=f"--set {key}") from None
    if problems := entry.problems(config):
        raise SpecError.single(file, f"{entry.target} refuses the training config: {problems[0]}")
    if entry.target == DEFAULT_ENTRYPOINT:
        from trials.config import TrainConfig

        epochs = TrainConfig.from_flat(config).epochs
    else:
        epochs = config.get("epochs", (entry.settings or {}).get("epochs"))
    run = Standalone(entry.target, config, epochs if isinstance(epochs, int) else None)
    return run, spec.base_dir if spec is not None else None


def train(run: Standalone, base_dir: str | None, checkpoint_dir: Path | None) -> dict[str, Any]:
    """Train once, printing each report as one line and the returned metrics at the end."""
    fn = run.function(base_dir)
    started = time.perf_counter()
    if run.is_core:
        result = fn(run.config, lambda metrics: console.print(epoch_line(metrics, run.epochs or 0), markup=False),
                    checkpoint_dir)
        _print_core_result(result)
        return result
    last = [started]

    def report(metrics: dict[str, Any]) -> None:
        now = time.perf_counter()
        console.print(metrics_line(plain(metrics), run.epochs, now - last[0]), markup=False)
        last[0] = now

    try:
        returned = fn(run.config, report, str(checkpoint_dir) if checkpoint_dir is not None else None)
    except (Exception, SystemExit) as exc:  # the user's own code failed (or exited): its frames, not typer's
        exc.__traceback__ = exc.__traceback__.tb_next if exc.__traceback__ else None
        raise FunctionFailed(f"{run.entrypoint} raised {type(exc).__name__}: {exc}") from exc
    try:
        result = plain(returned_metrics(run.entrypoint, returned) or {})
    except EntrypointError as exc:
        raise BadInput(str(exc)) from None
    console.print("final: " + ("  ".join(f"{k} {format_value(k, v)}" for k, v in result.items()
                                         if isinstance(v, (int, float, str, bool))) or "(nothing returned)"),
                  markup=False)
    console.print(f"{run.entrypoint}, {time.perf_counter() - started:.1f}s", markup=False)
    return result


def metrics_line(metrics: dict[str, Any], epochs: int | None, seconds: float) -> str:
    """``epoch 3/10  train_loss 0.3121  val_acc 0.9417  0.42s``: a user function's report, in its own names."""
    parts = []
    epoch = metrics.get("epoch")
    if epoch is not None:
        parts.append(f"epoch {epoch:>{len(str(epochs))}}/{epochs}" if epochs else f"epoch {epoch}")
    parts += [f"{k} {format_value(k, v)}" for k, v in metrics.items()
              if k != "epoch" and isinstance(v, (int, float, str, bool))]
    parts.append(f"{seconds:.2f}s")
    return "  ".join(parts)


def _print_core_result(result: dict[str, Any]) -> None:
    console.print("final: " + "  ".join(
        f"{k} {format_value(k, v)}" for k, v in result.items() if k.startswith(("test_", "val_", "best_epoch"))),
        markup=False)
    console.print(f"{result['parameters']} parameters on {result['device']}, {result['wall_seconds']:.1f}s; "
                  f"{result['data']}", markup=False)
