"""Generate a synthetic MovieLens-like dataset (no Spark) in a MovieLens release's shape.

rbm-reco generate --preset ml-1m --out DIR [--users N --movies N --ratings N]
                  [--seed S --test-fraction F] [--format dat|tab|csv|parquet] [--half-stars]
python jobs/generate.py --preset ml-25m --format csv --half-stars --out /tmp/ml-25m-synth

--format dat (default): ratings.dat and movies.dat as MovieLens 1M / 10M; tab: u.data and
u.item as 100k; csv: ratings.csv and movies.csv as 20M / 25M / 32M; parquet: ratings.parquet
(the CSV's columns) and movies.csv. --half-stars: ratings 0.5..5.0 as 10M and later releases.
With --test-fraction the train and test splits are written beside (train.dat / test.dat,
u.base / u.test, train.csv / test.csv, train.parquet / test.parquet).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence

from jobs.common.args import JobArgumentParser, bounded_int, log_level, output_path, setup_logging
from jobs.common.errors import UsageError, run_main
from rbmcore.data.synthetic import FORMATS, PRESETS, GeneratorSpec, write_dataset

log = logging.getLogger("rbm-reco.generate")

# the largest sizes the generator accepts (ml-32m has 200,948 users, 87,585 movies, 32M ratings)
MAX_USERS = 100_000_000
MAX_MOVIES = 10_000_000
MAX_RATINGS = 10_000_000_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The generate job's flags (no Spark flags: the generator is pure numpy)."""
    parser.add_argument(
        "--preset",
        choices=sorted(PRESETS),
        help="MovieLens-sized preset: " + ", ".join(
            f"{name} ({p['users']:,} users, {p['movies']:,} movies, {p['ratings']:,} ratings)"
            for name, p in PRESETS.items()
        ),
    )  # fmt: skip
    parser.add_argument(
        "--out", required=True, type=output_path, help="output directory (local path)"
    )
    parser.add_argument("--users", type=bounded_int(1, MAX_USERS),
                        help="number of users (overrides the preset)")
    parser.add_argument("--movies", type=bounded_int(1, MAX_MOVIES),
                        help="number of movies (overrides the preset)")
    parser.add_argument("--ratings", type=bounded_int(1, MAX_RATINGS),
                        help="number of ratings (overrides the preset)")
    parser.add_argument("--seed", type=bounded_int(0, 2**31 - 1), default=0,
                        help="random seed (default 0)")  # fmt: skip
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.0,
        help="per-user random holdout written to test.dat (train.dat gets the rest); "
        "0 (default) writes ratings.dat only",
    )
    parser.add_argument(
        "--format",
        choices=sorted(FORMATS),
        default="dat",
        help="the files' shape: dat (MovieLens 1M/10M), tab (100k), csv (20M/25M/32M), parquet",
    )
    parser.add_argument(
        "--half-stars",
        action="store_true",
        help="ratings in half stars 0.5..5.0 (MovieLens 10M and later) instead of 1..5",
    )
    parser.add_argument(
        "--chunk-users",
        type=bounded_int(1, MAX_USERS),
        default=16_384,
        help="users formatted and written at a time (memory vs speed; output is the same)",
    )
    parser.add_argument(
        "--log-level", type=log_level, help="DEBUG, INFO, WARN, ERROR (default INFO)"
    )


def spec_from_args(args: argparse.Namespace) -> GeneratorSpec:
    """The ``GeneratorSpec`` the flags ask for; ``UsageError`` when they do not add up."""
    sizes = {"n_users": args.users, "n_movies": args.movies, "n_ratings": args.ratings}
    options = {
        "seed": args.seed, "test_fraction": args.test_fraction, "half_stars": args.half_stars
    }
    try:
        if args.preset:
            return GeneratorSpec.from_preset(args.preset, **sizes, **options)
        missing = [f"--{name[2:]}" for name, v in sizes.items() if v is None]
        if missing:
            raise UsageError(f"give --preset or all of --users --movies --ratings (missing "
                             f"{' '.join(missing)})")  # fmt: skip
        return GeneratorSpec(**sizes, **options)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = JobArgumentParser(
        prog="rbm-reco generate",
        description="Write a synthetic MovieLens-like dataset with planted tastes.",
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    spec = spec_from_args(args)
    try:
        summary = write_dataset(spec, args.out, chunk_users=args.chunk_users, fmt=args.format)
    except OSError as exc:
        raise UsageError(f"cannot write to {args.out}: {exc}") from exc
    log.info(
        "mean rating %.3f, %d movies rated, files: %s",
        summary["mean_rating"],
        summary["n_movies_rated"],
        ", ".join(summary["files"]),
    )
    return 0


if __name__ == "__main__":
    run_main(main, None)
