"""Ingest, step 2: accepted ratings -> deduplicated pairs, the item vocabulary and one row per
user with a training batch, written as Parquet (the outputs ``jobs/ingest.py`` lists).

The heavy work is one shuffle: the accepted ratings, their movies mapped to item indices
through the (broadcast) vocabulary, are partitioned by user; the duplicate (user, movie)
pairs are resolved and each user's row is built in the same partitions (``user_rows``). The
vocabulary and the batch assignment are small and built on the driver.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.ingestion.parse import CODE_BITS

log = logging.getLogger("rbm-reco.ingest")

USERS_PER_TRAIN_FILE = 20_000
MIN_USERS_PER_FILE = 100
TEST_BATCH = -1  # the batch value of every test row
VOCAB_SCHEMA = "item_idx int, movie_id int, title string, n_ratings int"


def accepted_rows(final: DataFrame) -> DataFrame:
    """``user_id, movie_id, rating, ts`` of the accepted lines of a parsed input."""
    return final.filter(F.col("reason").isNull()).select("user_id", "movie_id", "rating", "ts")


def latest_key() -> Column:
    """(ts, rating) packed into one bigint: the latest timestamp wins, ties the higher rating."""
    return F.col("ts") * (1 << CODE_BITS) + F.col("rating").cast("bigint")


def _rating_of_key(key: Column) -> Column:
    return key.bitwiseAND((1 << CODE_BITS) - 1).cast("tinyint")


def user_rows(
    accepted: DataFrame, vocab_ids: DataFrame, partitions: int, keep_unknown: bool = False
) -> DataFrame:
    """One row per user, in ``partitions`` hash partitions of ``user_id``:
    ``user_id, items array<int>, ratings array<tinyint>, lines long, extra array<struct<
    item_idx, n>>``.

    ``accepted``: ``user_id, movie_id, rating, ts``; ``vocab_ids``: ``movie_id, item_idx``
    (broadcast). Duplicate (user, movie) pairs keep the latest timestamp, ties the higher
    rating; ``lines`` counts the user's accepted lines and ``extra`` lists the pairs that had
    more than one (``n`` the lines dropped). ``items`` ascend and ``ratings`` are aligned
    with them. ``keep_unknown`` (the test split): movies absent from the vocabulary are kept
    out of ``items`` but counted, as ``unknown_item_pairs``.
    """
    how = "left" if keep_unknown else "inner"
    indexed = accepted.join(F.broadcast(vocab_ids), "movie_id", how)
    pairs = (
        indexed.repartition(partitions, "user_id")
        .groupBy("user_id", "movie_id")
        .agg(
            F.max(latest_key()).alias("_k"),
            F.count(F.lit(1)).alias("_n"),
            F.first("item_idx").alias("item_idx"),
        )
    )
    known = F.col("item_idx").isNotNull()
    pair = F.struct(F.col("item_idx"), _rating_of_key(F.col("_k")).alias("rating"))
    extra = F.when(F.col("_n") > 1, F.struct("item_idx", (F.col("_n") - 1).alias("n")))
    rows = pairs.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.when(known, pair))).alias("_v"),
        F.sum("_n").alias("lines"),
        F.collect_list(extra).alias("extra"),
        F.count_if(~known).alias("unknown_item_pairs"),
    )
    return rows.select(
        "user_id",
        F.col("_v.item_idx").alias("items"),
        F.col("_v.rating").alias("ratings"),
        "lines",
        "extra",
        "unknown_item_pairs",
    )


def vocabulary(movie_lines: pd.DataFrame) -> pd.DataFrame:
    """``item_idx, movie_id, n_ratings`` from the accepted training lines per movie
    (``movie_id, lines``): ``item_idx`` dense 0..n-1 in ascending ``movie_id`` order,
    ``n_ratings`` = lines until ``subtract_duplicates``."""
    vocab = movie_lines.groupby("movie_id", as_index=False)["lines"].sum()
    vocab = vocab.sort_values("movie_id", kind="stable").reset_index(drop=True)
    return pd.DataFrame(
        {
            "item_idx": np.arange(len(vocab), dtype=np.int32),
            "movie_id": vocab["movie_id"].to_numpy(np.int32),
            "n_ratings": vocab["lines"].to_numpy(np.int64),
        }
    )


def subtract_duplicates(vocab: pd.DataFrame, extra: list[list[dict]]) -> pd.DataFrame:
    """``vocab`` whose ``n_ratings`` count each (user, movie) pair once: ``extra`` holds, per
    user, the pairs with dropped lines (``user_rows``'s ``extra``)."""
    n = vocab["n_ratings"].to_numpy().copy()
    for pairs in extra:
        for pair in pairs:
            n[int(pair["item_idx"])] -= int(pair["n"])
    return vocab.assign(n_ratings=n.astype(np.int32))


def batch_assignment(user_ids: np.ndarray, hashes: np.ndarray, batch_size: int) -> np.ndarray:
    """(n,) batch of each user: users ordered by ``hashes`` (``xxhash64(user_id, seed)``,
    ties by user id) and cut into consecutive chunks of ``batch_size``: every batch full but
    the last. Deterministic for a seed and a user set."""
    order = np.lexsort((user_ids, hashes))
    batches = np.empty(len(user_ids), dtype=np.int32)
    batches[order] = np.arange(len(user_ids)) // batch_size
    return batches


def user_hash(seed: int) -> Column:
    """The hash that orders users into batches (``batch_assignment``)."""
    return F.xxhash64(F.col("user_id"), F.lit(int(seed)))


def write_parquet(df: DataFrame, path: str) -> None:
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "static")  # replace the whole folder
        .parquet(path)
    )


def files_for(spark, n_users: int) -> int:
    """About one file per USERS_PER_TRAIN_FILE users and at least two files per core (so
    scoring reads them in parallel without a shuffle), but never fewer than
    MIN_USERS_PER_FILE users a file (no swarm of tiny files on a big cluster)."""
    per_core = 2 * spark.sparkContext.defaultParallelism
    wanted = max(per_core, n_users // USERS_PER_TRAIN_FILE)
    return max(1, min(wanted, n_users // MIN_USERS_PER_FILE))


def write_vectors(spark, vectors: DataFrame, n_users: int, path: str) -> None:
    """Per-user rows ``user_id, items, ratings, batch`` in ``files_for`` files, each sorted by
    user id (users hashed to files)."""
    ordered = vectors.repartition(files_for(spark, n_users), "user_id").sortWithinPartitions(
        "user_id"
    )
    write_parquet(ordered.select("user_id", "items", "ratings", "batch"), path)


def write_vocabulary(spark, vocab: pd.DataFrame, titles: pd.DataFrame | None, path: str) -> None:
    """Write the vocabulary (``item_idx, movie_id, title, n_ratings``) as one Parquet file."""
    if titles is not None:
        vocab = vocab.merge(titles[["movie_id", "title"]], on="movie_id", how="left")
    else:
        vocab = vocab.assign(title=None)
    table = vocab[["item_idx", "movie_id", "title", "n_ratings"]].astype(
        {"item_idx": "int32", "movie_id": "int32", "n_ratings": "int32"}
    )
    table["title"] = table["title"].astype(object).where(table["title"].notna(), None)
    write_parquet(spark.createDataFrame(table, VOCAB_SCHEMA).coalesce(1), path)


def movie_titles(parsed: DataFrame) -> pd.DataFrame:
    """``movie_id, title, lines`` of the accepted movie lines (the smallest title of an id;
    ``lines`` lines had it), on the driver."""
    titles = (
        parsed.filter(F.col("reason").isNull())
        .groupBy("movie_id")
        .agg(F.min("title").alias("title"), F.count(F.lit(1)).alias("lines"))
    )
    return titles.toPandas()


def title_counts(titles: pd.DataFrame, vocab: pd.DataFrame) -> dict[str, int]:
    """How the movies file covers the vocabulary: ``duplicates_dropped`` (extra lines of an
    id), ``titled_items``, ``items_without_title``, ``not_in_vocabulary`` (never rated)."""
    in_vocab = titles["movie_id"].isin(vocab["movie_id"])
    counts = {
        "duplicates_dropped": int((titles["lines"] - 1).sum()),
        "titled_items": int(in_vocab.sum()),
        "items_without_title": int(len(vocab) - in_vocab.sum()),
        "not_in_vocabulary": int((~in_vocab).sum()),
    }
    log.info(
        "ingest: movies: %d items titled, %d items without title, %d movies never rated, "
        "%d duplicate movie lines",
        counts["titled_items"],
        counts["items_without_title"],
        counts["not_in_vocabulary"],
        counts["duplicates_dropped"],
    )
    return counts


def test_counts(test_rows: DataFrame, train_rows: DataFrame) -> dict[str, Any]:
    """The test part of the summary from the test users' rows (``user_rows`` with
    ``keep_unknown``, and the flag ``_known``: the user has training ratings) and the
    training users' rows: ``ratings`` (pairs), ``accepted`` (lines), ``unknown_user_pairs``,
    ``unknown_item_pairs``, ``pairs``, ``pairs_also_in_train``, ``users``."""
    train = train_rows.select("user_id", F.col("items").alias("_train_items"))
    joined = test_rows.join(train, "user_id", "left")
    known = F.col("_known")
    pairs = F.size("items") + F.col("unknown_item_pairs")
    also = F.size(F.array_intersect("items", "_train_items"))
    agg = joined.agg(
        F.coalesce(F.sum(pairs), F.lit(0)).alias("ratings"),
        F.coalesce(F.sum("lines"), F.lit(0)).alias("accepted"),
        F.coalesce(F.sum(F.when(~known, pairs)), F.lit(0)).alias("unknown_user_pairs"),
        F.coalesce(F.sum(F.when(known, F.col("unknown_item_pairs"))), F.lit(0)).alias(
            "unknown_item_pairs"
        ),
        F.coalesce(F.sum(F.when(known, F.size("items"))), F.lit(0)).alias("pairs"),
        F.coalesce(F.sum(F.when(known, also)), F.lit(0)).alias("pairs_also_in_train"),
        F.count_if(known & (F.size("items") > 0)).alias("users"),
    ).first()
    result = {key: int(agg[key]) for key in agg.asDict()}
    result["duplicates_dropped"] = result["accepted"] - result["ratings"]
    return result
