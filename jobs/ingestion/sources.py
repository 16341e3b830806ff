"""Ingest, step 0: what an input is (format, header, columns) and its raw fields as strings.

Formats (``--format``, default ``auto``):

- ``text``: headerless lines, ``UserID::MovieID::Rating::Timestamp`` when a line contains
  ``::``, else tab-separated (MovieLens 100k ``u.data``, 1M / 10M ``ratings.dat``); ``dat``
  splits on ``::`` only, ``tab`` on tabs only.
- ``csv``: comma-separated, double quotes around a field that holds commas or quotes (``""``
  inside is one quote), with a header (MovieLens 20M / 25M / 32M / latest ``ratings.csv``:
  ``userId,movieId,rating,timestamp``) or without one (then the columns are user, movie,
  rating, timestamp in that order).
- ``parquet``: a Parquet file or folder; ``table``: a Spark table by name (``--ratings-table``).

``auto`` picks ``parquet`` for ``.parquet`` files and Parquet magic bytes, ``csv`` for
``.csv`` (before a ``.gz`` / ``.bz2`` suffix) and for a first line with commas and no ``::`` or
tab, ``tab`` for ``.tsv``, else ``text``. A CSV header, a Parquet file and a table name their
columns; ``columns`` maps the roles ``user``, ``item``, ``rating``, ``time`` to them (MovieLens's
``userId``, ``movieId``, ``rating``, ``timestamp`` by default; matched ignoring case). Without
a rating column the data are implicit (every row an interaction); without a time column every
row has timestamp 0.

Every input becomes ``read_fields``'s frame: ``line`` (the raw line; for Parquet and tables
the row's values joined by commas), ``source`` (file or table), ``_n`` (the field count),
``_u, _m, _r, _t`` (the raw user, movie, rating and time fields as strings), and ``_bytes``
(the line's bytes and its newline, for ``jobs.ingest.check_skipped_bytes``).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from jobs.common.errors import BadInputError, UsageError

log = logging.getLogger("rbm-reco.ingest")

FORMATS = ("auto", "text", "dat", "tab", "csv", "parquet")
ROLES = ("user", "item", "rating", "time")
MOVIELENS_COLUMNS = {"user": "userId", "item": "movieId", "rating": "rating", "time": "timestamp"}
MOVIES_CSV_COLUMNS = {"item": "movieId", "title": "title"}
COMPRESSED = (".gz", ".bz2", ".deflate", ".lz4", ".snappy", ".zst")
TEXT_FIELDS = 4  # user, movie, rating, timestamp
# Bounds what one line may hold in the reader's memory (ingest.max_line_bytes): Hadoop's line
# reader skips longer lines, ``jobs.ingest.check_skipped_bytes`` makes that an error for
# uncompressed files.
LINE_MAX_KEY = "mapreduce.input.linerecordreader.line.maxlength"
# A comma outside double quotes (an even number of quotes follows it).
_CSV_SPLIT = ',(?=(?:[^"]*"[^"]*")*[^"]*$)'
_ID_TYPES = (T.ByteType, T.ShortType, T.IntegerType, T.LongType, T.StringType, T.DecimalType)
_RATING_TYPES = (*_ID_TYPES, T.FloatType, T.DoubleType)
_TIME_TYPES = (*_ID_TYPES, T.TimestampType, T.TimestampNTZType, T.DateType, T.DoubleType)


@dataclass(frozen=True)
class Source:
    """One ratings input: where it is, its format and which field holds each role.

    ``location``: path (or table name); ``format``: text, dat, tab, csv, parquet or table;
    ``columns``: role -> column name (None: absent) for csv with a header, parquet, table;
    ``positions``: role -> field index for csv; ``header``: the csv header line as read;
    ``files``: the data files (sizes by path) of a path input.
    """

    what: str
    location: str
    format: str
    columns: dict[str, str | None] = field(default_factory=dict)
    positions: dict[str, int] = field(default_factory=dict)
    header: str | None = None
    n_fields: int = TEXT_FIELDS
    files: dict[str, int] = field(default_factory=dict)

    @property
    def has_rating(self) -> bool:
        return self.format in ("text", "dat", "tab") or self.columns.get("rating") is not None

    @property
    def has_time(self) -> bool:
        return self.format in ("text", "dat", "tab") or self.columns.get("time") is not None

    def describe(self) -> dict:
        """For the summary: format, and the columns read for each role."""
        out: dict = {"format": self.format, "location": self.location}
        if self.columns:
            out["columns"] = dict(self.columns)
        return out


def parse_columns(text: str | dict | None) -> dict[str, str | None]:
    """``user=userId,item=movieId,...`` (or the ``[ingest.columns]`` table) -> role -> name;
    the roles not given keep MovieLens's names; an empty name (``rating=``) means the input
    has no such column."""
    if text is None or text == "" or text == {}:
        return dict(MOVIELENS_COLUMNS)
    pairs = text.items() if isinstance(text, dict) else _split_pairs(str(text))
    columns: dict[str, str | None] = dict(MOVIELENS_COLUMNS)
    for role, name in pairs:
        if role not in ROLES:
            raise UsageError(
                f"unknown column role {role!r} in --columns; roles: {', '.join(ROLES)}"
            )
        columns[role] = str(name).strip() or None
    for role in ("user", "item"):
        if columns[role] is None:
            raise UsageError(f"--columns must name the {role} column")
    return columns


def _split_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for part in text.split(","):
        role, sep, name = part.partition("=")
        if not sep:
            raise UsageError(f"--columns expects ROLE=COLUMN pairs, got {part!r}")
        pairs.append((role.strip(), name))
    return pairs


# -- files -------------------------------------------------------------------------------


def error_line(exc: BaseException) -> str:
    """The most telling line of an error from the JVM (its Java exception, not py4j's call)."""
    from py4j.protocol import Py4JJavaError

    text = str(exc.java_exception.toString()) if isinstance(exc, Py4JJavaError) else str(exc)
    text = text.strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _hadoop(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def data_files(spark, path: str, what: str) -> dict[str, int]:
    """path -> size of the data files a file, folder or glob names (names starting with ``_``
    or ``.`` skipped, as Spark's readers skip them), sorted; ``BadInputError`` when none."""
    try:
        hfs, hpath = _hadoop(spark, path)
        matches = hfs.globStatus(hpath)
    except Exception as exc:  # py4j wraps IOException, IllegalArgumentException, ...
        raise BadInputError(f"cannot access {what} path {path}: {error_line(exc)}") from exc
    if matches is None or len(matches) == 0:
        raise BadInputError(f"{what} path not found: {path}")
    files: dict[str, int] = {}
    for status in matches:
        children = hfs.listStatus(status.getPath()) if status.isDirectory() else [status]
        for child in children:
            name = child.getPath().getName()
            if child.isFile() and not name.startswith(("_", ".")):
                files[child.getPath().toString()] = int(child.getLen())
    return dict(sorted(files.items()))


def first_line(spark, path: str) -> str | None:
    """The first line of a file (decompressed by its suffix), None when it is empty."""
    jvm = spark._jvm
    hfs, hpath = _hadoop(spark, path)
    conf = spark._jsc.hadoopConfiguration()
    stream = hfs.open(hpath)
    try:
        codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(hpath)
        if codec is not None:
            stream = codec.createInputStream(stream)
        reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
        line = reader.readLine()
    except Exception as exc:
        raise BadInputError(f"cannot read {path}: {error_line(exc)}") from exc
    finally:
        stream.close()
    return None if line is None else str(line)


def has_parquet_magic(spark, path: str) -> bool:
    hfs, hpath = _hadoop(spark, path)
    stream = hfs.open(hpath)
    try:
        head = bytes(stream.read() & 0xFF for _ in range(4))
    finally:
        stream.close()
    return head == b"PAR1"


def _base_name(path: str) -> str:
    name = path.rstrip("/").rsplit("/", 1)[-1].lower()
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def detect_format(spark, files: dict[str, int]) -> str:
    """The format of the first data file (see the module doc)."""
    first = next(iter(files))
    name = _base_name(first)
    if name.endswith(".parquet") or (name == first.rsplit("/", 1)[-1].lower()
                                     and files[first] >= 4 and has_parquet_magic(spark, first)):
        return "parquet"  # fmt: skip
    if name.endswith(".csv"):
        return "csv"
    if name.endswith(".tsv"):
        return "tab"
    line = first_line(spark, first) or ""
    if "," in line and "::" not in line and "\t" not in line:
        return "csv"
    return "text"


# -- describing an input -------------------------------------------------------------------


def describe_source(
    spark,
    what: str,
    path: str | None = None,
    table: str | None = None,
    fmt: str = "auto",
    columns: dict[str, str | None] | None = None,
    explicit_columns: bool = False,
) -> Source:
    """The ``Source`` of a path (format detected unless ``fmt`` forces it) or a table;
    ``BadInputError`` (exit 3) with one line naming the input and the problem when it cannot
    be read as asked (missing path or table, a CSV header without the user or movie column,
    a Parquet column of a type that cannot hold the role)."""
    columns = dict(columns or MOVIELENS_COLUMNS)
    if fmt not in FORMATS:
        raise UsageError(f"--format must be one of {', '.join(FORMATS)}, got {fmt!r}")
    if table is not None:
        if not spark.catalog.tableExists(table):
            raise BadInputError(f"{what} table not found: {table}")
        schema = spark.table(table).schema
        return Source(what, table, "table", resolve_typed(schema, columns, what, table))
    files = data_files(spark, path, what)
    if fmt == "auto":
        fmt = detect_format(spark, files)
    if fmt in ("text", "dat", "tab"):
        if explicit_columns:
            raise UsageError(f"--columns needs a CSV header, Parquet or a table; {path} is "
                             f"{fmt} (user, movie, rating, timestamp in order)")  # fmt: skip
        return Source(what, path, fmt, files=files)
    if fmt == "parquet":
        try:
            schema = spark.read.parquet(path).schema
        except Exception as exc:
            raise BadInputError(
                f"{what} input {path} is not readable as Parquet: {error_line(exc)}"
            ) from exc
        mapped = resolve_typed(schema, columns, what, path)
        return Source(what, path, "parquet", mapped, files=files)
    return describe_csv(spark, what, path, files, columns, explicit_columns)


def describe_csv(spark, what, path, files, columns, explicit_columns) -> Source:
    """A CSV input: its header (the first line of the first file, when its first field is
    not a number) mapped to the roles."""
    first = next(iter(files))
    line = (first_line(spark, first) or "").lstrip("\ufeff").rstrip("\r")
    fields = [unquote(f.strip()) for f in split_csv_line(line)]
    if not fields or fields[0].lstrip("+-").isdigit() or line.strip() == "":
        if explicit_columns:
            raise BadInputError(f"{what} CSV {first} has no header to map --columns to")
        positions = {role: i for i, role in enumerate(ROLES)}
        return Source(what, path, "csv", positions=positions, files=files)
    lower = {name.lower(): i for i, name in reversed(list(enumerate(fields)))}
    positions, mapped = {}, {}
    for role in ROLES:
        name = columns.get(role)
        if name is not None and name.lower() in lower:
            positions[role], mapped[role] = lower[name.lower()], fields[lower[name.lower()]]
        elif role in ("user", "item") or (explicit_columns and name is not None):
            raise BadInputError(
                f"{what} CSV {first}: the header ({line[:200]}) has no column {name!r} for the "
                f"{role}; name the columns with --columns user=COL,item=COL,rating=COL,time=COL"
            )
        else:
            mapped[role] = None
    _log_absent(what, mapped)
    return Source(what, path, "csv", mapped, positions, line, len(fields), files)


def resolve_typed(schema: T.StructType, columns, what: str, location: str) -> dict:
    """role -> column of a Parquet file or table, checked to have a type that holds it."""
    by_lower = {f.name.lower(): f for f in schema.fields}
    allowed = {"user": _ID_TYPES, "item": _ID_TYPES, "rating": _RATING_TYPES, "time": _TIME_TYPES}
    mapped: dict[str, str | None] = {}
    for role in ROLES:
        name = columns.get(role)
        found = by_lower.get(name.lower()) if name else None
        if found is None:
            if role in ("user", "item"):
                raise BadInputError(
                    f"{what} input {location} has no column {name!r} for the {role} (columns: "
                    f"{', '.join(f.name for f in schema.fields)}); name it with --columns "
                    f"{role}=COL"
                )
            mapped[role] = None
            continue
        decimal_ok = not isinstance(found.dataType, T.DecimalType) or role == "rating" or (
            found.dataType.scale == 0
        )
        if not isinstance(found.dataType, allowed[role]) or not decimal_ok:
            raise BadInputError(
                f"{what} input {location}: column {found.name} ({role}) has type "
                f"{found.dataType.simpleString()}, which cannot hold a {role}"
            )
        mapped[role] = found.name
    _log_absent(what, mapped)
    return mapped


def _log_absent(what: str, mapped: dict[str, str | None]) -> None:
    if mapped.get("rating") is None:
        log.info("ingest: %s: no rating column: implicit data (every row an interaction)", what)
    if mapped.get("time") is None:
        log.info("ingest: %s: no time column: every row has timestamp 0", what)


# -- reading the raw fields ----------------------------------------------------------------


def split_csv_line(line: str) -> list[str]:
    """A CSV line's fields in Python (for the header), with the reader's quoting rules."""
    fields, current, quoted = [], [], False
    for ch in line:
        if ch == '"':
            quoted = not quoted
        if ch == "," and not quoted:
            fields.append("".join(current))
            current = []
        else:
            current.append(ch)
    fields.append("".join(current))
    return fields


def unquote(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] == '"':
        return text[1:-1].replace('""', '"')
    return text


def unquote_col(c: Column) -> Column:
    """A CSV field without its surrounding quotes, ``""`` inside read as ``"``."""
    quoted = c.startswith('"') & c.endswith('"') & (F.length(c) >= 2)
    inner = F.regexp_replace(c.substr(F.lit(2), F.length(c) - 2), '""', '"')
    return F.when(quoted, inner).otherwise(c)


def csv_fields(c: Column) -> Column:
    """The fields of CSV lines (``c``): a plain split on commas, or a quote-aware one for the
    lines holding a double quote."""
    return F.when(c.contains('"'), F.split(c, _CSV_SPLIT, -1)).otherwise(F.split(c, ",", -1))


def read_text_lines(spark, path: str, max_line_bytes: int) -> DataFrame:
    """``line, source, _bytes`` of text files (UTF-8; .gz / .bz2 decoded by suffix), lines
    split on ``\\n`` only (a ``\\r`` before it stays in the line), at most
    ``max_line_bytes`` each (longer lines are skipped by the reader)."""
    spark._jsc.hadoopConfiguration().set(LINE_MAX_KEY, str(int(max_line_bytes)))
    return spark.read.option("lineSep", "\n").text(path).select(
        F.col("value").alias("line"),
        F.col("_metadata.file_path").alias("source"),
        (F.octet_length("value") + 1).cast("int").alias("_bytes"),
    )


def read_fields(spark, source: Source, max_line_bytes: int) -> DataFrame:
    """``line, source, _bytes, _c, _n, _u, _m, _r, _t`` of every line (row) of ``source``:
    ``_c`` the line without a BOM, CRs and surrounding spaces; ``_n`` its field count (a
    trailing empty field of text lines not counted); the four raw fields (null when absent).
    CSV header lines (lines equal to the first file's header) get ``_n = -1``."""
    if source.format in ("parquet", "table"):
        return _typed_fields(spark, source)
    lines = read_text_lines(spark, source.location, max_line_bytes)
    cleaned = lines.withColumn("_c", F.btrim(F.col("line"), F.lit(" \r\ufeff")))
    c = F.col("_c")
    if source.format == "csv":
        split = cleaned.withColumn("_f", csv_fields(c))
    else:
        by_format = {"dat": F.split(c, "::", -1), "tab": F.split(c, "\t", -1)}
        auto = (
            F.when(c.contains("::"), F.split(c, "::", -1))
            .when(c.contains("\t"), F.split(c, "\t", -1))
            .otherwise(F.array(c))
        )
        split = cleaned.withColumn("_f", by_format.get(source.format, auto))
    f, n = F.col("_f"), F.size(F.col("_f"))
    if source.format == "csv":
        count = n
        if source.header is not None:
            header = source.header.strip(" \r\ufeff")
            count = F.when(c == F.lit(header), F.lit(-1)).otherwise(n)
        pos = source.positions

        def pick(role: str) -> Column:
            if role not in pos:
                return F.lit(None).cast("string")
            return unquote_col(F.get(f, pos[role]))
    else:
        count = F.when(F.get(f, n - 1) == "", n - 1).otherwise(n)

        def pick(role: str) -> Column:
            return F.get(f, ROLES.index(role))

    return split.select(
        "line", "source", "_bytes", "_c",
        count.alias("_n"),
        pick("user").alias("_u"),
        pick("item").alias("_m"),
        pick("rating").alias("_r"),
        pick("time").alias("_t"),
    )  # fmt: skip


def _typed_fields(spark, source: Source) -> DataFrame:
    """The fields of a Parquet input or a table, as strings (``line`` their comma-joined
    values; ``_n`` is always right)."""
    if source.format == "table":
        df = spark.table(source.location).withColumn("_src", F.lit(source.location))
    else:
        df = spark.read.parquet(source.location).withColumn("_src", F.col("_metadata.file_path"))
    schema = {f.name: f.dataType for f in df.schema.fields}

    def as_text(role: str) -> Column:
        name = source.columns.get(role)
        if name is None:
            return F.lit(None).cast("string")
        col, dtype = F.col(f"`{name}`"), schema[name]
        if role == "time" and isinstance(dtype, T.TimestampType | T.TimestampNTZType):
            return F.unix_seconds(col.cast("timestamp")).cast("string")
        if role == "time" and isinstance(dtype, T.DateType):
            return (F.unix_date(col).cast("bigint") * 86400).cast("string")
        return col.cast("string")

    fields = df.select(
        F.col("_src").alias("source"),
        as_text("user").alias("_u"),
        as_text("item").alias("_m"),
        as_text("rating").alias("_r"),
        as_text("time").alias("_t"),
    )
    values = [F.coalesce(F.col(n), F.lit("")) for n in ("_u", "_m", "_r", "_t")]
    line = F.concat_ws(",", *values)
    return fields.select(
        line.alias("line"),
        "source",
        F.lit(0).alias("_bytes"),
        line.alias("_c"),
        F.lit(TEXT_FIELDS).alias("_n"),
        "_u",
        "_m",
        "_r",
        "_t",
    )
