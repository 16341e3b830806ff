"""Batches of users: which rows train together, and one batch as device tensors."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np
import torch

from rbmcore.data.csr import RatingsCSR


@dataclass(frozen=True)
class UserBatch:
    """One batch of users on a device, in the layout ``embedding_bag`` wants.

    offsets: (batch,) start of each row in ``items``; items: (nnz,) int64; ratings: (nnz,)
    int64 rating codes; rows: (nnz,) row of each entry; size: batch; n_items: catalogue width;
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
    """Move a (small) CSR onto ``device`` as a ``UserBatch``. To a GPU the arrays go through
    pinned host memory without waiting (``non_blocking``): a copy from pageable memory would
    wait for the GPU to finish its queued work, a host synchronisation per batch."""
    return UserBatch(
        offsets=int64_on(csr.indptr[:-1], device),
        items=int64_on(csr.items, device),
        ratings=int64_on(csr.ratings, device),
        rows=int64_on(csr.row_of_entries(), device),
        size=len(csr),
        n_items=csr.n_items,
        user_ids=int64_on(csr.user_ids, device),
    )


def int64_on(array: np.ndarray, device: torch.device | str) -> torch.Tensor:
    """``array`` as an int64 tensor on ``device`` (see ``to_batch``)."""
    host = torch.as_tensor(np.asarray(array), dtype=torch.int64)
    if torch.device(device).type != "cuda":
        return host.to(device)
    return host.pin_memory().to(device, non_blocking=True)


def iter_row_chunks(n_rows: int, chunk: int) -> list[np.ndarray]:
    """Consecutive row positions in chunks of ``chunk`` (the last may be shorter)."""
    return [np.arange(s, min(s + chunk, n_rows)) for s in range(0, n_rows, chunk)]


def batches_from_assignment(batch_ids: np.ndarray) -> list[np.ndarray]:
    """Row positions grouped by the ingest's batch assignment, ordered by batch id."""
    order = np.argsort(batch_ids, kind="stable")
    sorted_ids = batch_ids[order]
    cuts = np.flatnonzero(np.diff(sorted_ids)) + 1
    return np.split(order, cuts)


def split_batches(batches: list[np.ndarray], pieces: int) -> list[np.ndarray]:
    """Each batch (row positions) cut into ``pieces`` consecutive pieces (none empty)."""
    if pieces <= 1:
        return batches
    return [piece for b in batches for piece in np.array_split(b, pieces) if len(piece)]


@runtime_checkable
class BatchSource(Protocol):
    """Training batches that read their rows themselves (e.g. streamed from Parquet) instead
    of row positions of an in-memory CSR."""

    nnz: int

    def __len__(self) -> int: ...

    def epoch(self, order: np.ndarray) -> Iterator[RatingsCSR]:
        """The rows of each batch, in ``order`` (positions 0..len-1)."""
        ...


def batch_rows(
    train: RatingsCSR, batches: list[np.ndarray] | BatchSource, order: np.ndarray
) -> Iterator[RatingsCSR]:
    """The rows of every batch in ``order``: ``batches`` are row positions of ``train``, or a
    ``BatchSource`` that reads its rows itself."""
    if isinstance(batches, BatchSource):
        return batches.epoch(order)
    return (train.take(batches[b]) for b in order)


def ratings_in(train: RatingsCSR, batches: list[np.ndarray] | BatchSource) -> int:
    """How many ratings ``batches`` train on."""
    return batches.nnz if isinstance(batches, BatchSource) else train.nnz
