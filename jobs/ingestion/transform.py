"""Ingest, step 2: accepted ratings -> deduplicated pairs, the item vocabulary and one row per
user with a training batch, written as Parquet (the outputs ``jobs/ingest.py`` lists)."""

from __future__ import annotations

import logging
import math
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.common.errors import JobError

log = logging.getLogger("rbm-reco.ingest")

USERS_PER_TRAIN_FILE = 20_000
MIN_USERS_PER_FILE = 100
TEST_BATCH = -1  # the batch value of every test row


def accepted_rows(parsed: DataFrame) -> DataFrame:
    """``user_id, movie_id, rating, ts`` of the accepted lines of a parsed input."""
    return parsed.filter(F.col("reason").isNull()).select("user_id", "movie_id", "rating", "ts")


def dedupe_ratings(accepted: DataFrame) -> DataFrame:
    """One row per (user, movie): the latest timestamp wins, ties go to the higher rating.

    ``accepted``: ``user_id, movie_id, rating, ts`` with ``|ts| <= MAX_ABS_TIMESTAMP``.
    Returns ``user_id, movie_id, rating tinyint, n int`` (``n``: the accepted lines of the
    pair, so ``sum(n) - count`` is the number of duplicates dropped). (ts, rating) is packed
    into one bigint so that Spark can use a hash aggregate.
    """
    key = F.col("ts") * 8 + F.col("rating").cast("bigint")
    return (
        accepted.groupBy("user_id", "movie_id")
        .agg(F.max(key).alias("_k"), F.count(F.lit(1)).alias("n"))
        .select(
            "user_id",
            "movie_id",
            F.col("_k").bitwiseAND(7).cast("tinyint").alias("rating"),
            F.col("n").cast("int").alias("n"),
        )
    )


def _one_partition(id_column: str) -> Column:
    """A window partition key that puts every row in one partition (ids are never null).

    Not a literal: Spark drops literal partition keys and then warns about a window
    without partitions on every run.
    """
    return F.col(id_column).isNull()


def build_vocabulary(train: DataFrame, titles: DataFrame | None = None) -> DataFrame:
    """``item_idx, movie_id, title, n_ratings`` for the movies rated in ``train``.

    ``item_idx`` is dense 0..n-1 in ascending ``movie_id`` order. The single-partition
    window is fine: a catalogue has thousands to a few hundred thousand movies.
    """
    counts = train.groupBy("movie_id").agg(F.count(F.lit(1)).cast("int").alias("n_ratings"))
    order = Window.partitionBy(_one_partition("movie_id")).orderBy("movie_id")
    vocab = counts.withColumn("item_idx", (F.row_number().over(order) - 1).cast("int"))
    if titles is None:
        vocab = vocab.withColumn("title", F.lit(None).cast("string"))
    else:
        vocab = vocab.join(F.broadcast(titles), "movie_id", "left")
    return vocab.select("item_idx", "movie_id", "title", "n_ratings")


def pivot_users(ratings: DataFrame, vocab: DataFrame) -> DataFrame:
    """One row per user: ``user_id, items array<int>, ratings array<tinyint>``.

    ``ratings`` holds ``user_id, movie_id, rating`` (1..5); movies absent from ``vocab``
    are dropped (inner join). ``items`` ascend and ``ratings`` are aligned with them: each
    pair is packed as ``item_idx * 8 + rating`` so that sorting plain longs orders both.
    """
    indexed = ratings.join(F.broadcast(vocab.select("movie_id", "item_idx")), "movie_id")
    packed = F.col("item_idx").cast("bigint") * 8 + F.col("rating").cast("bigint")
    return (
        indexed.groupBy("user_id")
        .agg(F.sort_array(F.collect_list(packed)).alias("_v"))
        .select(
            "user_id",
            F.transform("_v", lambda x: F.shiftright(x, 3).cast("int")).alias("items"),
            F.transform("_v", lambda x: x.bitwiseAND(7).cast("tinyint")).alias("ratings"),
        )
    )


def assign_batches(users: DataFrame, batch_size: int, seed: int) -> DataFrame:
    """``user_id, batch``: users shuffled by ``xxhash64(user_id, seed)`` (ties: user_id), cut
    into consecutive chunks of ``batch_size``. Deterministic for a seed and a user set."""
    order = Window.partitionBy(_one_partition("user_id")).orderBy(
        F.xxhash64(F.col("user_id"), F.lit(int(seed))), F.col("user_id")
    )
    return users.select(
        "user_id",
        F.floor((F.row_number().over(order) - 1) / F.lit(batch_size)).cast("int").alias("batch"),
    )


def write_parquet(df: DataFrame, path: str) -> None:
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "static")  # replace the whole folder on a re-run
        .parquet(path)
    )


def write_vectors(vectors: DataFrame, n_users: int, path: str) -> None:
    """Per-user rows sorted by user_id, in about one file per USERS_PER_TRAIN_FILE users and
    at least two files per core (so scoring reads them in parallel without a shuffle), but
    never fewer than MIN_USERS_PER_FILE users a file (no swarm of tiny files on a big cluster)."""
    per_core = 2 * vectors.sparkSession.sparkContext.defaultParallelism
    wanted = max(per_core, n_users // USERS_PER_TRAIN_FILE)
    n_files = max(1, min(wanted, n_users // MIN_USERS_PER_FILE))
    ordered = vectors.repartitionByRange(n_files, "user_id").sortWithinPartitions("user_id")
    write_parquet(ordered.select("user_id", "items", "ratings", "batch"), path)


def write_test_rows(
    parsed: DataFrame, train: DataFrame, vocab: DataFrame, path: str, cache
) -> dict[str, Any]:
    """Dedupe the test ratings, map them through the training vocabulary, write them to
    ``path``; the test part of the summary (``accepted``: the accepted lines read again)."""
    known_users = train.select("user_id").distinct().withColumn("_user_known", F.lit(True))
    in_train = train.select("user_id", "movie_id").withColumn("_in_train", F.lit(True))
    tagged = cache(
        dedupe_ratings(accepted_rows(parsed))
        .join(known_users, "user_id", "left")
        .join(F.broadcast(vocab.select("movie_id", "item_idx")), "movie_id", "left")
        .join(in_train, ["user_id", "movie_id"], "left")
    )
    user_known = F.col("_user_known").isNotNull()
    item_known = F.col("item_idx").isNotNull()
    kept = user_known & item_known
    agg = tagged.agg(
        F.count(F.lit(1)).alias("ratings"),
        F.coalesce(F.sum("n"), F.lit(0)).alias("accepted"),
        F.count_if(~user_known).alias("unknown_user_pairs"),
        F.count_if(user_known & ~item_known).alias("unknown_item_pairs"),
        F.count_if(kept).alias("pairs"),
        F.count_if(kept & F.col("_in_train").isNotNull()).alias("pairs_also_in_train"),
        F.count_distinct(F.when(kept, F.col("user_id"))).alias("users"),
    ).first()
    parsed.unpersist()
    result = {key: int(agg[key]) for key in agg.asDict()}
    result["duplicates_dropped"] = result["accepted"] - result["ratings"]
    kept_rows = tagged.filter(kept).select("user_id", "movie_id", "rating")
    vectors = pivot_users(kept_rows, vocab).withColumn("batch", F.lit(TEST_BATCH))
    write_vectors(vectors, result["users"], path)
    log.info(
        "ingest: test: %d pairs of %d users kept -> %s; excluded %d pairs of unknown users and "
        "%d of unknown movies; %d pairs also in train; %d duplicates dropped",
        result["pairs"],
        result["users"],
        path,
        result["unknown_user_pairs"],
        result["unknown_item_pairs"],
        result["pairs_also_in_train"],
        result["duplicates_dropped"],
    )
    return result


def dedupe_training(
    parsed: DataFrame, accepted: int, cache
) -> tuple[DataFrame, dict[str, int]]:
    """The deduplicated training pairs (cached with ``cache``) and their counts: ``ratings``,
    ``duplicates_dropped``, ``users``. ``accepted``: the accepted lines counted when the input
    was validated; a different count now means the input changed during ingest."""
    train = cache(dedupe_ratings(accepted_rows(parsed)))
    agg = train.agg(
        F.count(F.lit(1)).alias("ratings"),
        F.coalesce(F.sum("n"), F.lit(0)).alias("accepted"),
        F.count_distinct("user_id").alias("users"),
    ).first()
    parsed.unpersist()  # the deduplicated ratings are all that is needed now
    if agg["accepted"] != accepted:  # cache evicted and the input changed since
        raise JobError(
            f"ratings input changed during ingest: {accepted} accepted lines "
            f"counted, then {agg['accepted']} read"
        )
    return train, {
        "ratings": int(agg["ratings"]),
        "duplicates_dropped": int(agg["accepted"] - agg["ratings"]),
        "users": int(agg["users"]),
    }


def movie_titles(parsed: DataFrame) -> DataFrame:
    """``movie_id, title, _n`` of the accepted movie lines (the first title of an id; ``_n``
    lines had it)."""
    return (
        parsed.filter(F.col("reason").isNull())
        .groupBy("movie_id")
        .agg(F.min("title").alias("title"), F.count(F.lit(1)).alias("_n"))
    )


def write_vocabulary(
    spark, train: DataFrame, titles: DataFrame | None, path: str
) -> tuple[DataFrame, int]:
    """Write the item vocabulary of ``train`` to ``path``; (the vocabulary read back, its
    size)."""
    vocab = build_vocabulary(train.select("movie_id"), titles)
    write_parquet(vocab.coalesce(1), path)
    vocab = spark.read.parquet(path)
    return vocab, vocab.count()


def title_counts(titles: DataFrame, vocab: DataFrame, n_items: int) -> dict[str, int]:
    """How the movies file covers the vocabulary: ``duplicates_dropped`` (extra lines of an
    id), ``titled_items``, ``items_without_title``, ``not_in_vocabulary`` (never rated)."""
    with_vocab = titles.join(vocab.select("movie_id", F.lit(1).alias("_in")), "movie_id", "left")
    m = with_vocab.agg(
        F.coalesce(F.sum(F.col("_n") - 1), F.lit(0)).alias("dups"),
        F.count(F.col("_in")).alias("titled"),
        F.count(F.lit(1)).alias("movies"),
    ).first()
    counts = {
        "duplicates_dropped": int(m["dups"]),
        "titled_items": int(m["titled"]),
        "items_without_title": int(n_items - m["titled"]),
        "not_in_vocabulary": int(m["movies"] - m["titled"]),
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


def write_training_rows(
    train: DataFrame, vocab: DataFrame, n_users: int, batch_size: int, seed: int, path: str
) -> int:
    """Write one row per training user with its batch to ``path``; the number of batches."""
    batches = assign_batches(train.select("user_id").distinct(), batch_size, seed)
    vectors = pivot_users(train, vocab).join(batches, "user_id")
    write_vectors(vectors, n_users, path)
    n_batches = math.ceil(n_users / batch_size)
    log.info(
        "ingest: train: %d users in %d batches of %d -> %s", n_users, n_batches, batch_size, path
    )
    return n_batches
