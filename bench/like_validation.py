"""Which like model, on validation only: the 3-RBM binary ensemble, each of its members, and
the two-way softmax RBM, scored on the per-user validation holdout carved from the training
file (never the test file), as ``rbm-reco train`` carves it.

    .venv/bin/python -m bench.like_validation [--split u1] [--seeds 0,1,2]

Each model is the selected one (``refit = false``: the refit would train on the holdout); the
two-way parts' item states are recomputed from the fit part alone before scoring, since the
trainer's last step puts the holdout into them. Prints one line per model and seed: like NLL,
like error, AUC (and RMSE for softmax).
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from bench.protocol import DATA_100K, load_splits, train_rbm, validation_numbers
from rbmcore.data.splits import split_holdout
from rbmcore.training.config import TrainConfig

SHOWN = ("like_nll", "like_error", "auc", "rmse")


def shown_numbers(model: torch.nn.Module, fit, held) -> dict[str, float]:
    """``validation_numbers`` (item states from the fit part only), the like ones, rounded."""
    return {k: round(v, 4) for k, v in validation_numbers(model, fit, held).items() if k in SHOWN}


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.like_validation", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--split", default="u1", choices=["u1", "random"])
    parser.add_argument("--seeds", default="0,1,2")
    args = parser.parse_args()
    torch.set_num_threads(1)
    split = load_splits([args.split], DATA_100K)[0]
    for seed in [int(s) for s in args.seeds.split(",")]:
        fit, held = split_holdout(split.train, 0.1, np.random.default_rng(seed))
        for kind in ("binary", "softmax"):
            model, *_ = train_rbm(split.train, TrainConfig(kind=kind, seed=seed, refit=False))
            name = f"{kind} x{getattr(model, 'n_models', 1)}"
            print(args.split, seed, name, shown_numbers(model, fit, held), flush=True)
            for m, member in enumerate(getattr(model, "members", [])):
                print(f"    member {m + 1}", shown_numbers(member, fit, held), flush=True)


if __name__ == "__main__":
    main()
