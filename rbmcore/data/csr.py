"""Users' ratings in CSR form on the host: the storage every other part of rbmcore reads.

A user's row holds only the items they rated (dense item indices, ascending) and the ratings
as codes 1..levels of the data's rating scale (``rbmcore.data.scale``; on five stars the
ratings 1..5 themselves). Nothing here ever builds a dense users x items matrix of the whole
data.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class RatingsCSR:
    """Users' ratings in CSR form on the host.

    user_ids: (n_users,) int64; indptr: (n_users + 1,) int64; items: (nnz,) int64 dense item
    indices, ascending within a row; ratings: (nnz,) int8 rating codes 1..levels; n_items:
    catalogue width.
    """

    user_ids: np.ndarray
    indptr: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    n_items: int

    def __len__(self) -> int:
        return len(self.user_ids)

    @property
    def nnz(self) -> int:
        return int(self.indptr[-1])

    def row_lengths(self) -> np.ndarray:
        return np.diff(self.indptr)

    def take(self, rows: np.ndarray) -> RatingsCSR:
        """The sub-CSR of the given row positions (in that order)."""
        rows = np.asarray(rows, dtype=np.int64)
        lengths = self.row_lengths()[rows]
        indptr = np.zeros(len(rows) + 1, dtype=np.int64)
        np.cumsum(lengths, out=indptr[1:])
        starts = self.indptr[rows]
        gather = np.repeat(starts - indptr[:-1], lengths) + np.arange(indptr[-1], dtype=np.int64)
        return RatingsCSR(
            self.user_ids[rows], indptr, self.items[gather], self.ratings[gather], self.n_items
        )

    def slice(self, start: int, stop: int) -> RatingsCSR:
        """The consecutive rows ``start:stop`` (no gather: views of this CSR's arrays)."""
        lo, hi = int(self.indptr[start]), int(self.indptr[stop])
        return RatingsCSR(
            self.user_ids[start:stop],
            self.indptr[start : stop + 1] - lo,
            self.items[lo:hi],
            self.ratings[lo:hi],
            self.n_items,
        )

    def row_of_entries(self) -> np.ndarray:
        """(nnz,) the row position of every stored entry."""
        return np.repeat(np.arange(len(self), dtype=np.int64), self.row_lengths())


def csr_from_lists(
    user_ids: Sequence[int] | np.ndarray,
    item_lists: Sequence[np.ndarray],
    rating_lists: Sequence[np.ndarray],
    n_items: int,
) -> RatingsCSR:
    """Build a CSR from per-user arrays (e.g. a pandas column of ``array<int>`` values)."""
    lengths = np.fromiter((len(x) for x in item_lists), dtype=np.int64, count=len(item_lists))
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    items = (
        np.concatenate(item_lists).astype(np.int64) if len(item_lists) else np.zeros(0, np.int64)
    )
    ratings = (
        np.concatenate(rating_lists).astype(np.int8) if len(rating_lists) else np.zeros(0, np.int8)
    )
    return RatingsCSR(np.asarray(user_ids, dtype=np.int64), indptr, items, ratings, n_items)


def csr_from_pairs(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_items: int
) -> RatingsCSR:
    """Build a CSR from flat (user, item, rating) triples; rows ordered by user id."""
    order = np.lexsort((items, users))
    users, items, ratings = users[order], items[order], ratings[order]
    user_ids, counts = np.unique(users, return_counts=True)
    indptr = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return RatingsCSR(
        user_ids.astype(np.int64), indptr, items.astype(np.int64), ratings.astype(np.int8), n_items
    )


def merge_rows(a: RatingsCSR, b: RatingsCSR) -> RatingsCSR:
    """The union of two CSRs whose ``b`` users are among ``a``'s (e.g. ``split_holdout``'s two
    parts, or a sample of users' holdout), rows in ``a``'s order, items ascending within a
    row."""
    b_rows = b.row_of_entries()
    if not np.array_equal(a.user_ids, b.user_ids):
        if len(a) == 0:
            raise ValueError("merge_rows needs every row of b among a's users")
        order = np.argsort(a.user_ids, kind="stable")
        found = order[np.searchsorted(a.user_ids, b.user_ids, sorter=order).clip(max=len(a) - 1)]
        if not np.array_equal(a.user_ids[found], b.user_ids):
            raise ValueError("merge_rows needs every row of b among a's users")
        b_rows = found[b_rows]
    rows = np.concatenate([a.row_of_entries(), b_rows])
    items = np.concatenate([a.items, b.items])
    order = np.lexsort((items, rows))
    indptr = np.zeros(len(a) + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=len(a)), out=indptr[1:])
    ratings = np.concatenate([a.ratings, b.ratings])[order]
    return RatingsCSR(a.user_ids, indptr, items[order], ratings, a.n_items)


def mask_rows(csr: RatingsCSR, keep: np.ndarray) -> RatingsCSR:
    """The entries of ``csr`` where ``keep`` (nnz,) is True, every row kept (maybe empty)."""
    row = csr.row_of_entries()
    counts = np.bincount(row[keep], minlength=len(csr))
    indptr = np.zeros(len(csr) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return RatingsCSR(csr.user_ids, indptr, csr.items[keep], csr.ratings[keep], csr.n_items)


def empty_csr(n_items: int) -> RatingsCSR:
    """A CSR with no rows over a catalogue of ``n_items``."""
    empty = np.zeros(0, np.int64)
    return RatingsCSR(empty, np.zeros(1, np.int64), empty, np.zeros(0, np.int8), n_items)


def concat_csr(parts: list[RatingsCSR], n_items: int) -> RatingsCSR:
    """The rows of ``parts`` one after another."""
    if not parts:
        return empty_csr(n_items)
    lengths = np.concatenate([p.row_lengths() for p in parts])
    indptr = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=indptr[1:])
    return RatingsCSR(
        np.concatenate([p.user_ids for p in parts]),
        indptr,
        np.concatenate([p.items for p in parts]),
        np.concatenate([p.ratings for p in parts]),
        n_items,
    )


def transpose_csr(csr: RatingsCSR) -> RatingsCSR:
    """The ratings with rows = every catalogue item 0..n_items-1 (``user_ids`` = the item
    indices; an item nobody rated is an empty row) and columns = ``csr``'s row positions."""
    rows = csr.row_of_entries()
    order = np.lexsort((rows, csr.items))
    indptr = np.zeros(csr.n_items + 1, dtype=np.int64)
    np.cumsum(np.bincount(csr.items, minlength=csr.n_items), out=indptr[1:])
    return RatingsCSR(
        np.arange(csr.n_items, dtype=np.int64), indptr, rows[order], csr.ratings[order], len(csr)
    )
