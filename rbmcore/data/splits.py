"""Held-out splits of the ratings: the validation holdout, the per-user temporal split and the
bounded evaluation sample."""

from __future__ import annotations

import numpy as np

from rbmcore.data.csr import RatingsCSR, mask_rows, merge_rows


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
    return mask_rows(csr, ~held), mask_rows(csr, held)


def temporal_holdout(users: np.ndarray, times: np.ndarray, fraction: float) -> np.ndarray:
    """(n,) bool: True for each user's last ``fraction`` of ratings by time, the held-out part
    of a per-user temporal split (what users rate next). A user with n ratings holds out
    ``floor(fraction * n + 1/2)`` of them, the latest (ties in time: the later in the
    input); users: (n,) user ids; times: (n,) timestamps."""
    users, times = np.asarray(users), np.asarray(times)
    order = np.lexsort((np.arange(len(users)), times, users))  # user, then time, then input
    _, starts, counts = np.unique(users[order], return_index=True, return_counts=True)
    n_out = np.floor(fraction * counts + 0.5).astype(np.int64)
    rank = np.arange(len(order)) - np.repeat(starts, counts)  # position in the user's history
    held = np.empty(len(users), dtype=bool)
    held[order] = rank >= np.repeat(counts - n_out, counts)
    return held


DEFAULT_EVAL_USERS = 20_000  # users a run validates and reports on (train.eval_users)


def bounded_evaluation(
    fit_rows: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    test: tuple[RatingsCSR, RatingsCSR] | None,
    limit: int = DEFAULT_EVAL_USERS,
) -> tuple[RatingsCSR, tuple | None, tuple | None]:
    """(fit_rows, validation, test) with what each epoch evaluates bounded: with more than
    ``limit`` users (0 = no bound), only the users of the first ``batches`` up to that many
    keep their validation holdout and are evaluated (validation and test pairs); the other
    users' held-out ratings go back into ``fit_rows`` (they train), so ``merge_rows(fit_rows,
    validation[1])`` is still every training rating. ``batches``: row positions of
    ``fit_rows``, in the order whose first users are the sample (ingest's batch ids: a hash of
    the user id); ``validation``, ``test``: (context, target) pairs, or None."""
    if limit <= 0 or len(fit_rows) <= limit:
        return fit_rows, validation, test
    rows = np.sort(np.concatenate(batches)[:limit])
    if validation is not None:
        context, held = validation
        fit_rows = merge_rows(context, held.take(np.setdiff1d(np.arange(len(held)), rows)))
        validation = (fit_rows.take(rows), held.take(rows))
    if test is not None:
        keep = np.flatnonzero(np.isin(test[0].user_ids, fit_rows.user_ids[rows]))
        test = (test[0].take(keep), test[1].take(keep))
    return fit_rows, validation, test


def align_rows(context: RatingsCSR, target: RatingsCSR) -> tuple[RatingsCSR, RatingsCSR]:
    """The rows of ``context`` and ``target`` for the users present in both, in the same order."""
    common = np.intersect1d(context.user_ids, target.user_ids)
    return (
        context.take(np.searchsorted(context.user_ids, common)),
        target.take(np.searchsorted(target.user_ids, common)),
    )
