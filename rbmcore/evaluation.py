"""Held-out quality of a model: what validation (early stopping, every choice) and the per-epoch
test report measure. A model ranks (``rated``, ``multvae``, the hybrid kinds: top-10 metrics)
or predicts likes and ratings (``binary``, ``softmax``, ``autorec``: like NLL, like error,
AUC, RMSE)."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore import metrics
from rbmcore.data.csr import RatingsCSR
from rbmcore.models.contract import Recommender
from rbmcore.models.factory import is_ranking_kind
from rbmcore.scoring import predict_csr, recommend_csr

RANKING_K = 10


def is_ranking_model(model: Recommender) -> bool:
    """Whether ``model`` is judged by how it ranks unseen items (``is_ranking_kind``)."""
    return is_ranking_kind(model.kind)


@torch.no_grad()
def ranking_quality(
    model: Recommender,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    k: int = RANKING_K,
) -> dict[str, float]:
    """P@k, R@k, nDCG@k, MAP@k of the model's top-k unseen items (``context`` = what the users
    are known to have rated) against ``target`` (their held-out items, any rating)."""
    recs = recommend_csr(model, context, k, device)
    return ranking_quality_of(recs.user_ids, recs.items, recs.ranks, target, k)


def ranking_quality_of(
    user_ids: np.ndarray, items: np.ndarray, ranks: np.ndarray, target: RatingsCSR, k: int
) -> dict[str, float]:
    """``ranking_quality``'s numbers from recommendations already made, (n,) each."""
    rel_users = np.repeat(target.user_ids, target.row_lengths())
    out = metrics.ranking_metrics(user_ids, items, ranks, rel_users, target.items, k)
    out.pop("n_users", None)
    return out


@torch.no_grad()
def heldout_metrics(
    model: Recommender, context: RatingsCSR, target: RatingsCSR, device: torch.device
) -> dict[str, float]:
    """Held-out quality: for ranking models the top-10 ranking metrics (early stopping
    maximises nDCG@10); for like/rating models ``metrics.like_and_rating_metrics`` of the
    held-out pairs (early stopping minimises the RMSE, else the like NLL)."""
    if target.nnz == 0:
        return {}
    if is_ranking_model(model):
        return ranking_quality(model, context, target, device)
    preds = predict_csr(model, context, target, device)
    return metrics.like_and_rating_metrics(
        target.row_of_entries(), target.ratings, preds["p_like"], preds.get("pred_rating"),
        model.scale,
    )  # fmt: skip
