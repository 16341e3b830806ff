"""Per-user sparse ratings: a compact CSR cache on the host and per-batch tensors on the device.

A user's row holds only the items they rated (dense item indices) and the ratings 1..5.
Nothing here ever builds a dense users x items matrix of the whole data.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

LIKE_THRESHOLD = 3  # like = rating >= 3 (the seed's task)


@dataclass(frozen=True)
class RatingsCSR:
    """Users' ratings in CSR form on the host.

    user_ids: (n_users,) int64; indptr: (n_users + 1,) int64; items: (nnz,) int64 dense item
    indices, ascending within a row; ratings: (nnz,) int8 in 1..5; n_items: catalogue width.
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


def split_holdout(
    csr: RatingsCSR, fraction: float, rng: np.random.Generator, min_keep: int = 1
) -> tuple[RatingsCSR, RatingsCSR]:
    """Per-user random holdout: (kept, held_out), each with the same rows in the same order.

    Every user keeps at least ``min_keep`` ratings; users with too few ratings hold out none.
    """
    lengths = csr.row_lengths()
    n_out = np.floor(lengths * fraction + rng.random(len(lengths))).astype(np.int64)
    n_out = np.clip(n_out, 0, np.maximum(lengths - min_keep, 0))
    row = csr.row_of_entries()
    # a random rank of each entry within its row; the lowest n_out ranks are held out
    keys = rng.random(csr.nnz)
    order = np.lexsort((keys, row))
    rank_in_row = np.empty(csr.nnz, dtype=np.int64)
    rank_in_row[order] = np.arange(csr.nnz) - np.repeat(csr.indptr[:-1], lengths)
    held = rank_in_row < n_out[row]
    return _mask_rows(csr, ~held), _mask_rows(csr, held)


DEFAULT_EVAL_USERS = 20_000  # users a run validates and reports on (train.eval_users)


def bounded_evaluation(
    fit_part: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    test: tuple[RatingsCSR, RatingsCSR] | None,
    limit: int = DEFAULT_EVAL_USERS,
) -> tuple[RatingsCSR, tuple | None, tuple | None]:
    """(fit_part, validation, test) with what each epoch evaluates bounded: with more than
    ``limit`` users (0 = no bound), only the users of the first ``batches`` up to that many
    keep their validation holdout and are evaluated (validation and test pairs); the other
    users' held-out ratings go back into ``fit_part`` (they train), so ``merge_rows(fit_part,
    validation[1])`` is still every training rating. ``batches``: row positions of
    ``fit_part``, in the order whose first users are the sample (ingest's batch ids: a hash of
    the user id); ``validation``, ``test``: (context, target) pairs, or None."""
    if limit <= 0 or len(fit_part) <= limit:
        return fit_part, validation, test
    rows = np.sort(np.concatenate(batches)[:limit])
    if validation is not None:
        context, held = validation
        fit_part = merge_rows(context, held.take(np.setdiff1d(np.arange(len(held)), rows)))
        validation = (fit_part.take(rows), held.take(rows))
    if test is not None:
        keep = np.flatnonzero(np.isin(test[0].user_ids, fit_part.user_ids[rows]))
        test = (test[0].take(keep), test[1].take(keep))
    return fit_part, validation, test


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


def _mask_rows(csr: RatingsCSR, keep: np.ndarray) -> RatingsCSR:
    row = csr.row_of_entries()
    counts = np.bincount(row[keep], minlength=len(csr))
    indptr = np.zeros(len(csr) + 1, dtype=np.int64)
    np.cumsum(counts, out=indptr[1:])
    return RatingsCSR(csr.user_ids, indptr, csr.items[keep], csr.ratings[keep], csr.n_items)


@dataclass(frozen=True)
class UserBatch:
    """One batch of users on a device, in the layout ``embedding_bag`` wants.

    offsets: (batch,) start of each row in ``items``; items: (nnz,) int64; ratings: (nnz,)
    int64 in 1..5; rows: (nnz,) row of each entry; size: batch; n_items: catalogue width;
    user_ids: (batch,) int64 ids of the rows' users (item-based models look their weights up).
    """

    offsets: torch.Tensor
    items: torch.Tensor
    ratings: torch.Tensor
    rows: torch.Tensor
    size: int
    n_items: int
    user_ids: torch.Tensor | None = None

    @property
    def nnz(self) -> int:
        return int(self.items.shape[0])

    def dense_mask(self) -> torch.Tensor:
        """(batch, n_items) bool, True where the user rated the item. One batch only."""
        mask = torch.zeros(self.size, self.n_items, dtype=torch.bool, device=self.items.device)
        mask[self.rows, self.items] = True
        return mask


def to_batch(csr: RatingsCSR, device: torch.device | str = "cpu") -> UserBatch:
    """Move a (small) CSR onto ``device`` as a ``UserBatch``."""
    return UserBatch(
        offsets=torch.as_tensor(csr.indptr[:-1], dtype=torch.int64, device=device),
        items=torch.as_tensor(csr.items, dtype=torch.int64, device=device),
        ratings=torch.as_tensor(csr.ratings, dtype=torch.int64, device=device),
        rows=torch.as_tensor(csr.row_of_entries(), dtype=torch.int64, device=device),
        size=len(csr),
        n_items=csr.n_items,
        user_ids=torch.as_tensor(csr.user_ids, dtype=torch.int64, device=device),
    )


def iter_row_chunks(n_rows: int, chunk: int) -> list[np.ndarray]:
    """Consecutive row positions in chunks of ``chunk`` (the last may be shorter)."""
    return [np.arange(s, min(s + chunk, n_rows)) for s in range(0, n_rows, chunk)]


def batches_from_assignment(batch_ids: np.ndarray) -> list[np.ndarray]:
    """Row positions grouped by the ingest's batch assignment, ordered by batch id."""
    order = np.argsort(batch_ids, kind="stable")
    sorted_ids = batch_ids[order]
    cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
    return np.split(order, cuts)


def rated_pattern(
    batch: UserBatch, n_states: int, width: int, values: torch.Tensor | None = None
) -> torch.Tensor:
    """The sparse (batch, width) CSR layout of ``batch``'s rated (row, item * K + state) cells
    (width: the weights' rows, n_items * K): the pattern of ``rated_dots``, built once and
    reused for every product of a batch. values: (nnz * K,) its values (default zeros), which
    ``rated_dots(..., add_values=True)`` adds to the products."""
    import warnings

    K, nnz, device = n_states, batch.nnz, batch.items.device
    crow = torch.empty(batch.size + 1, dtype=torch.int64, device=device)
    crow[:-1] = batch.offsets * K
    crow[-1] = nnz * K
    cols = (batch.items.unsqueeze(1) * K + torch.arange(K, device=device)).reshape(-1)
    with warnings.catch_warnings():  # "sparse CSR tensor support is in beta"
        warnings.simplefilter("ignore")
        if values is None:
            values = torch.zeros(nnz * K, device=device)
        return torch.sparse_csr_tensor(crow, cols, values, size=(batch.size, width))


def uniform16(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(shape) uint16 integers uniform on 0..65535, four from each 64-bit draw of ``generator``:
    on the CPU a third of the time of ``torch.rand`` for as many numbers (whose generator is
    serial: one 32-bit draw per float), the largest serial cost of a CD chain."""
    n = math.prod(shape)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    draws.random_(-(2**63), None, generator=generator)  # the full 64-bit range
    return draws.view(torch.uint16)[:n].view(shape)


def stable_order(keys: torch.Tensor, n_keys: int) -> torch.Tensor:
    """``torch.argsort(keys, stable=True)`` of integer keys in [0, n_keys). On the CPU numpy's
    radix sort of 16-bit digits does it (one pass below 2**16 keys, two above): the same
    permutation, about 10x faster than torch's sort at a batch's size."""
    if keys.device.type != "cpu" or n_keys > 2**32:
        return torch.argsort(keys, stable=True)
    k = keys.numpy()
    if n_keys <= 2**16:
        order = np.argsort(k.astype(np.uint16), kind="stable")
    else:  # least significant digit first; each pass keeps the order of equal digits
        low = np.argsort((k & 0xFFFF).astype(np.uint16), kind="stable")
        order = low[np.argsort((k[low] >> 16).astype(np.uint16), kind="stable")]
    return torch.from_numpy(order.astype(np.int64, copy=False))


def flat_nonzero(mask: torch.Tensor) -> torch.Tensor:
    """(n,) int64 positions of the nonzero entries of a 1-d ``mask`` (bool or 0/1 numbers), as
    ``mask.nonzero()``; on the CPU numpy's ``flatnonzero`` of it as bool (about 3x faster than
    torch's at a batch's size; numpy's own test of floats is 5x slower than the cast)."""
    if mask.device.type != "cpu":
        return mask.nonzero().squeeze(1)
    return torch.from_numpy(np.flatnonzero(mask.bool().numpy()).astype(np.int64, copy=False))


def item_major_pattern(
    batch: UserBatch, n_items: int, values: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch``'s rated cells as a sparse (n_items, batch) CSR pattern, entries grouped by item
    (rows ascending within an item; a stable sort of the entries by item), with values: (nnz,)
    given in the batch's row order; and (nnz,) ``to_rows``: the position in that pattern of
    each entry in row order. The layout of ``item_major_dots``."""
    import warnings

    device = batch.items.device
    order = stable_order(batch.items, n_items)
    crow = torch.zeros(n_items + 1, dtype=torch.int64, device=device)
    torch.cumsum(torch.bincount(batch.items, minlength=n_items), 0, out=crow[1:])
    to_rows = torch.empty_like(order).index_copy_(
        0, order, torch.arange(len(order), device=device)
    )
    with warnings.catch_warnings():  # "sparse CSR tensor support is in beta"
        warnings.simplefilter("ignore")
        pattern = torch.sparse_csr_tensor(
            crow,
            batch.rows.index_select(0, order),
            values.index_select(0, order),
            size=(n_items, batch.size),
        )
    return pattern, to_rows


def item_major_dots(
    h: torch.Tensor, weights: torch.Tensor, pattern: torch.Tensor, to_rows: torch.Tensor
) -> torch.Tensor:
    """(nnz,) the pattern's values plus ``h[row] . weights[item]`` for every rated cell of an
    ``item_major_pattern``, in the batch's row order; h: (batch, hidden); weights: (n_items,
    hidden). The same numbers as ``rated_dots`` with K = 1, 10-20% faster on the CPU at an
    ml-1m batch (measured alone): each item's weight row is read once for all its raters (h
    stays in cache), not once per rating. No autograd."""
    out = torch.sparse.sampled_addmm(pattern, weights, h.T)
    return out.values().index_select(0, to_rows)


def uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n,) float32 uniforms on [0, 1): on the CPU ``uniform16 / 65536`` (four per 64-bit draw),
    elsewhere ``torch.rand``."""
    if torch.device(device).type != "cpu":
        return torch.rand(n, generator=generator, device=device)
    # converted first, then scaled: torch.mul(uint16, float) takes a slow casting loop (10x)
    return uniform16((n,), generator, device).to(torch.float32).mul_(2.0**-16)


def sample_of_logits(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    outcome: int = 1,
    u: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Bernoulli sample (1.0 / 0.0, x's shape) with P(1) = sigmoid(x): one uniform per unit
    compared with the probability (about 3x faster than ``torch.bernoulli`` on the CPU). The
    uniforms are ``u`` (x's shape) if given, else ``uniforms`` drawn from ``generator``; on the
    CPU, P(1) = ceil(65536 sigmoid(x)) / 65536, within 2**-16 of sigmoid(x). ``outcome=0``:
    the same sample's indicator of 0 instead (1 - it, without the extra pass)."""
    if u is None:
        u = uniforms(x.numel(), generator, x.device).view(x.shape)
    p = torch.sigmoid(x)
    return p.gt_(u) if outcome else p.le_(u)


def skip_sample(
    shape: torch.Size, generator: torch.Generator | None, device: torch.device
) -> None:
    """Advance ``generator`` past the uniforms ``sample_of_logits`` would draw for a sample of
    ``shape`` without computing the sample."""
    uniforms(math.prod(shape), generator, device)


def rated_dots(
    h: torch.Tensor,
    weights: torch.Tensor,
    batch: UserBatch,
    n_states: int,
    pattern: torch.Tensor | None = None,
    add_values: bool = False,
) -> torch.Tensor:
    """(nnz, K) ``h[row] . weights[item * K + k]`` for every stored (row, item) of ``batch``
    and state k: the hidden-to-visible product over the rated items only, as one sampled
    dense-dense product (``torch.sparse.sampled_addmm``, O(nnz x K x hidden)) instead of
    gathering an (nnz, K, hidden) copy of the weights. No autograd (forward passes only).

    h: (batch, hidden); weights: (n_items * K, hidden); the batch's entries grouped by row in
    row order (as ``to_batch`` makes them); ``pattern``: ``rated_pattern`` of them if at hand;
    ``add_values``: plus the pattern's values (a bias per cell, added in the same pass).
    """
    if pattern is None:
        pattern = rated_pattern(batch, n_states, weights.shape[0])
    if pattern.dtype != h.dtype:
        pattern = pattern.to(h.dtype)
    out = torch.sparse.sampled_addmm(pattern, h, weights.T, beta=1.0 if add_values else 0.0)
    return out.values().view(batch.nnz, n_states)
