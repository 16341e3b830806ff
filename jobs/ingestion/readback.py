"""Ingest, step 3 (for train and score): reading ingest's Parquet outputs back as per-user CSR
rows and the item vocabulary; training batches streamed from the Parquet when the data do not
fit the driver's budget."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from jobs.common.errors import BadInputError
from jobs.ingestion.unit import read_manifest
from jobs.storage import fs, layout
from rbmcore.data.csr import RatingsCSR, concat_csr, empty_csr
from rbmcore.data.scale import RatingScale
from rbmcore.data.splits import split_holdout
from rbmcore.io.artifact import vocab_checksum
from rbmcore.training.config import CACHE_MODES


@dataclass(frozen=True)
class Vocabulary:
    """The item vocabulary of an ingest unit, and what its manifest says of the data."""

    movie_ids: np.ndarray  # (n_items,) movie id of each dense item index
    titles: list[str | None]  # (n_items,)
    scale: RatingScale  # the ratings' scale (their codes' meaning)
    ingest_id: str | None = None
    manifest: dict | None = None

    @property
    def n_items(self) -> int:
        return len(self.movie_ids)

    @property
    def checksum(self) -> str:
        return vocab_checksum(self.movie_ids)


def csr_from_arrow(table: pa.Table | pa.RecordBatch, n_items: int) -> RatingsCSR:
    """A CSR from an Arrow table or record batch with ``user_id``, ``items`` and ``ratings``
    list columns (no Python loop: the list offsets are the CSR's ``indptr``)."""
    if isinstance(table, pa.Table):
        if table.num_rows == 0:
            return empty_csr(n_items)
        table = table.combine_chunks().to_batches()[0]
    items = table.column("items")
    ratings = table.column("ratings")
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
    """The vocabulary of ``OUT/ingest``, once the unit is checked whole
    (``jobs.ingestion.unit.read_manifest``: one ingest's items, train and test, never a
    mixture)."""
    manifest = read_manifest(spark, out)
    path = layout.items_vocab(out)
    table = spark.read.parquet(path).toArrow().sort_by("item_idx")  # sorted here: no shuffle
    idx = table.column("item_idx").to_numpy()
    if not np.array_equal(idx, np.arange(len(idx))):
        raise BadInputError(f"item vocabulary at {path} is not a dense 0..n-1 index")
    titles = (
        table.column("title").to_pylist() if "title" in table.column_names else [None] * len(idx)
    )
    return Vocabulary(
        table.column("movie_id").to_numpy().astype(np.int64),
        titles,
        RatingScale.from_dict(manifest.get("rating_scale")),
        manifest.get("ingest_id"),
        manifest,
    )


def load_user_rows(
    spark, path: str, n_items: int, with_batches: bool = False
) -> tuple[RatingsCSR, np.ndarray | None]:
    """Per-user rows of a train/test split, ordered by user id (sorted here, on the driver: no
    Spark shuffle), plus the batch ids if asked. A local folder is read with pyarrow directly;
    through Spark (other file systems) every row passes the driver JVM's heap on its way."""
    require(spark, path, "ingested ratings")
    columns = ["user_id", "items", "ratings"] + (["batch"] if with_batches else [])
    dataset = parquet_dataset(path)
    if dataset is not None:
        table = dataset.to_table(columns=columns)
    else:
        table = spark.read.parquet(path).select(*columns).toArrow()
    table = table.sort_by("user_id")
    csr = csr_from_arrow(table, n_items)
    batches = table.column("batch").to_numpy().astype(np.int64) if with_batches else None
    return csr, batches


# -- training data: in memory (CSR cache) or streamed from the Parquet ---------------------

# host bytes per rating of the in-memory training data: the CSR (int64 item + int8 rating),
# its fit/validation copies (split_holdout) and the Arrow table it was built from
MEMORY_BYTES_PER_RATING = 40
CSR_BYTES_PER_RATING = 9  # int64 item + int8 rating
CSR_BYTES_PER_USER = 24  # user id, indptr, row position


def parquet_dataset(path: str):
    """A pyarrow dataset over a local Parquet folder written by Spark (``_SUCCESS`` and
    ``.crc`` files are skipped), or None when ``path`` is not on the local file system."""
    import pyarrow.dataset as ds

    if not fs.is_local(path):
        return None
    return ds.dataset(fs.local_path(path), format="parquet", ignore_prefixes=[".", "_"])


def estimated_ratings(path: str) -> int | None:
    """The number of stored ratings in a local ingested folder, from the Parquet footers only."""
    dataset = parquet_dataset(path)
    if dataset is None:
        return None
    total = 0
    for fragment in dataset.get_fragments():
        meta = fragment.metadata
        for g in range(meta.num_row_groups):
            group = meta.row_group(g)
            for c in range(group.num_columns):
                if group.column(c).path_in_schema.split(".")[0] == "items":
                    total += group.column(c).num_values
    return total


def choose_cache(path: str, mode: str, budget_mb: float) -> str:
    """``memory`` or ``stream``: "auto" streams when the in-memory data would exceed the
    budget (estimated from the Parquet footers); a non-local folder is always read in memory."""
    if mode not in CACHE_MODES:
        raise BadInputError(f"train.cache must be one of {CACHE_MODES}, got {mode!r}")
    if parquet_dataset(path) is None:
        return "memory"
    if mode != "auto":
        return mode
    nnz = estimated_ratings(path) or 0
    return "stream" if nnz * MEMORY_BYTES_PER_RATING > budget_mb * 2**20 else "memory"


class StreamingBatches:
    """Training batches read from the ingested Parquet, a bounded group of batches at a time.

    The driver never holds more than about ``group_bytes`` of CSR rows (plus one Parquet row
    group being decoded), whatever the number of users. An epoch visits the batches in the
    order it is given; each group (consecutive batches of that order, up to ``group_bytes``)
    costs one filtered scan of the folder. A batch holds its users in ``user_id`` order, the
    same rows as ``train.take(batches_from_assignment(...)[b])`` of the in-memory cache.
    ``holdout``: the fraction of each user's ratings held out for validation, drawn per batch
    from ``(seed, batch id)`` (the training batches are the kept part).

    Use as the ``batches`` argument of ``Trainer.fit`` / ``train_epoch`` (``len`` and ``epoch``).
    """

    def __init__(
        self,
        path: str,
        n_items: int,
        group_bytes: int,
        holdout: float = 0.0,
        seed: int = 0,
    ) -> None:
        dataset = parquet_dataset(path)
        if dataset is None:
            raise BadInputError(f"streaming needs a local Parquet folder, got {path}")
        self.dataset = dataset
        self.n_items = n_items
        self.group_bytes = max(1, int(group_bytes))
        self.holdout = holdout
        self.seed = seed
        users = np.zeros(0, np.int64)
        nnz = np.zeros(0, np.int64)
        for part in dataset.to_batches(columns=["batch", "items"]):
            b = part.column("batch").to_numpy().astype(np.int64)
            lengths = pc.list_value_length(part.column("items")).to_numpy().astype(np.int64)
            width = max(len(users), int(b.max()) + 1 if len(b) else 0)
            users = np.pad(users, (0, width - len(users)))
            nnz = np.pad(nnz, (0, width - len(nnz)))
            users += np.bincount(b, minlength=width)
            nnz += np.bincount(b, weights=lengths, minlength=width).astype(np.int64)
        ids = np.flatnonzero(users)
        self.batch_ids = ids  # position p of the batch list = batch id batch_ids[p]
        self.batch_users = users[ids]
        self.batch_nnz = nnz[ids]

    def __len__(self) -> int:
        return len(self.batch_ids)

    @property
    def n_users(self) -> int:
        return int(self.batch_users.sum())

    @property
    def nnz(self) -> int:
        return int(self.batch_nnz.sum())

    def batch_bytes(self, positions: np.ndarray) -> int:
        return int(
            CSR_BYTES_PER_RATING * self.batch_nnz[positions].sum()
            + CSR_BYTES_PER_USER * self.batch_users[positions].sum()
        )

    def groups(self, order: np.ndarray) -> list[np.ndarray]:
        """``order`` cut into consecutive groups of batches of at most ``group_bytes`` each
        (a single batch larger than that is a group of its own)."""
        sizes = (
            CSR_BYTES_PER_RATING * self.batch_nnz[order]
            + CSR_BYTES_PER_USER * (self.batch_users[order])
        )
        groups, start, acc = [], 0, 0
        for i, size in enumerate(sizes):
            if i > start and acc + size > self.group_bytes:
                groups.append(order[start:i])
                start, acc = i, 0
            acc += int(size)
        if start < len(order):
            groups.append(order[start:])
        return groups

    def read(self, positions: np.ndarray) -> tuple[RatingsCSR, np.ndarray]:
        """The rows of the batches at ``positions`` (one filtered scan), ordered by user id,
        and each row's batch id."""
        import pyarrow.dataset as ds

        wanted = pa.array(self.batch_ids[np.asarray(positions)], pa.int32())
        table = self.dataset.to_table(
            columns=["user_id", "items", "ratings", "batch"],
            filter=ds.field("batch").isin(wanted),
        )
        table = table.take(pc.sort_indices(table, [("user_id", "ascending")]))
        return csr_from_arrow(table, self.n_items), table.column("batch").to_numpy()

    def split(self, rows: RatingsCSR, batch_id: int) -> tuple[RatingsCSR, RatingsCSR]:
        """(kept, held out) of one batch's rows: the per-batch validation holdout."""
        rng = np.random.default_rng([self.seed, int(batch_id)])
        return split_holdout(rows, self.holdout, rng)

    def epoch(self, order: np.ndarray) -> Iterator[RatingsCSR]:
        """The training rows of each batch, in ``order`` (positions 0..len-1)."""
        for group in self.groups(np.asarray(order, dtype=np.int64)):
            csr, row_batch = self.read(group)
            sort = np.argsort(row_batch, kind="stable")
            starts = np.searchsorted(row_batch[sort], self.batch_ids[group], side="left")
            ends = np.searchsorted(row_batch[sort], self.batch_ids[group], side="right")
            for p, lo, hi in zip(group, starts, ends, strict=True):
                rows = csr.take(sort[lo:hi])
                yield self.split(rows, self.batch_ids[p])[0] if self.holdout > 0 else rows
            del csr

    def without_holdout(self) -> StreamingBatches:
        """The same batches with all their ratings (no validation holdout)."""
        whole = copy.copy(self)
        whole.holdout = 0.0
        return whole

    def sample(self, max_bytes: int) -> tuple[RatingsCSR, RatingsCSR, np.ndarray]:
        """A bounded sample for validation and bias initialisation: the batches with the lowest
        ids up to ``max_bytes``; (kept part, held-out part, their user ids), rows by user id."""
        positions, acc = [], 0
        for p in range(len(self)):
            size = self.batch_bytes(np.array([p]))
            if positions and acc + size > max_bytes:
                break
            positions.append(p)
            acc += size
        csr, row_batch = self.read(np.array(positions, dtype=np.int64))
        kept_parts, held_parts = [], []
        for p in positions:
            rows = np.flatnonzero(row_batch == self.batch_ids[p])
            kept, held = self.split(csr.take(rows), self.batch_ids[p])
            kept_parts.append(kept)
            held_parts.append(held)
        kept, held = concat_csr(kept_parts, self.n_items), concat_csr(held_parts, self.n_items)
        order = np.argsort(kept.user_ids, kind="stable")
        return kept.take(order), held.take(order), kept.user_ids[order]


def load_user_rows_of(path: str, n_items: int, user_ids: np.ndarray) -> RatingsCSR:
    """The rows of the given users (sorted ids) from a local ingested folder, by user id."""
    import pyarrow.dataset as ds

    dataset = parquet_dataset(path)
    table = dataset.to_table(
        columns=["user_id", "items", "ratings"],
        filter=ds.field("user_id").isin(pa.array(user_ids, pa.int32())),
    )
    table = table.take(pc.sort_indices(table, [("user_id", "ascending")]))
    return csr_from_arrow(table, n_items)
