"""Plain Ray Tune, tuned the obvious way: the same sleep work through a bare ``Tuner`` that reuses its actors,
with no searcher, no storage and no callbacks, on a local Ray whose workers preload Tune. It shows what Ray Tune
costs out of the box, so the gap to ``sweeper`` is what sweeper adds or saves (sweeper also drops Tune's per-actor
runtime env and Ray's 1 s connect retry, see sweeper/ray_runtime.py)."""

import os
import sys
import time

os.environ.setdefault("TUNE_DISABLE_AUTO_CALLBACK_LOGGERS", "1")  # sweeper writes no per-trial logger files either

from ray import tune

trials, seconds, concurrency, results = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), sys.argv[4]


def work(config):
    time.sleep(seconds)
    tune.report({"score": config["x"]})


if __name__ == "__main__":
    import ray

    ray.init(address="local", include_dashboard=False, log_to_driver=False, configure_logging=False,
             _system_config={"preload_python_modules": ["ray.tune"]})  # as sweeper starts its local Ray
    tuner = tune.Tuner(
        tune.with_resources(work, {"cpu": 2 / concurrency}),
        param_space={"x": tune.uniform(0, 1)},
        tune_config=tune.TuneConfig(num_samples=trials, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(storage_path=results, verbose=0),
    )
    tuner.fit()
