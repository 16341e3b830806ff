"""What every job shares: configuration, argument parsing, the SparkSession, errors, logging."""

from __future__ import annotations

import argparse
import copy
import json
import logging
import os
import sys
import time
import tomllib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

log = logging.getLogger("rbm-reco")

REPO_CONF_DIR = Path(__file__).resolve().parent.parent / "conf"

DEFAULT_CONF: dict[str, Any] = {
    "spark": {
        "app_name": "rbm-reco",
        "conf": {
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
        },
    },
    "ingest": {"max_bad_fraction": 0.01, "batch_size": 100},
    "train": {"seed": 42, "device": "auto"},  # the kind's defaults: rbmcore.training
    "score": {"top_k": 10},
}


class JobError(Exception):
    """An error a user can act on: printed as one line, the process exits with ``exit_code``."""

    exit_code = 1


class UsageError(JobError):
    exit_code = 2


class BadInputError(JobError):
    exit_code = 3


class LockHeldError(JobError):
    exit_code = 4


EXIT_MODEL_FILE = 5
EXIT_DIVERGED = 6


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, recursively for nested tables."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_conf(path: str | None) -> dict[str, Any]:
    """Defaults merged with the TOML file at ``path`` (none: the defaults alone)."""
    if path is None:
        return copy.deepcopy(DEFAULT_CONF)
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        with file.open("rb") as fh:
            return deep_merge(DEFAULT_CONF, tomllib.load(fh))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc


def parse_set_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["train.lr=0.1", ...]`` -> nested dict; values parsed as TOML scalars when they can be."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise UsageError(f"--set expects SECTION.KEY=VALUE, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *sections, leaf = key.split(".")
        node = result
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return result


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--conf, --master, --set and --log-level, shared by every job."""
    parser.add_argument("--conf", help="TOML config file (default: built-in defaults)")
    parser.add_argument(
        "--master",
        help="Spark master URL, e.g. local[2] or spark://host:7077 "
        "(default: the config's [spark].master, else what spark-submit set, else local[*])",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.lr=0.05 (repeatable)",
    )
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


def parse_job_args(
    prog: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    argv: Sequence[str] | None,
) -> argparse.Namespace:
    """Parse a job's command line (``--help`` shows the module docstring) and set up logging."""
    parser = argparse.ArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return args


def resolve_conf(args: argparse.Namespace, flag_overrides: dict[str, Any]) -> dict[str, Any]:
    """Config file, then --set pairs, then explicit flags (``None`` flags are ignored)."""
    conf = load_conf(args.conf)
    conf = deep_merge(conf, parse_set_overrides(args.set))
    explicit = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in flag_overrides.items()
    }
    return deep_merge(conf, explicit)


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    for noisy in ("py4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def under_spark_submit() -> bool:
    """True when this Python driver was launched by spark-submit (the JVM came first)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(conf: dict[str, Any], master: str | None = None):
    """The SparkSession for a job; master from --master, the config, spark-submit, or local[*].
    Sets this process's allocator first (``jobs.memory``)."""
    from pyspark.sql import SparkSession

    from jobs.memory import configure_allocator

    configure_allocator()

    spark_conf = conf.get("spark", {})
    chosen = master or spark_conf.get("master")
    if chosen is None and not under_spark_submit():
        chosen = "local[*]"
    builder = SparkSession.builder.appName(spark_conf.get("app_name", "rbm-reco"))
    if chosen:
        builder = builder.master(chosen)
    if chosen and chosen.startswith("local"):
        # Python workers must run this interpreter, the one that has pyarrow and torch;
        # local mode stays on the loopback interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
    for key, value in spark_conf.get("conf", {}).items():
        builder = builder.config(key, str(value))
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def join_path(base: str, *parts: str) -> str:
    """Join path parts with '/', for local paths and URIs (hdfs://, s3a://, file://) alike."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


@contextmanager
def restoring_conf(spark, *keys: str) -> Iterator[None]:
    """Put the session's values of ``keys`` back (or unset them) when the block ends, so a
    job's tuning does not leak into the next job of the same session (``rbm-reco run``)."""
    before = {key: spark.conf.get(key, None) for key in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


@contextmanager
def timed(step: str, timings: dict[str, float] | None = None) -> Iterator[None]:
    """Log how long ``step`` took; record it into ``timings`` when given."""
    start = time.perf_counter()
    log.info("%s: started", step)
    try:
        yield
    finally:
        elapsed = time.perf_counter() - start
        if timings is not None:
            timings[step] = round(elapsed, 3)
        log.info("%s: finished in %.1f s", step, elapsed)


def run_main(main: Callable[[Sequence[str] | None], int], argv: Sequence[str] | None) -> None:
    """Run a job's ``main`` and exit: one clear line and a non-zero code for a ``JobError``."""
    from rbmcore.errors import ModelFileError

    try:
        code = main(argv)
    except JobError as exc:
        print(f"rbm-reco: error: {exc}", file=sys.stderr)
        sys.exit(exc.exit_code)
    except ModelFileError as exc:
        print(f"rbm-reco: error: bad model file: {exc}", file=sys.stderr)
        sys.exit(EXIT_MODEL_FILE)
    except FloatingPointError as exc:
        print(f"rbm-reco: error: {exc}", file=sys.stderr)
        sys.exit(EXIT_DIVERGED)
    except KeyboardInterrupt:
        print("rbm-reco: interrupted", file=sys.stderr)
        sys.exit(130)
    sys.exit(code or 0)


def dumps_json(obj: Any) -> str:
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
