"""Score every user on Spark and publish the dated top-N export.

    rbm-reco score --out OUT [--dt YYYY-MM-DD] [--top-k 10]
    rbm-reco score --ratings FRESH --model MODEL_DIR --out OUT --dt D [--max-model-age DAYS]
    spark-submit jobs/score.py --out OUT ...

Without ``--ratings`` it scores OUT's ingested users with OUT's model. With ``--ratings`` (or
``--ratings-table``) it scores every user of that night's ratings with a saved model, without
training: FRESH is validated and quarantined as ingest does, mapped onto the model's item
vocabulary (``jobs.scoring.fresh``), and users the model never saw are folded in (the
user-based RBMs need only their ratings; item-based ways serve the users they were trained on).
The trained weights are broadcast once; ``mapInArrow`` turns each Arrow batch of users into a
CSR block and calls ``rbmcore.scoring.recommend_csr``, the same function the in-process scorer
uses (``jobs.scoring.workers``). The written export is checked (``jobs.scoring.checks``) and
published to OUT/recommendations/dt=YYYY-MM-DD/ (``jobs.storage.export``).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from pyspark.sql import DataFrame

from jobs.common.args import (
    add_common_arguments,
    export_date,
    input_path,
    output_path,
    parse_job_args,
)
from jobs.common.config import DEFAULT_CONF, check_score, resolve_conf
from jobs.common.errors import StaleModelError, run_main
from jobs.common.session import get_spark, restoring_conf
from jobs.ingestion.readback import load_vocabulary, require
from jobs.ingestion.settings import add_input_arguments, input_overrides
from jobs.scoring.checks import check_export, user_set, users_rated_everything
from jobs.scoring.fresh import read_fresh
from jobs.scoring.workers import broadcast_payload, make_predictor, make_scorer
from jobs.storage import fs, layout, model_store
from jobs.storage.export import publish_date
from rbmcore.io.artifact import LoadedModel, vocab_checksum
from rbmcore.scoring import fast_users_per_chunk, users_per_chunk

log = logging.getLogger("rbm-reco.score")

ARROW_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"
MIN_SPLITS = "spark.sql.files.minPartitionNum"


PREDICTION_SCHEMA = "user_id int, movie_id int, rating float, p_like float, pred_rating float"


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
    spark, conf: dict[str, Any], out: str, dt: str | None = None, model_path: str | None = None,
    ratings: str | None = None, ratings_table: str | None = None,
) -> dict[str, Any]:  # fmt: skip
    """Score users with a saved model and publish OUT/recommendations/dt=DT/: OUT's ingested
    users with OUT's model, or, given ``ratings`` (or ``ratings_table``), every user of those
    fresh ratings with the model at ``model_path`` (``score_fresh``)."""
    dt = export_date(dt or date.today().isoformat())
    max_age = score_settings(conf)[1]
    out = fs.output_dir(spark, out, "--out")
    model_path = fs.qualify(spark, model_path or layout.model_dir(out))
    if ratings is not None or ratings_table is not None:
        return score_fresh(spark, conf, out, dt, model_path, (ratings, ratings_table))
    vocab = load_vocabulary(spark, out)
    require(spark, model_path, "model")
    loaded = model_store.load(spark, model_path, vocab.checksum)
    model_info = model_age_check(loaded, model_path, dt, max_age)
    with restoring_conf(spark, ARROW_BATCH_ROWS, MIN_SPLITS):
        users = read_users(spark, layout.train_ratings(out))
        extra = {**model_info, "vocab_sha256": vocab.checksum, "ingest": ingest_counts(spark, out)}
        return score_and_publish(spark, conf, out, dt, loaded, users, extra)


def score_fresh(
    spark, conf: dict[str, Any], out: str, dt: str, model_path: str,
    fresh_input: tuple[str | None, str | None],
) -> dict[str, Any]:  # fmt: skip
    """The nightly export from fresh ratings (``fresh_input``: a path, or a table name): validated
    and quarantined as ingest does, mapped onto the model's vocabulary (``jobs.scoring.fresh``),
    every user with a known movie scored without training (users the model never saw folded
    in), published for ``dt``."""
    max_age = score_settings(conf)[1]
    require(spark, model_path, "model")
    loaded = model_store.load(spark, model_path, None)
    model_info = model_age_check(loaded, model_path, dt, max_age)
    fresh = read_fresh(spark, conf, out, dt, loaded, *fresh_input)
    try:
        with restoring_conf(spark, ARROW_BATCH_ROWS, MIN_SPLITS):
            extra = {
                **model_info,
                "vocab_sha256": vocab_checksum(loaded.movie_ids),
                "fresh": {**fresh_manifest(fresh.run.summary),
                          "quarantine": fresh.run.quarantine_path,
                          "summary": fresh.run.summary_path},
            }  # fmt: skip
            info = score_and_publish(spark, conf, out, dt, loaded, fresh.users, extra)
    except BaseException as exc:
        fresh.run.summary["error"] = str(exc).splitlines()[0] if str(exc) else repr(exc)
        fresh.finish("failed")
        raise
    fresh.run.summary["export"] = layout.recommendations_for(out, dt)
    fresh.finish("ok")
    return info


FRESH_MANIFEST = (
    "lines_read", "accepted", "quarantined", "bad_fraction", "duplicates_dropped", "users",
    "ratings", "unknown_movies", "unknown_movie_ratings", "users_without_known_movies",
    "scorable_users", "users_item_based", "users_user_based",
)  # fmt: skip


def fresh_manifest(counts: dict[str, Any]) -> dict[str, Any]:
    return {key: counts.get(key) for key in FRESH_MANIFEST}


def score_and_publish(
    spark, conf: dict[str, Any], out: str, dt: str, loaded, users, extra: dict[str, Any]
) -> dict[str, Any]:
    """Score ``users`` (``user_id, items, ratings``) with ``loaded`` on the executors and
    publish the checked export of ``dt`` (``conf["score"]``: top_k, how it is committed); the
    manifest is ``extra`` plus the export's counts."""
    top_k = score_settings(conf)[0]
    n_items = len(loaded.movie_ids)
    # this job's Arrow batch size and split count, for its own reads only
    spark.conf.set(ARROW_BATCH_ROWS, str(arrow_batch_rows(n_items, loaded.model.n_states)))
    expected = user_set(users)
    users = balanced_input(spark, users)
    broadcast = spark.sparkContext.broadcast(broadcast_payload(loaded))
    recs = score_users(loaded, broadcast, users, top_k).sortWithinPartitions("user_id", "rank")

    def write(path: str) -> None:
        recs.write.mode("overwrite").parquet(path)

    def manifest(path: str) -> dict[str, Any]:
        def full() -> tuple[int, int]:
            return users_rated_everything(users, n_items)

        return {
            **check_export(spark, path, expected, top_k, full),
            "top_k": top_k,
            "model_id": loaded.meta["model_id"],
            "kind": loaded.meta["kind"],
            **extra,
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


def score_users(loaded: LoadedModel, broadcast, users: DataFrame, top_k: int) -> DataFrame:
    """The top-``top_k`` unseen items of each of ``users`` (``user_id, items, ratings``) as
    export rows (``export_schema``), scored on the executors by ``broadcast`` (the
    ``broadcast_payload`` of ``loaded``, kept alive until the rows are read)."""
    columns = loaded.model.output_columns
    return users.mapInArrow(make_scorer(broadcast, top_k, columns), export_schema(columns))


def pair_predictions(broadcast, context: DataFrame, queries: DataFrame) -> DataFrame:
    """One row per (user, item) of ``queries`` (``user_id, test_items, test_ratings``) with its
    ``PREDICTION_SCHEMA`` columns, predicted on the executors by ``broadcast`` from the same
    users' rows of ``context`` (``user_id, items, ratings``); users absent from either are
    left out."""
    return context.join(queries, "user_id").mapInArrow(make_predictor(broadcast), PREDICTION_SCHEMA)


def score_settings(conf: dict[str, Any]) -> tuple[int, float | None]:
    """(top_k, max_model_age_days) of the [score] table over its defaults, checked as every
    job checks it (``check_score``: a bad value is a usage error)."""
    table = {**DEFAULT_CONF["score"], **conf.get("score", {})}
    check_score(table)
    age = table["max_model_age_days"]
    return int(table["top_k"]), None if age is None else float(age)


def model_age_check(
    loaded, model_path: str, dt: str, max_age: float | None
) -> dict[str, Any]:
    """What the manifest records of the model (when it was trained, the newest rating it was
    trained on, its age in days at the end of ``dt``), after refusing it (``StaleModelError``,
    exit 7) when it is older than ``max_age`` days."""
    created = datetime.fromisoformat(str(loaded.meta["created_at"]))
    if created.tzinfo is None:
        created = created.replace(tzinfo=UTC)
    end_of_day = datetime.combine(date.fromisoformat(dt) + timedelta(days=1), time(), UTC)
    age = (end_of_day - created).total_seconds() / 86400
    newest = loaded.meta.get("training", {}).get("newest_timestamp")
    info = {
        "model_created_at": loaded.meta["created_at"],
        "model_newest_timestamp": newest,
        "model_age_days": round(age, 3),
    }
    if max_age is not None and age > max_age:
        raise StaleModelError(
            f"model {loaded.meta['model_id']} at {model_path} was trained at "
            f"{loaded.meta['created_at']}, {age:.1f} days before the end of {dt}: older than "
            f"--max-model-age {max_age:g}; retrain it (rbm-reco train) or raise the limit"
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
        "--out", required=True, type=output_path,
        help="run folder: the export goes under it; without --ratings it holds ingest/, model/",
    )  # fmt: skip
    parser.add_argument("--model", type=input_path, help="model folder (default OUT/model)")
    parser.add_argument("--dt", type=export_date, help="export date YYYY-MM-DD (default: today)")
    parser.add_argument(
        "--top-k", type=int, dest="top_k", help="recommendations per user (default 10)"
    )
    parser.add_argument(
        "--max-model-age", type=float, dest="max_model_age_days", metavar="DAYS",
        help="refuse (exit 7) a model trained more than DAYS days before the end of --dt",
    )  # fmt: skip
    add_input_arguments(parser, scoring=True)
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco score", __doc__, add_arguments, argv)
    score = {"top_k": args.top_k, "max_model_age_days": args.max_model_age_days}
    conf = resolve_conf(args, {"score": score, "ingest": input_overrides(args)})
    spark = get_spark(conf, args.master, args.log_level)
    info = run_score(spark, conf, args.out, args.dt, args.model, args.ratings, args.ratings_table)
    print(
        f"exported {info['rows']} rows for {info['users']} users to "
        f"{layout.recommendations_for(args.out, info['dt'])}"
    )
    return 0


if __name__ == "__main__":
    run_main(main, None)
