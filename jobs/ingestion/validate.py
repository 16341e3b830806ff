"""Ingest's validation, shared by ``rbm-reco ingest`` and ``score --ratings``: every input parsed
once and cached, the counts per reason in one Spark job, the rating scale chosen, the
quarantine published, the bad fractions checked (docs/operations.md, "Input")."""

from __future__ import annotations

import logging
import math
import re
import time
from typing import Any

import pandas as pd
from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.args import timed
from jobs.common.errors import BadInputError, JobError, UsageError
from jobs.ingestion import unit
from jobs.ingestion.parse import (
    HEADER_LINE,
    NON_INTEGER_RATING,
    OFF_STEP_RATING,
    parse_movies,
    parse_ratings,
    read_latin1_lines,
    reason_counts,
    reason_for,
    with_scale,
)
from jobs.ingestion.settings import IngestSettings
from jobs.ingestion.sources import (
    Source,
    data_files,
    describe_source,
    first_line,
    read_fields,
    read_text_lines,
)
from jobs.ingestion.transform import write_parquet
from jobs.storage import fs, layout
from jobs.storage.layout import join_path
from rbmcore.data.scale import HALF_STARS, IMPLICIT, STARS, RatingScale

log = logging.getLogger("rbm-reco.ingest")

SHUFFLE_PARTITIONS = "spark.sql.shuffle.partitions"
# rating_scale = "auto": half stars when more than this share of the ratings lines hold one
HALF_STAR_LINES = 0.01
INPUT_BYTES_PER_PARTITION = 64 * 2**20


class IngestRun:
    """The state of one ingest: its id, its summary (written at the end, or when it fails, to
    ``summary_path``: by default ``OUT/ingest_summary.json``), the quarantine's place (by
    default ``OUT/quarantine``), the step timings and the frames it cached (released at the
    end)."""

    def __init__(
        self, spark, out: str, summary: dict[str, Any], summary_path: str | None = None,
        quarantine_path: str | None = None,
    ) -> None:  # fmt: skip
        self.spark = spark
        self.out = out
        self.summary_path = summary_path or layout.ingest_summary(out)
        self.quarantine_path = quarantine_path or layout.quarantine(out)
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
        fs.write_json(self.spark, self.summary_path, self.summary)
        return self.summary

    def fail(self, message: str) -> BadInputError:
        """The error to raise, once the summary says why the ingest failed."""
        self.summary["error"] = message
        self.write_summary("failed")
        log.error("%s (summary: %s)", message, self.summary_path)
        return BadInputError(message)


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
    candidates: list[RatingScale] | None = None,
) -> tuple[dict[str, DataFrame], RatingScale, pd.DataFrame]:  # fmt: skip
    """Every input parsed once and cached; the counts per reason, the scale chosen, the
    quarantine published, the bad fractions checked. Returns ({input: the accepted and
    rejected lines under the scale}, the scale, the accepted training lines per movie).
    ``candidates``: the scale (a list of one) when it is known already, as a model's is."""
    candidates = candidates or candidate_scales(settings, sources["ratings"])
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
    record_validation(run.summary, stats, run.quarantine_path)
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
    """The rejected lines of every input, staged and swapped into the run's quarantine."""
    quarantine = None
    for name, df in final.items():
        part = df.filter(F.col("reason").isNotNull() & (F.col("reason") != HEADER_LINE))
        part = part.select(F.lit(name).alias("input"), "source", "line", "reason")
        quarantine = part if quarantine is None else quarantine.unionByName(part)
    staged = run.staged("quarantine")
    write_parquet(quarantine.coalesce(1), staged)
    unit.publish_quarantine(spark, run.out, run.id, staged, run.quarantine_path)


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
    quarantine = run.quarantine_path
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
