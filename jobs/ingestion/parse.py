"""Ingest, step 1: validate every line (row) of an input, with a reason for every rejection.

A rating line is accepted, or gets exactly one reason: the first check of ``RATING_REASONS``
it fails. The checks of the rating's value depend on the rating scale (``scale_reason``), which
may only be known once every line has been read (``rating_scale = "auto"``), so
``parse_ratings`` returns the reasons before (``pre``) and after (``post``) them and the
rating as a number (``rd``); ``with_scale`` completes the reason and the rating code once the
scale is chosen. Movie lines: ``MOVIE_REASONS``. Spark SQL functions only (no Python UDF).

Ids must be written canonically: digits without a sign or leading zeros (``7``, not ``+7``,
``0007`` or ``7`` with a control byte), since ``+7`` and ``7`` would otherwise be merged into
one user although the source may mean two. Timestamps are seconds since 1970-01-01 UTC within
the years 1..9999 (so a millisecond timestamp of any date after 1973 is out of range and
cannot beat a seconds one among duplicates).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.ingestion.sources import csv_fields, unquote_col
from rbmcore.data.scale import RatingScale

INT_MAX = 2**31 - 1
# Timestamps: seconds of 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z.
MIN_TIMESTAMP, MAX_TIMESTAMP = -62_135_596_800, 253_402_300_799
CODE_BITS = 7  # a rating code (1..100) packed beside a timestamp or an item index

# Quarantine reasons, in the order they are checked (the first that applies is recorded).
BLANK_LINE = "blank line"
WRONG_FIELD_COUNT = "wrong field count"
NON_NUMERIC_USER = "non-numeric user id"
USER_OUT_OF_RANGE = "user id out of range"
NON_POSITIVE_USER = "non-positive user id"
NON_CANONICAL_USER = "non-canonical user id"
NON_NUMERIC_MOVIE = "non-numeric movie id"
MOVIE_OUT_OF_RANGE = "movie id out of range"
NON_POSITIVE_MOVIE = "non-positive movie id"
NON_CANONICAL_MOVIE = "non-canonical movie id"
EMPTY_RATING = "empty rating"
NON_NUMERIC_RATING = "non-numeric rating"
NON_INTEGER_RATING = "non-integer rating"  # an integer scale's rating with a fraction
RATING_OUT_OF_RANGE = "rating out of range"
OFF_STEP_RATING = "rating between the scale's steps"  # e.g. 3.7 on half stars
NON_NUMERIC_TIMESTAMP = "non-numeric timestamp"
TIMESTAMP_OUT_OF_RANGE = "timestamp out of range"
EMPTY_TITLE = "empty title"
# Not a reason: the header line of each CSV file (counted apart, as ``header_lines``).
HEADER_LINE = "header line"

RATING_REASONS = (
    BLANK_LINE,
    WRONG_FIELD_COUNT,
    NON_NUMERIC_USER,
    USER_OUT_OF_RANGE,
    NON_POSITIVE_USER,
    NON_CANONICAL_USER,
    NON_NUMERIC_MOVIE,
    MOVIE_OUT_OF_RANGE,
    NON_POSITIVE_MOVIE,
    NON_CANONICAL_MOVIE,
    EMPTY_RATING,
    NON_NUMERIC_RATING,
    NON_INTEGER_RATING,  # integer scales: before the range
    RATING_OUT_OF_RANGE,
    OFF_STEP_RATING,  # other scales: after the range
    NON_NUMERIC_TIMESTAMP,
    TIMESTAMP_OUT_OF_RANGE,
)
MOVIE_REASONS = (
    BLANK_LINE,
    WRONG_FIELD_COUNT,
    NON_NUMERIC_MOVIE,
    MOVIE_OUT_OF_RANGE,
    NON_POSITIVE_MOVIE,
    NON_CANONICAL_MOVIE,
    EMPTY_TITLE,
)

_INTEGER = r"^[+-]?[0-9]+$"
_DECIMAL = r"^[+-]?[0-9]+(\.[0-9]+)?$"
_BLANK = r"^\s*$"
_STEP_TOLERANCE = 1e-6


def _first_reason(checks: list[tuple[Column, str]]) -> Column:
    """The reason of the first check whose condition holds; null when none does."""
    expr = None
    for cond, reason in checks:
        expr = F.when(cond, F.lit(reason)) if expr is None else expr.when(cond, F.lit(reason))
    return expr if expr is not None else F.lit(None).cast("string")


def _id_checks(
    raw: Column, value: Column, non_numeric: str, too_big: str, non_positive: str, other: str
) -> list[tuple[Column, str]]:
    """(condition, reason) pairs for an id field; ``value`` = try_cast(raw as bigint)."""
    text = F.trim(raw)
    return [
        (raw.isNull() | ~text.rlike(_INTEGER), non_numeric),
        (value.isNull() | (value > INT_MAX), too_big),
        (value <= 0, non_positive),
        (text != value.cast("string"), other),
    ]


def _canonical_id(raw: Column, value: Column) -> Column:
    """The common case, cheaply: a positive int written as its digits."""
    return value.between(1, INT_MAX) & (F.trim(raw) == value.cast("string"))


def _plain_decimal(raw: Column, value: Column) -> Column:
    """Digits with at most one inner dot (``value`` = try_cast(raw as double) not null)."""
    text = F.trim(raw)
    return (
        value.isNotNull()
        & (F.translate(text, "0123456789.", "") == "")
        & ~text.startswith(".")
        & ~text.endswith(".")
    )


def scale_reason(scale: RatingScale, rd: Column) -> Column:
    """The reason a valid number ``rd`` is not a rating of ``scale`` (null when it is):
    integer scales check the fraction, then the range; others the range, then the step."""
    if scale.implicit:
        return F.lit(None).cast("string")
    out_of_range = (rd < scale.low - _STEP_TOLERANCE) | (rd > scale.high + _STEP_TOLERANCE)
    steps = (rd - scale.low) / scale.step
    off_step = F.abs(steps - F.rint(steps)) > _STEP_TOLERANCE
    if scale.is_integer and scale.step == 1:
        return F.when(rd != F.rint(rd), F.lit(NON_INTEGER_RATING)).when(
            out_of_range, F.lit(RATING_OUT_OF_RANGE)
        )
    return F.when(out_of_range, F.lit(RATING_OUT_OF_RANGE)).when(off_step, F.lit(OFF_STEP_RATING))


def rating_code(scale: RatingScale, rd: Column) -> Column:
    """The code 1..levels of an accepted rating ``rd`` (1 for implicit data)."""
    if scale.implicit:
        return F.lit(1).cast("tinyint")
    return (F.rint((rd - scale.low) / scale.step) + 1).cast("tinyint")


def parse_ratings(
    fields: DataFrame, n_fields: int, has_rating: bool, has_time: bool,
    candidates: list[RatingScale],
) -> DataFrame:  # fmt: skip
    """Validate the raw fields of ``jobs.ingestion.sources.read_fields``.

    ``n_fields``: the field count a line must have; ``has_rating`` / ``has_time``: whether the
    input has those columns; ``candidates``: the rating scales the data may be on (their
    checks are left to ``with_scale``; a line's raw text is kept when one of them could
    reject it).

    Returns ``pre, post, user_id int, movie_id int, rd double, ts bigint, _bytes, line,
    source``: ``pre`` the first failed check before the rating's value (null when none),
    ``post`` the first failed timestamp check; ``rd`` the rating as a number, ``ts`` the
    seconds (0 without a time column); ``line`` and ``source`` only where a check may fail.
    """
    u, m, r, t = (F.col(name) for name in ("_u", "_m", "_r", "_t"))
    uv, mv = u.try_cast("bigint"), m.try_cast("bigint")
    rd = r.try_cast("double") if has_rating else F.lit(None).cast("double")
    tv = t.try_cast("bigint") if has_time else F.lit(0).cast("bigint")
    valued = fields.withColumns({"_uv": uv, "_mv": mv, "_rd": rd, "_tv": tv})
    uv, mv, rd, tv = (F.col(name) for name in ("_uv", "_mv", "_rd", "_tv"))
    n = F.col("_n")
    fast = (n == n_fields) & _canonical_id(u, uv) & _canonical_id(m, mv)
    pre_checks = [(n == -1, HEADER_LINE), (F.col("_c").rlike(_BLANK), BLANK_LINE),
                  (n != n_fields, WRONG_FIELD_COUNT)]  # fmt: skip
    pre_checks += _id_checks(
        u, uv, NON_NUMERIC_USER, USER_OUT_OF_RANGE, NON_POSITIVE_USER, NON_CANONICAL_USER
    )
    pre_checks += _id_checks(
        m, mv, NON_NUMERIC_MOVIE, MOVIE_OUT_OF_RANGE, NON_POSITIVE_MOVIE, NON_CANONICAL_MOVIE
    )
    if has_rating:
        fast = fast & _plain_decimal(r, rd)
        pre_checks += [
            (r.isNull() | (F.trim(r) == ""), EMPTY_RATING),
            (~F.trim(r).rlike(_DECIMAL), NON_NUMERIC_RATING),
        ]
    in_time = tv.between(MIN_TIMESTAMP, MAX_TIMESTAMP)
    post_checks = []
    if has_time:
        post_checks = [
            (tv.isNull() & ~F.trim(t).rlike(_INTEGER), NON_NUMERIC_TIMESTAMP),
            (tv.isNull() | ~in_time, TIMESTAMP_OUT_OF_RANGE),
        ]
    pre = F.when(fast, F.lit(None).cast("string")).otherwise(_first_reason(pre_checks))
    post = F.when(in_time, F.lit(None).cast("string")).otherwise(_first_reason(post_checks))
    reasons = valued.withColumns({"pre": pre, "post": post})
    ok = F.col("pre").isNull() & F.col("post").isNull()
    for scale in candidates:
        ok = ok & scale_reason(scale, rd).isNull()
    pre_ok = F.col("pre").isNull()
    return reasons.select(
        "pre",
        "post",
        F.when(pre_ok, uv.cast("int")).alias("user_id"),
        F.when(pre_ok, mv.cast("int")).alias("movie_id"),
        F.when(pre_ok, rd).alias("rd"),
        F.when(F.col("post").isNull(), tv).alias("ts"),
        "_bytes",
        F.when(~ok, F.col("line")).alias("line"),
        F.when(~ok, F.col("source")).alias("source"),
    )


def reason_for(scale: RatingScale) -> Column:
    """A parsed line's reason under ``scale`` (null: accepted)."""
    return F.coalesce(F.col("pre"), scale_reason(scale, F.col("rd")), F.col("post"))


def with_scale(parsed: DataFrame, scale: RatingScale) -> DataFrame:
    """``reason, user_id, movie_id, rating (the code, tinyint), ts, line, source`` of parsed
    lines once the scale is known; the typed columns are null where ``reason`` is not."""
    reason = reason_for(scale)
    ok = reason.isNull()
    return parsed.select(
        reason.alias("reason"),
        F.when(ok, F.col("user_id")).alias("user_id"),
        F.when(ok, F.col("movie_id")).alias("movie_id"),
        F.when(ok, rating_code(scale, F.col("rd"))).alias("rating"),
        F.when(ok, F.col("ts")).alias("ts"),
        "line",
        "source",
    )


def parse_movies(lines: DataFrame, csv_header: str | None = None) -> DataFrame:
    """Validate movie lines: ``id::title::genres`` or ``id|title|...`` (latin-1), or, when
    ``csv_header`` is given (``movies.csv``), ``movieId,title,genres`` with quoted titles.

    Returns ``line, source, reason, movie_id int, title string``; ``reason`` is null for
    an accepted line, else the first failed check of ``MOVIE_REASONS`` (or ``HEADER_LINE``).
    """
    # A UTF-8 BOM read as latin-1 is the three characters "\u00ef\u00bb\u00bf".
    cleaned = lines.withColumn(
        "_c",
        F.trim(F.regexp_replace(F.col("line"), "^(\ufeff|\u00ef\u00bb\u00bf)|\r+$", "")),
    )
    c = F.col("_c")
    if csv_header is not None:
        split = cleaned.withColumn("_f", F.transform(csv_fields(c), unquote_col))
    else:
        split = cleaned.withColumn(
            "_f",
            F.when(c.contains("::"), F.split(c, "::", -1))
            .when(c.contains("|"), F.split(c, r"\|", -1))
            .otherwise(F.array(c)),
        )
    f = F.col("_f")
    header = F.lit(False) if csv_header is None else c == F.lit(csv_header.strip(" \r\ufeff"))
    fields = split.select(
        "line",
        "source",
        "_c",
        F.when(header, -1).otherwise(F.size(f)).alias("_n"),
        F.get(f, 0).alias("_m"),
        F.trim(F.get(f, 1)).alias("_title"),
    ).withColumn("_mv", F.col("_m").try_cast("bigint"))
    m, mv, title = F.col("_m"), F.col("_mv"), F.col("_title")
    checks = [(F.col("_n") == -1, HEADER_LINE), (c.rlike(_BLANK), BLANK_LINE),
              (F.col("_n") < 2, WRONG_FIELD_COUNT)]  # fmt: skip
    checks += _id_checks(
        m, mv, NON_NUMERIC_MOVIE, MOVIE_OUT_OF_RANGE, NON_POSITIVE_MOVIE, NON_CANONICAL_MOVIE
    )
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


def read_latin1_lines(spark, path: str, max_line_bytes: int) -> DataFrame:
    """The lines of a latin-1 text file/dir/glob as ``line, source``.

    Spark's text reader always decodes UTF-8, so this uses the CSV reader with a separator
    that never occurs in MovieLens files and quoting and escaping switched off. The CSV
    reader skips blank lines, and fails the read on a line longer than ``max_line_bytes``.
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
        .option("maxCharsPerColumn", int(max_line_bytes))
        .csv(path)
        .select(
            F.coalesce(F.col("line"), F.lit("")).alias("line"),
            F.col("_metadata.file_path").alias("source"),
        )
    )


def reason_counts(rows, inputs) -> dict[str, dict[str, Any]]:
    """Per input: lines_read, accepted, quarantined, reasons, bad_fraction (and header_lines
    when some were read) from ``(input, reason, count)`` rows."""
    stats = {name: {"lines_read": 0, "quarantined": 0, "reasons": {}} for name in inputs}
    for row in rows:
        entry = stats[row["input"]]
        if row["reason"] == HEADER_LINE:
            entry["header_lines"] = entry.get("header_lines", 0) + row["count"]
            continue
        entry["lines_read"] += row["count"]
        if row["reason"] is not None:
            entry["quarantined"] += row["count"]
            entry["reasons"][row["reason"]] = entry["reasons"].get(row["reason"], 0) + row["count"]
    for entry in stats.values():
        entry["accepted"] = entry["lines_read"] - entry["quarantined"]
        entry["reasons"] = dict(sorted(entry["reasons"].items()))
        entry["bad_fraction"] = (
            round(entry["quarantined"] / entry["lines_read"], 6) if entry["lines_read"] else 0.0
        )
    return stats
