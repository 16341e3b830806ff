"""Command lines and logs: the flags every job shares, parsing, logging, step timings."""

from __future__ import annotations

import argparse
import logging
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

log = logging.getLogger("rbm-reco")


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


def setup_logging(level: str = "INFO") -> None:
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
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
