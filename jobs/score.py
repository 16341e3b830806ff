"""Score every user on Spark and publish the dated top-N export.

    rbm-reco score --out OUT [--dt YYYY-MM-DD] [--top-k 10]
    spark-submit jobs/score.py --out OUT ...

The trained weights are broadcast once; ``mapInArrow`` turns each Arrow batch of users into a
CSR block and calls ``rbmcore.scoring.recommend_csr``, the same function the in-process scorer
uses (``jobs.scoring.workers``). The written export is checked (``jobs.scoring.checks``) and
published to OUT/recommendations/dt=YYYY-MM-DD/ (``jobs.storage.export``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import date
from typing import Any

from jobs.common.args import (
    add_common_arguments,
    export_date,
    input_path,
    output_path,
    parse_job_args,
)
from jobs.common.config import resolve_conf
from jobs.common.errors import run_main
from jobs.common.session import get_spark, restoring_conf
from jobs.ingestion.readback import load_vocabulary, require
from jobs.scoring.checks import check_export, user_set, users_rated_everything
from jobs.scoring.workers import broadcast_payload, make_scorer
from jobs.storage import fs, layout, model_store
from jobs.storage.export import publish_date
from rbmcore.scoring import fast_users_per_chunk, users_per_chunk

log = logging.getLogger("rbm-reco.score")

ARROW_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"
MIN_SPLITS = "spark.sql.files.minPartitionNum"


def export_schema(columns: Sequence[str]) -> str:
    extra = "".join(f", {c} float" for c in columns if c not in ("score",))
    return f"user_id int, rank int, movie_id int, score float{extra}"


def arrow_batch_rows(n_items: int, n_states: int) -> int:
    """Users per Arrow batch, from the catalogue width: a few scoring chunks' worth.

    The input rows are sparse (a user's rated items only) and the dense block is bounded by
    ``recommend_csr``'s chunking, so a batch holds several chunks to amortise the per-batch
    cost; a wide catalogue means smaller chunks and so smaller batches.
    """
    chunk = fast_users_per_chunk(n_items) if n_states == 2 else users_per_chunk(n_items, n_states)
    return max(256, min(10_000, 4 * chunk))


def score_tasks(spark) -> int:
    """Two tasks per core: every core busy, and a slow task costs half a core's share."""
    return 2 * max(1, spark.sparkContext.defaultParallelism)


def read_users(spark, path: str):
    """The ingested users' rows. Ingest writes at least ``score_tasks`` files and each becomes
    its own split (``spark.sql.files.minPartitionNum``; Spark would otherwise pack small files
    into one task per core), so every core scores without a shuffle."""
    spark.conf.set(MIN_SPLITS, str(score_tasks(spark)))
    return spark.read.parquet(path).select("user_id", "items", "ratings")


def balanced_input(spark, users):
    """An input of fewer than ``score_tasks`` splits (written by an older ingest, or one file
    given by hand) is repartitioned round-robin so every core scores; others are kept."""
    tasks = score_tasks(spark)
    if users.rdd.getNumPartitions() < tasks:
        return users.repartition(tasks)
    return users


def run_score(
    spark, conf: dict[str, Any], out: str, dt: str | None = None, model_path: str | None = None
) -> dict[str, Any]:
    """Score all ingested users with OUT's model and publish OUT/recommendations/dt=DT/."""
    dt = export_date(dt or date.today().isoformat())
    top_k = int(conf["score"]["top_k"])
    out = fs.output_dir(spark, out, "--out")
    model_path = fs.qualify(spark, model_path or layout.model_dir(out))
    vocab = load_vocabulary(spark, out)
    require(spark, model_path, "model")
    loaded = model_store.load(spark, model_path, vocab.checksum)
    kind = loaded.meta["kind"]
    columns = loaded.model.output_columns
    n_states = loaded.model.n_states
    # this job's Arrow batch size and split count, for its own reads only
    with restoring_conf(spark, ARROW_BATCH_ROWS, MIN_SPLITS):
        spark.conf.set(
            ARROW_BATCH_ROWS,
            str(arrow_batch_rows(vocab.n_items, n_states)),
        )
        users = read_users(spark, layout.train_ratings(out))
        expected = user_set(users)
        users = balanced_input(spark, users)
        broadcast = spark.sparkContext.broadcast(broadcast_payload(loaded))
        scorer = make_scorer(broadcast, top_k, columns)
        recs = users.mapInArrow(scorer, export_schema(columns))
        recs = recs.sortWithinPartitions("user_id", "rank")

        def write(path: str) -> None:
            recs.write.mode("overwrite").parquet(path)

        def manifest(path: str) -> dict[str, Any]:
            def full() -> tuple[int, int]:
                return users_rated_everything(users, vocab.n_items)

            return {
                **check_export(spark, path, expected, top_k, full),
                "top_k": top_k,
                "model_id": loaded.meta["model_id"],
                "kind": kind,
                "vocab_sha256": vocab.checksum,
                "ingest": ingest_counts(spark, out),
            }

        info = publish_date(spark, layout.recommendations(out), dt, write, manifest, conf["score"])
        broadcast.unpersist()
    log.info(
        "scored %d users, %d rows -> %s",
        info["users"],
        info["rows"],
        layout.recommendations_for(out, dt),
    )
    return info


INGEST_COUNTS = ("lines_read", "accepted", "quarantined", "duplicates_dropped", "bad_fraction")


def ingest_counts(spark, out: str) -> dict[str, Any] | None:
    """The ingest counts for the manifest, from OUT/ingest_summary.json (None without one)."""
    path = layout.ingest_summary(out)
    if not fs.exists(spark, path):
        return None
    summary = fs.read_json(spark, path)
    counts = {key: summary.get(key) for key in INGEST_COUNTS}
    counts["quarantine"] = layout.quarantine(out)
    return counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=output_path, help="run folder with ingest/ and model/"
    )
    parser.add_argument("--model", type=input_path, help="model folder (default OUT/model)")
    parser.add_argument("--dt", type=export_date, help="export date YYYY-MM-DD (default: today)")
    parser.add_argument(
        "--top-k", type=int, dest="top_k", help="recommendations per user (default 10)"
    )
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco score", __doc__, add_arguments, argv)
    conf = resolve_conf(args, {"score": {"top_k": args.top_k}})
    spark = get_spark(conf, args.master, args.log_level)
    info = run_score(spark, conf, args.out, args.dt, args.model)
    print(
        f"exported {info['rows']} rows for {info['users']} users to "
        f"{layout.recommendations_for(args.out, info['dt'])}"
    )
    return 0


if __name__ == "__main__":
    run_main(main, None)
