"""The evaluation metrics (rbmcore/metrics.py): hand-computed cases and independent naive
references."""

from __future__ import annotations

import math

import numpy as np
import pytest

from rbmcore.metrics import auc, like_error, like_from_rating, mae, ranking_metrics, rmse

LOG2_3 = math.log2(3.0)  # discount of rank 2 is 1 / log2(3); of rank 3 it is 1 / log2(4) = 1/2


def _flat(recs: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """{user: [item at rank 1, item at rank 2, ...]} -> flat (users, items, ranks)."""
    u, i, r = [], [], []
    for user, items in recs.items():
        for rank, item in enumerate(items, start=1):
            u.append(user)
            i.append(item)
            r.append(rank)
    return np.array(u), np.array(i), np.array(r)


def _rel(rel: dict[int, list[int]]) -> tuple[np.ndarray, np.ndarray]:
    u = [user for user, items in rel.items() for _ in items]
    i = [item for items in rel.values() for item in items]
    return np.array(u), np.array(i)


def test_ranking_hand_computed() -> None:
    # k = 3.
    # user 1: recs 10, 11, 12, 99 (rank 4 > k is ignored although relevant); relevant
    #   {10, 12, 99}: hits at ranks 1 and 3 -> P = 2/3, R = 2/3,
    #   AP = (1/1 + 2/3) / min(3, 3) = 5/9, nDCG = (1 + 1/2) / (1 + 1/log2(3) + 1/2).
    # user 2: recs 21, 20, 22; relevant {20}: hit at rank 2 -> P = 1/3, R = 1,
    #   AP = (1/2) / 1 = 1/2, nDCG = (1/log2(3)) / 1.
    # user 3: relevant {30, 31}, no recommendations -> all 0.
    # user 4: recommendations but nothing relevant -> ignored.
    recs = {1: [10, 11, 12, 99], 2: [21, 20, 22], 4: [40, 41, 42]}
    rel = {1: [10, 12, 99], 2: [20], 3: [30, 31]}
    m = ranking_metrics(*_flat(recs), *_rel(rel), k=3)
    assert m["n_users"] == 3
    assert m["precision"] == pytest.approx((2 / 3 + 1 / 3 + 0) / 3)  # 1/3
    assert m["recall"] == pytest.approx((2 / 3 + 1 + 0) / 3)  # 5/9
    assert m["map"] == pytest.approx((5 / 9 + 1 / 2 + 0) / 3)  # 19/54
    ndcg_1 = (1 + 1 / 2) / (1 + 1 / LOG2_3 + 1 / 2)  # 0.70392
    ndcg_2 = 1 / LOG2_3  # 0.63093
    assert m["ndcg"] == pytest.approx((ndcg_1 + ndcg_2 + 0) / 3)  # 0.44495
    assert m["ndcg"] == pytest.approx(0.4449492808685307)


def test_ranking_more_relevant_than_k_and_unsorted_rows() -> None:
    # 12 relevant, all 10 recs are hits: P = 1, R = 10/12, AP = 10/min(10, 12) = 1, nDCG = 1.
    rel = {7: list(range(100, 112))}
    u, i, r = _flat({7: list(range(100, 110))})
    perm = np.random.default_rng(0).permutation(len(u))  # row order must not matter
    m = ranking_metrics(u[perm], i[perm], r[perm], *_rel(rel), k=10)
    assert m == pytest.approx(
        {"precision": 1.0, "recall": 10 / 12, "ndcg": 1.0, "map": 1.0, "n_users": 1}
    )


def test_ranking_users_without_recommendations_count_zero() -> None:
    # user 1 perfect (all 1), user 2 no recs (all 0): means are 1/2.
    rel = {1: [5], 2: [6]}
    m = ranking_metrics(*_flat({1: [5]}), *_rel(rel), k=1)
    assert m == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "ndcg": 0.5, "map": 0.5, "n_users": 2}
    )


def test_ranking_ranks_beyond_k_ignored() -> None:
    # The only hit is at rank 2, k = 1: everything 0.
    m = ranking_metrics(*_flat({1: [8, 9]}), *_rel({1: [9]}), k=1)
    assert m["precision"] == m["recall"] == m["ndcg"] == m["map"] == 0.0
    # With k = 2: P = 1/2, R = 1, AP = (1/2)/1, nDCG = (1/log2(3)) / 1.
    m = ranking_metrics(*_flat({1: [8, 9]}), *_rel({1: [9]}), k=2)
    assert m == pytest.approx(
        {"precision": 0.5, "recall": 1.0, "ndcg": 1 / LOG2_3, "map": 0.5, "n_users": 1}
    )


def test_ranking_duplicate_relevant_pairs_and_large_ids() -> None:
    big = 10**15
    rel_u = np.array([big, big, big])
    rel_i = np.array([-3, -3, big + 1])  # 2 distinct relevant items
    u, i, r = np.array([big, big]), np.array([big + 1, 4]), np.array([1, 2])
    m = ranking_metrics(u, i, r, rel_u, rel_i, k=2)
    # hit at rank 1 of 2 relevant: P = 1/2, R = 1/2, AP = 1/2, nDCG = 1 / (1 + 1/log2(3)).
    assert m == pytest.approx(
        {"precision": 0.5, "recall": 0.5, "ndcg": 1 / (1 + 1 / LOG2_3), "map": 0.5, "n_users": 1}
    )


def test_ranking_rejects_rank_zero() -> None:
    with pytest.raises(ValueError, match="ranks"):
        ranking_metrics(np.array([1]), np.array([1]), np.array([0]), np.array([1]), np.array([1]))


def test_ranking_no_relevant_users_is_nan() -> None:
    m = ranking_metrics(*_flat({1: [1]}), np.array([], dtype=int), np.array([], dtype=int))
    assert m["n_users"] == 0 and math.isnan(m["precision"]) and math.isnan(m["map"])


def _naive_ranking(recs: dict[int, list[int]], rel: dict[int, set[int]], k: int) -> dict:
    """Textbook per-user loop, written independently of the implementation."""
    p = r = n = ap = 0.0
    for user, relevant in rel.items():
        top = recs.get(user, [])[:k]
        hits = 0
        dcg = 0.0
        prec_sum = 0.0
        for pos, item in enumerate(top, start=1):
            if item in relevant:
                hits += 1
                dcg += 1.0 / math.log2(pos + 1)
                prec_sum += hits / pos
        idcg = sum(1.0 / math.log2(pos + 1) for pos in range(1, min(k, len(relevant)) + 1))
        p += hits / k
        r += hits / len(relevant)
        n += dcg / idcg
        ap += prec_sum / min(k, len(relevant))
    m = len(rel)
    return {"precision": p / m, "recall": r / m, "ndcg": n / m, "map": ap / m, "n_users": m}


@pytest.mark.parametrize("k", [1, 5, 10])
def test_ranking_matches_naive_reference(k: int) -> None:
    rng = np.random.default_rng(42)
    n_users, n_items = 60, 40
    recs = {
        int(u): [int(x) for x in rng.permutation(n_items)[: rng.integers(0, 15)]]
        for u in range(n_users)
        if rng.random() < 0.8
    }
    rel = {
        int(u): {int(x) for x in rng.choice(n_items, size=rng.integers(1, 20), replace=False)}
        for u in range(n_users)
        if rng.random() < 0.7
    }
    rel_lists = {u: sorted(items) for u, items in rel.items()}
    got = ranking_metrics(*_flat(recs), *_rel(rel_lists), k=k)
    assert got == pytest.approx(_naive_ranking(recs, rel, k))


def test_like_error_per_user_average() -> None:
    # user 1: one pair, predicted like (p = 0.5 counts as like) but disliked -> error 1.
    # user 2: three pairs, all right -> error 0.
    # Per-user average = (1 + 0) / 2 = 0.5; a global mean would be 1/4.
    users = np.array([1, 2, 2, 2])
    like_true = np.array([0, 1, 0, 1])
    p_like = np.array([0.5, 0.9, 0.49, 0.5])
    assert like_error(users, like_true, p_like) == pytest.approx(0.5)
    assert np.mean(np.abs((p_like >= 0.5) - like_true)) == pytest.approx(0.25)
    # Users given out of order / interleaved: user 3 errs on 1 of 2, user 4 on 0 of 1.
    assert like_error(np.array([3, 4, 3]), np.array([1, 1, 1]), np.array([0.1, 1.0, 1.0])) == (
        pytest.approx((1 / 2 + 0) / 2)
    )


def test_auc_hand_computed_with_ties() -> None:
    # positives 0.9, 0.5; negatives 0.1, 0.5: pairs (0.9>0.1) 1, (0.9>0.5) 1, (0.5>0.1) 1,
    # (0.5=0.5) 1/2 -> 3.5 / 4.
    assert auc(np.array([1, 0, 1, 0]), np.array([0.9, 0.1, 0.5, 0.5])) == pytest.approx(0.875)
    assert auc(np.array([1, 0, 1]), np.array([0.3, 0.3, 0.3])) == pytest.approx(0.5)
    assert auc(np.array([0, 1]), np.array([2.0, 1.0])) == 0.0


def test_auc_missing_class_is_nan() -> None:
    assert math.isnan(auc(np.array([1, 1]), np.array([0.1, 0.2])))
    assert math.isnan(auc(np.array([0, 0]), np.array([0.1, 0.2])))


def test_auc_matches_brute_force_pair_count() -> None:
    rng = np.random.default_rng(7)
    y = rng.random(400) < 0.3
    s = np.round(rng.normal(size=400) + y, 1)  # rounding makes many ties
    pos, neg = s[y], s[~y]
    credit = 0.0
    for sp in pos:
        for sn in neg:
            credit += 1.0 if sp > sn else 0.5 if sp == sn else 0.0
    assert auc(y.astype(int), s) == pytest.approx(credit / (len(pos) * len(neg)))


def test_rmse_mae_literals() -> None:
    y, pred = np.array([1, 2, 3]), np.array([2.0, 2.0, 5.0])
    # errors -1, 0, -2: RMSE = sqrt((1 + 0 + 4) / 3), MAE = (1 + 0 + 2) / 3 = 1.
    assert rmse(y, pred) == pytest.approx(math.sqrt(5 / 3))
    assert mae(y, pred) == pytest.approx(1.0)


def test_like_from_rating() -> None:
    out = like_from_rating(np.array([1, 2, 3, 4, 5]))
    assert out.dtype == np.int8
    assert out.tolist() == [0, 0, 1, 1, 1]
