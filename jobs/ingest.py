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
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.args import add_common_arguments, parse_job_args, timed
from jobs.common.config import DEFAULT_CONF, resolve_conf
from jobs.common.errors import BadInputError, JobError, UsageError, run_main
from jobs.common.session import get_spark, restoring_conf
from jobs.ingestion import unit
from jobs.ingestion.parse import (
    NON_INTEGER_RATING,
    OFF_STEP_RATING,
    parse_movies,
    parse_ratings,
    read_latin1_lines,
    reason_counts,
    reason_for,
    with_scale,
)
from jobs.ingestion.sources import (
    FORMATS,
    Source,
    data_files,
    describe_source,
    first_line,
    parse_columns,
    read_fields,
    read_text_lines,
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
    write_parquet,
    write_vectors,
    write_vocabulary,
)
from jobs.storage import fs, layout
from jobs.storage.layout import join_path
from rbmcore.data.scale import HALF_STARS, IMPLICIT, STARS, RatingScale, parse_scale
from rbmcore.training.config import TrainConfig

log = logging.getLogger("rbm-reco.ingest")

SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
# rating_scale = "auto": half stars when more than this share of the ratings lines hold one
HALF_STAR_LINES = 0.01
INPUT_BYTES_PER_PARTITION = 64 * 2**20


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ingest flags, plus the common ones (--conf, --master, --set, --log-level)."""
    add_input_arguments(parser)
    parser.add_argument("--test", help="held-out test ratings (same formats); optional")
    parser.add_argument("--test-table", help="held-out test ratings as a Spark table")
    parser.add_argument(
        "--movies", help="movies file for titles (movies.dat, u.item or movies.csv)"
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


def add_input_arguments(parser: argparse.ArgumentParser, ratings_required: bool = False) -> None:
    """How to read the ratings: the flags ``ingest``, ``run`` and ``score --ratings`` share
    (``input_overrides`` turns them into [ingest] settings)."""
    parser.add_argument(
        "--ratings",
        required=ratings_required,
        help="ratings file, directory or glob (local path or Hadoop URI; .gz/.bz2 ok)",
    )
    parser.add_argument("--ratings-table", help="the ratings as a Spark table (db.name)")
    parser.add_argument(
        "--format", choices=FORMATS, help="input format (default auto: from the name, header)"
    )
    parser.add_argument(
        "--columns",
        help="column of each role in a CSV header, Parquet or table: "
        "user=userId,item=movieId,rating=rating,time=timestamp (rating= : none, implicit)",
    )
    parser.add_argument(
        "--rating-scale",
        help="auto (default), stars, half-stars, implicit, or LOW..HIGH[/STEP]",
    )
    parser.add_argument(
        "--like-threshold", type=float, help="ratings at or above this are likes (default: "
        "the scale's midpoint, 3 on five stars and on half stars)",
    )  # fmt: skip


def input_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The [ingest] settings of ``add_input_arguments``' flags."""
    return {
        "format": args.format,
        "columns": args.columns,
        "rating_scale": args.rating_scale,
        "like_threshold": args.like_threshold,
    }


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


@dataclass(frozen=True)
class IngestSettings:
    """The [ingest] table (and ``train.seed``, which orders the batches), checked."""

    max_bad_fraction: float
    batch_size: int
    seed: int
    format: str
    columns: dict[str, str | None]
    explicit_columns: bool
    rating_scale: str
    like_threshold: float | None
    max_line_bytes: int

    def declared_scale(self) -> RatingScale | None:
        """The declared scale with the like threshold, None for ``auto``."""
        if self.rating_scale == "auto":
            return None
        scale = parse_scale(self.rating_scale)
        return scale if scale.implicit else scale.with_like(self.like_threshold)


def ingest_settings(conf: dict[str, Any]) -> IngestSettings:
    """The ``IngestSettings`` of a config; an unknown key or a bad value is a ``UsageError``."""
    table = conf.get("ingest", {})
    unknown = sorted(set(table) - set(DEFAULT_CONF["ingest"]))
    if unknown:
        raise UsageError(
            f"unknown [ingest] settings: {', '.join(unknown)}; known: "
            f"{', '.join(sorted(DEFAULT_CONF['ingest']))}"
        )
    ingest = {**DEFAULT_CONF["ingest"], **table}
    like = ingest["like_threshold"]
    try:
        settings = IngestSettings(
            max_bad_fraction=float(ingest["max_bad_fraction"]),
            batch_size=int(ingest["batch_size"]),
            seed=int(conf.get("train", {}).get("seed", TrainConfig.seed)),
            format=str(ingest["format"]),
            columns=parse_columns(ingest["columns"]),
            explicit_columns=ingest["columns"] not in (None, "", {}),
            rating_scale=str(ingest["rating_scale"]),
            like_threshold=None if like in (None, "auto") else float(like),
            max_line_bytes=int(ingest["max_line_bytes"]),
        )
        settings.declared_scale()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad [ingest] setting: {exc}") from exc
    max_bad = settings.max_bad_fraction
    if not 0.0 <= max_bad <= 1.0 or math.isnan(max_bad):
        raise UsageError(f"ingest.max_bad_fraction must be within [0, 1], got {max_bad}")
    if settings.batch_size < 1:
        raise UsageError(f"ingest.batch_size must be >= 1, got {settings.batch_size}")
    if settings.format not in FORMATS:
        raise UsageError(f"ingest.format must be one of {', '.join(FORMATS)}, "
                         f"got {settings.format!r}")  # fmt: skip
    if not 1024 <= settings.max_line_bytes <= 2**30:
        raise UsageError(
            f"ingest.max_line_bytes must be within [1024, 2**30], got {settings.max_line_bytes}"
        )
    return settings


class IngestRun:
    """The state of one ingest: its id, its summary (written at the end, or when it fails),
    the step timings and the frames it cached (released at the end)."""

    def __init__(self, spark, out: str, summary: dict[str, Any]) -> None:
        self.spark = spark
        self.out = out
        self.id = unit.new_ingest_id()
        self.started = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.summary = {**summary, "ingest_id": self.id, "timings": self.timings}
        self.cached: list[DataFrame] = []

    @property
    def staging(self) -> str:
        return unit.staging_dir(self.out, self.id)

    def staged(self, part: str) -> str:
        return join_path(self.staging, part)

    def cache(self, df: DataFrame) -> DataFrame:
        df = df.persist(StorageLevel.MEMORY_AND_DISK)
        self.cached.append(df)
        return df

    def release(self) -> None:
        for df in self.cached:
            df.unpersist()
        self.cached.clear()

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


_FAILED_READ = re.compile(r"FAILED_READ_FILE[^\n]*?reading file (\S+?)\.?\s")
_CAUSE = re.compile(r"Caused by: ([\w.$]+): ([^\n]*)")


def unreadable_file(exc: Exception) -> str | None:
    """One line naming the file and the reader's error when a Spark job failed reading an
    input file (a truncated or corrupt compressed file, a file that vanished), else None."""
    if isinstance(exc, JobError):
        return None
    text = str(exc)
    match = _FAILED_READ.search(text)
    if match is None:
        return None
    causes = [(name, msg) for name, msg in _CAUSE.findall(text) if "FAILED_READ_FILE" not in msg]
    cause = f"{causes[-1][0].rsplit('.', 1)[-1]}: {causes[-1][1].strip()}" if causes else "error"
    return f"cannot read input file {match.group(1)} ({cause}): a truncated or corrupt file?"


def describe_inputs(spark, settings, ratings, ratings_table, test, test_table) -> dict[str, Source]:
    """The ``Source`` of the ratings and (when given) the test input."""
    if (ratings is None) == (ratings_table is None):
        raise UsageError("give exactly one of the ratings path and the ratings table")
    if test is not None and test_table is not None:
        raise UsageError("give at most one of the test path and the test table")
    sources = {}
    for name, path, table in (("ratings", ratings, ratings_table), ("test", test, test_table)):
        if path is None and table is None:
            continue
        sources[name] = describe_source(
            spark, name, path, table, settings.format, settings.columns, settings.explicit_columns
        )
    return sources


def movies_csv_header(spark, path: str) -> str | None:
    """The header of a ``movies.csv`` (its first line), or None for latin-1 movie files
    (``movies.dat``, ``u.item``): ``""`` marks latin-1."""
    files = data_files(spark, path, "movies")
    first = next(iter(files))
    name = first.lower().removesuffix(".gz").removesuffix(".bz2")
    if not name.endswith(".csv"):
        return ""
    return (first_line(spark, first) or "").lstrip("\ufeff").rstrip("\r")


def shuffle_partitions(spark, sources: dict[str, Source]) -> int:
    """Partitions of ingest's shuffles: two per core, or one per
    ``INPUT_BYTES_PER_PARTITION`` of text input when that is more."""
    size = sum(sum(s.files.values()) for s in sources.values())
    cores = max(1, spark.sparkContext.defaultParallelism)
    return max(2 * cores, math.ceil(size / INPUT_BYTES_PER_PARTITION))


# -- validation ------------------------------------------------------------------------------


def candidate_scales(settings: IngestSettings, source: Source) -> list[RatingScale]:
    """The scales the ratings may be on: the declared one, implicit without a rating column,
    else five stars and half stars (``choose_scale`` picks)."""
    declared = settings.declared_scale()
    if not source.has_rating:
        if declared is not None and not declared.implicit:
            raise BadInputError(
                f"{source.what} input {source.location} has no rating column, but the rating "
                f"scale {declared.spec} is declared"
            )
        return [IMPLICIT]
    if declared is not None:
        return [declared]
    return [STARS.with_like(settings.like_threshold), HALF_STARS.with_like(settings.like_threshold)]


def parse_and_validate(
    spark, run: IngestRun, settings: IngestSettings, sources: dict[str, Source],
    movies: str | None, movies_header: str | None,
) -> tuple[dict[str, DataFrame], RatingScale, pd.DataFrame]:  # fmt: skip
    """Every input parsed once and cached; the counts per reason, the scale chosen, the
    quarantine published, the bad fractions checked. Returns ({input: the accepted and
    rejected lines under the scale}, the scale, the accepted training lines per movie)."""
    candidates = candidate_scales(settings, sources["ratings"])
    parsed: dict[str, DataFrame] = {}
    for name, source in sources.items():
        use_rating = source.has_rating and not candidates[0].implicit
        fields = read_fields(spark, source, settings.max_line_bytes)
        parsed[name] = run.cache(
            parse_ratings(fields, source.n_fields, use_rating, source.has_time, candidates)
        )
    movie_lines = None
    if movies is not None:
        lines = (
            read_latin1_lines(spark, movies, settings.max_line_bytes)
            if movies_header == ""
            else read_text_lines(spark, movies, settings.max_line_bytes).select("line", "source")
        )
        movie_lines = run.cache(parse_movies(lines, movies_header or None))
    with timed("ingest: validate", run.timings):
        groups = validation_groups(parsed, movie_lines, candidates)
    scale = choose_scale(groups, candidates)
    chosen = f"r{candidates.index(scale)}"
    run.summary["rating_scale"] = scale.to_dict()
    stats = stats_under(groups, chosen, list(parsed) + (
        ["movies"] if movie_lines is not None else []
    ))  # fmt: skip
    log_stats(stats, scale)
    record_validation(run.summary, stats, layout.quarantine(run.out))
    final = {name: with_scale(df, scale) for name, df in parsed.items()}
    if movie_lines is not None:
        final["movies"] = movie_lines
    with timed("ingest: write quarantine", run.timings):
        write_quarantine(spark, run, final)
    check_skipped_bytes(run, groups, sources, settings.max_line_bytes)
    check_bad_fractions(run, stats, sources, settings.max_bad_fraction)
    accepted = groups[(groups["input"] == "ratings") & groups[chosen].isna()]
    newest = accepted["newest"].max()
    run.summary["newest_timestamp"] = None if pd.isna(newest) else int(newest)
    return final, scale, accepted[["movie_id", "lines"]]


def validation_groups(
    parsed: dict[str, DataFrame], movies: DataFrame | None, candidates: list[RatingScale]
) -> pd.DataFrame:
    """One Spark job over every input: lines per (input, reason under each candidate scale,
    accepted training movie), with the bytes read and the newest timestamp. Columns
    ``input, r0[, r1], movie_id, lines, bytes, newest``."""
    reasons = [f"r{i}" for i in range(len(candidates))]
    union = None
    for name, df in parsed.items():
        columns = {r: reason_for(s) for r, s in zip(reasons, candidates, strict=True)}
        accepted_somewhere = F.lit(False)
        for r in reasons:
            accepted_somewhere = accepted_somewhere | F.col(r).isNull()
        movie = F.when(F.lit(name == "ratings") & accepted_somewhere, F.col("movie_id"))
        part = df.select(
            F.lit(name).alias("input"),
            *[expr.alias(r) for r, expr in columns.items()],
            movie.alias("movie_id"),
            F.col("_bytes").cast("bigint").alias("_bytes"),
            F.when(accepted_somewhere, F.col("ts")).alias("ts"),
        )
        union = part if union is None else union.unionByName(part)
    if movies is not None:
        part = movies.select(
            F.lit("movies").alias("input"),
            *[F.col("reason").alias(r) for r in reasons],
            F.lit(None).cast("int").alias("movie_id"),
            F.lit(0).cast("bigint").alias("_bytes"),
            F.lit(None).cast("bigint").alias("ts"),
        )
        union = union.unionByName(part)
    grouped = union.groupBy("input", *reasons, "movie_id").agg(
        F.count(F.lit(1)).alias("lines"),
        F.sum("_bytes").alias("bytes"),
        F.max("ts").alias("newest"),
    )
    return grouped.toPandas()


def choose_scale(groups: pd.DataFrame, candidates: list[RatingScale]) -> RatingScale:
    """The first candidate (five stars), unless the second (half stars) accepts more than
    ``HALF_STAR_LINES`` of the ratings lines that the first rejects as off its steps: five-star
    data hold no half stars but by damage, half-star data hold many (a fifth of MovieLens 10M's
    ratings and more)."""
    if len(candidates) == 1:
        return candidates[0]
    ratings = groups[groups["input"] == "ratings"]
    lines = int(ratings["lines"].sum())
    off_steps = ratings["r0"].isin([NON_INTEGER_RATING, OFF_STEP_RATING])
    half = int(ratings.loc[off_steps & ratings["r1"].isna(), "lines"].sum())
    chosen = candidates[1] if lines and half > HALF_STAR_LINES * lines else candidates[0]
    log.info(
        "ingest: rating scale %s (auto: %d of %d ratings lines hold a half star; half stars "
        "above %g of them)",
        chosen.name, half, lines, HALF_STAR_LINES,
    )  # fmt: skip
    return chosen


def stats_under(groups: pd.DataFrame, column: str, inputs: list[str]) -> dict[str, dict[str, Any]]:
    """``reason_counts`` of every input under the chosen candidate scale (its reason
    ``column``)."""
    counts = groups.groupby(["input", column], dropna=False)["lines"].sum().reset_index()
    rows = [
        {"input": r["input"], "reason": None if pd.isna(r[column]) else r[column],
         "count": int(r["lines"])}
        for r in counts.to_dict("records")
    ]  # fmt: skip
    return reason_counts(rows, inputs)


def log_stats(stats: dict[str, dict[str, Any]], scale: RatingScale) -> None:
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


def write_quarantine(spark, run: IngestRun, final: dict[str, DataFrame]) -> None:
    """The rejected lines of every input, staged and swapped into ``OUT/quarantine``."""
    quarantine = None
    for name, df in final.items():
        part = df.filter(F.col("reason").isNotNull() & (F.col("reason") != "header line"))
        part = part.select(F.lit(name).alias("input"), "source", "line", "reason")
        quarantine = part if quarantine is None else quarantine.unionByName(part)
    staged = run.staged("quarantine")
    write_parquet(quarantine.coalesce(1), staged)
    unit.publish_quarantine(spark, run.out, run.id, staged)


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


def check_skipped_bytes(
    run: IngestRun, groups: pd.DataFrame, sources: dict[str, Source], max_line: int
) -> None:
    """Fail when an uncompressed text input holds lines longer than ``max_line`` bytes (the
    reader skipped them: fewer bytes were read than its files hold)."""
    for name, source in sources.items():
        if not source.files or source.format in ("parquet", "table"):
            continue
        if any(path.lower().endswith((".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst"))
               for path in source.files):  # fmt: skip
            continue
        read = int(groups.loc[groups["input"] == name, "bytes"].sum())
        missing = sum(source.files.values()) - read
        if missing >= max_line:
            raise run.fail(
                f"{name} input {source.location} has lines longer than ingest.max_line_bytes "
                f"({max_line}): {missing} bytes of them were not read"
            )


def check_bad_fractions(
    run: IngestRun, stats: dict[str, dict[str, Any]], sources: dict[str, Source], max_bad: float
) -> None:
    """Fail (after writing the summary) when the ratings or the test input is empty, has no
    valid line, or has more than ``max_bad`` of its lines quarantined."""
    quarantine = layout.quarantine(run.out)
    for name in ("ratings", "test"):
        entry, source = stats.get(name), sources.get(name)
        if entry is None:
            continue
        where = source.location
        if entry["lines_read"] == 0:
            raise run.fail(f"{name} input is empty: no lines in {where}")
        if entry["accepted"] == 0:
            raise run.fail(
                f"{name} input has no valid line: all {entry['lines_read']} lines of "
                f"{where} were quarantined (see {quarantine})"
            )
        fraction = entry["quarantined"] / entry["lines_read"]
        if fraction > max_bad:
            raise run.fail(
                f"{name} input rejected: {entry['quarantined']} of {entry['lines_read']} "
                f"lines bad (fraction {fraction:.4f} > max_bad_fraction {max_bad}); "
                f"quarantine: {quarantine}"
            )


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
