"""Ingest: validate a ratings log, quarantine bad lines, pivot per user, publish as one unit.

    rbm-reco ingest --ratings R [--test T] [--movies M] --out OUT [--format F]
                    [--columns user=..,item=..,rating=..,time=..] [--rating-scale S]
    rbm-reco ingest --ratings-table db.ratings --out OUT ...

Inputs
------
``ratings`` (and the optional held-out ``test``): a file, a directory (every part file in it),
a Hadoop glob on any Hadoop-compatible file system, or a Spark table (``--ratings-table``,
``--test-table``), in any format of ``jobs.ingestion.sources`` (``::`` and tab lines, CSV with or
without a header, Parquet, tables; gzip/bz2 text decompressed by suffix). In text lines a UTF-8
byte-order mark, a trailing ``\\r``, spaces around the line and its fields, and one trailing
delimiter (``1::2::3::4::``) are tolerated. Lines longer than ``ingest.max_line_bytes`` are not
read (an error for uncompressed files, ``skipped_bytes``).

``movies`` (optional): ``MovieID::Title::Genres`` (MovieLens 1M/10M ``movies.dat``) or
``id|title|...`` (MovieLens 100k ``u.item``), both read as ISO-8859-1 (latin-1), or
``movies.csv`` (``movieId,title,genres``, UTF-8, quoted titles). Titles join onto the item
vocabulary; blank lines of latin-1 files are skipped by the reader and not counted.

Rating scale (``ingest.rating_scale``): ``auto`` (default) reads five stars (1..5) unless more
than 1% of the ratings lines hold a half star (0.5, 1.5, ..., 4.5), then half stars (0.5..5.0);
an input without a rating column is implicit data. ``stars``, ``half-stars``, ``implicit`` and
``LOW..HIGH[/STEP]`` declare it (``rbmcore.data.scale``). The like threshold
(``ingest.like_threshold``, default the scale's midpoint: 3 on both star scales) and the scale
are recorded in ``ingest_summary.json``, the unit's manifest and the model.

Every line of every input is either accepted or quarantined with exactly one reason
(``accepted + quarantined == lines_read`` per input; CSV header lines are counted apart as
``header_lines``); see ``jobs.ingestion.parse``. Duplicate (user, movie) pairs are accepted
lines: the one with the latest timestamp is kept (ties: the higher rating) and the others are
counted as ``duplicates_dropped``. When more than ``ingest.max_bad_fraction`` of the ratings
(or of the test) lines are quarantined, the quarantine and the summary are written and the job
fails with a one-line ``BadInputError`` (exit code 3). Malformed movie lines are quarantined
but do not count toward that fraction.

Outputs under ``OUT``
---------------------
``OUT/ingest/`` one unit (``jobs.ingestion.unit``): written to a staging folder, swapped into
    place whole; ``_ingest.json`` (the manifest: ``ingest_id``, the rating scale, the counts)
    and, each with the same ``_ingest_id``:
``OUT/ingest/items/``  Parquet ``item_idx int, movie_id int, title string?, n_ratings int``:
    the movies with at least one accepted training rating, ``item_idx`` dense 0..n-1 in
    ascending ``movie_id`` order; ``n_ratings`` counts training ratings after dedup.
``OUT/ingest/train/``  Parquet, one row per training user: ``user_id int, items array<int>,
    ratings array<tinyint>, batch int``; ``items`` are item indices in ascending order and
    ``ratings`` the rating codes of the scale aligned with them (on five stars the ratings);
    each file is sorted by ``user_id``. ``batch``: users ordered by
    ``xxhash64(user_id, train.seed)`` (ties by ``user_id``) and cut into consecutive chunks of
    ``ingest.batch_size`` users; ids 0..ceil(users/batch_size)-1, every batch full but the last.
``OUT/ingest/test/``   only with a test input: the same schema, items mapped through the
    *training* vocabulary, and ``batch = -1`` for every row. Test pairs whose user has no
    training rating (``unknown_user_pairs``) or, for a known user, whose movie is not in the
    training vocabulary (``unknown_item_pairs``) are excluded and counted. Pairs that also
    occur in training are kept and counted (``pairs_also_in_train``).
``OUT/quarantine/``    Parquet ``input string ('ratings'|'test'|'movies'), source string,
    line string, reason string``; replaced on every run, success or failure.
``OUT/ingest_summary.json``  counts, reasons, sizes, paths, the scale, timings and ``status``
    (``ok`` or ``failed`` with ``error``); see ``run_ingest``.

The steps: ``jobs.ingestion.sources`` (what an input is, its raw fields),
``jobs.ingestion.parse`` (fields -> typed rows or a reason), ``jobs.ingestion.transform``
(dedupe, vocabulary, per-user rows), ``jobs.ingestion.unit`` (publishing);
``jobs.ingestion.readback`` reads the unit back for train and score.
"""

from __future__ import annotations

import argparse
import logging
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.args import add_common_arguments, output_path, parse_job_args, timed
from jobs.common.config import resolve_conf
from jobs.common.errors import JobError, UsageError, run_main
from jobs.common.session import get_spark, restoring_conf
from jobs.ingestion import unit
from jobs.ingestion.settings import (
    IngestSettings,
    add_input_arguments,
    ingest_settings,
    input_overrides,
)
from jobs.ingestion.transform import (
    TEST_BATCH,
    accepted_rows,
    batch_assignment,
    movie_titles,
    subtract_duplicates,
    test_counts,
    title_counts,
    user_hash,
    user_rows,
    vocabulary,
    write_vectors,
    write_vocabulary,
)
from jobs.ingestion.validate import (
    SHUFFLE_PARTITIONS,
    IngestRun,
    describe_inputs,
    movies_csv_header,
    parse_and_validate,
    shuffle_partitions,
    unreadable_file,
)
from jobs.storage import fs, layout
from rbmcore.data.scale import RatingScale

log = logging.getLogger("rbm-reco.ingest")

def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ingest flags, plus the common ones (--conf, --master, --set, --log-level)."""
    add_input_arguments(parser)
    parser.add_argument("--test", help="held-out test ratings (same formats); optional")
    parser.add_argument("--test-table", help="held-out test ratings as a Spark table")
    parser.add_argument(
        "--movies", help="movies file for titles (movies.dat, u.item or movies.csv)"
    )
    parser.add_argument(
        "--out", required=True, type=output_path, help="output root (local path or Hadoop URI)"
    )
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
    args = parse_job_args("rbm-reco ingest", __doc__, add_arguments, argv)
    if (args.ratings is None) == (args.ratings_table is None):
        raise UsageError("give exactly one of --ratings and --ratings-table")
    overrides = {"max_bad_fraction": args.max_bad_fraction, "batch_size": args.batch_size}
    conf = resolve_conf(args, {"ingest": {**overrides, **input_overrides(args)}})
    ingest_settings(conf)  # a bad value fails before Spark starts
    spark = get_spark(conf, args.master)
    summary = run_ingest(
        spark, conf, args.ratings, args.out, test=args.test, movies=args.movies,
        ratings_table=args.ratings_table, test_table=args.test_table,
    )  # fmt: skip
    print(summary_line(summary))
    return 0


def summary_line(summary: dict[str, Any]) -> str:
    """One line for the console: what was read, rejected and written."""
    line = (
        f"ingest: {summary['lines_read']} lines, {summary['accepted']} accepted, "
        f"{summary['quarantined']} quarantined, {summary['duplicates_dropped']} duplicates "
        f"dropped; {summary['users']} users, {summary['items']} items, "
        f"{summary['ratings']} ratings ({summary['rating_scale']['name']}), "
        f"{summary['batches']} batches"
    )
    test = summary.get("test")
    if test:
        line += f"; test: {test['users']} users, {test['pairs']} pairs"
    return f"{line} -> {summary['out']}"


def run_ingest(
    spark,
    conf: dict[str, Any],
    ratings: str | None,
    out: str,
    test: str | None = None,
    movies: str | None = None,
    ratings_table: str | None = None,
    test_table: str | None = None,
) -> dict[str, Any]:
    """Validate, quarantine, dedupe and pivot; publish the outputs listed in the module doc.

    Returns the summary it also writes to ``OUT/ingest_summary.json``. Top-level keys:
    ``status, ingest_id, lines_read, accepted, quarantined, bad_fraction, max_bad_fraction,
    reasons, duplicates_dropped, ratings, users, items, batches, batch_size, seed,
    rating_scale, newest_timestamp``, the inputs (``ratings_path, test_path, movies_path,
    inputs``), ``out, outputs``, ``timings`` and, when given, ``test`` (the same counts plus
    ``unknown_user_pairs, unknown_item_pairs, pairs_also_in_train, pairs, users``) and
    ``movies`` (``lines_read, accepted, quarantined, reasons, duplicates_dropped,
    titled_items, items_without_title, not_in_vocabulary``). On failure (``BadInputError``)
    the summary has ``status = "failed"``, the ``error`` and the counts known by then, and is
    written before raising; ``OUT/ingest`` is then unchanged.
    """
    settings = ingest_settings(conf)
    run = IngestRun(
        spark,
        out,
        {
            "status": "running",
            "ratings_path": ratings or ratings_table,
            "test_path": test or test_table,
            "movies_path": movies,
            "out": out,
            "max_bad_fraction": settings.max_bad_fraction,
            "batch_size": settings.batch_size,
            "seed": settings.seed,
        },
    )
    if not out or not out.strip().strip("/"):
        raise UsageError(f"--out must name a folder, got {out!r}")
    for path in (layout.ingest_dir(out), layout.quarantine(out)):
        check = unit.is_ingest_unit if path == layout.ingest_dir(out) else unit.is_quarantine
        unit.check_replaceable(spark, path, check)
    sources = describe_inputs(spark, settings, ratings, ratings_table, test, test_table)
    movies_format = movies_csv_header(spark, movies) if movies is not None else None
    run.summary["inputs"] = {name: s.describe() for name, s in sources.items()}
    unit.recover(spark, out)
    log.info("ingest %s: %s -> %s", run.id, ", ".join(
        f"{name}={s.location} ({s.format})" for name, s in sources.items()
    ), out)  # fmt: skip
    try:
        with restoring_conf(spark, SHUFFLE_PARTITIONS):
            partitions = shuffle_partitions(spark, sources)
            spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
            parsed, scale, movie_lines = parse_and_validate(
                spark, run, settings, sources, movies, movies_format
            )
            run.summary.update(load(spark, run, settings, parsed, scale, movie_lines, partitions))
            unit.publish_unit(spark, out, run.id, unit_manifest(run.summary, "test" in parsed))
    except Exception as exc:
        message = unreadable_file(exc)
        if message is None:
            raise
        raise run.fail(message) from None
    finally:
        run.release()
        fs.delete(spark, run.staging)
    summary = run.write_summary("ok")
    log.info("%s (summary: %s)", summary_line(summary), layout.ingest_summary(out))
    return summary


# -- the unit --------------------------------------------------------------------------------


def load(
    spark, run: IngestRun, settings: IngestSettings, parsed: dict[str, DataFrame],
    scale: RatingScale, movie_lines: pd.DataFrame, partitions: int,
) -> dict[str, Any]:  # fmt: skip
    """Dedupe, build the vocabulary (from ``movie_lines``: the accepted training lines per
    movie) and the per-user rows, write them into the staged unit; the summary's part."""
    summary, timings = run.summary, run.timings
    vocab = vocabulary(movie_lines)
    vocab_ids = spark.createDataFrame(vocab[["movie_id", "item_idx"]]).select(
        F.col("movie_id").cast("int"), F.col("item_idx").cast("int")
    )
    with timed("ingest: dedupe and pivot", timings):
        train = run.cache(user_rows(accepted_rows(parsed["ratings"]), vocab_ids, partitions))
        users = train.select(
            "user_id", user_hash(settings.seed).alias("hash"), "lines",
            F.size("items").alias("n"), "extra",
        ).toPandas()  # fmt: skip
    if int(users["lines"].sum()) != summary["accepted"]:
        raise JobError(
            f"ratings input changed during ingest: {summary['accepted']} accepted lines "
            f"counted, then {int(users['lines'].sum())} read"
        )
    vocab = subtract_duplicates(vocab, users["extra"].tolist())
    result = {
        "ratings": int(users["n"].sum()),
        "duplicates_dropped": int(summary["accepted"] - users["n"].sum()),
        "users": len(users),
        "items": len(vocab),
        "rating_scale": scale.to_dict(),
    }
    titles = None
    if "movies" in parsed:
        titles = movie_titles(parsed["movies"])
        result["movies"] = dict(summary["movies"], **title_counts(titles, vocab))
    with timed("ingest: write items", timings):
        write_vocabulary(spark, vocab, titles, run.staged("items"))
    log.info(
        "ingest: ratings: %d ratings of %d users on %d items after dropping %d duplicates",
        result["ratings"], result["users"], result["items"], result["duplicates_dropped"],
    )  # fmt: skip
    batches = batch_assignment(
        users["user_id"].to_numpy(np.int64), users["hash"].to_numpy(np.int64), settings.batch_size
    )
    batch_df = spark.createDataFrame(
        pd.DataFrame({"user_id": users["user_id"].to_numpy(np.int32), "batch": batches})
    ).select(F.col("user_id").cast("int"), F.col("batch").cast("int"))
    with timed("ingest: write train", timings):
        vectors = train.join(F.broadcast(batch_df), "user_id")
        write_vectors(spark, vectors, len(users), run.staged("train"))
    result["batches"] = math.ceil(len(users) / settings.batch_size)
    log.info("ingest: train: %d users in %d batches of %d", len(users), result["batches"],
             settings.batch_size)  # fmt: skip
    outputs = dict(summary["outputs"], items=layout.items_vocab(run.out),
                   train=layout.train_ratings(run.out))  # fmt: skip
    if "test" in parsed:
        with timed("ingest: write test", timings):
            test = load_test(spark, run, parsed["test"], vocab_ids, batch_df, train, partitions)
        if test.pop("accepted") != summary["test"]["accepted"]:
            raise JobError("test input changed during ingest")
        result["test"] = dict(summary["test"], **test)
        outputs["test"] = layout.test_ratings(run.out)
    result["outputs"] = outputs
    return result


def load_test(
    spark, run: IngestRun, parsed: DataFrame, vocab_ids: DataFrame, batch_df: DataFrame,
    train: DataFrame, partitions: int,
) -> dict[str, Any]:  # fmt: skip
    """Dedupe the test ratings, map them through the training vocabulary, write the rows of
    known users; the test part of the summary."""
    known_users = batch_df.select("user_id", F.lit(True).alias("_known"))
    rows = user_rows(accepted_rows(parsed), vocab_ids, partitions, keep_unknown=True)
    rows = run.cache(
        rows.join(F.broadcast(known_users), "user_id", "left").withColumn(
            "_known", F.coalesce(F.col("_known"), F.lit(False))
        )
    )
    result = test_counts(rows, train)
    kept = rows.filter(F.col("_known") & (F.size("items") > 0))
    vectors = kept.withColumn("batch", F.lit(TEST_BATCH))
    write_vectors(spark, vectors, result["users"], run.staged("test"))
    log.info(
        "ingest: test: %d pairs of %d users kept; excluded %d pairs of unknown users and %d of "
        "unknown movies; %d pairs also in train; %d duplicates dropped",
        result["pairs"], result["users"], result["unknown_user_pairs"],
        result["unknown_item_pairs"], result["pairs_also_in_train"],
        result["duplicates_dropped"],
    )  # fmt: skip
    return result


def unit_manifest(summary: dict[str, Any], with_test: bool) -> dict[str, Any]:
    """What ``OUT/ingest/_ingest.json`` records besides the id."""
    keys = ("users", "items", "ratings", "batches", "batch_size", "seed", "rating_scale",
            "newest_timestamp", "ratings_path", "test_path")  # fmt: skip
    return {
        "parts": ["items", "train", *(["test"] if with_test else [])],
        **{key: summary.get(key) for key in keys},
    }


if __name__ == "__main__":
    run_main(main, None)
