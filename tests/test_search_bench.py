"""bench/search.py's table and verdict, on the sweep records of a real run (tests/fixtures/search_bench.json).

No sweep runs here: the records are what ``python bench/search.py --json`` wrote. What is checked is the
arithmetic the verdict rests on: medians with sweeps that never reached the target ranked last, the ratio to
random search, and ``met`` only when the default's median is at most 0.20 of random search's.
"""

from __future__ import annotations

import copy
import importlib.util
import json
import re
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_search", ROOT / "bench" / "search.py")
search = importlib.util.module_from_spec(spec)
spec.loader.exec_module(search)

RECORDS = json.loads((ROOT / "tests" / "fixtures" / "search_bench.json").read_text())["records"]


def epochs_to_target(method: str) -> list[int]:
    return [r["target_met"]["trial_epochs"] for r in RECORDS if r["method"] == method and r["target_met"]]


def verdict(records: list[dict]) -> str:
    return search.table(records)[-1]


def test_the_verdict_is_the_ratio_of_the_medians_of_the_recorded_sweeps():
    default, reference = epochs_to_target(search.DEFAULT), epochs_to_target(search.REFERENCE)
    assert len(default) == len(reference) == 5, "the fixture is a 5-seed run where every sweep reached the target"
    expected = statistics.median(default) / statistics.median(reference)
    line = verdict(RECORDS)
    assert re.search(rf": {expected:.2f}, (not )?met$", line), line
    assert line.endswith(", met") == (round(expected, 2) <= search.BOUND)


def test_a_default_search_slower_than_the_bound_is_not_met():
    records = copy.deepcopy(RECORDS)
    ref = statistics.median(epochs_to_target(search.REFERENCE))
    for r in records:
        if r["method"] == search.DEFAULT:
            r["target_met"]["trial_epochs"] = round(0.21 * ref)  # just over the bound: 0.21 x random's median
    assert verdict(records).endswith(", not met")
    for r in records:
        if r["method"] == search.DEFAULT:
            r["target_met"]["trial_epochs"] = round(0.19 * ref)
    assert verdict(records).endswith(", met")


def test_sweeps_that_never_reach_the_target_rank_last_and_print_as_more_than_their_budget():
    records = copy.deepcopy([r for r in RECORDS if r["method"] in (search.REFERENCE, search.DEFAULT)])
    reference = [r for r in records if r["method"] == search.REFERENCE]
    for r in reference[:3]:  # 3 of 5 never met it: the median is censored at the smallest budget among them
        r["target_met"] = None
    summary = search.summarize(records)[search.REFERENCE]["trial_epochs"]
    assert summary["censored"] and summary["median"] == min(r["trial_epochs"] for r in reference[:3])
    row = next(line for line in search.table(records) if line.startswith(f"| {search.REFERENCE} "))
    assert f">{summary['median']:.0f} (" in row
    # random search's true median is larger still, so the ratio printed is an upper bound
    assert re.search(r": <\d\.\d\d, (not )?met$", verdict(records))


@pytest.mark.parametrize("values, expected", [([3, 1, 2], (2, False)), ([3, None, 1], (3, False)),
                                              ([None, None, 1], (40, True)), ([4, 2], (3, False))])
def test_median_of_ranks_censored_values_last(values, expected):
    assert search.median_of(values, [40.0, 50.0]) == expected


@pytest.mark.parametrize("path", sorted((ROOT / "bench" / "spaces").glob("*.yaml")), ids=lambda p: p.stem)
def test_benchmark_spaces_load_with_every_method(path: Path) -> None:
    """A benchmark space is only useful while it loads, as written and with each method's overrides."""
    from search_spaces.loader import load_spec

    for method, overrides in {**search.METHODS, **search.VARIANTS}.items():
        spec = load_spec(path, overrides)
        assert spec.budget.stop_on_target and spec.targets, method
        assert search.search_label(str(path), overrides).startswith(spec.sampler.type)


def test_a_record_names_the_commit_it_ran_at_and_says_when_the_tree_differed(tmp_path):
    assert search.revision(tmp_path) == "unknown (not a git checkout)"

    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    git("init", "-q")
    (tmp_path / "space.yaml").write_text("epochs: 30\n")
    git("add", "space.yaml")
    git("commit", "-qm", "a space")
    commit = git("rev-parse", "--short", "HEAD")
    assert search.revision(tmp_path) == commit
    (tmp_path / "scratch.txt").write_text("untracked files change no record\n")
    assert search.revision(tmp_path) == commit
    (tmp_path / "space.yaml").write_text("epochs: 60\n")  # an edited space does
    assert search.revision(tmp_path) == f"{commit}+dirty"


def test_calibration_trains_the_setup_and_random_configs_and_records_them_with_the_commit(tmp_path):
    """bench/calibrate.py end to end on a tiny space whose training block leaves lr to the core's default."""
    space = tmp_path / "tiny.yaml"
    space.write_text("name: tiny\ntargets: {test_top3: 50%}\n"
                     "training: {dataset: {classes: 4, samples_per_class: 4, signers: 3}, epochs: 1}\n"
                     "params:\n  lr: {type: float, low: 1.0e-4, high: 1.0e-2, log: true}\n")
    record = tmp_path / "runs.json"
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "calibrate.py"), "--spaces", str(space),
                             "--configs", "2", "--jobs", "1", "--json", str(record)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"| {space} | random configs reaching test_top3 >= 50.00% | 3% - 20% |" in result.stdout
    data = json.loads(record.read_text())
    assert data["revision"] == search.revision() and data["seed"] == 0
    assert sorted(r["label"] for r in data["runs"]) == ["random 0", "random 1", "seeds' setup", "seeds' setup, lr x10"]
    setup, faster = (next(r for r in data["runs"] if r["label"] == label) for label in ("seeds' setup",
                                                                                      "seeds' setup, lr x10"))
    assert len(setup["result"]["curve"]) == 1 and 0 <= setup["result"]["test_top3"] <= 1
    assert setup["params"] == {"lr": None} and faster["result"] != setup["result"]
