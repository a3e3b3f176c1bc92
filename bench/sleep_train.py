"""Fixed-length synthetic work for bench/overhead.py: one report after ``seconds`` of sleep, no training.

Sleeping (not spinning) keeps both runners' control planes free to use the CPUs, so the difference between
them is their own overhead.
"""

import time


def train(config, report, checkpoint_dir):
    time.sleep(config["seconds"])
    report({"epoch": 1, "score": config["x"]})
    return {"score_final": config["x"]}


train.settings = {"seconds": 5.0, "x": 0.5}
train.metrics = ["score", "score_final"]
