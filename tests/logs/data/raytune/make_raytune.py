"""Writes a real Ray Tune experiment: a 3-trial lr grid of a tiny numpy least-squares fit.

How lr_sweep/ was made (ray 2.60.0, tensorboardX installed; run by hand, not by the tests):
`python make_raytune.py`, then the trial files copied from /tmp/readers_ray/out/lr_sweep.
"""

import math

import numpy as np
import ray
from ray import tune


def trainable(config: dict) -> None:
    rng = np.random.default_rng(config["seed"])
    x = rng.normal(size=(256, 8))
    w_true = rng.normal(size=8)
    y = x @ w_true
    w = np.zeros(8)
    for _ in range(20):
        grad = 2 * x.T @ (x @ w - y) / len(y)
        w -= config["lr"] * grad
        loss = float(np.mean((x @ w - y) ** 2))
        tune.report(
            {
                "loss": loss if math.isfinite(loss) else float("nan"),
                "grad_norm": float(np.linalg.norm(grad)),
            }
        )


if __name__ == "__main__":
    ray.init(num_cpus=1, include_dashboard=False, log_to_driver=False)
    tuner = tune.Tuner(
        trainable,
        param_space={"lr": tune.grid_search([0.001, 0.01, 0.1]), "seed": 0, "hidden": 8},
        run_config=tune.RunConfig(storage_path="/tmp/readers_ray/out", name="lr_sweep", verbose=0),
        tune_config=tune.TuneConfig(max_concurrent_trials=1),
    )
    tuner.fit()
