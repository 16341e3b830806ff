"""Recommendation quality, side by side, on the same splits with the same evaluator.

    python -m bench.quality [--splits u1,random,temporal,1m-random,1m-temporal] [--seeds 3]
                            [--quick] [--raw DIR] [--render]

Rows: the tutorial's RBM (``rbmcore.baselines.tutorial_rbm``, faithful), most-popular unseen
movies, Spark ALS explicit and implicit (each tuned on a validation split carved from the
training part with ``rbmcore.data.splits.split_holdout``; never on the test file), every
rbm-reco kind with its defaults and the parts of the composite kinds (trained in-process
through ``rbmcore``, the code the Spark train job runs: ``bench.protocol.train_rbm``), and the
deep Boltzmann machine (``rbmcore.baselines.dbm``). Evaluator (docs/design.md, "Evaluation"):
``rbmcore.metrics`` on the same arrays for every row; the splits are ``bench.protocol``'s.
Each rbm-reco row also shows its validation numbers (the model as selected, before the refit,
on its seed's validation holdout), the numbers its choices were made on.

Each split's runs are kept in ``--raw DIR/<split>.json`` as they finish, and the ``## Quality``
section of BENCHMARKS.md is rendered from every split file there (so splits may run in
separate processes; ``--render`` only renders).
"""

from __future__ import annotations

import argparse
import copy
import itertools
import json
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
from bench.protocol import (
    DATA_1M,
    DATA_100K,
    REPO,
    SPLITS,
    Split,
    load_splits,
    train_rbm,
    validation_carve,
    validation_numbers,
    write_section,
)
from rbmcore import metrics
from rbmcore.baselines.dbm import dbm_config, fit_dbm
from rbmcore.baselines.tutorial_rbm import (
    TutorialConfig,
    predict_like_sampled,
    recommend_top_k,
    to_dense_binary,
    train_tutorial_rbm,
)
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.splits import split_holdout
from rbmcore.models.blend import BlendModel
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.config import TrainConfig
from rbmcore.training.selection import blend_metric, choose_alpha, choose_weight

K = 10
CPU = torch.device("cpu")
VAL_FRACTION = 0.1  # the same per-user holdout rbm-reco train carves (TrainConfig.val_fraction)
IMPLICIT_GRID = {"rank": (10, 20, 50), "regParam": (0.1, 1.0), "alpha": (1.0, 10.0)}
EXPLICIT_GRID = {"rank": (10, 20), "regParam": (0.05, 0.1, 0.15)}
TUTORIAL_ROW = "the tutorial's RBM (rbmcore.baselines.tutorial_rbm)"
DBM_ROW = "deep Boltzmann machine (rbmcore.baselines.dbm)"
LIKE_BINARY_ROW = "rbm-reco `hybrid` with `like_kind = binary`"
SECTION = "## Quality"
SECTION_END = "<!-- end of quality section -->"
DEFAULT_RAW = Path("/tmp/rbm-reco-quality")


# -- which models: trained once per (split, seed), rows read from them ---------------------
SOURCES: dict[str, dict] = {  # source -> [train] settings (each kind's defaults unless given)
    "hybrid": {"kind": "hybrid"},
    "autoencoder": {"kind": "autoencoder"},
    "dbn": {"kind": "dbn"},
    "softmax": {"kind": "softmax"},
    "rated-1-user": {"kind": "rated", "n_models": 1, "item_based": False},
    "binary-1-user": {"kind": "binary", "n_models": 1, "item_based": False},
    "binary-1": {"kind": "binary", "n_models": 1},
}


@dataclass(frozen=True)
class RowSpec:
    """A row: ``source``'s trained model, or its submodule at ``path`` (attribute names);
    ``user_only``: two-way parts predict with their user-based RBMs alone; ``selected``: the
    model as selected on validation (before the refit); ``diagnostic``: on ``u1`` only."""

    name: str
    source: str
    path: tuple[str, ...] = ()
    user_only: bool = False
    selected: bool = False
    diagnostic: bool = False
    note: str = ""


ROWS = (
    RowSpec("hybrid", "hybrid", note="the default"),
    RowSpec("hybrid-no-refit", "hybrid", selected=True, diagnostic=True,
            note="the default as selected (train.refit = false)"),
    RowSpec("rated", "hybrid", ("rated",), note="the default's ranking part"),
    RowSpec("rated-user", "hybrid", ("rated",), user_only=True, diagnostic=True,
            note="without its item-based RBMs"),
    RowSpec("binary+autorec", "hybrid", ("like",), note="the default's like part"),
    RowSpec("binary", "hybrid", ("like", "first"), note="the default's like part's"),
    RowSpec("binary-user", "hybrid", ("like", "first"), user_only=True, diagnostic=True,
            note="without its item-based RBMs"),
    RowSpec("binary-1", "binary-1", diagnostic=True, note="one RBM (n_models = 1)"),
    RowSpec("autorec", "hybrid", ("like", "second"), note="the default's like part's"),
    RowSpec("autorec-user", "hybrid", ("like", "second"), user_only=True, diagnostic=True,
            note="U-AutoRec alone (no I-AutoRec)"),
    RowSpec("softmax", "softmax"),
    RowSpec("softmax-user", "softmax", user_only=True, diagnostic=True,
            note="without its item-based RBM"),
    RowSpec("autoencoder", "autoencoder"),
    RowSpec("multvae", "autoencoder", ("rated",), note="the autoencoder kind's ranking part"),
    RowSpec("dbn", "dbn"),
    RowSpec("dbn: rated DBN", "dbn", ("rated",), note="its ranking part"),
    RowSpec("dbn: binary DBN", "dbn", ("like",), note="its like part"),
    RowSpec("rated, 1 user-based RBM", "rated-1-user",
            note="the rated DBN's and the DBM's RBM alone"),
    RowSpec("binary, 1 user-based RBM", "binary-1-user", note="the binary DBN's RBM alone"),
)  # fmt: skip


# -- the evaluator -------------------------------------------------------------------------
@dataclass
class Result:
    """One model's output on a split: top-K recs, per-test-pair predictions, and (rbm-reco
    rows) the selected model's validation numbers."""

    rec_users: np.ndarray
    rec_items: np.ndarray
    rec_ranks: np.ndarray
    p_like: np.ndarray | None = None  # aligned with the test CSR's entries
    pred_rating: np.ndarray | None = None
    train_s: float = 0.0
    score_s: float = 0.0
    note: str = ""
    validation: dict[str, float] = field(default_factory=dict)


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
    out.update({f"val_{k}": v for k, v in res.validation.items()})
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


# -- rbm-reco rows ------------------------------------------------------------------------
@dataclass
class Trained:
    """A source trained on a split with a seed: the final model, the selection and refit
    trainers, the validation carve (fit part, held) and the seconds it took."""

    model: torch.nn.Module
    trainers: tuple
    validation: tuple[RatingsCSR, RatingsCSR]
    seconds: float


_TRAINED: dict[tuple[str, int, str], Trained] = {}


def capped(epochs: int | None) -> dict:
    """[train] settings that cap every part's epochs (``--epochs``: a smoke run), or none."""
    if epochs is None:
        return {}
    return {"epochs": epochs, "item": {"epochs": epochs}, "layer": {"epochs": epochs}}


def trained(split: Split, seed: int, source: str, epochs: int | None) -> Trained:
    """``source`` (``SOURCES``) trained on ``split`` with ``seed`` (every part's epochs capped
    at ``epochs`` unless None), once per process."""
    key = (split.name, seed, source)
    if key not in _TRAINED:
        config = TrainConfig(**SOURCES[source], seed=seed, **capped(epochs))
        start = time.perf_counter()
        model, selection, refit = train_rbm(split.train, config)
        _, validation, _ = validation_carve(split.train, config)
        _TRAINED[key] = Trained(model, (selection, refit), validation,
                                time.perf_counter() - start)  # fmt: skip
    return _TRAINED[key]


def submodule(model: torch.nn.Module, path: tuple[str, ...]) -> torch.nn.Module:
    for name in path:
        model = getattr(model, name)
    return model


def path_tags(model: torch.nn.Module, path: tuple[str, ...]) -> dict[str, str]:
    """The history tags of the stage at ``path``: a hybrid's ``part``, a blend's ``machine``."""
    tags: dict[str, str] = {}
    for name in path:
        model = getattr(model, name)
        if name in ("rated", "like"):
            tags["part"] = name
        elif name in ("first", "second"):
            tags["machine"] = model.kind
    return tags


def history_seconds(trainers: tuple, **tags: str) -> float:
    """Seconds of the epochs of ``trainers`` (None skipped) whose records carry ``tags``."""
    return sum(
        r["seconds"]
        for t in trainers
        if t is not None
        for r in t.history
        if all(r.get(k) == v for k, v in tags.items())
    )


def user_based_predictions(model: torch.nn.Module) -> torch.nn.Module:
    """A copy of ``model`` whose two-way parts (an ensemble's too) predict with their
    user-based way alone (weight 1)."""
    model = copy.deepcopy(model)
    for module in model.modules():
        if isinstance(module, TwoWayRBM):
            module.weight.fill_(1.0)
    return model


def row_model(spec: RowSpec, source: Trained) -> tuple[torch.nn.Module, torch.nn.Module, float]:
    """(the row's model, the same as selected on validation, its training seconds)."""
    selection, refit = source.trainers
    final = selection.model if spec.selected else source.model
    model, selected = submodule(final, spec.path), submodule(selection.model, spec.path)
    tags = path_tags(selection.model, spec.path)
    if spec.user_only:
        model, selected = user_based_predictions(model), user_based_predictions(selected)
        tags["way"] = "user"
    trainers = (selection,) if spec.selected else source.trainers
    seconds = history_seconds(trainers, **tags) if tags else source.seconds
    return model, selected, seconds


def model_result(split: Split, model: torch.nn.Module, selected: torch.nn.Module,
                 validation: tuple, train_s: float, note: str) -> Result:  # fmt: skip
    """``model``'s top-K and test-pair predictions; ``selected``'s validation numbers."""
    numbers = validation_numbers(copy.deepcopy(selected), *validation)
    start = time.perf_counter()
    recs = recommend_csr(model, split.context, K)
    preds = predict_csr(model, split.context, split.test)
    likes = "p_like" in model.output_columns  # a ranking machine's p_like is P(rated)
    return Result(
        recs.user_ids, recs.items, recs.ranks,
        p_like=preds["p_like"] if likes else None, pred_rating=preds.get("pred_rating"),
        train_s=train_s, score_s=time.perf_counter() - start, note=note,
        validation={k: numbers[k] for k in ("ndcg", "like_nll", "rmse") if k in numbers},
    )  # fmt: skip


def choices_note(model: torch.nn.Module) -> str:
    """The blend weights chosen on validation that a model holds (alpha, blend weights)."""
    notes = []
    for name, buffer in model.named_buffers():
        if name.rsplit(".", 1)[-1] == "alpha":
            notes.append(f"alpha {float(buffer):g}")
    return ", ".join(notes)


def run_row(split: Split, seed: int, spec: RowSpec, epochs: int | None) -> Result:
    """One rbm-reco row with its kinds' defaults (``ROWS``)."""
    source = trained(split, seed, spec.source, epochs)
    model, selected, train_s = row_model(spec, source)
    note = "; ".join(n for n in (spec.note, choices_note(model)) if n)
    return model_result(split, model, selected, source.validation, train_s, note)


def run_dbm(split: Split, seed: int, epochs: int | None) -> Result:
    """The deep Boltzmann machine: started from the ``dbn`` kind's rated DBN (the greedy
    pretraining), trained as a whole with early stopping on validation nDCG@10; then, like
    every rbm-reco row, again from the refit DBN on all training ratings for the epochs
    validation chose."""
    dbn = trained(split, seed, "dbn", epochs)
    selection, refit = dbn.trainers
    config = dbm_config(seed, *([epochs] if epochs else []))
    fit_part, validation, batches = validation_carve(split.train, config)
    start = time.perf_counter()
    selected, trainer = fit_dbm(selection.model.rated, fit_part, batches, validation, config)
    epochs = max(trainer.best_epoch, 1)
    refit_config = replace(config, epochs=epochs)
    model, _ = fit_dbm(refit.model.rated, split.train, batches, None, refit_config)
    seconds = time.perf_counter() - start + history_seconds(dbn.trainers, part="rated")
    note = f"from the dbn kind's rated DBN; {epochs} epochs as a whole"
    return model_result(split, model, selected, validation, seconds, note)


def run_like_binary(split: Split, seed: int, epochs: int | None) -> Result:
    """The default's ranking part with its like part's binary RBMs alone as the like part
    (``like_kind = "binary"``): assembled from the trained default, alpha chosen again on the
    validation holdout, the refit's parts with that alpha."""
    source = trained(split, seed, "hybrid", epochs)
    selection, refit = source.trainers
    fit_part, held = source.validation
    selected = HybridRBM(*copy.deepcopy((selection.model.rated, selection.model.like.first)))
    validation_numbers(selected, fit_part, held)  # two-way item states from the fit part
    alpha, _ = choose_alpha(selected, fit_part, held, CPU)
    model = HybridRBM(refit.model.rated, refit.model.like.first, alpha=alpha)
    seconds = history_seconds(source.trainers, part="rated") + history_seconds(
        source.trainers, part="like", machine="binary"
    )
    note = f"assembled from the default's parts; alpha {alpha:g} chosen on validation"
    return model_result(split, model, selected, source.validation, seconds, note)


def run_rating_blend(split: Split, seed: int, epochs: int | None) -> Result:
    """The blend kind ``softmax+autorec``: the ``softmax`` row's model and the default's
    AutoRec (each trained with its kind's defaults), the weight chosen on validation by RMSE
    as ``BlendTrainer`` chooses it, the refit models blended with that weight."""
    softmax, default = (trained(split, seed, s, epochs) for s in ("softmax", "hybrid"))
    fit_part, held = default.validation
    parts = (softmax.trainers[0].model, default.trainers[0].model.like.second)
    selected = BlendModel(*copy.deepcopy(parts))
    validation_numbers(selected, fit_part, held)  # two-way item states from the fit part
    weight, _ = choose_weight(selected, fit_part, held, CPU, metric=blend_metric(selected))
    model = BlendModel(softmax.model, default.model.like.second, weight=weight)
    seconds = softmax.seconds + history_seconds(default.trainers, part="like", machine="autorec")
    note = f"assembled: the softmax row's model and the default's AutoRec; weight {weight:g}"
    return model_result(split, model, selected, default.validation, seconds, note)


def make_runners(
    spark, split: Split, implicit: dict, explicit: dict, diagnostics: bool, epochs: int | None
):
    """(row name, seed -> Result) for every model of the table (``epochs``: every rbm-reco
    part's cap, None for the defaults)."""
    runners: list[tuple[str, Callable[[int], Result]]] = [
        (TUTORIAL_ROW, lambda s: run_tutorial(split, s)),
        ("most popular unseen", lambda s: run_popularity(split, s)),
        ("Spark ALS explicit (tuned)", lambda s: run_als(spark, split, s, False, explicit)),
        ("Spark ALS implicit (tuned)", lambda s: run_als(spark, split, s, True, implicit)),
    ]
    for spec in ROWS:
        if diagnostics or not spec.diagnostic:
            name = f"rbm-reco `{spec.name}`"
            runners.append((name, lambda s, r=spec: run_row(split, s, r, epochs)))
    runners.append(("rbm-reco `softmax+autorec`", lambda s: run_rating_blend(split, s, epochs)))
    if diagnostics:
        runners.append((LIKE_BINARY_ROW, lambda s: run_like_binary(split, s, epochs)))
    runners.append((DBM_ROW, lambda s: run_dbm(split, s, epochs)))
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
    ("val_ndcg", "val nDCG@10"),
    ("val_like_nll", "val like NLL"),
    ("val_rmse", "val RMSE"),
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
        digits = 1 if key.endswith("_s") else 3 if not key.startswith("val_") else 4
        mean = f"{np.mean(values):.{digits}f}"
        if len(values) > 1:
            return f"{mean} ± {np.std(values):.{digits}f}"
        return mean


@dataclass
class SplitRuns:
    """One split's rows as run (kept in ``--raw DIR/<key>.json``)."""

    key: str
    name: str
    command: str
    started: str
    seeds: list[int]
    rows: list[Row] = field(default_factory=list)
    minutes: float = 0.0
    finished: bool = False
    als: dict[str, str] = field(default_factory=dict)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        data = {**self.__dict__, "rows": [r.__dict__ for r in self.rows]}
        tmp = folder / f".{self.key}.json.tmp"
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, folder / f"{self.key}.json")

    @classmethod
    def load(cls, path: Path) -> SplitRuns:
        data = json.loads(path.read_text())
        return cls(**{**data, "rows": [Row(**r) for r in data["rows"]]})


def saved_splits(folder: Path) -> list[SplitRuns]:
    """Every split's runs in ``folder``, in ``SPLITS`` order."""
    found = {p.stem: SplitRuns.load(p) for p in folder.glob("*.json")} if folder.is_dir() else {}
    return [found[key] for key in SPLITS if key in found]


def markdown(splits: list[SplitRuns]) -> str:
    lines = [
        SECTION,
        "",
        "Commands (from the repository root; DIR: `--raw`, where each split's runs are kept; "
        "the section is rendered from every split file there):",
        "",
    ]
    lines += [f"- {s.name}: `.venv/bin/{s.command}`, started {s.started}, {s.minutes:.0f} min"
              + ("" if s.finished else " (in progress)") for s in splits]  # fmt: skip
    lines += [
        "",
        f"Machine: {cpu_model()}, {os.cpu_count()} cores (`nproc` {nproc()}), torch "
        f"{torch.__version__} CPU, Python {platform.python_version()}. Seeds "
        f"{splits[0].seeds if splits else []}: mean ± standard deviation over seeds (model "
        "initialisation, sampling, validation carve and batch order; the test split is fixed); "
        "seed 42 is the default seed (`train.seed`).",
        "",
        'Protocol: docs/design.md "Evaluation" (top-10 unseen catalogue movies; relevant = any '
        "test rating, and ≥4 = rating ≥ 4; like = rating ≥ 3, like error = per-user mean error of "
        "p_like ≥ 0.5; AUC of p_like; RMSE/MAE of predicted ratings). Every choice (ALS grids, "
        "early stopping, blend weights, alphas) uses a per-user "
        f"{VAL_FRACTION:.0%} validation holdout carved from the training part with "
        "`rbmcore.data.splits.split_holdout`; the test parts are only scored. rbm-reco rows train "
        "in-process with `rbmcore` (the code `rbm-reco train` runs: same carve, batches of 100 "
        "users, same trainers, then the refit on the whole training part for the chosen epochs), "
        "each kind with its defaults; a part's row (e.g. `rated`, `binary`) is that part of the "
        "composite model named in its notes, whose config is that kind's defaults; `-user` rows "
        "are two-way models' user-based ways alone; the `val` columns are the row's model as "
        "selected (before the refit) on its seed's validation holdout (item-based states from "
        "the fit part), the numbers its choices were made on. u1 alone has the diagnostic rows. "
        "ALS: Spark `pyspark.ml.recommendation.ALS`, maxIter 15, tuned on the validation carve of "
        f"the first seed: implicit grid {IMPLICIT_GRID} by nDCG@10, explicit grid "
        f"{EXPLICIT_GRID} by RMSE; explicit ALS ranks by predicted rating and predicts like = "
        "predicted rating ≥ 2.5. Train and score seconds ran on a shared machine: indicative "
        "only.",
        "",
    ]
    for split in splits:
        lines += [f"### {split.name}", ""]
        lines.append("| model | " + " | ".join(title for _, title in COLUMNS) + " | notes |")
        lines.append("|---" * (len(COLUMNS) + 2) + "|")
        for row in split.rows:
            notes = "; ".join(sorted(set(n for n in row.notes if n)))
            cells = " | ".join(row.cell(key) for key, _ in COLUMNS)
            lines.append(f"| {row.name} | {cells} | {notes} |")
        lines.append("")
    lines.append(SECTION_END)
    return "\n".join(lines) + "\n"


# -- main ----------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> int:
    """Every model on every split, each split's runs saved, the section rendered."""
    args = parse_args(argv)
    raw = Path(args.raw)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    if not args.render:
        run_splits(args, raw, argv if argv is not None else sys.argv[1:])
    section = markdown(saved_splits(raw))
    print(section)
    if not args.no_write:
        write_section(Path(args.output), section, SECTION, SECTION_END)
    return 0


def run_splits(args: argparse.Namespace, raw: Path, argv: list[str]) -> None:
    keys = ["u1"] if args.quick else args.splits.split(",")
    seeds = [TrainConfig().seed + i for i in range(1 if args.quick else args.seeds)]
    command = "python -m bench.quality " + " ".join(argv)
    spark = local_spark()
    for key, split in zip(keys, load_splits(keys, Path(args.data), Path(args.data_1m)),
                          strict=True):  # fmt: skip
        began = time.perf_counter()
        runs = SplitRuns(key, split.name, command, now(), seeds)

        def save(runs: SplitRuns = runs, began: float = began) -> None:
            runs.minutes = (time.perf_counter() - began) / 60
            runs.save(raw)
            if not args.no_write:  # partial tables survive an interrupted run
                write_section(Path(args.output), markdown(saved_splits(raw)), SECTION, SECTION_END)

        diagnostics = key == "u1" and not args.lean
        runners, runs.als = tuned_runners(spark, split, seeds[0], diagnostics, args.epochs)
        for name, runner in runners:
            row = Row(name)
            runs.rows.append(row)
            run_seeds(split, row, runner, seeds_of_row(row, seeds, args.tutorial_rbm_seeds), save)
        runs.finished = True
        save()
    spark.stop()


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="minutes")


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.quality", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument(
        "--splits", default=",".join(SPLITS), help=f"comma list of {', '.join(SPLITS)}"
    )
    parser.add_argument("--seeds", type=int, default=3, help="seeds per model: 42, 43, ...")
    parser.add_argument("--quick", action="store_true", help="one seed, u1 only")
    parser.add_argument("--lean", action="store_true", help="no diagnostic rows on u1")
    parser.add_argument(
        "--epochs", type=int, default=None,
        help="cap every rbm-reco part's epochs (a smoke run: the numbers mean nothing)",
    )  # fmt: skip
    parser.add_argument(
        "--tutorial-rbm-seeds",
        type=int,
        default=None,
        help="seeds for the (slow) tutorial RBM row",
    )
    parser.add_argument("--data", default=str(DATA_100K), help="the MovieLens 100k folder")
    parser.add_argument("--data-1m", default=str(DATA_1M), help="the ml-1m-dev folder")
    parser.add_argument("--raw", default=str(DEFAULT_RAW), help="where each split's runs are kept")
    parser.add_argument("--render", action="store_true", help="render the saved runs only")
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


def tuned_runners(spark, split: Split, seed: int, diagnostics: bool, epochs: int | None):
    """The table's runners on ``split`` (ALS with the grid points chosen on validation with
    ``seed``) and the ALS choices."""
    log(
        f"split {split.name}: {len(split.train)} users, {split.train.n_items} items, "
        f"{split.train.nnz} train / {split.test.nnz} test ratings"
    )
    implicit, _ = tune_als(spark, split, True, seed)
    explicit, _ = tune_als(spark, split, False, seed)
    log(f"ALS implicit chosen {implicit}; explicit chosen {explicit}")
    runners = make_runners(spark, split, implicit, explicit, diagnostics, epochs)
    return runners, {"implicit": str(implicit), "explicit": str(explicit)}


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
