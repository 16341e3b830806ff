"""Evaluation metrics of the protocol in docs/design.md ("Evaluation"), on flat numpy arrays.

Everything is vectorised (sorts, ``np.unique``, ``np.bincount``), so it scales to
millions of (user, item) rows without per-user Python loops.
"""

from __future__ import annotations

import numpy as np

from rbmcore.data.scale import STARS, RatingScale

__all__ = [
    "RANKING_METRICS",
    "auc",
    "like_error",
    "like_from_rating",
    "like_and_rating_metrics",
    "like_and_rating_sums",
    "like_and_rating_of_sums",
    "mae",
    "ranking_metrics",
    "ranking_of_sums",
    "ranking_sums",
    "rmse",
]

RANKING_METRICS = ("precision", "recall", "ndcg", "map")


def _pair_keys(
    users_a: np.ndarray, items_a: np.ndarray, users_b: np.ndarray, items_b: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Encode two sets of (user, item) pairs as comparable int64 keys.

    Non-negative integer ids whose product range fits in int64 are combined directly;
    anything else (negative, huge or non-integer ids) is factorised jointly first.
    """
    users = np.concatenate([users_a, users_b])
    items = np.concatenate([items_a, items_b])
    n = len(users_a)
    if len(users) == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    if (
        np.issubdtype(users.dtype, np.integer)
        and np.issubdtype(items.dtype, np.integer)
        and users.min() >= 0
        and items.min() >= 0
        and (int(users.max()) + 1) * (int(items.max()) + 1) < 2**62
    ):
        width = np.int64(int(items.max()) + 1)
        keys = users.astype(np.int64) * width + items.astype(np.int64)
        return keys[:n], keys[n:]
    _, u_inv = np.unique(users, return_inverse=True)
    i_all, i_inv = np.unique(items, return_inverse=True)
    keys = u_inv.astype(np.int64).ravel() * np.int64(len(i_all)) + i_inv.astype(np.int64).ravel()
    return keys[:n], keys[n:]


def ranking_metrics(
    rec_users: np.ndarray,
    rec_items: np.ndarray,
    rec_ranks: np.ndarray,
    rel_users: np.ndarray,
    rel_items: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """Top-k ranking quality, averaged over users with at least one relevant item.

    Parameters
    ----------
    rec_users, rec_items, rec_ranks : ndarray of shape (n_recs,)
        Recommendations, one row per (user, item) with its rank 1..N (1 = best).
        A user's ranks are assumed distinct and an item recommended at most once.
        Only rows with ``rank <= k`` count.
    rel_users, rel_items : ndarray of shape (n_rel,)
        Relevant (user, item) pairs, e.g. the test set. Duplicates are ignored.
    k : int
        Cut-off.

    Returns
    -------
    dict
        ``precision`` (hits / k), ``recall`` (hits / #relevant), ``ndcg`` (binary gain,
        ``1 / log2(rank + 1)`` discount, ideal DCG over ``min(k, #relevant)`` hits),
        ``map`` (AP@k = sum over hits of precision at the hit's rank, divided by
        ``min(k, #relevant)``), each averaged over the ``n_users`` users that have a
        relevant item. Such users without recommendations score 0; recommendations of
        users without relevant items are ignored. Metrics are nan when ``n_users == 0``.
    """
    return ranking_of_sums(ranking_sums(rec_users, rec_items, rec_ranks, rel_users, rel_items, k))


def ranking_sums(
    rec_users: np.ndarray,
    rec_items: np.ndarray,
    rec_ranks: np.ndarray,
    rel_users: np.ndarray,
    rel_items: np.ndarray,
    k: int = 10,
) -> dict[str, float]:
    """``ranking_metrics`` before the average over users: per metric of ``RANKING_METRICS``
    the sum of the users' values, and ``n_users``. Additive over disjoint sets of users (the
    evaluate job adds its partitions' sums); same arguments as ``ranking_metrics``."""
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")
    rec_users, rec_items, rec_ranks, rel_users, rel_items = _checked_pairs(
        rec_users, rec_items, rec_ranks, rel_users, rel_items
    )
    keep = rec_ranks <= k
    rec_users, rec_items, rec_ranks = rec_users[keep], rec_items[keep], rec_ranks[keep]

    rec_keys, rel_keys = _pair_keys(rec_users, rec_items, rel_users, rel_items)
    rel_keys, first = np.unique(rel_keys, return_index=True)
    eval_users, n_rel = np.unique(rel_users[first], return_counts=True)
    if len(eval_users) == 0:
        return {**dict.fromkeys(RANKING_METRICS, 0.0), "n_users": 0}

    # Recommended pairs that are relevant (this also drops users without relevant items).
    hit = _is_member(rec_keys, rel_keys)
    hit_user_index = np.searchsorted(eval_users, rec_users[hit])
    return _summed_over_users(hit_user_index, rec_ranks[hit].astype(np.int64), n_rel, k)


def ranking_of_sums(sums: dict[str, float]) -> dict[str, float]:
    """The averages of ``ranking_sums``' output (or of several added): each metric over
    ``n_users``; nan when ``n_users == 0``."""
    n_users = int(sums["n_users"])
    if n_users == 0:
        return {**dict.fromkeys(RANKING_METRICS, float("nan")), "n_users": 0}
    return {**{m: float(sums[m] / n_users) for m in RANKING_METRICS}, "n_users": n_users}


def _checked_pairs(
    rec_users: np.ndarray,
    rec_items: np.ndarray,
    rec_ranks: np.ndarray,
    rel_users: np.ndarray,
    rel_items: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``ranking_metrics``' inputs as flat arrays; ``ValueError`` on mismatched lengths or a
    rank below 1."""
    rec_users = np.asarray(rec_users).ravel()
    rec_items = np.asarray(rec_items).ravel()
    rec_ranks = np.asarray(rec_ranks).ravel()
    rel_users = np.asarray(rel_users).ravel()
    rel_items = np.asarray(rel_items).ravel()
    if not (len(rec_users) == len(rec_items) == len(rec_ranks)):
        raise ValueError("rec_users, rec_items and rec_ranks must have the same length")
    if len(rel_users) != len(rel_items):
        raise ValueError("rel_users and rel_items must have the same length")
    if len(rec_ranks) and rec_ranks.min() < 1:
        raise ValueError("ranks start at 1")
    return rec_users, rec_items, rec_ranks, rel_users, rel_items


def _is_member(keys: np.ndarray, sorted_unique: np.ndarray) -> np.ndarray:
    """Which of ``keys`` are in the non-empty sorted, unique ``sorted_unique`` (binary search)."""
    at = np.searchsorted(sorted_unique, keys)
    return sorted_unique[np.minimum(at, len(sorted_unique) - 1)] == keys


def _average_precision_sums(
    hit_user_index: np.ndarray, hit_ranks: np.ndarray, n_users: int
) -> np.ndarray:
    """Per user, the sum over its hits of the precision at the hit's rank: (the user's hits at
    ranks <= rank) / rank; shape (n_users,)."""
    order = np.lexsort((hit_ranks, hit_user_index))
    s_uidx, s_ranks = hit_user_index[order], hit_ranks[order]
    pos = np.arange(len(s_uidx))
    group_start = np.searchsorted(s_uidx, s_uidx, side="left")
    cum_hits = pos - group_start + 1
    return np.bincount(s_uidx, weights=cum_hits / s_ranks, minlength=n_users)


def _summed_over_users(
    hit_user_index: np.ndarray, hit_ranks: np.ndarray, n_rel: np.ndarray, k: int
) -> dict[str, float]:
    """Precision, recall, nDCG and MAP at ``k`` summed over the users that have relevant
    items (``n_rel[u]`` of them), from the users' index and rank of every hit."""
    n_users = len(n_rel)
    n_hits = np.bincount(hit_user_index, minlength=n_users).astype(np.float64)
    dcg = np.bincount(hit_user_index, weights=1.0 / np.log2(hit_ranks + 1.0), minlength=n_users)
    ap_sum = _average_precision_sums(hit_user_index, hit_ranks, n_users)
    denom = np.minimum(n_rel, k)
    ideal = np.concatenate([[0.0], np.cumsum(1.0 / np.log2(np.arange(2, k + 2)))])
    idcg = ideal[denom]
    return {
        "precision": float(np.sum(n_hits / k)),
        "recall": float(np.sum(n_hits / n_rel)),
        "ndcg": float(np.sum(dcg / idcg)),
        "map": float(np.sum(ap_sum / denom)),
        "n_users": int(n_users),
    }


def like_error(users: np.ndarray, like_true: np.ndarray, p_like: np.ndarray) -> float:
    """The tutorial's test loss, made deterministic: per-user mean error, averaged over users.

    Parameters
    ----------
    users : ndarray of shape (n_pairs,)
        User id of each test pair.
    like_true : ndarray of shape (n_pairs,)
        1 if the user liked the movie (rating >= 3), else 0.
    p_like : ndarray of shape (n_pairs,)
        Predicted probability of a like (a 0/1 prediction works too); predicted like
        is ``p_like >= 0.5``.

    Returns
    -------
    float
        ``mean_u mean_{i in u} |1[p_like >= 0.5] - like_true|``; nan for no pairs.
    """
    per_user = _like_error_per_user(users, like_true, p_like)
    return float(per_user.mean()) if len(per_user) else float("nan")


def _like_error_per_user(
    users: np.ndarray, like_true: np.ndarray, p_like: np.ndarray
) -> np.ndarray:
    """(n_users,) each user's mean of |1[p_like >= 0.5] - like_true| (``like_error``)."""
    users = np.asarray(users).ravel()
    like_true = np.asarray(like_true).ravel()
    p_like = np.asarray(p_like).ravel()
    if not (len(users) == len(like_true) == len(p_like)):
        raise ValueError("users, like_true and p_like must have the same length")
    err = np.abs((p_like >= 0.5).astype(np.float64) - like_true.astype(np.float64))
    _, inv, counts = np.unique(users, return_inverse=True, return_counts=True)
    return np.bincount(inv, weights=err) / counts


def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve via the Mann-Whitney U statistic.

    Parameters
    ----------
    y_true : ndarray of shape (n,)
        Binary labels (nonzero / True = positive).
    scores : ndarray of shape (n,)
        Scores, higher = more likely positive. Ties get the average rank, i.e. a
        tied (positive, negative) pair counts 1/2.

    Returns
    -------
    float
        P(score of a random positive > score of a random negative); nan if either
        class is absent.
    """
    y = np.asarray(y_true).ravel().astype(bool)
    s = np.asarray(scores).ravel()
    if len(y) != len(s):
        raise ValueError("y_true and scores must have the same length")
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    _, inv, counts = np.unique(s, return_inverse=True, return_counts=True)
    # Average 1-based rank of each distinct score value.
    ends = np.cumsum(counts).astype(np.float64)
    avg_rank = ends - (counts - 1) / 2.0
    rank_sum_pos = avg_rank[inv[y]].sum()
    u = rank_sum_pos - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def rmse(y: np.ndarray, pred: np.ndarray) -> float:
    """Root mean squared error; ``y``, ``pred`` of shape (n,)."""
    d = np.asarray(y, dtype=np.float64).ravel() - np.asarray(pred, dtype=np.float64).ravel()
    return float(np.sqrt(np.mean(d * d)))


def mae(y: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute error; ``y``, ``pred`` of shape (n,)."""
    d = np.asarray(y, dtype=np.float64).ravel() - np.asarray(pred, dtype=np.float64).ravel()
    return float(np.mean(np.abs(d)))


def like_from_rating(codes: np.ndarray, scale: RatingScale = STARS) -> np.ndarray:
    """Binary like label: 1 where the rating (codes of ``scale``) is at or above the scale's
    like threshold (``rating >= 3`` on five stars), else 0; int8 array of the input's shape."""
    return (np.asarray(codes) >= scale.like_code).astype(np.int8)


def like_and_rating_metrics(
    users: np.ndarray,
    codes: np.ndarray,
    p_like: np.ndarray | None,
    pred_rating: np.ndarray | None = None,
    scale: RatingScale = STARS,
) -> dict[str, float]:
    """The like and rating block of held-out pairs, all (n,): ``like_nll`` (the mean negative
    log-likelihood of the likes, p clipped to [1e-7, 1 - 1e-7]), ``like_error`` and ``auc``
    from ``p_like``; ``rmse`` and ``mae`` from ``pred_rating`` (on the scale's values) when it
    is given and has no NaN (a model without a rating scale). ``codes``: the ratings as codes
    of ``scale`` (on five stars, the ratings). Empty for no pairs and for implicit data (no
    ratings to like)."""
    if len(codes) == 0 or scale.implicit:
        return {}
    out = like_and_rating_of_sums(like_and_rating_sums(users, codes, p_like, pred_rating, scale))
    if p_like is not None:
        out = {**out, "auc": auc(like_from_rating(codes, scale), p_like)}
        out = {name: out[name] for name in LIKE_AND_RATING_METRICS if name in out}
    return out


LIKE_AND_RATING_METRICS = ("like_nll", "like_error", "auc", "rmse", "mae")


def like_and_rating_sums(
    users: np.ndarray,
    codes: np.ndarray,
    p_like: np.ndarray | None,
    pred_rating: np.ndarray | None = None,
    scale: RatingScale = STARS,
) -> dict[str, float]:
    """``like_and_rating_metrics`` but AUC before the averages, additive over disjoint sets of
    users (each user's pairs all in one set): ``pairs``, ``users``, and the sums over the pairs
    of ``like_nll``, over the users of their mean like error (``like_error``), over the pairs
    of the squared and absolute rating errors (``squared_error``, ``absolute_error``, only
    with a rating scale: ``pred_rating`` given without NaN). ``codes``: codes of ``scale``."""
    users = np.asarray(users).ravel()
    sums: dict[str, float] = {"pairs": len(users), "users": len(np.unique(users))}
    if len(users) == 0 or scale.implicit:
        return sums
    if p_like is not None:
        like = like_from_rating(codes, scale).astype(np.float64)
        p = np.clip(np.asarray(p_like, dtype=np.float64), 1e-7, 1 - 1e-7)
        sums["like_nll"] = float(-np.sum(like * np.log(p) + (1 - like) * np.log(1 - p)))
        sums["like_error"] = float(_like_error_per_user(users, like, p_like).sum())
    if pred_rating is not None and not np.isnan(pred_rating).any():
        ratings = np.asarray(scale.value_of(np.asarray(codes)), dtype=np.float64)
        d = ratings - np.asarray(pred_rating, dtype=np.float64)
        sums["squared_error"] = float(np.sum(d * d))
        sums["absolute_error"] = float(np.sum(np.abs(d)))
    return sums


def like_and_rating_of_sums(sums: dict[str, float]) -> dict[str, float]:
    """The averages of ``like_and_rating_sums``' output (or of several added; no AUC)."""
    pairs, users = sums["pairs"], sums["users"]
    out: dict[str, float] = {}
    if "like_nll" in sums and pairs:
        out["like_nll"] = float(sums["like_nll"] / pairs)
        out["like_error"] = float(sums["like_error"] / users)
    if "squared_error" in sums and pairs:
        out["rmse"] = float(np.sqrt(sums["squared_error"] / pairs))
        out["mae"] = float(sums["absolute_error"] / pairs)
    return out
