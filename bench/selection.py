"""Which default, on validation only: every machine, and their combinations, scored on the
per-user validation holdout carved from a training part (as ``rbm-reco train`` carves it;
the test parts are never read).

    .venv/bin/python -m bench.selection [--splits u1] [--seeds 3] [--no-write]

Every machine (``MACHINES``: each kind's defaults) is trained once per seed on the fit part,
as selected on validation (``refit = false``: the refit would train on the holdout). The
combinations are then put together from the trained machines and their weights chosen on the
same holdout: a blend of two like machines (or two ranking machines) with its weight from
0, 0.1, ..., 1 (``BlendModel``, ``choose_weight``), a hybrid of a ranking and a like answer
with its alpha (``alpha_grid_quality``), as their trainers would choose them. A combination's
number is thus chosen on the numbers it reports (as a composite kind's own choices are); a
machine's early stopping is too. Writes the ``## Choosing the default`` section of
BENCHMARKS.md: mean and standard deviation over the seeds.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from bench.machine import cpu_model, nproc
from bench.protocol import (
    DATA_1M,
    DATA_100K,
    REPO,
    SPLITS,
    load_splits,
    train_rbm,
    validation_carve,
    validation_numbers,
    write_section,
)
from rbmcore.baselines.dbm import dbm_config, fit_dbm
from rbmcore.models.blend import BlendModel
from rbmcore.models.hybrid import HybridRBM
from rbmcore.training.config import TrainConfig
from rbmcore.training.selection import ALPHA_GRID, alpha_grid_quality, blend_metric, choose_weight

CPU = torch.device("cpu")
# name -> the [train] settings of a machine (each kind's defaults unless given)
MACHINES: dict[str, dict] = {
    "rated": {"kind": "rated"},
    "multvae": {"kind": "multvae"},
    "binary": {"kind": "binary"},
    "softmax": {"kind": "softmax"},
    "autorec": {"kind": "autorec"},
    "rated (1 RBM, user-based)": {"kind": "rated", "n_models": 1, "item_based": False},
    "rated DBN (dbn's ranking part)": {
        "kind": "rated", "n_models": 1, "item_based": False, "layers": [100],
    },  # fmt: skip
    "binary (1 RBM, user-based)": {"kind": "binary", "n_models": 1, "item_based": False},
    "binary DBN (dbn's like part)": {
        "kind": "binary", "n_models": 1, "item_based": False, "layers": [50],
    },  # fmt: skip
}
RANKING = ("rated", "multvae", "rated (1 RBM, user-based)", "rated DBN (dbn's ranking part)")
LIKE = ("binary", "softmax", "autorec", "binary (1 RBM, user-based)",
        "binary DBN (dbn's like part)")  # fmt: skip
DBM = "DBM (from the rated DBN)"
HYBRID_RANKING = ("rated", "multvae", "rated+multvae")
HYBRID_LIKE = ("binary", "softmax", "autorec", "binary+autorec", "softmax+autorec")
SHOWN = (("ndcg", "val nDCG@10"), ("like_nll", "val like NLL"), ("like_error", "val like err"),
         ("auc", "val AUC"), ("rmse", "val RMSE"))  # fmt: skip
SECTION = "## Choosing the default"
SECTION_END = "<!-- end of the default's choice -->"


def trained_machines(train, seed: int) -> tuple[dict, tuple]:
    """{machine name: selected model} of every ``MACHINES`` entry and the DBM, trained on the
    fit part of ``train``'s carve with ``seed``; and the carve (fit part, held)."""
    models = {}
    for name, settings in MACHINES.items():
        start = time.perf_counter()
        models[name] = train_rbm(train, TrainConfig(**settings, seed=seed, refit=False))[0]
        log(f"  {name}: {time.perf_counter() - start:.0f} s")
    config = dbm_config(seed)
    fit_part, validation, batches = validation_carve(train, config)
    net = models["rated DBN (dbn's ranking part)"]
    models[DBM] = fit_dbm(net, fit_part, batches, validation, config)[0]
    return models, validation


def blend(models: dict, name: str, fit_part, held) -> BlendModel:
    """The blend ``first+second`` of two trained machines, its weight chosen on validation."""
    first, second = name.split("+")
    model = BlendModel(models[first], models[second])
    validation_numbers(model, fit_part, held)  # two-way item states from the fit part
    choose_weight(model, fit_part, held, CPU, metric=blend_metric(model))
    return model


def combination_numbers(models: dict, fit_part, held) -> dict[str, dict[str, float]]:
    """{row: validation numbers} of every machine, blend and hybrid."""
    rows = {name: validation_numbers(models[name], fit_part, held) for name in (*RANKING, *LIKE)}
    rows[DBM] = validation_numbers(models[DBM], fit_part, held)
    parts = dict(models)
    for name in ("rated+multvae", "binary+autorec", "softmax+autorec"):
        parts[name] = blend(models, name, fit_part, held)
        rows[f"{name} (weight {float(parts[name].weight):g})"] = validation_numbers(
            parts[name], fit_part, held
        )
    for rated, like in itertools.product(HYBRID_RANKING, HYBRID_LIKE):
        hybrid = HybridRBM(parts[rated], parts[like])
        quality = alpha_grid_quality(hybrid, fit_part, held, CPU, ALPHA_GRID)
        alpha = max(ALPHA_GRID, key=lambda a: (quality[a], -a))
        hybrid.alpha.fill_(alpha)
        numbers = validation_numbers(parts[like], fit_part, held)
        numbers["ndcg"] = quality[alpha]
        rows[f"hybrid: {rated} x {like} (alpha {alpha:g})"] = numbers
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    seeds = [TrainConfig().seed + i for i in range(args.seeds)]
    command = "python -m bench.selection " + " ".join(argv if argv is not None else sys.argv[1:])
    began = time.perf_counter()
    tables = {}
    for split in load_splits(args.splits.split(","), Path(args.data), Path(args.data_1m)):
        runs: dict[str, list[dict[str, float]]] = {}
        for seed in seeds:
            log(f"{split.name}, seed {seed}")
            models, (fit_part, held) = trained_machines(split.train, seed)
            for row, numbers in combination_numbers(models, fit_part, held).items():
                log(f"  {row}: " + ", ".join(f"{k} {v:.4f}" for k, v in numbers.items()))
                runs.setdefault(strip_choice(row), []).append(numbers)
        tables[split.name] = runs
    section = markdown(tables, seeds, command, (time.perf_counter() - began) / 60)
    print(section)
    if not args.no_write:
        write_section(Path(args.output), section, SECTION, SECTION_END)
    return 0


def strip_choice(row: str) -> str:
    """The row's name without the seed's own choice (weight, alpha), which the notes keep."""
    return row.split(" (weight")[0].split(" (alpha")[0]


def markdown(tables: dict, seeds: list[int], command: str, minutes: float) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/{command}`  ",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {cpu_model()}, "
        f"`nproc` {nproc()}, torch {torch.__version__}; total {minutes:.1f} min.  ",
        f"Seeds {seeds}: mean ± standard deviation over seeds (validation carve, "
        "initialisation, sampling, batch order). Validation only: a per-user 10% holdout of "
        "the training part; the test part is not read. Machines as selected on it (no refit); "
        "blend weights and alphas chosen on it. nDCG@10 for what ranks, like NLL / error / AUC "
        "(and RMSE) for what predicts likes; a hybrid row's like numbers are its like part's.",
        "",
    ]
    for split, runs in tables.items():
        lines += [f"### {split}", "", "| model | " + " | ".join(t for _, t in SHOWN) + " |"]
        lines.append("|---" * (len(SHOWN) + 1) + "|")
        for row, numbers in runs.items():
            cells = [cell([n[key] for n in numbers if key in n]) for key, _ in SHOWN]
            lines.append(f"| {row} | " + " | ".join(cells) + " |")
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def cell(values: list[float]) -> str:
    if not values:
        return ""
    mean = f"{np.mean(values):.4f}"
    return f"{mean} ± {np.std(values):.4f}" if len(values) > 1 else mean


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.selection", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--splits", default="u1", help=f"comma list of {', '.join(SPLITS)}")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 42, 43, ...")
    parser.add_argument("--data", default=str(DATA_100K))
    parser.add_argument("--data-1m", default=str(DATA_1M))
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the tables only")
    parser.add_argument("--threads", type=int, default=1, help="torch threads")
    return parser.parse_args(argv)


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
