"""Ratings in CSR form (rbmcore/data/csr.py), held-out splits (rbmcore/data/splits.py) and
batches of users (rbmcore/data/batch.py)."""

from __future__ import annotations

import numpy as np
import pytest

from rbmcore.data.batch import batches_from_assignment, to_batch
from rbmcore.data.csr import csr_from_lists, csr_from_pairs, merge_rows, transpose_csr
from rbmcore.data.splits import split_holdout, temporal_holdout
from tests.rbmcore.support import random_users


def small_csr():
    # user 7: items 0 (r5), 2 (r1); user 3: item 1 (r4); user 9: items 0 (r2), 1 (r3), 3 (r4)
    users = np.array([7, 7, 3, 9, 9, 9])
    items = np.array([2, 0, 1, 3, 0, 1])
    ratings = np.array([1, 5, 4, 4, 2, 3])
    return csr_from_pairs(users, items, ratings, n_items=4)


def test_csr_from_pairs_orders_users_and_items():
    csr = small_csr()
    assert csr.user_ids.tolist() == [3, 7, 9]
    assert csr.indptr.tolist() == [0, 1, 3, 6]
    assert csr.items.tolist() == [1, 0, 2, 0, 1, 3]
    assert csr.ratings.tolist() == [4, 5, 1, 2, 3, 4]


def test_merge_rows_puts_a_subset_of_users_ratings_back_in_their_rows():
    csr = small_csr()  # users 3, 7, 9
    kept, held = split_holdout(csr, 0.5, np.random.default_rng(0))
    assert held.nnz > 0
    whole = merge_rows(kept, held)
    assert whole.items.tolist() == csr.items.tolist()
    assert whole.ratings.tolist() == csr.ratings.tolist()
    some = held.take(np.array([2, 1]))  # users 9 and 7 only, in another order
    merged = merge_rows(kept.take(np.array([2, 0, 1])), some)  # a's rows: 9, 3, 7
    assert merged.user_ids.tolist() == [9, 3, 7]
    assert merged.nnz == kept.nnz + some.nnz
    assert merge_rows(merged, held.take(np.array([0]))).nnz == merged.nnz + held.take([0]).nnz
    with pytest.raises(ValueError, match="among a's users"):
        merge_rows(kept.take(np.array([0, 1])), held)  # user 9 is not in a


def test_take_selects_rows_in_the_given_order():
    sub = small_csr().take(np.array([2, 0]))
    assert sub.user_ids.tolist() == [9, 3]
    assert sub.indptr.tolist() == [0, 3, 4]
    assert sub.items.tolist() == [0, 1, 3, 1]
    assert sub.ratings.tolist() == [2, 3, 4, 4]


def test_csr_from_lists_matches_pairs():
    csr = csr_from_lists(
        [3, 7], [np.array([1]), np.array([0, 2])], [np.array([4]), np.array([5, 1])], 4
    )
    assert csr.indptr.tolist() == [0, 1, 3]
    assert csr.items.tolist() == [1, 0, 2]


def test_transpose_twice_gives_the_ratings_back():
    csr = random_users(40, 0, n_items=30, most=14)
    items = transpose_csr(csr)
    assert len(items) == 30 and items.n_items == len(csr) and items.nnz == csr.nnz
    back = transpose_csr(items)
    np.testing.assert_array_equal(back.indptr, csr.indptr)
    np.testing.assert_array_equal(back.items, csr.items)
    np.testing.assert_array_equal(back.ratings, csr.ratings)


def test_split_holdout_partitions_each_users_ratings():
    rng = np.random.default_rng(0)
    users = np.repeat(np.arange(50), 20)
    items = np.tile(np.arange(20), 50)
    ratings = rng.integers(1, 6, size=len(users))
    csr = csr_from_pairs(users, items, ratings, 20)
    kept, held = split_holdout(csr, 0.25, np.random.default_rng(1))
    assert np.array_equal(kept.user_ids, held.user_ids)
    assert kept.nnz + held.nnz == csr.nnz
    assert 0.2 < held.nnz / csr.nnz < 0.3
    for row in range(len(csr)):
        a = set(kept.items[kept.indptr[row]:kept.indptr[row + 1]])
        b = set(held.items[held.indptr[row]:held.indptr[row + 1]])
        assert not a & b and a | b == set(range(20)) and len(a) >= 1
    again, _ = split_holdout(csr, 0.25, np.random.default_rng(1))
    assert np.array_equal(again.items, kept.items)


def test_split_holdout_never_empties_a_user():
    csr = csr_from_pairs(np.array([1, 2, 2]), np.array([0, 0, 1]), np.array([3, 3, 3]), 2)
    kept, _ = split_holdout(csr, 0.99, np.random.default_rng(0))
    assert kept.row_lengths().tolist() == [1, 1]


def test_batch_layout_and_dense_mask():
    batch = to_batch(small_csr())
    assert batch.offsets.tolist() == [0, 1, 3]
    assert batch.rows.tolist() == [0, 1, 1, 2, 2, 2]
    mask = batch.dense_mask()
    assert mask.shape == (3, 4)
    assert mask[1].tolist() == [True, False, True, False]


@pytest.mark.parametrize("ids", [[2, 0, 1, 0, 2, 2], [0, 0, 0]])
def test_batches_from_assignment_groups_rows(ids):
    groups = batches_from_assignment(np.array(ids))
    flat = sorted(int(r) for g in groups for r in g)
    assert flat == list(range(len(ids)))
    for g in groups:
        assert len({ids[r] for r in g}) == 1


def test_temporal_holdout_holds_out_each_users_latest_fifth():
    users = np.array([7, 7, 7, 7, 7, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 9])
    times = np.array([5, 1, 4, 2, 3, 10, 30, 20, 40, 50, 60, 70, 80, 100, 90, 1])
    held = temporal_holdout(users, times, 0.2)
    assert sorted(times[held & (users == 7)]) == [5]  # 1 of 5
    assert sorted(times[held & (users == 3)]) == [90, 100]  # 2 of 10
    assert not held[users == 9].any()  # floor(0.2 + 1/2) = 0 of 1
    tied = temporal_holdout(np.array([1, 1, 1, 1, 1]), np.array([1, 2, 2, 2, 2]), 0.4)
    assert tied.tolist() == [False, False, False, True, True]  # ties: the later in the input
