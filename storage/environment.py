"""What produced a study's numbers: package versions and the code's git commit, kept in the study's user attrs.

Months later, "why did the same space give 3 points less?" is often answered by a torch upgrade or an
uncommitted change. Versions are read from installed metadata, never by importing torch or ray (seconds each).
"""

from __future__ import annotations

import platform
import subprocess
from importlib import metadata
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "optuna", "ray", "numpy", "sqlalchemy", "sweeper")


SWEEPER_CHECKOUT = Path(__file__).resolve().parents[1]  # where sweeper's packages lie: a checkout, or site-packages


def record_environment(cwd: str | Path | None = None) -> dict[str, Any]:
    """``{"python": "3.11.7", "packages": {name: version or None}, "git_commit": sha or None, "sweeper_commit": sha
    or None}``.

    ``git_commit`` is the HEAD of the repository containing ``cwd`` (default: the current directory): the project's
    code. ``sweeper_commit`` is sweeper's own, where it runs from a checkout (its version stays 0.1.0 between
    commits). None when git is missing or there is no repository. Only ``git rev-parse`` runs: it never writes.
    """
    return {
        "python": platform.python_version(),
        "packages": {name: _version(name) for name in PACKAGES},
        "git_commit": _git_commit(Path(cwd) if cwd is not None else Path.cwd()),
        # the checkout's own .git: an installed sweeper's site-packages may lie inside another repository
        "sweeper_commit": _git_commit(SWEEPER_CHECKOUT) if (SWEEPER_CHECKOUT / ".git").exists() else None,
    }


def environment_fields(env: Any) -> dict[str, Any]:
    """A recorded environment (:func:`record_environment`'s, or an ``environments`` entry) as one flat mapping, in
    the order a reader scans it: python, the packages, then the commits."""
    env = env if isinstance(env, dict) else {}
    packages = env.get("packages") if isinstance(env.get("packages"), dict) else {}
    return {"python": env.get("python"), **packages, "git": env.get("git_commit"),
            "sweeper git": env.get("sweeper_commit")}


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git_commit(cwd: Path) -> str | None:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--verify", "--quiet", "HEAD"],
            cwd=cwd, capture_output=True, text=True, timeout=10, check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    commit = done.stdout.strip()
    return commit if done.returncode == 0 and commit else None
