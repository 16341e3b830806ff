"""Command lines and logs: the flags every job shares, parsing, value types, logging, timings."""

from __future__ import annotations

import argparse
import logging
import re
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import date

from jobs.common.errors import UsageError
from jobs.common.paths import output_problem

log = logging.getLogger("rbm-reco")

LOG_LEVELS = ("DEBUG", "INFO", "WARN", "WARNING", "ERROR")
DATE_FORMAT = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class JobArgumentParser(argparse.ArgumentParser):
    """argparse whose mistakes are usage errors: one ``rbm-reco: error:`` line, exit 2."""

    def error(self, message: str):  # argparse's hook: called instead of printing usage
        raise UsageError(f"{message} (see {self.prog} --help)")


def export_date(value: str) -> str:
    """A calendar date written exactly ``YYYY-MM-DD`` (an export's ``dt=``), else a usage
    error: ``20260101`` or ``2026-W01-4`` name the same day in other spellings, and each
    spelling would get its own folder and lock."""
    problem = f"--dt must be a date YYYY-MM-DD, got {value!r}"
    if not (isinstance(value, str) and DATE_FORMAT.fullmatch(value)):
        raise UsageError(problem)
    try:
        date.fromisoformat(value)
    except ValueError:
        raise UsageError(problem) from None
    return value


def output_path(value: str) -> str:
    """An output folder on the command line: not empty, not a file system's root."""
    problem = output_problem(value)
    if problem is not None:
        raise UsageError(f"output path {value!r} {problem}; give a folder of its own")
    return value


def input_path(value: str) -> str:
    """A path to read on the command line: not empty."""
    if not value.strip():
        raise UsageError("an input path is empty")
    return value


def log_level(value: str) -> str:
    """One of ``LOG_LEVELS``, upper-cased."""
    level = value.upper()
    if level not in LOG_LEVELS:
        raise UsageError(f"--log-level must be one of {', '.join(LOG_LEVELS)}, got {value!r}")
    return level


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: an integer within [low, high] (argparse names the flag)."""

    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {value!r}") from None
        if not low <= number <= high:
            raise argparse.ArgumentTypeError(f"must be within [{low}, {high}], got {number}")
        return number

    return parse


def add_common_arguments(parser: argparse.ArgumentParser) -> None:
    """--conf, --master, --set and --log-level, shared by every job."""
    parser.add_argument(
        "--conf",
        type=input_path,
        help="TOML config: 'local' or 'cluster' (the configs installed with rbm-reco), a local "
        "file, or any Hadoop URI (hdfs://, s3a://, file://); default: built-in defaults",
    )
    parser.add_argument(
        "--master",
        help="Spark master URL, e.g. local[2] or spark://host:7077 (default: spark-submit's, "
        "else spark-defaults.conf's, else the config's [spark].master, else local[*])",
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="SECTION.KEY=VALUE",
        help="override one config value, e.g. --set train.lr=0.05 or "
        "--set spark.conf.\"spark.sql.shuffle.partitions\"=64 (repeatable)",
    )
    parser.add_argument(
        "--log-level",
        type=log_level,
        help="DEBUG, INFO, WARN, ERROR: this job's log level and Spark's (default: INFO for "
        "the job's own log; Spark's level from spark.log.level / its log4j2 configuration)",
    )


def parse_job_args(
    prog: str,
    doc: str | None,
    add_arguments: Callable[[argparse.ArgumentParser], None],
    argv: Sequence[str] | None,
) -> argparse.Namespace:
    """Parse a job's command line (``--help`` shows the module docstring) and set up logging."""
    parser = JobArgumentParser(
        prog=prog, description=doc, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    return args


class CurrentStderrHandler(logging.StreamHandler):
    """A handler on whatever ``sys.stderr`` is when a record is written, not the stream of the
    moment it was made (which a caller, e.g. a test capturing output, may close meanwhile)."""

    @property
    def stream(self):  # noqa: ANN201 (logging's attribute)
        return sys.stderr

    @stream.setter
    def stream(self, _value) -> None:  # noqa: ANN001
        pass


def setup_logging(level: str | None = None) -> None:
    """The job's own log (not Spark's) at ``level`` (default INFO), on stderr."""
    name = {"WARN": "WARNING"}.get((level or "INFO").upper(), (level or "INFO").upper())
    logging.basicConfig(
        level=getattr(logging, name, logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=[CurrentStderrHandler()],
        force=True,
    )
    for noisy in ("py4j", "matplotlib", "PIL"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


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
