"""Reading ingest's Parquet outputs back: per-user CSR rows and the item vocabulary."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs import fs, layout
from jobs.common import BadInputError
from rbmcore.artifact import vocab_checksum
from rbmcore.data import RatingsCSR


@dataclass(frozen=True)
class Vocabulary:
    movie_ids: np.ndarray  # (n_items,) movie id of each dense item index
    titles: list[str | None]  # (n_items,)

    @property
    def n_items(self) -> int:
        return len(self.movie_ids)

    @property
    def checksum(self) -> str:
        return vocab_checksum(self.movie_ids)


def csr_from_arrow(table: pa.Table, n_items: int) -> RatingsCSR:
    """A CSR from an Arrow table with ``user_id``, ``items`` and ``ratings`` list columns."""
    table = table.combine_chunks()
    items = table.column("items").chunk(0) if table.num_rows else pa.array([], pa.list_(pa.int32()))
    ratings = (
        table.column("ratings").chunk(0) if table.num_rows else pa.array([], pa.list_(pa.int8()))
    )
    offsets = pc.subtract(items.offsets, items.offsets[0]).to_numpy().astype(np.int64)
    return RatingsCSR(
        user_ids=table.column("user_id").to_numpy().astype(np.int64),
        indptr=offsets,
        items=items.flatten().to_numpy().astype(np.int64),
        ratings=ratings.flatten().to_numpy().astype(np.int8),
        n_items=n_items,
    )


def require(spark, path: str, what: str) -> None:
    if not fs.exists(spark, path):
        raise BadInputError(f"{what} not found at {path}; run `rbm-reco ingest` first")


def load_vocabulary(spark, out: str) -> Vocabulary:
    path = layout.items_vocab(out)
    require(spark, path, "item vocabulary")
    table = spark.read.parquet(path).orderBy("item_idx").toArrow()
    idx = table.column("item_idx").to_numpy()
    if not np.array_equal(idx, np.arange(len(idx))):
        raise BadInputError(f"item vocabulary at {path} is not a dense 0..n-1 index")
    titles = (
        table.column("title").to_pylist() if "title" in table.column_names else [None] * len(idx)
    )
    return Vocabulary(table.column("movie_id").to_numpy().astype(np.int64), titles)


def load_user_rows(
    spark, path: str, n_items: int, with_batches: bool = False
) -> tuple[RatingsCSR, np.ndarray | None]:
    """Per-user rows of a train/test split, ordered by user id, plus the batch ids if asked."""
    require(spark, path, "ingested ratings")
    columns = ["user_id", "items", "ratings"] + (["batch"] if with_batches else [])
    table = spark.read.parquet(path).select(*columns).orderBy("user_id").toArrow()
    csr = csr_from_arrow(table, n_items)
    batches = table.column("batch").to_numpy().astype(np.int64) if with_batches else None
    return csr, batches


def align_rows(context: RatingsCSR, target: RatingsCSR) -> tuple[RatingsCSR, RatingsCSR]:
    """The rows of ``context`` and ``target`` for the users present in both, in the same order."""
    common = np.intersect1d(context.user_ids, target.user_ids)
    return (
        context.take(np.searchsorted(context.user_ids, common)),
        target.take(np.searchsorted(target.user_ids, common)),
    )
