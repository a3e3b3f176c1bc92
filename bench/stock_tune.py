"""The stock integration, with defaults: Ray Tune ``Tuner`` + ``OptunaSearch`` over the same sleep work."""

import sys
import time

from ray import tune
from ray.tune.search.optuna import OptunaSearch

trials, seconds, concurrency, storage_url, results = (int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]),
                                                      sys.argv[4], sys.argv[5])


def work(config):
    time.sleep(seconds)
    tune.report({"score": config["x"]})


if __name__ == "__main__":
    import optuna
    import ray

    ray.init(address="local")  # a Ray of its own, as sweeper starts: never a cluster a `ray start` left behind
    storage = optuna.storages.RDBStorage(storage_url)
    search = OptunaSearch({"x": optuna.distributions.FloatDistribution(0, 1)}, metric="score", mode="max",
                          storage=storage, study_name="stock")
    tuner = tune.Tuner(
        tune.with_resources(work, {"cpu": 2 / concurrency}),
        tune_config=tune.TuneConfig(search_alg=search, num_samples=trials, max_concurrent_trials=concurrency),
        run_config=tune.RunConfig(storage_path=results, verbose=0),
    )
    tuner.fit()
