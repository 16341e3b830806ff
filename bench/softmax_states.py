"""The softmax kind's states on half-star data, chosen on validation RMSE: one state per half
star (10) against the half stars merged into five states that keep the like threshold
({0.5, 1, 1.5}, {2, 2.5}, {3, 3.5}, {4, 4.5}, {5}), on the per-user validation holdout carved
from the training data as ``rbm-reco train`` carves it (never a test file).

    .venv/bin/python -m bench.softmax_states [--preset ml-100k] [--seeds 0,1]

The data: the generator's half stars (``GeneratorSpec(half_stars=True)``; MovieLens 10M and
later are not in the repository's reach). Each model is the selected one (``refit = false``),
user-based (``item_based = false``), with the softmax kind's defaults otherwise. Prints one line
per states choice and seed: validation RMSE, MAE, like NLL, AUC, the best epoch.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.protocol import train_rbm
from rbmcore.data.csr import csr_from_pairs
from rbmcore.data.scale import HALF_STARS
from rbmcore.data.splits import split_holdout
from rbmcore.data.synthetic import GeneratorSpec, generate_chunks
from rbmcore.evaluation import heldout_metrics
from rbmcore.training.config import TrainConfig

SHOWN = ("rmse", "mae", "like_nll", "auc")


def half_star_ratings(preset: str, seed: int):
    """The preset's generated half-star ratings as a CSR (items = movie id - 1)."""
    spec = GeneratorSpec.from_preset(preset, seed=seed, half_stars=True)
    users, movies, codes, _ = (np.concatenate(c) for c in zip(*generate_chunks(spec), strict=True))
    return csr_from_pairs(users, movies - 1, codes, spec.n_movies)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.softmax_states", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", default="ml-100k")
    parser.add_argument("--seeds", default="0,1")
    parser.add_argument("--epochs", type=int, default=None, help="default: the kind's")
    args = parser.parse_args()
    torch.set_num_threads(2)
    train = half_star_ratings(args.preset, 0)
    for seed in [int(s) for s in args.seeds.split(",")]:
        fit, held = split_holdout(train, 0.1, np.random.default_rng(seed))
        for states in (0, 5):
            config = TrainConfig(kind="softmax", seed=seed, refit=False, item_based=False,
                                 softmax_states=states, epochs=args.epochs)  # fmt: skip
            model, trainer, _ = train_rbm(train, config, scale=HALF_STARS)
            out = heldout_metrics(model, fit, held, torch.device("cpu"))
            shown = {k: round(v, 4) for k, v in out.items() if k in SHOWN}
            print(args.preset, seed, f"{model.n_states} states", shown,
                  f"best epoch {trainer.best_epoch}", flush=True)  # fmt: skip


if __name__ == "__main__":
    main()
