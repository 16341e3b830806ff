"""Recommendation quality, side by side, on the same splits with the same evaluator.

    python -m bench.quality [--splits u1,random] [--seeds 3] [--quick] [--data DIR]

Rows: the tutorial's RBM (``rbmcore.baselines.tutorial_rbm``, faithful), most-popular unseen
movies, Spark ALS explicit and implicit (each tuned on a validation split carved from the
training part with ``rbmcore.data.splits.split_holdout``; never on the test file), and every
rbm-reco kind with its defaults (trained in-process through ``rbmcore``, the code the Spark
train job runs; the same per-user validation carve and early stopping as ``rbm-reco train``).
Evaluator (docs/design.md, "Evaluation"): ``rbmcore.metrics`` on the same arrays for every row;
candidates are the catalogue movies (those in the training part) the user did not rate in
training.
Writes the ``## Quality`` section of BENCHMARKS.md (replaced on reruns).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import os
import platform
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from bench.machine import cpu_model, nproc
from rbmcore import metrics
from rbmcore.baselines.tutorial_rbm import (
    TutorialConfig,
    predict_like_sampled,
    recommend_top_k,
    to_dense_binary,
    train_tutorial_rbm,
)
from rbmcore.data.csr import RatingsCSR, csr_from_pairs
from rbmcore.data.scale import STARS, RatingScale
from rbmcore.data.splits import bounded_evaluation, split_holdout
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_on_all_ratings

REPO = Path(__file__).resolve().parent.parent

K = 10
CPU = torch.device("cpu")
VAL_FRACTION = 0.1  # the same per-user holdout rbm-reco train carves (TrainConfig.val_fraction)
BATCH_USERS = 100  # ingest.batch_size
USER_ONLY = "-user"  # a kind's row with the user-based RBM alone (no item-based part)
NO_REFIT = "hybrid-no-refit"  # the default hybrid as selected on validation, before its refit
ONE_RBM = "-1"  # a kind's row with n_models = 1 (no ensemble)
RBM_KINDS = (
    "hybrid", NO_REFIT, "rated", "rated-user", "binary", "binary-user", "binary-1", "softmax",
    "softmax-user",
)  # fmt: skip
IMPLICIT_GRID = {"rank": (10, 20, 50), "regParam": (0.1, 1.0), "alpha": (1.0, 10.0)}
EXPLICIT_GRID = {"rank": (10, 20), "regParam": (0.05, 0.1, 0.15)}
TUTORIAL_ROW = "tutorial RBM (rbmcore.baselines.tutorial_rbm)"
SECTION = "## Quality"
SECTION_END = "<!-- end of quality section -->"


# -- data ----------------------------------------------------------------------------------
@dataclass
class Split:
    """A train/test split in dense indices: train CSR (all train users), test CSR (test users,
    their catalogue items only) and the test users' train rows (the context)."""

    name: str
    train: RatingsCSR
    test: RatingsCSR
    context: RatingsCSR


def read_tab(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, sep="\t", header=None, names=["u", "m", "r", "t"])


def make_split(name: str, train_df: pd.DataFrame, test_df: pd.DataFrame) -> Split:
    movies = np.sort(train_df.m.unique())
    index = pd.Series(np.arange(len(movies)), index=movies)
    test_df = test_df[test_df.m.isin(movies) & test_df.u.isin(train_df.u.unique())]
    n = len(movies)
    train = csr_from_pairs(
        train_df.u.to_numpy(), index[train_df.m].to_numpy(), train_df.r.to_numpy(), n
    )
    test = csr_from_pairs(
        test_df.u.to_numpy(), index[test_df.m].to_numpy(), test_df.r.to_numpy(), n
    )
    context = train.take(np.searchsorted(train.user_ids, test.user_ids))
    return Split(name, train, test, context)


def load_splits(data: Path, names: list[str]) -> list[Split]:
    """``u1``: the MovieLens u1.base/u1.test files; ``random``: a per-user random 80/20 split of
    u.data (``split_holdout``, seed 0)."""
    out = []
    for name in names:
        if name == "u1":
            out.append(make_split("u1", read_tab(data / "u1.base"), read_tab(data / "u1.test")))
        elif name == "random":
            full = read_tab(data / "u.data")
            users = full.u.to_numpy()
            csr = csr_from_pairs(users, full.m.to_numpy(), full.r.to_numpy(), int(full.m.max()) + 1)
            keep, held = split_holdout(csr, 0.2, np.random.default_rng(0))
            out.append(make_split("random 80/20 (u.data, seed 0)", to_df(keep), to_df(held)))
        else:
            raise SystemExit(f"unknown split {name!r} (u1, random)")
    return out


def to_df(csr: RatingsCSR) -> pd.DataFrame:
    return pd.DataFrame(
        {"u": np.repeat(csr.user_ids, csr.row_lengths()), "m": csr.items, "r": csr.ratings}
    )


# -- the evaluator -------------------------------------------------------------------------
@dataclass
class Result:
    """One model's output on a split: top-K recs and per-test-pair predictions."""

    rec_users: np.ndarray
    rec_items: np.ndarray
    rec_ranks: np.ndarray
    p_like: np.ndarray | None = None  # aligned with the test CSR's entries
    pred_rating: np.ndarray | None = None
    train_s: float = 0.0
    score_s: float = 0.0
    note: str = ""


def evaluate(split: Split, res: Result) -> dict[str, float]:
    """The metrics of docs/design.md ("Evaluation") of ``res`` against ``split.test``."""
    test = split.test
    users = np.repeat(test.user_ids, test.row_lengths())
    out: dict[str, float] = {}
    for suffix, sel in (("", np.ones(test.nnz, bool)), ("_ge4", test.ratings >= 4)):
        m = metrics.ranking_metrics(
            res.rec_users, res.rec_items, res.rec_ranks, users[sel], test.items[sel], K
        )
        for name in ("precision", "recall", "ndcg", "map"):
            out[name + suffix] = m[name]
    out.update(metrics.like_and_rating_metrics(users, test.ratings, res.p_like, res.pred_rating))
    out["train_s"] = res.train_s
    out["score_s"] = res.score_s
    return out


def top_k_dense(scores: np.ndarray, seen: RatingsCSR, user_ids: np.ndarray) -> tuple:
    """Top-K unseen items from a dense (users, items) score matrix (rows = ``seen``'s rows)."""
    scores = scores.astype(np.float64, copy=True)
    scores[seen.row_of_entries(), seen.items] = -np.inf
    top = np.argsort(-scores, axis=1, kind="stable")[:, :K]
    return np.repeat(user_ids, K), top.ravel(), np.tile(np.arange(1, K + 1), len(user_ids))


# -- baselines -----------------------------------------------------------------------------
def run_popularity(split: Split, seed: int) -> Result:
    start = time.perf_counter()
    counts = np.bincount(split.train.items, minlength=split.train.n_items).astype(np.float64)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    scores = np.broadcast_to(counts, (len(split.context), len(counts)))
    u, i, r = top_k_dense(scores, split.context, split.context.user_ids)
    return Result(u, i, r, train_s=train_s, score_s=time.perf_counter() - start)


def run_tutorial(split: Split, seed: int) -> Result:
    """The tutorial's RBM as published (nh=200, batch 100, 10 epochs, CD-10, -1 for missing,
    sampled prediction); ranking by its mean-field reconstruction."""
    train = split.train
    n_users = len(train)
    rows = np.searchsorted(train.user_ids, split.test.user_ids)
    dense = to_dense_binary(
        train.row_of_entries(), train.items, train.ratings, n_users, train.n_items
    )
    start = time.perf_counter()
    model = train_tutorial_rbm(dense, TutorialConfig(seed=seed), log_every=0)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    top = recommend_top_k(model, dense[torch.as_tensor(rows)], K)
    test_rows = rows[split.test.row_of_entries()]
    gen = torch.Generator().manual_seed(seed + 1)
    p_like = predict_like_sampled(model, dense, test_rows, split.test.items, gen)
    users = np.repeat(split.test.user_ids, K)
    ranks = np.tile(np.arange(1, K + 1), len(rows))
    keep = top.ravel() >= 0
    return Result(
        users[keep],
        top.ravel()[keep],
        ranks[keep],
        p_like=p_like.astype(np.float64),
        train_s=train_s,
        score_s=time.perf_counter() - start,
        note="sampled 0/1 like prediction; ranking by mean-field p(v=1)",
    )


# -- Spark ALS ----------------------------------------------------------------------------
def ratings_frame(spark, csr: RatingsCSR):
    pdf = pd.DataFrame(
        {
            "user": np.repeat(csr.user_ids, csr.row_lengths()).astype(np.int32),
            "item": csr.items.astype(np.int32),
            "rating": csr.ratings.astype(np.float32),
        }
    )
    return spark.createDataFrame(pdf)


def fit_als(spark, train: RatingsCSR, seed: int, implicit: bool, **params):
    """A fitted ALS model and its factors as dense numpy arrays indexed by user id / item."""
    from pyspark.ml.recommendation import ALS

    als = ALS(
        userCol="user",
        itemCol="item",
        ratingCol="rating",
        implicitPrefs=implicit,
        coldStartStrategy="drop",
        seed=seed,
        maxIter=15,
        **params,
    )
    model = als.fit(ratings_frame(spark, train))
    uf = model.userFactors.toPandas()
    itf = model.itemFactors.toPandas()
    rank = int(params["rank"])
    users = np.zeros((int(train.user_ids.max()) + 1, rank))
    users[uf["id"].to_numpy()] = np.stack(uf["features"].to_numpy())
    items = np.zeros((train.n_items, rank))
    items[itf["id"].to_numpy()] = np.stack(itf["features"].to_numpy())
    return users, items


def als_scores(users: np.ndarray, items: np.ndarray, user_ids: np.ndarray) -> np.ndarray:
    return users[user_ids] @ items.T


def ranking_of(scores, context: RatingsCSR, target: RatingsCSR) -> float:
    u, i, r = top_k_dense(scores, context, context.user_ids)
    rel = np.repeat(target.user_ids, target.row_lengths())
    return metrics.ranking_metrics(u, i, r, rel, target.items, K)["ndcg"]


def tune_als(spark, split: Split, implicit: bool, seed: int) -> tuple[dict, dict]:
    """Grid search on the validation carve of the training part: nDCG@10 (implicit) or RMSE
    (explicit) of the held-out ratings. Returns (best params, {params: value})."""
    fit_part, held = split_holdout(split.train, VAL_FRACTION, np.random.default_rng(seed))
    has_val = held.row_lengths() > 0
    ctx, target = fit_part.take(np.flatnonzero(has_val)), held.take(np.flatnonzero(has_val))
    grid = IMPLICIT_GRID if implicit else EXPLICIT_GRID
    scores = {}
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        users, items = fit_als(spark, fit_part, seed, implicit, **params)
        if implicit:
            scores[values] = -ranking_of(als_scores(users, items, ctx.user_ids), ctx, target)
        else:
            pred = pair_predictions(users, items, target)
            scores[values] = metrics.rmse(target.ratings, pred)
    best = min(scores, key=scores.get)
    return dict(zip(grid, best, strict=True)), scores


def pair_predictions(users: np.ndarray, items: np.ndarray, pairs: RatingsCSR) -> np.ndarray:
    u = np.repeat(pairs.user_ids, pairs.row_lengths())
    return np.einsum("nr,nr->n", users[u], items[pairs.items])


def run_als(spark, split: Split, seed: int, implicit: bool, params: dict) -> Result:
    start = time.perf_counter()
    users, items = fit_als(spark, split.train, seed, implicit, **params)
    train_s = time.perf_counter() - start
    start = time.perf_counter()
    u, i, r = top_k_dense(
        als_scores(users, items, split.context.user_ids), split.context, split.context.user_ids
    )
    res = Result(u, i, r, train_s=train_s)
    if not implicit:
        pred = np.clip(pair_predictions(users, items, split.test), 1, 5)
        res.pred_rating = pred
        # like = predicted rating >= 2.5; a monotone map keeps the AUC of the rating itself
        res.p_like = 1 / (1 + np.exp(-(pred - 2.5)))
    res.score_s = time.perf_counter() - start
    res.note = ", ".join(f"{k} {v:g}" for k, v in params.items())
    return res


# -- rbm-reco kinds -----------------------------------------------------------------------
def train_rbm(
    train: RatingsCSR, config: TrainConfig, device: torch.device = CPU, scale: RatingScale = STARS
):
    """What ``rbm-reco train`` does, in process: per-user validation carve (evaluated on at
    most ``DEFAULT_EVAL_USERS`` users, the first batches', as the job does), shuffled batches
    of 100 users, the kind's trainer with early stopping, then (``config.refit``) the
    retraining on all of ``train``, on ``device``; ``scale``: the ratings' (codes of it);
    returns (final model, selection trainer, refit trainer or None)."""
    fit_part, held = split_holdout(train, config.val_fraction, np.random.default_rng(config.seed))
    order = np.random.default_rng(config.seed).permutation(len(fit_part))
    batches = [order[s : s + BATCH_USERS] for s in range(0, len(order), BATCH_USERS)]
    fit_part, validation, _ = bounded_evaluation(fit_part, batches, (fit_part, held), None)
    generator = torch.Generator().manual_seed(config.seed)
    model = model_for_config(config, train.n_items, generator, len(fit_part), scale)
    model.init_visible_biases(fit_part)
    trainer = trainer_for(model, config, device)
    trainer.fit(fit_part, batches, validation)
    if not config.refit:
        return trainer.model, trainer, None
    refit = refit_on_all_ratings(trainer, train, batches)
    return refit.model, trainer, refit


def history_seconds(trainers: tuple, **tags: str) -> float:
    """Seconds of the epochs of ``trainers`` (None skipped) whose records carry ``tags``."""
    return sum(
        r["seconds"]
        for t in trainers
        if t is not None
        for r in t.history
        if all(r.get(k) == v for k, v in tags.items())
    )


_HYBRIDS: dict[tuple[str, int], tuple] = {}  # (split, seed) -> (model, trainers, seconds)
_TRAINED: dict[tuple, tuple] = {}  # (split, seed, kind, n_models) -> (model, trainers, seconds)


def trained_hybrid(split: Split, seed: int) -> tuple:
    """The default hybrid of (split, seed), trained once; its parts are the ``rated`` and
    ``like_kind`` rows (each part is trained with exactly that kind's defaults)."""
    key = (split.name, seed)
    if key not in _HYBRIDS:
        start = time.perf_counter()
        model, *trainers = train_rbm(split.train, TrainConfig(kind="hybrid", seed=seed))
        _HYBRIDS[key] = (model, tuple(trainers), time.perf_counter() - start)
    return _HYBRIDS[key]


def user_based_predictions(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose two-way parts (an ensemble's too) predict with their
    user-based RBM alone (weight 1)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, TwoWayRBM):
            module.weight.fill_(1.0)
    return model


def run_rbm(split: Split, seed: int, kind: str) -> Result:
    """One rbm-reco kind with its defaults. ``rated`` and the hybrid's ``like_kind`` are the
    default hybrid's parts (identical configs to training those kinds alone), timed by their
    epochs; ``-user`` rows are a two-way model's user-based RBMs alone, ``-1`` rows the kind
    with ``n_models = 1``."""
    note = ""
    base_kind = kind.removesuffix(USER_ONLY)
    like_kind = TrainConfig().like_kind
    if base_kind in ("rated", like_kind):
        hybrid, trainers, _ = trained_hybrid(split, seed)
        part = "rated" if base_kind == "rated" else "like"
        model = getattr(hybrid, part)
        train_s = history_seconds(trainers, part=part)
        note = "the default hybrid's part; train s = its epochs"
        if kind.endswith(USER_ONLY):
            model = user_based_predictions(model)
            train_s = history_seconds(trainers, part=part, way="user")
            note = "the default hybrid's part without its item-based RBMs; train s = their epochs"
    elif kind == "hybrid":
        model, _, train_s = trained_hybrid(split, seed)
        note = f"alpha {float(model.alpha):g}"
    elif kind == NO_REFIT:
        _, trainers, _ = trained_hybrid(split, seed)
        model = trainers[0].model
        train_s = history_seconds(trainers[:1])
        note = "the default hybrid's selected model (train.refit = false); train s = its epochs"
    else:
        one = kind.endswith(ONE_RBM)
        config = TrainConfig(kind=base_kind.removesuffix(ONE_RBM), seed=seed)
        if one:
            config = replace(config, n_models=1)
            note = "one RBM (n_models = 1)"
        key = (split.name, seed, config.kind, config.n_models)
        if key not in _TRAINED:
            start = time.perf_counter()
            trained, selection, refit = train_rbm(split.train, config)
            _TRAINED[key] = (trained, (selection, refit), time.perf_counter() - start)
        model, trainers, train_s = _TRAINED[key]
        if kind.endswith(USER_ONLY):
            model = user_based_predictions(model)
            train_s = history_seconds(trainers, way="user")
            note = "without its item-based RBM; train s = its epochs"
    start = time.perf_counter()
    recs = recommend_csr(model, split.context, K)
    preds = predict_csr(model, split.context, split.test)
    if base_kind == "rated":
        note = (note + "; " if note else "") + "no like model"
    return Result(
        recs.user_ids,
        recs.items,
        recs.ranks,
        p_like=None if base_kind == "rated" else preds["p_like"],
        pred_rating=preds.get("pred_rating"),
        train_s=train_s,
        score_s=time.perf_counter() - start,
        note=note,
    )


def make_runners(
    spark, split: Split, implicit: dict, explicit: dict, kinds: list[str]
) -> list[tuple[str, Callable[[int], Result]]]:
    """(row name, seed -> Result) for every model of the table."""
    runners: list[tuple[str, Callable[[int], Result]]] = [
        (TUTORIAL_ROW, lambda s: run_tutorial(split, s)),
        ("most popular unseen", lambda s: run_popularity(split, s)),
        ("Spark ALS explicit (tuned)", lambda s: run_als(spark, split, s, False, explicit)),
        ("Spark ALS implicit (tuned)", lambda s: run_als(spark, split, s, True, implicit)),
    ]
    for kind in kinds:
        runners.append((f"rbm-reco `{kind}`", lambda s, k=kind: run_rbm(split, s, k)))
    return runners


# -- the table -----------------------------------------------------------------------------
COLUMNS = [
    ("precision", "P@10"),
    ("recall", "R@10"),
    ("ndcg", "nDCG@10"),
    ("map", "MAP@10"),
    ("precision_ge4", "P@10 ≥4"),
    ("recall_ge4", "R@10 ≥4"),
    ("ndcg_ge4", "nDCG@10 ≥4"),
    ("map_ge4", "MAP@10 ≥4"),
    ("like_error", "like err"),
    ("auc", "AUC"),
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("train_s", "train s"),
    ("score_s", "score s"),
]


@dataclass
class Row:
    name: str
    runs: list[dict[str, float]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def cell(self, key: str) -> str:
        values = [r[key] for r in self.runs if key in r and np.isfinite(r[key])]
        if not values:
            return ""
        digits = 1 if key.endswith("_s") else 3
        mean = f"{np.mean(values):.{digits}f}"
        if len(values) > 1:
            return f"{mean} ± {np.std(values):.{digits}f}"
        return mean


def markdown(
    rows_by_split: dict[str, list[Row]], seeds: list[int], command: str, minutes: float
) -> str:
    cpu = cpu_model()
    lines = [
        SECTION,
        "",
        f"Command: `{command}`  ",
        f"Date: {datetime.now(UTC).isoformat(timespec='seconds')}; machine: {cpu}, "
        f"{os.cpu_count()} cores (`nproc` {nproc()}), torch {torch.__version__} CPU, "
        f"{platform.python_version()}; total {minutes:.1f} min.  ",
        f"Seeds {seeds}: mean ± standard deviation over seeds (model initialisation, sampling, "
        "validation carve and batch order; the test split is fixed).",
        "",
        'Protocol: docs/design.md "Evaluation" (top-10 unseen catalogue movies; relevant = any '
        "test rating, and ≥4 = rating ≥ 4; like = rating ≥ 3, like error = per-user mean error of "
        "p_like ≥ 0.5; AUC of p_like; RMSE/MAE of predicted ratings). Every choice (ALS grids, "
        "RBM early stopping, the two-way blend weights, the hybrid's alpha) uses a per-user "
        f"{VAL_FRACTION:.0%} validation "
        "holdout carved from the training part with `rbmcore.data.splits.split_holdout`; the test "
        "files are only scored. rbm-reco rows train in-process with `rbmcore` (the code `rbm-reco "
        "train` runs: same carve, batches of 100 users, same trainers), with each kind's "
        "defaults; `binary`, `softmax` and `rated` are two-way (user-based + item-based RBM; "
        "`rated`'s is on by size at MovieLens 100k), the `-user` rows are their user-based RBM "
        "alone; `binary` is an ensemble of 3 two-way RBMs (`n_models`), `binary-1` one of them "
        "(`n_models = 1`). After the validation choices every rbm-reco model is retrained on "
        "the whole training part for its chosen epochs (the refit, `train.refit` default), as "
        "ALS is refitted with its chosen grid point; `hybrid-no-refit` is the default hybrid as "
        "selected, before its refit. ALS: Spark `pyspark.ml.recommendation.ALS`, "
        "maxIter 15, tuned on the "
        f"validation carve of the first seed: implicit grid {IMPLICIT_GRID} by nDCG@10, "
        f"explicit grid {EXPLICIT_GRID} by RMSE; explicit ALS ranks by predicted rating and "
        "predicts like = predicted rating ≥ 2.5.",
        "",
    ]
    for split, rows in rows_by_split.items():
        lines += [f"### {split}", ""]
        lines.append("| model | " + " | ".join(title for _, title in COLUMNS) + " | notes |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        for row in rows:
            notes = "; ".join(sorted(set(n for n in row.notes if n)))
            cells = " | ".join(row.cell(key) for key, _ in COLUMNS)
            lines.append(f"| {row.name} | {cells} | {notes} |")
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


def write_section(path: Path, section: str) -> None:
    """Replace (or append) the ``## Quality`` section of BENCHMARKS.md."""
    text = path.read_text() if path.exists() else "# Benchmarks\n\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        tail = rest.split(SECTION_END, 1)[1].lstrip("\n") if SECTION_END in rest else ""
        text = head + section + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text)


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Every model on every split, the table printed and (unless ``--no-write``) written."""
    args = parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    names = ["u1"] if args.quick else args.splits.split(",")
    seeds = list(range(1 if args.quick else args.seeds))
    kinds = [k for k in args.kinds.split(",") if k]
    command = "python -m bench.quality " + " ".join(argv if argv is not None else sys.argv[1:])
    began = time.perf_counter()
    spark = local_spark()
    rows_by_split: dict[str, list[Row]] = {}

    def write_partial() -> None:
        if not args.no_write:  # partial tables survive an interrupted run
            minutes = (time.perf_counter() - began) / 60
            partial = markdown(rows_by_split, seeds, command + "  (in progress)", minutes)
            write_section(Path(args.output), partial)

    for split in load_splits(Path(args.data), names):
        runners = tuned_runners(spark, split, kinds, seeds[0])
        rows = rows_by_split.setdefault(split.name, [])
        for name, runner in runners:
            row = Row(name)
            rows.append(row)
            row_seeds = seeds_of_row(row, seeds, args.tutorial_rbm_seeds)
            run_seeds(split, row, runner, row_seeds, write_partial)
    minutes = (time.perf_counter() - began) / 60
    section = markdown(rows_by_split, seeds, command, minutes)
    print(section)
    if not args.no_write:
        write_section(Path(args.output), section)
    spark.stop()
    return 0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--splits", default="u1,random", help="comma list of u1, random")
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model")
    parser.add_argument("--quick", action="store_true", help="one seed, u1 only")
    parser.add_argument(
        "--tutorial-rbm-seeds",
        type=int,
        default=None,
        help="seeds for the (slow) tutorial RBM row",
    )
    parser.add_argument("--kinds", default=",".join(RBM_KINDS), help="rbm-reco kinds to run")
    parser.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "ml-100k"))
    parser.add_argument("--output", default=str(REPO / "BENCHMARKS.md"))
    parser.add_argument("--no-write", action="store_true", help="print the table only")
    parser.add_argument(
        "--threads", type=int, default=0, help="torch threads (0 = torch's default)"
    )
    return parser.parse_args(argv)


def local_spark():
    """The local[2] session ALS runs in (the packaged local config, 4 shuffle partitions, no UI)."""
    from jobs.common.config import load_conf
    from jobs.common.session import get_spark

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    conf = load_conf("local")
    conf["spark"]["conf"].update({"spark.sql.shuffle.partitions": "4", "spark.ui.enabled": "false"})
    spark = get_spark(conf, "local[2]")
    spark.sparkContext.setLogLevel("ERROR")
    spark.sparkContext.setCheckpointDir("/tmp/rbm-reco-bench-checkpoints")
    return spark


def tuned_runners(
    spark, split: Split, kinds: list[str], seed: int
) -> list[tuple[str, Callable[[int], Result]]]:
    """The table's runners on ``split``, ALS with the grid points chosen on validation with
    ``seed``."""
    log(
        f"split {split.name}: {len(split.train)} users, {split.train.n_items} items, "
        f"{split.train.nnz} train / {split.test.nnz} test ratings"
    )
    implicit, _ = tune_als(spark, split, True, seed)
    explicit, _ = tune_als(spark, split, False, seed)
    log(f"ALS implicit chosen {implicit}; explicit chosen {explicit}")
    return make_runners(spark, split, implicit, explicit, kinds)


def seeds_of_row(row: Row, seeds: list[int], tutorial_seeds: int | None) -> list[int]:
    """The seeds ``row`` runs: all of them, or the first ``tutorial_seeds`` for the (slow)
    tutorial RBM row when that is set (which the row's notes then say)."""
    if row.name != TUTORIAL_ROW or tutorial_seeds is None:
        return seeds
    row.notes.append(f"{min(tutorial_seeds, len(seeds))} seed(s) only (slow)")
    return seeds[:tutorial_seeds]


def run_seeds(
    split: Split,
    row: Row,
    runner: Callable[[int], Result],
    seeds: list[int],
    after_each: Callable[[], None],
) -> None:
    """``runner`` with each of ``seeds``, evaluated on ``split`` into ``row``, logged."""
    for seed in seeds:
        res = runner(seed)
        row.runs.append(evaluate(split, res))
        row.notes.append(res.note)
        log(
            f"{split.name} | {row.name} | seed {seed} | "
            + ", ".join(f"{k} {v:.4f}" for k, v in row.runs[-1].items())
        )
        after_each()


def log(message: str) -> None:
    print(f"[{datetime.now().strftime('%H:%M:%S')}] {message}", flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
