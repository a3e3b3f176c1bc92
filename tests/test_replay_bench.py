"""bench/replay.py: Ray's ASHA rule replayed on plain numbers, and sweeps replayed on recorded learning curves.

The rule is checked against Ray's own ``_Bracket`` on the same stream of results, so the replay's ASHA figures are
Ray's; the sweep arithmetic on curves small enough to follow by hand.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import random
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from ray.tune.schedulers.async_hyperband import _Bracket

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("bench_replay", ROOT / "bench" / "replay.py")
replay = importlib.util.module_from_spec(spec)
spec.loader.exec_module(replay)


@pytest.mark.parametrize(("grace", "rf", "max_t"), [(3, 4.0, 30), (2, 3.0, 30), (1, 3.0, 30), (1, 2.0, 10)])
def test_asha_stops_exactly_the_trials_that_rays_bracket_stops(grace, rf, max_t):
    ours, rays = replay.Asha(grace, rf, max_t), _Bracket(grace, max_t, rf, s=0, stop_last_trials=False)
    assert sorted(ours.rungs) == sorted(milestone for milestone, _ in rays._rungs)
    rng, decisions = random.Random(grace), []
    alive = {trial: 0 for trial in range(40)}
    while alive:  # trials report one epoch at a time, interleaved at random, as concurrent trials do
        trial = rng.choice(sorted(alive))
        alive[trial] += 1
        value = round(rng.random(), 2)  # ties too
        stop = ours.stops(alive[trial], value)
        assert stop == (rays.on_result(SimpleNamespace(trial_id=trial), alive[trial], value) == "STOP")
        decisions.append(stop)
        if stop or alive[trial] == max_t:
            del alive[trial]
    assert any(decisions) and not all(decisions), "the stream must exercise both decisions"


def test_a_bootstrap_stops_no_trial_at_a_rung_until_it_holds_that_many_values():
    """Ray's rule (B = 1) judges the second trial at a rung against the first alone; with B = 3 the first three pass."""
    rays, boot = replay.Asha(2, 2.0, 10), replay.Asha(2, 2.0, 10, bootstrap=3)
    values = [0.9, 0.1, 0.2, 0.05]  # each worse than the first, at rung 2
    assert [rays.stops(2, v) for v in values] == [False, True, True, True]
    assert [boot.stops(2, v) for v in values] == [False, False, False, True]
    assert [boot.stops(e, 0.0) for e in (1, 3)] == [False, False]  # between rungs nothing is judged
    assert replay.asha_setting("3:4") == (3, 4.0) == replay.asha_setting("3:4:1")  # B = 1 is Ray's, spelt alike
    assert replay.asha_setting("3:4:2") == (3, 4.0, 2)
    with pytest.raises(argparse.ArgumentTypeError, match="GRACE:RF or GRACE:RF:B"):
        replay.asha_setting("3:4:2:1")


def test_a_sweep_counts_every_epoch_of_every_slot_until_a_trial_meeting_the_target_completes():
    curves = [[0.1, 0.2, 0.3, 0.4], [0.5, 0.6, 0.7, 0.8]]
    # slot 1 trains config 0 (misses), slot 2 config 1 (meets): both train 4 epochs, then config 1 completes
    assert replay.sweep(curves, [False, True], lambda i: i % 2, slots=2, trials=10, asha=None) == 8
    # one slot: config 0 first (4 epochs), then config 1 (4 more)
    assert replay.sweep(curves, [False, True], lambda i: i % 2, slots=1, trials=10, asha=None) == 8
    assert replay.sweep(curves, [False, False], lambda i: i % 2, slots=2, trials=10, asha=None) is None


def test_asha_prunes_a_trial_below_the_rung_and_spares_the_time_it_would_have_trained():
    good, bad = [0.5, 0.6, 0.7, 0.8, 0.9, 0.9], [0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    order = [0, 1, 0]  # the good one sets rung 2's bar; the bad one stops there; then the good one again
    kwargs = {"draw": lambda i: order[i], "slots": 1, "trials": 3}
    assert replay.sweep([good, bad], [False, False], **kwargs, asha=None) is None
    met = [False, True]  # only the bad config meets the target: ASHA prunes it, so the sweep never meets it
    assert replay.sweep([good, bad], met, **kwargs, asha=None) == 12
    assert replay.sweep([good, bad], met, **kwargs, asha=(2, 2.0)) is None
    met = [True, False]  # the first trial meets it at epoch 6 whatever comes after
    assert replay.sweep([good, bad], met, **kwargs, asha=(2, 2.0)) == 6


def test_the_command_prints_random_search_as_the_reference_and_an_oracle_that_only_draws_the_winner(tmp_path):
    epochs = 30
    runs = [{"label": f"random {i}", "params": {}, "result": {
        "curve": [0.1 + 0.02 * i] * epochs, "val_top3": 0.1 + 0.02 * i, "test_top3": 0.5 + 0.1 * (i == 9)}}
        for i in range(10)]
    records = tmp_path / "calibration.json"
    records.write_text(json.dumps({"revision": "test", "seed": 0, "runs": runs}))
    space = tmp_path / "space.yaml"
    space.write_text((ROOT / "bench" / "spaces" / "asl20-rare.yaml").read_text().replace("test_top3: 75%",
                                                                                          "test_top3: 55%"))
    command = [sys.executable, str(ROOT / "bench" / "replay.py"), "--space", str(space), "--records", str(records),
               "--sweeps", "50", "--startup", "0", "--oracle", "0.1", "--asha"]
    out = subprocess.run(command, capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert "(1 meet test_top3 >= 55.0%)" in out
    rows = {line.split(" | ")[0].strip("| "): line.split(" | ")[1:] for line in out.splitlines()
            if line.startswith("| ") and "---" not in line}
    assert rows["random"][1] == "1.00"
    # the best 10% by validation is config 9, the one that meets the target: both slots draw it at once
    assert rows["oracle-10%+asha g3 rf4"][0] == "60"
    one = subprocess.run([*command, "--slots", "1"], capture_output=True, text=True, check=True, cwd=ROOT).stdout
    assert ", 1 at a time, " in one and "| oracle-10%+asha g3 rf4 | 30 |" in one  # alone, the winner's 30 epochs
