"""Ray Tune's own floor: the same sleep work through a bare ``Tuner`` that reuses its actors, with no searcher,
no storage and no callbacks. Nothing built on Ray Tune can start, run and end these trials faster, so the gap
between this and ``sweeper`` is what sweeper itself costs (Optuna, the study, the recorder)."""

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
