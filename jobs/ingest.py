"""Ingest: validate a MovieLens-style ratings log, quarantine bad lines, pivot per user.

Inputs
------
``ratings`` (and the optional held-out ``test``): a file, a directory (every part file
in it), or a Hadoop glob, on any Hadoop-compatible file system; gzip/bz2 files are
decompressed by extension. No header. The format is detected per line:
``UserID::MovieID::Rating::Timestamp`` (MovieLens 1M/10M) when the line contains ``::``,
else tab-separated ``user\\tmovie\\trating\\ttimestamp`` (MovieLens 100k ``u.data``).
A UTF-8 byte-order mark at the start of a line, a trailing ``\\r``, spaces around the line
and its fields, and one trailing delimiter (``1::2::3::4::``) are tolerated. A rating
written as ``4.0`` is the integer 4; ``3.5`` is rejected.

``movies`` (optional): ``MovieID::Title::Genres`` (MovieLens 1M/10M ``movies.dat``) or
``id|title|...`` (MovieLens 100k ``u.item``), both read as ISO-8859-1 (latin-1). Titles
join onto the item vocabulary; blank lines are skipped by the CSV reader and not counted.

Every line of every input is either accepted or quarantined with exactly one reason
(``accepted + quarantined == lines_read`` per input); see ``RATING_REASONS`` and
``MOVIE_REASONS``. Duplicate (user, movie) pairs are accepted lines: the one with the
latest timestamp is kept (ties: the higher rating) and the others are counted as
``duplicates_dropped``. When more than ``ingest.max_bad_fraction`` of the ratings (or
of the test) lines are quarantined, the quarantine and the summary are written and the
job fails with a one-line ``BadInputError`` (exit code 3). Malformed movie lines are
quarantined but do not count toward that fraction.

Outputs under ``OUT`` (each replaced by a re-run)
------------------------------------------------
``OUT/ingest/items/``  Parquet ``item_idx int, movie_id int, title string?, n_ratings int``:
    the movies with at least one accepted training rating, ``item_idx`` dense 0..n-1 in
    ascending ``movie_id`` order; ``n_ratings`` counts training ratings after dedup.
``OUT/ingest/train/``  Parquet, one row per training user, sorted by ``user_id``:
    ``user_id int, items array<int>, ratings array<tinyint>, batch int``; ``items`` are
    item indices in ascending order and ``ratings`` are aligned with them. ``batch``:
    users ordered by ``xxhash64(user_id, train.seed)`` (ties by ``user_id``) and cut into
    consecutive chunks of ``ingest.batch_size`` users; ids 0..ceil(users/batch_size)-1,
    every batch full but the last.
``OUT/ingest/test/``   only with a test input: the same schema, items mapped through the
    *training* vocabulary, and ``batch = -1`` for every row (test users are not assigned
    training batches). Test pairs whose user has no training rating
    (``unknown_user_pairs``) or, for a known user, whose movie is not in the training
    vocabulary (``unknown_item_pairs``) are excluded and counted. Pairs that also occur in
    training are kept and counted (``pairs_also_in_train``). Without a test input a stale
    ``OUT/ingest/test/`` from an earlier run is deleted.
``OUT/quarantine/``    Parquet ``input string ('ratings'|'test'|'movies'), source string,
    line string, reason string``; written on every run, empty (with schema) when nothing
    was rejected.
``OUT/ingest_summary.json``  counts, reasons, sizes, paths, timings and ``status``
    (``ok`` or ``failed`` with ``error``); see ``run_ingest``.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):  # spark-submit jobs/ingest.py: make the jobs package importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pyspark import StorageLevel  # noqa: E402
from pyspark.sql import Column, DataFrame, Window  # noqa: E402
from pyspark.sql import functions as F  # noqa: E402
from pyspark.sql import types as T  # noqa: E402

from jobs import fs  # noqa: E402
from jobs.common import (  # noqa: E402
    BadInputError,
    JobError,
    UsageError,
    add_common_arguments,
    get_spark,
    join_path,
    resolve_conf,
    run_main,
    setup_logging,
    timed,
)

log = logging.getLogger("rbm-reco.ingest")

INT_MAX = 2**31 - 1
USERS_PER_TRAIN_FILE = 20_000
MIN_USERS_PER_FILE = 100
TEST_BATCH = -1  # the batch value of every test row

# Quarantine reasons, in the order they are checked (the first that applies is recorded).
BLANK_LINE = "blank line"
WRONG_FIELD_COUNT = "wrong field count"
NON_NUMERIC_USER = "non-numeric user id"
USER_OUT_OF_RANGE = "user id out of range"
NON_POSITIVE_USER = "non-positive user id"
NON_NUMERIC_MOVIE = "non-numeric movie id"
MOVIE_OUT_OF_RANGE = "movie id out of range"
NON_POSITIVE_MOVIE = "non-positive movie id"
EMPTY_RATING = "empty rating"
NON_NUMERIC_RATING = "non-numeric rating"
NON_INTEGER_RATING = "non-integer rating"
RATING_OUT_OF_RANGE = "rating out of range"
NON_NUMERIC_TIMESTAMP = "non-numeric timestamp"
TIMESTAMP_OUT_OF_RANGE = "timestamp out of range"
EMPTY_TITLE = "empty title"

RATING_REASONS = (
    BLANK_LINE,
    WRONG_FIELD_COUNT,
    NON_NUMERIC_USER,
    USER_OUT_OF_RANGE,
    NON_POSITIVE_USER,
    NON_NUMERIC_MOVIE,
    MOVIE_OUT_OF_RANGE,
    NON_POSITIVE_MOVIE,
    EMPTY_RATING,
    NON_NUMERIC_RATING,
    NON_INTEGER_RATING,
    RATING_OUT_OF_RANGE,
    NON_NUMERIC_TIMESTAMP,
    TIMESTAMP_OUT_OF_RANGE,
)
MOVIE_REASONS = (
    BLANK_LINE,
    WRONG_FIELD_COUNT,
    NON_NUMERIC_MOVIE,
    MOVIE_OUT_OF_RANGE,
    NON_POSITIVE_MOVIE,
    EMPTY_TITLE,
)

MIN_RATING, MAX_RATING = 1, 5

# --------------------------------------------------------------------------- CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ingest flags, plus the common ones (--conf, --master, --set, --log-level)."""
    parser.add_argument(
        "--ratings",
        required=True,
        help="ratings file, directory or glob (local path or Hadoop URI; .gz/.bz2 ok)",
    )
    parser.add_argument("--test", help="held-out test ratings (same formats); optional")
    parser.add_argument(
        "--movies", help="movies file for titles (movies.dat '::' or u.item '|', latin-1)"
    )
    parser.add_argument("--out", required=True, help="output root (local path or Hadoop URI)")
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        default=None,
        help="fail when more than this fraction of lines is quarantined "
        "(default: the config's ingest.max_bad_fraction)",
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=None,
        help="users per training batch (default: the config's ingest.batch_size)",
    )
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rbm-reco ingest",
        description="Validate ratings, quarantine bad lines, write per-user sparse vectors.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    conf = resolve_conf(
        args,
        {"ingest": {"max_bad_fraction": args.max_bad_fraction, "batch_size": args.batch_size}},
    )
    _conf_values(conf)  # a bad value fails before Spark starts
    spark = get_spark(conf, args.master)
    summary = run_ingest(spark, conf, args.ratings, args.out, test=args.test, movies=args.movies)
    print(summary_line(summary))
    return 0


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the console: what was read, rejected and written."""
    line = (
        f"ingest: {summary['lines_read']} lines, {summary['accepted']} accepted, "
        f"{summary['quarantined']} quarantined, {summary['duplicates_dropped']} duplicates "
        f"dropped; {summary['users']} users, {summary['items']} items, "
        f"{summary['ratings']} ratings, {summary['batches']} batches"
    )
    test = summary.get("test")
    if test:
        line += f"; test: {test['users']} users, {test['pairs']} pairs"
    return f"{line} -> {summary['out']}"


# --------------------------------------------------------------------------- parsing

_INTEGER = r"^\s*[+-]?[0-9]+\s*$"
_DECIMAL = r"^\s*[+-]?[0-9]+(\.[0-9]+)?\s*$"
_BLANK = r"^\s*$"
# |ts| bound that lets (ts, rating) pack into one bigint, ts * 8 + rating (year ~1.8e10).
MAX_ABS_TIMESTAMP = 2**59


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first check whose condition holds; null when none does."""
    expr = None
    for cond, reason in checks:
        expr = F.when(cond, F.lit(reason)) if expr is None else expr.when(cond, F.lit(reason))
    return expr


def _id_checks(raw: Column, value: Column, non_numeric: str, too_big: str, non_positive: str):
    """(condition, reason) pairs for an id field; ``value`` = try_cast(raw as bigint)."""
    return [
        (value.isNull() & ~raw.rlike(_INTEGER), non_numeric),
        (value.isNull() | (value > INT_MAX), too_big),
        (value <= 0, non_positive),
    ]


def parse_ratings(lines: DataFrame) -> DataFrame:
    """Validate and type raw rating lines, with Spark SQL functions only (no Python UDF).

    Parameters
    ----------
    lines : DataFrame with ``line string`` (the raw line) and ``source string``.

    Returns
    -------
    DataFrame ``line, source, reason string, user_id int, movie_id int, rating tinyint,
    ts bigint``: ``reason`` is null for an accepted line (and the typed columns are set),
    else the first failed check of ``RATING_REASONS`` (and the typed columns are null).
    """
    # Without a BOM, CRs and surrounding spaces (not tabs: a trailing tab is a delimiter).
    cleaned = lines.withColumn("_c", F.btrim(F.col("line"), F.lit(" \r\ufeff")))
    c = F.col("_c")
    split = cleaned.withColumn(
        "_f",
        F.when(c.contains("::"), F.split(c, "::", -1))
        .when(c.contains("\t"), F.split(c, "\t", -1))
        .otherwise(F.array(c)),
    )
    f = F.col("_f")
    n = F.size(f)
    fields = split.select(
        "line",
        "source",
        "_c",
        F.when(F.get(f, n - 1) == "", n - 1).otherwise(n).alias("_n"),
        F.get(f, 0).alias("_u"),
        F.get(f, 1).alias("_m"),
        F.get(f, 2).alias("_r"),
        F.get(f, 3).alias("_t"),
    )
    u, m, r, t = (F.col(name) for name in ("_u", "_m", "_r", "_t"))
    valued = fields.withColumns(
        {
            "_uv": u.try_cast("bigint"),
            "_mv": m.try_cast("bigint"),
            "_ri": r.try_cast("int"),
            "_tv": t.try_cast("bigint"),
        }
    )
    uv, mv, ri, tv = (F.col(name) for name in ("_uv", "_mv", "_ri", "_tv"))
    # The common case, cheaply: four well-formed integers in range.
    fast = (
        (F.col("_n") == 4)
        & uv.between(1, INT_MAX)
        & mv.between(1, INT_MAX)
        & ri.between(MIN_RATING, MAX_RATING)
        & tv.between(-MAX_ABS_TIMESTAMP, MAX_ABS_TIMESTAMP)
    )
    rd = r.try_cast("double")  # only evaluated for lines that are not on the fast path
    checks = [(c.rlike(_BLANK), BLANK_LINE), (F.col("_n") != 4, WRONG_FIELD_COUNT)]
    checks += _id_checks(u, uv, NON_NUMERIC_USER, USER_OUT_OF_RANGE, NON_POSITIVE_USER)
    checks += _id_checks(m, mv, NON_NUMERIC_MOVIE, MOVIE_OUT_OF_RANGE, NON_POSITIVE_MOVIE)
    checks += [
        (r.rlike(_BLANK), EMPTY_RATING),
        (~r.rlike(_DECIMAL), NON_NUMERIC_RATING),
        (rd != F.rint(rd), NON_INTEGER_RATING),
        ((rd < MIN_RATING) | (rd > MAX_RATING), RATING_OUT_OF_RANGE),
        (tv.isNull() & ~t.rlike(_INTEGER), NON_NUMERIC_TIMESTAMP),
        (tv.isNull(), TIMESTAMP_OUT_OF_RANGE),
        (~tv.between(-MAX_ABS_TIMESTAMP, MAX_ABS_TIMESTAMP), TIMESTAMP_OUT_OF_RANGE),
    ]
    with_reason = valued.withColumns(
        {"_fast": fast, "reason": F.when(fast, F.lit(None)).otherwise(_first_reason(checks))}
    )
    ok = F.col("reason").isNull()
    return with_reason.select(
        "line",
        "source",
        "reason",
        F.when(ok, uv.try_cast("int")).alias("user_id"),
        F.when(ok, mv.try_cast("int")).alias("movie_id"),
        F.when(F.col("_fast"), ri.try_cast("tinyint"))
        .when(ok, rd.try_cast("tinyint"))
        .alias("rating"),
        F.when(ok, tv).alias("ts"),
    )


def parse_movies(lines: DataFrame) -> DataFrame:
    """Validate movie lines (``id::title::genres`` or ``id|title|...``).

    Returns ``line, source, reason, movie_id int, title string``; ``reason`` is null for
    an accepted line, else the first failed check of ``MOVIE_REASONS``.
    """
    # A UTF-8 BOM read as latin-1 is the three characters "\u00ef\u00bb\u00bf".
    cleaned = lines.withColumn(
        "_c",
        F.trim(F.regexp_replace(F.col("line"), "^(\ufeff|\u00ef\u00bb\u00bf)|\r+$", "")),
    )
    c = F.col("_c")
    split = cleaned.withColumn(
        "_f",
        F.when(c.contains("::"), F.split(c, "::", -1))
        .when(c.contains("|"), F.split(c, r"\|", -1))
        .otherwise(F.array(c)),
    )
    f = F.col("_f")
    fields = split.select(
        "line",
        "source",
        "_c",
        F.size(f).alias("_n"),
        F.trim(F.get(f, 0)).alias("_m"),
        F.trim(F.get(f, 1)).alias("_title"),
    ).withColumn("_mv", F.col("_m").try_cast("bigint"))
    m, mv, title = F.col("_m"), F.col("_mv"), F.col("_title")
    checks = [(c.rlike(_BLANK), BLANK_LINE), (F.col("_n") < 2, WRONG_FIELD_COUNT)]
    checks += _id_checks(m, mv, NON_NUMERIC_MOVIE, MOVIE_OUT_OF_RANGE, NON_POSITIVE_MOVIE)
    checks += [(title == "", EMPTY_TITLE)]
    with_reason = fields.withColumn("reason", _first_reason(checks))
    ok = F.col("reason").isNull()
    return with_reason.select(
        "line",
        "source",
        "reason",
        F.when(ok, mv.try_cast("int")).alias("movie_id"),
        F.when(ok, title).alias("title"),
    )


def read_lines(spark, path: str) -> DataFrame:
    """The lines of a ratings file/dir/glob as ``line, source`` (UTF-8; .gz/.bz2 decoded)."""
    return spark.read.text(path).select(
        F.col("value").alias("line"), F.col("_metadata.file_path").alias("source")
    )


def read_latin1_lines(spark, path: str) -> DataFrame:
    """The lines of a latin-1 text file/dir/glob as ``line, source``.

    Spark's text reader always decodes UTF-8, so this uses the CSV reader with a separator
    that never occurs in MovieLens files and quoting and escaping switched off. The CSV
    reader skips blank lines.
    """
    schema = T.StructType([T.StructField("line", T.StringType(), True)])
    return (
        spark.read.schema(schema)
        .option("encoding", "ISO-8859-1")
        .option("sep", "\u0001")
        .option("quote", "")
        .option("escape", "")
        .option("header", "false")
        .option("mode", "PERMISSIVE")
        .csv(path)
        .select(
            F.coalesce(F.col("line"), F.lit("")).alias("line"),
            F.col("_metadata.file_path").alias("source"),
        )
    )


def compact(parsed: DataFrame) -> DataFrame:
    """What the rest of the job needs of parsed lines, small enough to cache: the raw line
    and its source are kept for quarantined lines only."""
    bad = F.col("reason").isNotNull()
    return parsed.select(
        "reason",
        "user_id",
        "movie_id",
        "rating",
        "ts",
        F.when(bad, F.col("line")).alias("line"),
        F.when(bad, F.col("source")).alias("source"),
    )


# --------------------------------------------------------------------------- transforms


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


# --------------------------------------------------------------------------- I/O helpers


def check_path(spark, path: str, what: str) -> None:
    """Raise ``BadInputError`` unless ``path`` (a file, directory or glob) matches something."""
    try:
        jvm = spark._jvm
        hpath = jvm.org.apache.hadoop.fs.Path(path)
        hfs = hpath.getFileSystem(spark._jsc.hadoopConfiguration())
        matches = hfs.globStatus(hpath)
    except Exception as exc:  # py4j wraps IOException, IllegalArgumentException, ...
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise BadInputError(f"cannot access {what} path {path}: {first}") from exc
    if matches is None or len(matches) == 0:
        raise BadInputError(f"{what} path not found: {path}")


def _write_parquet(df: DataFrame, path: str) -> None:
    (
        df.write.mode("overwrite")
        .option("partitionOverwriteMode", "static")  # replace the whole folder on a re-run
        .parquet(path)
    )


def _reason_counts(rows, inputs) -> dict[str, dict[str, Any]]:
    """Per input: lines_read, accepted, quarantined, reasons, bad_fraction from
    ``(input, reason, count)`` rows."""
    stats = {name: {"lines_read": 0, "quarantined": 0, "reasons": {}} for name in inputs}
    for row in rows:
        entry = stats[row["input"]]
        entry["lines_read"] += row["count"]
        if row["reason"] is not None:
            entry["quarantined"] += row["count"]
            entry["reasons"][row["reason"]] = row["count"]
    for entry in stats.values():
        entry["accepted"] = entry["lines_read"] - entry["quarantined"]
        entry["reasons"] = dict(sorted(entry["reasons"].items()))
        entry["bad_fraction"] = (
            round(entry["quarantined"] / entry["lines_read"], 6) if entry["lines_read"] else 0.0
        )
    return stats


def _conf_values(conf: dict[str, Any]) -> tuple[float, int, int]:
    ingest = conf.get("ingest", {})
    try:
        max_bad = float(ingest.get("max_bad_fraction", 0.01))
        batch_size = int(ingest.get("batch_size", 100))
        seed = int(conf.get("train", {}).get("seed", 42))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad ingest/train config value: {exc}") from exc
    if not 0.0 <= max_bad <= 1.0 or math.isnan(max_bad):
        raise UsageError(f"ingest.max_bad_fraction must be within [0, 1], got {max_bad}")
    if batch_size < 1:
        raise UsageError(f"ingest.batch_size must be >= 1, got {batch_size}")
    return max_bad, batch_size, seed


# --------------------------------------------------------------------------- the job


def run_ingest(
    spark,
    conf: dict[str, Any],
    ratings: str,
    out: str,
    test: str | None = None,
    movies: str | None = None,
) -> dict[str, Any]:
    """Validate, quarantine, dedupe and pivot; write the outputs listed in the module doc.

    Returns the summary it also writes to ``OUT/ingest_summary.json``. Top-level keys:
    ``status, lines_read, accepted, quarantined, bad_fraction, max_bad_fraction, reasons,
    duplicates_dropped, ratings, users, items, batches, batch_size, seed``, the paths
    (``ratings_path, test_path, movies_path, out, outputs``), ``timings`` and, when given,
    ``test`` (the same counts plus ``unknown_user_pairs, unknown_item_pairs,
    pairs_also_in_train, pairs, users``) and ``movies`` (``lines_read, accepted,
    quarantined, reasons, duplicates_dropped, titled_items, items_without_title,
    not_in_vocabulary``). On failure (``BadInputError``) the summary has ``status =
    "failed"``, the ``error`` and the counts known by then, and is written before raising.
    """
    started = time.perf_counter()
    max_bad, batch_size, seed = _conf_values(conf)
    paths = {
        "quarantine": join_path(out, "quarantine"),
        "items": join_path(out, "ingest", "items"),
        "train": join_path(out, "ingest", "train"),
        "test": join_path(out, "ingest", "test"),
        "summary": join_path(out, "ingest_summary.json"),
    }
    timings: dict[str, float] = {}
    summary: dict[str, Any] = {
        "status": "running",
        "ratings_path": ratings,
        "test_path": test,
        "movies_path": movies,
        "out": out,
        "max_bad_fraction": max_bad,
        "batch_size": batch_size,
        "seed": seed,
        "timings": timings,
    }

    def fail(message: str) -> BadInputError:
        summary["status"] = "failed"
        summary["error"] = message
        summary["timings"]["total"] = round(time.perf_counter() - started, 3)
        fs.write_json(spark, paths["summary"], summary)
        log.error("%s (summary: %s)", message, paths["summary"])
        return BadInputError(message)

    check_path(spark, ratings, "ratings")
    if test is not None:
        check_path(spark, test, "test")
    if movies is not None:
        check_path(spark, movies, "movies")
    log.info("ingest: ratings=%s test=%s movies=%s out=%s", ratings, test, movies, out)

    cached: list[DataFrame] = []

    def cache(df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        cached.append(df)
        return df

    try:
        # Extract: parse every input once; the compact parse is cached for what follows.
        parsed = {"ratings": cache(compact(parse_ratings(read_lines(spark, ratings))))}
        if test is not None:
            parsed["test"] = cache(compact(parse_ratings(read_lines(spark, test))))
        if movies is not None:
            parsed["movies"] = cache(parse_movies(read_latin1_lines(spark, movies)))

        with timed("ingest: validate", timings):
            union = None
            for name, df in parsed.items():
                part = df.select(F.lit(name).alias("input"), "reason")
                union = part if union is None else union.unionByName(part)
            stats = _reason_counts(union.groupBy("input", "reason").count().collect(), parsed)
        with timed("ingest: write quarantine", timings):
            quarantine = None
            for name, df in parsed.items():
                part = df.filter(F.col("reason").isNotNull()).select(
                    F.lit(name).alias("input"), "source", "line", "reason"
                )
                quarantine = part if quarantine is None else quarantine.unionByName(part)
            _write_parquet(quarantine, paths["quarantine"])

        for name, entry in stats.items():
            log.info(
                "ingest: %s: %d lines read, %d accepted, %d quarantined (fraction %.4f)%s",
                name,
                entry["lines_read"],
                entry["accepted"],
                entry["quarantined"],
                entry["bad_fraction"],
                "".join(f"; {reason}: {n}" for reason, n in entry["reasons"].items()),
            )
        summary.update(stats["ratings"])
        summary.update(duplicates_dropped=None, ratings=None, users=None, items=None, batches=None)
        for name in ("test", "movies"):
            if name in stats:
                summary[name] = dict(stats[name])
        summary["outputs"] = {"quarantine": paths["quarantine"]}

        for name, path in (("ratings", ratings), ("test", test)):
            entry = stats.get(name)
            if entry is None:
                continue
            if entry["lines_read"] == 0:
                raise fail(f"{name} input is empty: no lines in {path}")
            if entry["accepted"] == 0:
                raise fail(
                    f"{name} input has no valid line: all {entry['lines_read']} lines of "
                    f"{path} were quarantined (see {paths['quarantine']})"
                )
            fraction = entry["quarantined"] / entry["lines_read"]
            if fraction > max_bad:
                raise fail(
                    f"{name} input rejected: {entry['quarantined']} of {entry['lines_read']} "
                    f"lines bad (fraction {fraction:.4f} > max_bad_fraction {max_bad}); "
                    f"quarantine: {paths['quarantine']}"
                )

        summary.update(
            _transform_and_load(spark, parsed, paths, batch_size, seed, summary, timings, cache)
        )
    finally:
        for df in cached:
            df.unpersist()

    summary["status"] = "ok"
    timings["total"] = round(time.perf_counter() - started, 3)
    fs.write_json(spark, paths["summary"], summary)
    log.info("%s (summary: %s)", summary_line(summary), paths["summary"])
    return summary


def _accepted(parsed: DataFrame) -> DataFrame:
    return parsed.filter(F.col("reason").isNull()).select("user_id", "movie_id", "rating", "ts")


def _transform_and_load(
    spark,
    parsed: dict[str, DataFrame],
    paths: dict[str, str],
    batch_size: int,
    seed: int,
    summary: dict[str, Any],
    timings: dict[str, float],
    cache,
) -> dict[str, Any]:
    """Dedupe, build the vocabulary and the per-user vectors, write them; the summary part."""
    result: dict[str, Any] = {}
    with timed("ingest: dedupe", timings):
        train = cache(dedupe_ratings(_accepted(parsed["ratings"])))
        agg = train.agg(
            F.count(F.lit(1)).alias("ratings"),
            F.coalesce(F.sum("n"), F.lit(0)).alias("accepted"),
            F.count_distinct("user_id").alias("users"),
        ).first()
        parsed["ratings"].unpersist()  # the deduped ratings are all that is needed now
    if agg["accepted"] != summary["accepted"]:  # cache evicted and the input changed since
        raise JobError(
            f"ratings input changed during ingest: {summary['accepted']} accepted lines "
            f"counted, then {agg['accepted']} read"
        )
    n_users = int(agg["users"])
    result.update(
        ratings=int(agg["ratings"]),
        duplicates_dropped=int(agg["accepted"] - agg["ratings"]),
        users=n_users,
    )

    titles = None
    if "movies" in parsed:
        titles = cache(
            parsed["movies"]
            .filter(F.col("reason").isNull())
            .groupBy("movie_id")
            .agg(F.min("title").alias("title"), F.count(F.lit(1)).alias("_n"))
        )

    with timed("ingest: write items", timings):
        vocab = build_vocabulary(train.select("movie_id"), titles)
        _write_parquet(vocab.coalesce(1), paths["items"])
        vocab = spark.read.parquet(paths["items"])
        n_items = vocab.count()
    result["items"] = n_items
    log.info(
        "ingest: ratings: %d ratings of %d users on %d items after dropping %d duplicates",
        result["ratings"],
        n_users,
        n_items,
        result["duplicates_dropped"],
    )

    if titles is not None:
        with_vocab = titles.join(
            vocab.select("movie_id", F.lit(1).alias("_in")), "movie_id", "left"
        )
        m = with_vocab.agg(
            F.coalesce(F.sum(F.col("_n") - 1), F.lit(0)).alias("dups"),
            F.count(F.col("_in")).alias("titled"),
            F.count(F.lit(1)).alias("movies"),
        ).first()
        result["movies"] = dict(
            summary["movies"],
            duplicates_dropped=int(m["dups"]),
            titled_items=int(m["titled"]),
            items_without_title=int(n_items - m["titled"]),
            not_in_vocabulary=int(m["movies"] - m["titled"]),
        )
        log.info(
            "ingest: movies: %d items titled, %d items without title, %d movies never rated, "
            "%d duplicate movie lines",
            m["titled"],
            n_items - m["titled"],
            m["movies"] - m["titled"],
            m["dups"],
        )

    with timed("ingest: write train", timings):
        batches = assign_batches(train.select("user_id").distinct(), batch_size, seed)
        vectors = pivot_users(train, vocab).join(batches, "user_id")
        _write_vectors(vectors, n_users, paths["train"])
    result["batches"] = math.ceil(n_users / batch_size)
    log.info(
        "ingest: train: %d users in %d batches of %d -> %s",
        n_users,
        result["batches"],
        batch_size,
        paths["train"],
    )
    outputs = dict(summary["outputs"], items=paths["items"], train=paths["train"])

    if "test" in parsed:
        with timed("ingest: write test", timings):
            test = _test_split(parsed["test"], train, vocab, paths["test"], cache)
        if test.pop("accepted") != summary["test"]["accepted"]:
            raise JobError("test input changed during ingest")
        result["test"] = dict(summary["test"], **test)
        outputs["test"] = paths["test"]
    else:
        fs.delete(spark, paths["test"])  # a stale test split of an earlier run
    result["outputs"] = outputs
    return result


def _write_vectors(vectors: DataFrame, n_users: int, path: str) -> None:
    """Per-user rows sorted by user_id, in about one file per USERS_PER_TRAIN_FILE users and
    at least two files per core (so scoring reads them in parallel without a shuffle), but
    never fewer than MIN_USERS_PER_FILE users a file (no swarm of tiny files on a big cluster)."""
    per_core = 2 * vectors.sparkSession.sparkContext.defaultParallelism
    wanted = max(per_core, n_users // USERS_PER_TRAIN_FILE)
    n_files = max(1, min(wanted, n_users // MIN_USERS_PER_FILE))
    ordered = vectors.repartitionByRange(n_files, "user_id").sortWithinPartitions("user_id")
    _write_parquet(ordered.select("user_id", "items", "ratings", "batch"), path)


def _test_split(
    parsed: DataFrame, train: DataFrame, vocab: DataFrame, path: str, cache
) -> dict[str, Any]:
    """Dedupe the test ratings, map them through the training vocabulary, write them."""
    known_users = train.select("user_id").distinct().withColumn("_user_known", F.lit(True))
    in_train = train.select("user_id", "movie_id").withColumn("_in_train", F.lit(True))
    tagged = cache(
        dedupe_ratings(_accepted(parsed))
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
    _write_vectors(vectors, result["users"], path)
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


if __name__ == "__main__":
    run_main(main, None)
