"""Real ratings at ml-1m size: the genuine MovieLens-1M ratings of ml-1m-dev (1,499 users).

    .venv/bin/python -m bench.ml1m_dev choose --rated '{"estimator": "cd"}' --rated '{}'
    .venv/bin/python -m bench.ml1m_dev compare [--seeds 1]

Two splits of ``../shared/data/ml-1m-dev/ratings.dat``, made here: ``random`` (a per-user
random 80/20, ``rbmcore.data.splits.split_holdout``, seed 0) and ``temporal`` (each user's
last 20% of ratings by timestamp, the question a nightly export faces).

``choose`` never reads the test part: on each split's training part it carves the per-user
10% validation holdout ``rbm-reco train`` carves and trains the default's rated part (its
user-based and item-based RBMs, early-stopped, no refit) once per ``--rated`` table of
``[train]`` overrides, printing the validation nDCG@10 each way reaches (the number early
stopping and the two-way weight are chosen on) and its training seconds: how settings of the
rated training are chosen on validation. ``--also u1`` adds MovieLens 100k's u1.base.

``compare`` evaluates on the test part, as ``bench.quality`` does (same evaluator, same
protocol): the default hybrid (validation carve, early stopping, refit) against Spark ALS
implicit tuned on the same validation carve (``bench.quality.tune_als``), nDCG@10 and P@10
with the rest of the metrics, and writes the ``## Real data at ml-1m size`` section of
BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.machine import cpu_model
from bench.protocol import Split, load_splits, make_split, to_df, train_rbm, write_section
from bench.quality import K, Result, evaluate, local_spark, log, run_als, tune_als
from rbmcore.data.csr import csr_from_pairs
from rbmcore.data.splits import split_holdout
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "ml-1m-dev" / "ratings.dat"
ML100K = REPO.parent / "shared" / "data" / "ml-100k"
TEST_FRACTION = 0.2
SECTION = "## Real data at ml-1m size"
SECTION_END = "<!-- end of real data section -->"


def read_ratings(path: Path = DATA) -> pd.DataFrame:
    """``UserID::MovieID::Rating::Timestamp`` as columns u, m, r, t."""
    return pd.read_csv(path, sep="::", engine="python", names=["u", "m", "r", "t"])


def random_split(ratings: pd.DataFrame) -> Split:
    """A per-user random 80/20 (``split_holdout``, seed 0)."""
    csr = csr_from_pairs(ratings.u.to_numpy(), ratings.m.to_numpy(), ratings.r.to_numpy(),
                         int(ratings.m.max()) + 1)  # fmt: skip
    keep, held = split_holdout(csr, TEST_FRACTION, np.random.default_rng(0))
    return make_split("random 80/20 (seed 0)", to_df(keep), to_df(held))


def temporal_split(ratings: pd.DataFrame) -> Split:
    """Each user's last 20% of ratings by timestamp (ties by movie id) as the test; every
    user keeps at least one training rating."""
    ordered = ratings.sort_values(["u", "t", "m"], kind="stable")
    position = ordered.groupby("u").cumcount()
    count = ordered.groupby("u").u.transform("size")
    n_test = np.minimum(np.floor(count * TEST_FRACTION), count - 1)
    test = position >= count - n_test
    return make_split("temporal, last 20%", ordered[~test], ordered[test])


def splits(names: list[str]) -> list[Split]:
    ratings = read_ratings()
    made = {"random": random_split, "temporal": temporal_split}
    return [made[name](ratings) for name in names]


# -- choose: settings of the rated training on validation --------------------------------------


def validation_of(train, overrides: dict, seed: int) -> dict:
    """The default's rated part trained on ``train``'s validation carve with ``overrides``
    (no refit): per way, the best validation nDCG@10, its epoch, the epochs run, seconds."""
    config = TrainConfig(kind="rated", seed=seed, refit=False, **overrides)
    _, selection, _ = train_rbm(train, config)
    ways: dict[str, list[dict]] = {}
    for record in selection.history:
        ways.setdefault(record.get("way", "user"), []).append(record)
    out = {}
    for way, records in ways.items():
        best = max(records, key=lambda r: r["val"]["ndcg"])
        out[way] = {
            "val_ndcg": round(best["val"]["ndcg"], 4),
            "best_epoch": best["epoch"],
            "epochs": len(records),
            "seconds": round(sum(r["seconds"] for r in records), 1),
        }
    searches = selection.validation_choices().get("weight_search", {})
    if searches:
        out["two-way"] = {"val_ndcg": round(max(searches.values()), 4),
                          "weight": max(searches, key=searches.get)}  # fmt: skip
    return out


def choose(args: argparse.Namespace) -> None:
    chosen = [json.loads(text) for text in args.rated] or [{}]
    trains = [(s.name, s.train) for s in splits(args.splits.split(","))]
    if args.also_u1:
        trains.insert(0, ("u1.base", load_splits(["u1"], ML100K)[0].train))
    for name, train in trains:
        for overrides in chosen:
            result = validation_of(train, overrides, args.seed)
            print(json.dumps({"train": name, "rated": overrides, "seed": args.seed, **result}),
                  flush=True)  # fmt: skip


# -- compare: the default against validation-tuned implicit ALS on the test part -----------------


def default_model(split: Split, seed: int) -> Result:
    """The default hybrid as ``rbm-reco train`` trains it, scored on the split's test users."""
    start = time.perf_counter()
    model, selection, _ = train_rbm(split.train, TrainConfig(seed=seed))
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    recs = recommend_csr(model, split.context, K)
    preds = predict_csr(model, split.context, split.test)
    alpha = selection.validation_choices().get("alpha_search", {})
    return Result(recs.user_ids, recs.items, recs.ranks, p_like=preds["p_like"],
                  train_s=train_s, score_s=time.perf_counter() - start,
                  note=f"alpha {max(alpha, key=alpha.get):g}" if alpha else "")  # fmt: skip


def compare(args: argparse.Namespace) -> None:
    began = time.perf_counter()
    spark = local_spark()
    seeds = list(range(args.seeds))
    rows: dict[str, dict[str, list]] = {}
    try:
        for split in splits(args.splits.split(",")):
            log(f"{split.name}: {len(split.train)} users, {split.train.n_items} items, "
                f"{split.train.nnz} train / {split.test.nnz} test ratings")  # fmt: skip
            params, _ = tune_als(spark, split, True, seeds[0])
            log(f"ALS implicit chosen on validation: {params}")
            table = rows.setdefault(split.name, {})
            for seed in seeds:
                for name in (ALS_ROW, DEFAULT_ROW):
                    if name == ALS_ROW:
                        result = run_als(spark, split, seed, True, params)
                    else:
                        result = default_model(split, seed)
                    measured = evaluate(split, result)
                    table.setdefault(name, []).append((measured, result.note))
                    log(f"{split.name} | {name} | seed {seed} | nDCG@10 {measured['ndcg']:.4f} "
                        f"P@10 {measured['precision']:.4f}")  # fmt: skip
    finally:
        spark.stop()
    section = render(rows, seeds, " ".join(sys.argv[1:]), (time.perf_counter() - began) / 60)
    print(section)
    if not args.no_write:
        write_section(REPO / "BENCHMARKS.md", section, SECTION, SECTION_END)


ALS_ROW = "Spark ALS implicit (validation-tuned)"
DEFAULT_ROW = "rbm-reco default (`hybrid`)"
COLUMNS = [("ndcg", "nDCG@10"), ("precision", "P@10"), ("recall", "R@10"), ("map", "MAP@10"),
           ("ndcg_ge4", "nDCG@10 ≥4"), ("train_s", "train s")]  # fmt: skip


def render(rows: dict, seeds: list[int], command: str, minutes: float) -> str:
    lines = [
        SECTION,
        "",
        f"Command: `.venv/bin/python -m bench.ml1m_dev {command}`  ",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {cpu_model()}, "
        f"{os.cpu_count()} cores, torch {torch.__version__}, Python "
        f"{platform.python_version()}; {minutes:.1f} min in all. Seeds {seeds} (mean ± "
        "standard deviation).",
        "",
        "Data: the genuine MovieLens-1M ratings of the 1,499 users in ml-1m-dev (read in place, "
        "never copied). Splits made by the bench: a per-user random 80/20 (seed 0) and each "
        "user's last 20% by timestamp. Every choice (ALS's grid, the RBMs' early stopping, the "
        "two-way weights, alpha) on a per-user 10% validation carve of the training part; the "
        "test part is only scored. Protocol and evaluator: `bench.quality` (docs/design.md, "
        '"Evaluation").',
        "",
    ]
    for split, models in rows.items():
        header = "| model | " + " | ".join(t for _, t in COLUMNS) + " | notes |"
        lines += [f"### {split}", "", header, "|---" * (len(COLUMNS) + 2) + "|"]
        for name, runs in models.items():
            cells = []
            for key, _ in COLUMNS:
                values = [m[key] for m, _ in runs]
                digits = 1 if key.endswith("_s") else 3
                spread = f" ± {np.std(values):.{digits}f}" if len(values) > 1 else ""
                cells.append(f"{np.mean(values):.{digits}f}{spread}")
            notes = "; ".join(sorted({note for _, note in runs if note}))
            lines.append(f"| {name} | " + " | ".join(cells) + f" | {notes} |")
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.ml1m_dev",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("choose", help="validation nDCG@10 of the rated part under settings")
    c.add_argument("--rated", action="append", default=[], help="JSON [train] overrides")
    c.add_argument("--splits", default="random,temporal")
    c.add_argument("--seed", type=int, default=42)
    c.add_argument("--also-u1", action="store_true", help="also MovieLens 100k's u1.base")
    m = sub.add_parser("compare", help="the default vs tuned implicit ALS on the test part")
    m.add_argument("--splits", default="random,temporal")
    m.add_argument("--seeds", type=int, default=1)
    m.add_argument("--no-write", action="store_true", help="print the table only")
    for p in (c, m):
        p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's)")
    args = parser.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    {"choose": choose, "compare": compare}[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
