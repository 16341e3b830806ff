"""Ingest, step 1: read the input lines and validate them, with a reason for every rejection.

Rating lines are ``UserID::MovieID::Rating::Timestamp`` (MovieLens 1M/10M) when the line
contains ``::``, else tab-separated (MovieLens 100k ``u.data``); movie lines are
``MovieID::Title::Genres`` or ``id|title|...`` (latin-1). Every line is accepted (typed
columns set) or gets exactly one reason, the first check of ``RATING_REASONS`` /
``MOVIE_REASONS`` it fails. Spark SQL functions only (no Python UDF).
"""

from __future__ import annotations

from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.common.errors import BadInputError

INT_MAX = 2**31 - 1
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
    valued = _with_rating_values(_rating_fields(lines))
    fast = _well_formed_rating()
    reason = F.when(fast, F.lit(None)).otherwise(_first_reason(_rating_checks()))
    with_reason = valued.withColumns({"_fast": fast, "reason": reason})
    return _typed_ratings(with_reason)


def _rating_fields(lines: DataFrame) -> DataFrame:
    """``line, source``, the cleaned line ``_c``, its field count ``_n`` (a trailing empty
    field not counted) and its raw fields ``_u, _m, _r, _t`` (null when missing)."""
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
    return split.select(
        "line",
        "source",
        "_c",
        F.when(F.get(f, n - 1) == "", n - 1).otherwise(n).alias("_n"),
        F.get(f, 0).alias("_u"),
        F.get(f, 1).alias("_m"),
        F.get(f, 2).alias("_r"),
        F.get(f, 3).alias("_t"),
    )


def _with_rating_values(fields: DataFrame) -> DataFrame:
    """``fields`` with the raw fields cast, null where they do not parse: ``_uv``, ``_mv``,
    ``_tv`` (bigint) and ``_ri`` (int)."""
    u, m, r, t = (F.col(name) for name in ("_u", "_m", "_r", "_t"))
    return fields.withColumns(
        {
            "_uv": u.try_cast("bigint"),
            "_mv": m.try_cast("bigint"),
            "_ri": r.try_cast("int"),
            "_tv": t.try_cast("bigint"),
        }
    )


def _well_formed_rating() -> Column:
    """The common case, cheaply: four well-formed integers in range."""
    uv, mv, ri, tv = (F.col(name) for name in ("_uv", "_mv", "_ri", "_tv"))
    return (
        (F.col("_n") == 4)
        & uv.between(1, INT_MAX)
        & mv.between(1, INT_MAX)
        & ri.between(MIN_RATING, MAX_RATING)
        & tv.between(-MAX_ABS_TIMESTAMP, MAX_ABS_TIMESTAMP)
    )


def _rating_as_double() -> Column:
    """The rating field as a double (only evaluated for lines off the fast path)."""
    return F.col("_r").try_cast("double")


def _rating_checks() -> list[tuple[Column, str]]:
    """(condition, reason) of every check of ``RATING_REASONS``, in that order."""
    c, u, m, r, t = (F.col(name) for name in ("_c", "_u", "_m", "_r", "_t"))
    uv, mv, tv = (F.col(name) for name in ("_uv", "_mv", "_tv"))
    rd = _rating_as_double()
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
    return checks


def _typed_ratings(with_reason: DataFrame) -> DataFrame:
    """The output columns: typed values where ``reason`` is null (accepted), else nulls."""
    uv, mv, ri, tv = (F.col(name) for name in ("_uv", "_mv", "_ri", "_tv"))
    ok = F.col("reason").isNull()
    return with_reason.select(
        "line",
        "source",
        "reason",
        F.when(ok, uv.try_cast("int")).alias("user_id"),
        F.when(ok, mv.try_cast("int")).alias("movie_id"),
        F.when(F.col("_fast"), ri.try_cast("tinyint"))
        .when(ok, _rating_as_double().try_cast("tinyint"))
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


def reason_counts(rows, inputs) -> dict[str, dict[str, Any]]:
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
