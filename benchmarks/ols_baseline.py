"""Ordinary least squares on the exact train/test split the zoo's diabetes runs use.

    python benchmarks/ols_baseline.py                 # OLS fitted on the training rows
    python benchmarks/ols_baseline.py --split-seed 3  # another fixed split (data.split_seed=3)

Compare with ``python train.py model=mlp data=diabetes``'s test/r2 (summary.json).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.linear_model import LinearRegression
from sklearn.metrics import mean_squared_error, r2_score

from mlzoo.data.sklearn import DiabetesDataModule


def ols_scores(split_seed: int = 0) -> dict[str, float]:
    """Test R^2 and RMSE (original units) of OLS fitted on train, and on train + val."""
    dm = DiabetesDataModule(split_seed=split_seed)
    dm.setup()
    mean, std = dm.info["target_mean"], dm.info["target_std"]
    train, val, test = (dm.splits[k] for k in ("train", "val", "test"))
    y_test = test.y.numpy() * std + mean
    scores = {}
    for name, rows in (("train", [train]), ("train+val", [train, val])):
        x = np.concatenate([r.x.numpy() for r in rows])
        y = np.concatenate([r.y.numpy() for r in rows]) * std + mean
        pred = LinearRegression().fit(x, y).predict(test.x.numpy())
        scores[f"ols[{name}]/test_r2"] = float(r2_score(y_test, pred))
        scores[f"ols[{name}]/test_rmse"] = float(mean_squared_error(y_test, pred) ** 0.5)
    return scores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--split-seed", type=int, default=0, help="data.split_seed of the runs")
    args = parser.parse_args()
    print(json.dumps(ols_scores(args.split_seed), indent=2))


if __name__ == "__main__":
    main()
