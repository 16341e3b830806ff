"""The whole pipeline in one go: (generate) -> ingest -> train -> score -> evaluate.

    rbm-reco run --ratings R [--test T] [--movies M] --out OUT [--dt YYYY-MM-DD] [--top-k 10]
                 [--kind binary] [--max-bad-fraction F] [--epochs N]
    rbm-reco run --ratings-table db.ratings --out OUT ...
    rbm-reco run --out OUT            # no --ratings: generate the ml-1m preset and use it
    spark-submit jobs/run.py ...      # the same arguments

R and T may be files, directories or globs in any format ingest reads (`::` or tab lines, CSV,
Parquet; `--format`, `--columns`, `--rating-scale` as for `rbm-reco ingest`). Prints where the
export is and a short summary; writes OUT/run_summary.json.
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Sequence
from datetime import date
from typing import Any

from jobs.common.args import add_common_arguments, export_date, output_path, parse_job_args, timed
from jobs.common.config import resolve_conf
from jobs.common.errors import UsageError, run_main
from jobs.common.memory import release_memory
from jobs.common.session import get_spark
from jobs.evaluate import one_line, run_evaluate
from jobs.ingest import run_ingest
from jobs.ingestion.settings import add_input_arguments, input_overrides
from jobs.score import run_score
from jobs.storage import fs, layout
from jobs.train import add_training_arguments, run_train, train_overrides
from rbmcore import __version__
from rbmcore.data.synthetic import PRESETS, GeneratorSpec, write_dataset

log = logging.getLogger("rbm-reco.run")


def generate_default_data(out: str, preset: str, seed: int) -> tuple[str, str, str]:
    """Generate ``preset`` with a 20% per-user test holdout under OUT/generated/."""
    if not fs.is_local(out):
        raise UsageError(
            "default data is generated on the local disk; give --ratings for a URI --out"
        )
    folder = os.path.join(fs.local_path(out), "generated", preset)
    if not os.path.exists(os.path.join(folder, "generate_summary.json")):
        sizes = PRESETS[preset]
        spec = GeneratorSpec(
            n_users=sizes["users"],
            n_movies=sizes["movies"],
            n_ratings=sizes["ratings"],
            seed=seed,
            test_fraction=0.2,
        )
        log.info("no --ratings given: generating the %s preset into %s", preset, folder)
        write_dataset(spec, folder)
    return (
        os.path.join(folder, "train.dat"),
        os.path.join(folder, "test.dat"),
        os.path.join(folder, "movies.dat"),
    )


def run_pipeline(spark, conf: dict[str, Any], args: argparse.Namespace) -> dict[str, Any]:
    """Run every step; returns the run summary (timings, counts, metrics)."""
    timings: dict[str, float] = {}
    ratings, test, movies = args.ratings, args.test, args.movies
    dt = export_date(args.dt or date.today().isoformat())
    out = fs.output_dir(spark, args.out, "--out")
    if ratings is None and args.ratings_table is None:
        with timed("generate", timings):
            ratings, test, movies = generate_default_data(out, args.preset, 0)
    with timed("ingest", timings):
        ingest = run_ingest(
            spark, conf, ratings, out, test=test, movies=movies,
            ratings_table=args.ratings_table,
        )  # fmt: skip
    release_memory(spark)
    with timed("train", timings):
        model = run_train(spark, conf, out, resume=args.resume)
    release_memory(spark)
    with timed("score", timings):
        export = run_score(spark, conf, out, dt)
    release_memory(spark)
    metrics = None
    if test is not None:
        with timed("evaluate", timings):
            metrics = run_evaluate(spark, conf, out, dt)
    summary = {
        "rbm_reco_version": __version__,
        "dt": dt,
        "export": layout.recommendations_for(out, dt),
        "users_scored": export["users"],
        "rows_written": export["rows"],
        "model_id": model["model_id"],
        "kind": model["kind"],
        "ratings_accepted": ingest["accepted"],
        "ratings_quarantined": ingest["quarantined"],
        "metrics": metrics,
        "seconds": timings,
    }
    fs.write_json(spark, layout.run_summary(out), summary)
    return summary


def print_summary(summary: dict[str, Any]) -> None:
    print(f"\nexport:        {fs.shown(summary['export'])}")
    print(f"users scored:  {summary['users_scored']}")
    print(f"rows written:  {summary['rows_written']}")
    print(f"model:         {summary['model_id']} ({summary['kind']})")
    print(
        f"ingest:        {summary['ratings_accepted']} ratings accepted, "
        f"{summary['ratings_quarantined']} quarantined"
    )
    if summary["metrics"]:
        print(f"held-out:      {one_line(summary['metrics'])}")
    print("wall time:     " + ", ".join(f"{k} {v:.1f} s" for k, v in summary["seconds"].items()))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_input_arguments(parser)  # --ratings omitted: generate the --preset data set
    parser.add_argument("--test", help="held-out ratings to evaluate on")
    parser.add_argument("--movies", help="movies file (movies.dat, u.item or movies.csv)")
    parser.add_argument(
        "--out", required=True, type=output_path, help="run folder (local path or URI)"
    )
    parser.add_argument("--dt", type=export_date, help="export date YYYY-MM-DD (default: today)")
    parser.add_argument(
        "--top-k", type=int, dest="top_k", help="recommendations per user (default 10)"
    )
    add_training_arguments(parser)
    parser.add_argument(
        "--max-bad-fraction",
        type=float,
        dest="max_bad_fraction",
        help="fail when more than this fraction of input lines is rejected",
    )
    parser.add_argument(
        "--batch-size", type=int, dest="batch_size", help="users per training batch"
    )
    parser.add_argument(
        "--preset",
        default="ml-1m",
        choices=sorted(PRESETS),
        help="generator preset used when --ratings is omitted (default ml-1m)",
    )
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco run", __doc__, add_arguments, argv)
    overrides = train_overrides(args)
    overrides["score"] = {"top_k": args.top_k}
    overrides["ingest"] = {
        "max_bad_fraction": args.max_bad_fraction, "batch_size": args.batch_size,
        **input_overrides(args),
    }  # fmt: skip
    conf = resolve_conf(args, overrides)
    start = time.perf_counter()
    spark = get_spark(conf, args.master, args.log_level)
    summary = run_pipeline(spark, conf, args)
    print_summary(summary)
    print(f"total:         {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    run_main(main, None)
