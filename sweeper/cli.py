"""The ``sweeper`` command line. Thin: each command parses its flags and calls one function elsewhere."""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.markup import escape

from sweeper.console import console, epoch_line, err_console, format_value
from sweeper.errors import INTERRUPTED_EXIT_CODE, USAGE_EXIT_CODE, bad_input_types
from sweeper.overrides import parse_set_flags

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Hyperparameter sweeps for PyTorch training: Ray Tune drives, Optuna samples, every trial is recorded.",
)

@app.callback()
def _group() -> None:
    """Keeps ``sweeper`` a group of commands even while it has only one."""


SetFlags = Annotated[list[str], typer.Option("--set", help="Override a setting: KEY=VALUE (repeatable).")]


@app.command()
def train(
    space: Annotated[Optional[Path], typer.Argument(help="Space YAML whose training block to use.")] = None,  # noqa: UP045
    set_: SetFlags = [],  # noqa: B006
    checkpoint_dir: Annotated[Optional[Path], typer.Option(help="Write/resume epoch checkpoints here.")] = None,  # noqa: UP045
) -> None:
    """Run one training standalone, printing a line per epoch."""
    from sweeper.standalone import standalone_config

    config = standalone_config(space, parse_set_flags(set_))
    from trials.train import run

    epochs = int(config.get("epochs", 0)) or run.settings["epochs"]  # type: ignore[attr-defined]
    result = run(config, lambda metrics: console.print(epoch_line(metrics, epochs)), checkpoint_dir)
    console.print("final: " + "  ".join(
        f"{k} {format_value(k, v)}" for k, v in result.items() if k.startswith(("test_", "val_", "best_epoch"))))
    console.print(f"{result['parameters']} parameters on {result['device']}, {result['wall_seconds']:.1f}s; "
                  f"{result['data']}")


@app.command()
def run(
    space: Annotated[str, typer.Argument(help="Space YAML, or a built-in: spaces/asl50.yaml, asl50.")],
    set_: SetFlags = [],  # noqa: B006
    quick: Annotated[bool, typer.Option("--quick", help="Smoke profile: tiny data, few epochs, few trials.")] = False,
    storage: Annotated[Optional[str], typer.Option(help="Optuna storage URL (beats SWEEPER_STORAGE and the YAML).")] = None,  # noqa: UP045, E501
    address: Annotated[Optional[str], typer.Option(help="Join this Ray cluster (default: RAY_ADDRESS or local).")] = None,  # noqa: UP045, E501
    results_dir: Annotated[str, typer.Option(help="Checkpoints and Ray's results (a path all nodes see).")] = "sweeper_runs",  # noqa: E501
    max_failures: Annotated[int, typer.Option(help="Retries of a trial whose worker crashed.")] = 2,
) -> None:
    """Run a sweep: sample with Optuna, train with Ray Tune, record every trial in the study."""
    from sweeper.driver import SweepOptions, kill_local_ray_before_exit, run_sweep

    run_sweep(SweepOptions(space=space, overrides=tuple(set_), quick=quick, storage=storage, address=address,
                           results_dir=results_dir, max_failures=max_failures))
    # Every trial is committed to the study: leave now instead of waiting seconds on graceful teardowns.
    kill_local_ray_before_exit()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


@app.command()
def validate(
    space: Annotated[str, typer.Argument(help="Space YAML or built-in name.")],
    set_: SetFlags = [],  # noqa: B006
    quick: Annotated[bool, typer.Option("--quick")] = False,
) -> None:
    """Check a space file and print the resolved spec."""
    from search_spaces import load_spec, render_spec, resolve_space_path

    console.print(render_spec(load_spec(resolve_space_path(space), tuple(set_), quick=quick)), markup=False)


@app.command()
def spaces() -> None:
    """List the built-in spaces (a local spaces/NAME.yaml wins over a built-in of that name)."""
    from search_spaces import list_builtin_spaces

    for name, description in list_builtin_spaces():
        console.print(f"spaces/{name}.yaml  {description}", markup=False)


def main() -> None:
    """Console-script entry: bad input is one message and exit 2, Ctrl-C is exit 130."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    try:
        app()
    except KeyboardInterrupt:
        err_console.print("interrupted")
        sys.exit(INTERRUPTED_EXIT_CODE)
    except bad_input_types() as exc:
        err_console.print(f"[bold red]error:[/] {escape(str(exc))}")
        sys.exit(USAGE_EXIT_CODE)


if __name__ == "__main__":
    main()
