"""The Makefile's own checks, run with the real make against throwaway virtualenvs (no packages installed)."""
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="no make on this machine")


def check_venv(venv: Path, *variables: str) -> subprocess.CompletedProcess:
    return subprocess.run(["make", "--no-print-directory", "check-venv", f"VENV={venv}", *variables], cwd=REPO,
                          capture_output=True, text=True, timeout=60)


def bare_venv(path: Path) -> Path:
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(path)], check=True, timeout=60)
    return path


def test_a_venv_made_by_hand_for_torch_keep_is_not_taken_for_a_broken_one(tmp_path):
    """The GPU set-up makes .venv itself and installs its torch there before `make run TORCH=keep`; the lost-package
    check refused that .venv (it lacks everything but torch) and advised `make clean venv`, which deletes the torch."""
    venv = bare_venv(tmp_path / "venv")
    proc = check_venv(venv, "TORCH=keep")
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_finished_venv_that_lost_a_package_says_which_and_how_to_rebuild(tmp_path):
    venv = bare_venv(tmp_path / "venv")
    (venv / ".installed").touch()  # make finished it once
    proc = check_venv(venv)
    assert proc.returncode != 0
    assert f"{venv} lacks optuna, ray, torch" in proc.stderr and "make clean venv" in proc.stderr, proc.stderr


def test_make_test_floors_pins_exactly_the_floors_setup_cfg_declares():
    """constraints-floors.txt is make test-floors' claim that setup.cfg's floors work: a floor raised in one and not
    the other would test versions nobody declared (the tools, dev's extras, are pinned as constraints.txt's)."""
    import configparser
    import re

    from packaging.version import Version

    setup = configparser.ConfigParser()
    setup.read(REPO / "setup.cfg")
    requirements = setup["options"]["install_requires"].split() + setup["options.extras_require"]["postgres"].split()
    floors = {re.sub(r"\[.*\]", "", name).lower(): Version(version)
              for name, version in (line.split(">=") for line in requirements)}
    pins = {name: Version(version) for name, version in (line.split("==") for line in (
        REPO / "constraints-floors.txt").read_text().splitlines() if line and not line.startswith("#"))}
    assert {name: pins.get(name) for name in floors} == floors
