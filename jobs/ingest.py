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

The steps: ``jobs.ingestion.parse`` (lines -> typed rows or a reason), then
``jobs.ingestion.transform`` (dedupe, vocabulary, per-user rows, Parquet writes);
``jobs.ingestion.readback`` reads the outputs back for train and score.
"""

from __future__ import annotations

import argparse
import logging
import math
import time
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.args import add_common_arguments, output_path, parse_job_args, timed
from jobs.common.config import DEFAULT_CONF, resolve_conf
from jobs.common.errors import BadInputError, JobError, UsageError, run_main
from jobs.common.session import get_spark
from jobs.ingestion.parse import (
    check_path,
    compact,
    parse_movies,
    parse_ratings,
    read_latin1_lines,
    read_lines,
    reason_counts,
)
from jobs.ingestion.transform import (
    dedupe_training,
    movie_titles,
    title_counts,
    write_parquet,
    write_test_rows,
    write_training_rows,
    write_vocabulary,
)
from jobs.storage import fs, layout
from rbmcore.training.config import TrainConfig

log = logging.getLogger("rbm-reco.ingest")

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
    conf = resolve_conf(
        args,
        {"ingest": {"max_bad_fraction": args.max_bad_fraction, "batch_size": args.batch_size}},
    )
    ingest_settings(conf)  # a bad value fails before Spark starts
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




def ingest_settings(conf: dict[str, Any]) -> tuple[float, int, int]:
    """(max_bad_fraction, batch_size, seed) from the config; the seed orders the batches."""
    ingest = {**DEFAULT_CONF["ingest"], **conf.get("ingest", {})}
    try:
        max_bad = float(ingest["max_bad_fraction"])
        batch_size = int(ingest["batch_size"])
        seed = int(conf.get("train", {}).get("seed", TrainConfig.seed))
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad ingest/train config value: {exc}") from exc
    if not 0.0 <= max_bad <= 1.0 or math.isnan(max_bad):
        raise UsageError(f"ingest.max_bad_fraction must be within [0, 1], got {max_bad}")
    if batch_size < 1:
        raise UsageError(f"ingest.batch_size must be >= 1, got {batch_size}")
    return max_bad, batch_size, seed


class IngestRun:
    """The state of one ingest: its summary (written at the end, or when it fails), the step
    timings and the frames it cached (released at the end)."""

    def __init__(self, spark, out: str, summary: dict[str, Any]) -> None:
        self.spark = spark
        self.out = out
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.summary = {**summary, "timings": self.timings}
        self.cached: list[DataFrame] = []

    def cache(self, df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.cached.append(df)
        return df

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()

    def write_summary(self, status: str) -> dict[str, Any]:
        self.summary["status"] = status
        self.timings["total"] = round(time.perf_counter() - self.started, 3)
        fs.write_json(self.spark, layout.ingest_summary(self.out), self.summary)
        return self.summary

    def fail(self, message: str) -> BadInputError:
        """The error to raise, once the summary says why the ingest failed."""
        self.summary["error"] = message
        self.write_summary("failed")
        log.error("%s (summary: %s)", message, layout.ingest_summary(self.out))
        return BadInputError(message)


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
    max_bad, batch_size, seed = ingest_settings(conf)
    inputs = {
        name: path
        for name, path in (("ratings", ratings), ("test", test), ("movies", movies))
        if path is not None
    }
    run = IngestRun(
        spark,
        out,
        {
            "status": "running",
            "ratings_path": ratings,
            "test_path": test,
            "movies_path": movies,
            "out": out,
            "max_bad_fraction": max_bad,
            "batch_size": batch_size,
            "seed": seed,
        },
    )
    for name, path in inputs.items():
        check_path(spark, path, name)
    log.info("ingest: ratings=%s test=%s movies=%s out=%s", ratings, test, movies, out)
    try:
        parsed = parse_inputs(spark, inputs, run.cache)
        stats = validate(parsed, layout.quarantine(out), run.timings)
        record_validation(run.summary, stats, layout.quarantine(out))
        check_bad_fractions(run, stats, inputs, max_bad)
        run.summary.update(load(spark, parsed, out, batch_size, seed, run))
    finally:
        run.release()
    summary = run.write_summary("ok")
    log.info("%s (summary: %s)", summary_line(summary), layout.ingest_summary(out))
    return summary


def parse_inputs(spark, inputs: dict[str, str], cache) -> dict[str, DataFrame]:
    """Every input parsed once; the compact parse is cached (``cache``) for what follows."""
    parsed = {"ratings": cache(compact(parse_ratings(read_lines(spark, inputs["ratings"]))))}
    if "test" in inputs:
        parsed["test"] = cache(compact(parse_ratings(read_lines(spark, inputs["test"]))))
    if "movies" in inputs:
        parsed["movies"] = cache(parse_movies(read_latin1_lines(spark, inputs["movies"])))
    return parsed


def validate(
    parsed: dict[str, DataFrame], quarantine_path: str, timings: dict[str, float]
) -> dict[str, dict[str, Any]]:
    """Per input, the counts of ``reason_counts``; the rejected lines written to the
    quarantine."""
    with timed("ingest: validate", timings):
        union = None
        for name, df in parsed.items():
            part = df.select(F.lit(name).alias("input"), "reason")
            union = part if union is None else union.unionByName(part)
        stats = reason_counts(union.groupBy("input", "reason").count().collect(), parsed)
    with timed("ingest: write quarantine", timings):
        quarantine = None
        for name, df in parsed.items():
            part = df.filter(F.col("reason").isNotNull()).select(
                F.lit(name).alias("input"), "source", "line", "reason"
            )
            quarantine = part if quarantine is None else quarantine.unionByName(part)
        write_parquet(quarantine, quarantine_path)
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
    return stats


def record_validation(
    summary: dict[str, Any], stats: dict[str, dict[str, Any]], quarantine_path: str
) -> None:
    """The validation counts in the summary: the ratings' at the top level, the test's and
    the movies' in their own entries; the later counts as null until known."""
    summary.update(stats["ratings"])
    summary.update(duplicates_dropped=None, ratings=None, users=None, items=None, batches=None)
    for name in ("test", "movies"):
        if name in stats:
            summary[name] = dict(stats[name])
    summary["outputs"] = {"quarantine": quarantine_path}


def check_bad_fractions(
    run: IngestRun, stats: dict[str, dict[str, Any]], inputs: dict[str, str], max_bad: float
) -> None:
    """Fail (after writing the summary) when the ratings or the test input is empty, has no
    valid line, or has more than ``max_bad`` of its lines quarantined."""
    quarantine = layout.quarantine(run.out)
    for name in ("ratings", "test"):
        entry, path = stats.get(name), inputs.get(name)
        if entry is None:
            continue
        if entry["lines_read"] == 0:
            raise run.fail(f"{name} input is empty: no lines in {path}")
        if entry["accepted"] == 0:
            raise run.fail(
                f"{name} input has no valid line: all {entry['lines_read']} lines of "
                f"{path} were quarantined (see {quarantine})"
            )
        fraction = entry["quarantined"] / entry["lines_read"]
        if fraction > max_bad:
            raise run.fail(
                f"{name} input rejected: {entry['quarantined']} of {entry['lines_read']} "
                f"lines bad (fraction {fraction:.4f} > max_bad_fraction {max_bad}); "
                f"quarantine: {quarantine}"
            )


def load(
    spark, parsed: dict[str, DataFrame], out: str, batch_size: int, seed: int, run: IngestRun
) -> dict[str, Any]:
    """Dedupe, build the vocabulary and the per-user rows, write them; the summary's part."""
    summary, timings = run.summary, run.timings
    with timed("ingest: dedupe", timings):
        train, result = dedupe_training(parsed["ratings"], summary["accepted"], run.cache)
    titles = run.cache(movie_titles(parsed["movies"])) if "movies" in parsed else None
    with timed("ingest: write items", timings):
        vocab, n_items = write_vocabulary(spark, train, titles, layout.items_vocab(out))
    result["items"] = n_items
    log.info(
        "ingest: ratings: %d ratings of %d users on %d items after dropping %d duplicates",
        result["ratings"],
        result["users"],
        n_items,
        result["duplicates_dropped"],
    )
    if titles is not None:
        result["movies"] = dict(summary["movies"], **title_counts(titles, vocab, n_items))
    with timed("ingest: write train", timings):
        result["batches"] = write_training_rows(
            train, vocab, result["users"], batch_size, seed, layout.train_ratings(out)
        )
    outputs = dict(
        summary["outputs"], items=layout.items_vocab(out), train=layout.train_ratings(out)
    )
    if "test" in parsed:
        with timed("ingest: write test", timings):
            test = write_test_rows(
                parsed["test"], train, vocab, layout.test_ratings(out), run.cache
            )
        if test.pop("accepted") != summary["test"]["accepted"]:
            raise JobError("test input changed during ingest")
        result["test"] = dict(summary["test"], **test)
        outputs["test"] = layout.test_ratings(out)
    else:
        fs.delete(spark, layout.test_ratings(out))  # a stale test split of an earlier run
    result["outputs"] = outputs
    return result


if __name__ == "__main__":
    run_main(main, None)
