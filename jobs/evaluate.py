"""Evaluate an export and the model on the held-out test split (docs/design.md, "Evaluation").

    rbm-reco evaluate --out OUT [--dt YYYY-MM-DD]
    spark-submit jobs/evaluate.py --out OUT ...

Ranking metrics (P/R/nDCG/MAP@k; relevant = any test rating, and = rating >= 4) come from the
published export of that date; like error, AUC and (for rating models) RMSE/MAE come from
per-pair predictions, made on Spark with the same ``rbmcore`` function the trainer uses.
Ratings are on the data's scale (half stars: 0.5..5.0); implicit data (no ratings) have the
ranking metrics only. The metrics are computed on the executors (``jobs.evaluation.metrics``):
nothing is collected to the driver but one row per partition. Writes OUT/metrics.json,
OUT/predictions/ (Parquet) and OUT/report.md.
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
from jobs.common.errors import BadInputError, run_main
from jobs.common.session import get_spark
from jobs.evaluation.metrics import like_and_rating_block, ranking_block
from jobs.ingestion.readback import load_vocabulary, require
from jobs.report import LOSS_PLOT, metrics_markdown
from jobs.score import pair_predictions
from jobs.scoring.workers import broadcast_payload
from jobs.storage import fs, layout, model_store
from jobs.storage.export import PARQUET_OUTPUT, data_path, is_complete
from jobs.storage.fs import dumps_json
from jobs.storage.kinds import FolderKind, require_kind
from jobs.storage.layout import join_path

log = logging.getLogger("rbm-reco.evaluate")

PREDICTIONS = FolderKind("predictions folder", PARQUET_OUTPUT)


def run_evaluate(
    spark, conf: dict[str, Any], out: str, dt: str | None = None, model_path: str | None = None
) -> dict[str, Any]:
    """Compute the metrics of OUT's export for ``dt`` and OUT's model on OUT's test split."""
    from pyspark.sql import functions as F

    dt = export_date(dt or date.today().isoformat())
    k = int(conf["score"]["top_k"])
    out = fs.output_dir(spark, out, "--out")
    require(spark, layout.test_ratings(out), "test split (give --test to ingest)")
    root = layout.recommendations(out)
    if not is_complete(spark, root, dt):
        raise BadInputError(f"no complete export for dt={dt} under {root}; run `rbm-reco score`")
    require_kind(spark, layout.predictions(out), PREDICTIONS)
    vocab = load_vocabulary(spark, out)
    loaded = model_store.load(spark, model_path or layout.model_dir(out), vocab.checksum)

    train = spark.read.parquet(layout.train_ratings(out)).select("user_id", "items", "ratings")
    test = spark.read.parquet(layout.test_ratings(out)).select(
        "user_id", F.col("items").alias("test_items"), F.col("ratings").alias("test_ratings")
    )
    broadcast = spark.sparkContext.broadcast(broadcast_payload(loaded))
    predictions = pair_predictions(broadcast, train, test)
    predictions.write.mode("overwrite").parquet(layout.predictions(out))
    broadcast.unpersist()

    pred = spark.read.parquet(layout.predictions(out))
    recs = spark.read.parquet(data_path(spark, root, dt))
    tasks = 2 * max(1, spark.sparkContext.defaultParallelism)
    scale = loaded.model.scale
    rating = like_and_rating_block(pred, tasks, scale)
    result: dict[str, Any] = {
        "dt": dt,
        "k": k,
        "model_id": loaded.meta["model_id"],
        "kind": loaded.meta["kind"],
        "rating_scale": scale.name,
        "test_users": rating.pop("users"),
        "test_pairs": rating.pop("pairs"),
        "ranking": ranking_block(recs, pred, k, tasks),
        "rating": rating,
    }
    if not scale.implicit:
        relevant = pred.where(F.col("rating") >= 4)
        result["ranking_relevant_ge4"] = ranking_block(recs, relevant, k, tasks)
    summary_path = layout.ingest_summary(out)
    if fs.exists(spark, summary_path):
        result["test_excluded"] = {
            key: fs.read_json(spark, summary_path).get("test", {}).get(key, 0)
            for key in ("unknown_user_pairs", "unknown_item_pairs")
        }
    fs.write_text(spark, layout.metrics_json(out), dumps_json(result))
    plot = (
        join_path("model", LOSS_PLOT)
        if fs.exists(spark, join_path(layout.model_dir(out), LOSS_PLOT))
        else None
    )
    fs.write_text(spark, layout.report_md(out), metrics_markdown(result, plot))
    log.info("metrics: %s", one_line(result))
    return result


def one_line(result: dict[str, Any]) -> str:
    r, q = result["ranking"], result["rating"]
    parts = [
        f"P@{result['k']} {r['precision']:.3f}",
        f"nDCG@{result['k']} {r['ndcg']:.3f}",
        f"MAP@{result['k']} {r['map']:.3f}",
    ]
    if "like_error" in q:  # not for implicit data
        parts += [f"like error {q['like_error']:.3f}", f"AUC {q['auc']:.3f}"]
    if "rmse" in q:
        parts.append(f"RMSE {q['rmse']:.3f}")
    return ", ".join(parts)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=output_path,
        help="run folder with ingest/, model/, recommendations/",
    )  # fmt: skip
    parser.add_argument("--model", type=input_path, help="model folder (default OUT/model)")
    parser.add_argument("--dt", type=export_date, help="export date to evaluate (default: today)")
    parser.add_argument(
        "--top-k", type=int, dest="top_k", help="k of the ranking metrics (default 10)"
    )
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco evaluate", __doc__, add_arguments, argv)
    conf = resolve_conf(args, {"score": {"top_k": args.top_k}})
    spark = get_spark(conf, args.master, args.log_level)
    result = run_evaluate(spark, conf, args.out, args.dt, args.model)
    print(one_line(result))
    print(f"metrics written to {layout.metrics_json(args.out)}")
    return 0


if __name__ == "__main__":
    run_main(main, None)
