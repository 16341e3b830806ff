"""The choices made on the validation split: the early-stopping metric, and the blend weights
of composite models (a two-way model's user-based weight, a blend's weight, the hybrid's
alpha) from a grid."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import RatingsCSR
from rbmcore.evaluation import RANKING_K, heldout_metrics, is_ranking_model, ranking_quality_of
from rbmcore.models.blend import BlendModel
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import ranked_rows, top_k_unseen, users_per_chunk

ALPHA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))


def selection_metric(record: dict[str, Any]) -> float:
    """The validation number early stopping minimises: -nDCG@10 for ranking models, RMSE for
    rating models, else the like NLL."""
    val = record.get("val", {})
    if "ndcg" in val:
        return -val["ndcg"]
    return val.get("rmse", val.get("like_nll", math.inf))


def like_nll_metric(record: dict[str, Any]) -> float:
    """The validation like NLL of ``record`` (what a like model's choices minimise)."""
    return record.get("val", {}).get("like_nll", math.inf)


def blend_metric(model: BlendModel) -> Callable[[dict[str, Any]], float]:
    """What a blend's weight is chosen on: ``selection_metric`` when both machines answer it
    (ranking machines; two rating machines), else the like NLL (a like blend in which one
    machine alone predicts ratings: its RMSE does not depend on the weight)."""
    rating = ["pred_rating" in m.output_columns for m in (model.first, model.second)]
    if is_ranking_model(model) or all(rating) or not any(rating):
        return selection_metric
    return like_nll_metric


@torch.no_grad()
def choose_weight(
    model: TwoWayRBM | BlendModel,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...] = WEIGHT_GRID,
    metric: Callable[[dict[str, Any]], float] = selection_metric,
) -> tuple[float, dict[float, float]]:
    """The weight of ``grid`` with the best validation ``metric`` (by default the selection
    metric: -nDCG@10 for ranking kinds, RMSE for rating kinds, else like NLL); ties go to the
    larger (user-based, first machine's) weight."""
    scores: dict[float, float] = {}
    for weight in grid:
        model.weight.fill_(weight)
        scores[weight] = metric({"val": heldout_metrics(model, context, target, device)})
    best = min(grid, key=lambda w: (scores[w], -w))
    model.weight.fill_(best)
    return best, scores


@torch.no_grad()
def choose_alpha(
    model: HybridRBM,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...] = ALPHA_GRID,
) -> tuple[float, dict[float, float]]:
    """The alpha of ``grid`` with the best validation nDCG@10 (ties: the smaller alpha)."""
    scores = alpha_grid_quality(model, context, target, device, grid)
    best = max(grid, key=lambda a: (scores[a], -a))
    model.alpha.fill_(best)
    return best, scores


@torch.no_grad()
def alpha_grid_quality(
    model: HybridRBM,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...],
    chunk_users: int | None = None,
) -> dict[float, float]:
    """{alpha: validation nDCG@10} for every alpha of ``grid``: the numbers of
    ``ranking_quality`` with ``model.alpha`` set to each, but both sub-models score each chunk
    of users (``recommend_csr``'s chunks) once; only the combination and the top-k are
    repeated per alpha. Leaves ``model.alpha`` at the grid's last value."""
    k = min(RANKING_K, context.n_items)  # recommendations per user; the metrics cut at RANKING_K
    chunk = chunk_users or users_per_chunk(context.n_items, model.n_states)
    found: dict[float, list[tuple[np.ndarray, ...]]] = {alpha: [] for alpha in grid}
    for start in range(0, len(context), chunk):
        sub = context.slice(start, min(start + chunk, len(context)))
        batch = to_batch(sub, device)
        p_rated = model.rated.score_all(batch)["p_rated"]
        p_like = model.like.score_all(batch)["p_like"]
        for alpha in grid:
            model.alpha.fill_(alpha)
            top_values, top_indices = top_k_unseen(model.combine(p_rated, p_like), batch, k)
            rows, ranks, items, _ = ranked_rows(top_indices, torch.isfinite(top_values), {})
            found[alpha].append((sub.user_ids[rows], items, ranks))
    quality = {}
    for alpha, parts in found.items():
        users, items, ranks = [np.concatenate(c) for c in zip(*parts, strict=True)] or [
            np.zeros(0, np.int64)
        ] * 3
        quality[alpha] = ranking_quality_of(users, items, ranks, target, RANKING_K)["ndcg"]
    return quality
