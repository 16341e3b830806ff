"""Score every user on Spark and publish the dated top-N export.

    rbm-reco score --out OUT [--dt YYYY-MM-DD] [--top-k 10]
    spark-submit jobs/score.py --out OUT ...

The trained weights are broadcast once; ``mapInArrow`` turns each Arrow batch of users into a
CSR block and calls ``rbmcore.scoring.recommend_csr``, the same function the in-process scorer
uses. The result is published to OUT/recommendations/dt=YYYY-MM-DD/ (see jobs/export.py).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402

from jobs import fs, layout  # noqa: E402
from jobs.common import (  # noqa: E402
    JobError,
    UsageError,
    add_common_arguments,
    get_spark,
    parse_job_args,
    resolve_conf,
    restoring_conf,
    run_main,
)
from jobs.export import publish_date  # noqa: E402
from jobs.ingested import load_vocabulary, require  # noqa: E402
from jobs.memory import configure_allocator  # noqa: E402

log = logging.getLogger("rbm-reco.score")

_MODEL_CACHE: dict[int, Any] = {}
ARROW_BATCH_ROWS = "spark.sql.execution.arrow.maxRecordsPerBatch"
MIN_SPLITS = "spark.sql.files.minPartitionNum"


def export_schema(columns: Sequence[str]) -> str:
    extra = "".join(f", {c} float" for c in columns if c not in ("score",))
    return f"user_id int, rank int, movie_id int, score float{extra}"


def model_payload(loaded) -> dict[str, Any]:
    """What the executors need, as plain numpy arrays (broadcast once per executor)."""
    return {
        "model_id": loaded.meta["model_id"],
        "hyper": loaded.meta["hyperparameters"],
        "tensors": {k: v.detach().cpu().numpy() for k, v in loaded.model.state_dict().items()},
        "movie_ids": loaded.movie_ids,
    }


def model_on_worker(broadcast) -> tuple[Any, np.ndarray]:
    """The model built from a broadcast, once per Python worker process (whose allocator is
    configured first, ``jobs.memory``)."""
    configure_allocator()
    payload = broadcast.value  # deserialised once per worker process by pyspark
    cached = _MODEL_CACHE.get(payload["model_id"])
    if cached is None:
        import torch

        from rbmcore.models import model_from_tensors

        # the model's tensors share the broadcast's arrays (one copy per worker, not two)
        tensors = {k: torch.from_numpy(writable(v)) for k, v in payload["tensors"].items()}
        model = model_from_tensors(payload["hyper"], tensors, share=True)
        cached = (model, np.asarray(payload["movie_ids"]))
        _MODEL_CACHE.clear()
        _MODEL_CACHE[payload["model_id"]] = cached
    return cached


def writable(array: np.ndarray) -> np.ndarray:
    """``array`` itself when numpy lets it be written (torch.from_numpy needs that), else a copy."""
    return array if array.flags.writeable else array.copy()


def set_task_threads() -> None:
    """torch threads = the cores this task holds (spark.task.cpus), not the machine's."""
    import torch
    from pyspark import TaskContext

    ctx = TaskContext.get()
    cpus = ctx.cpus() if ctx is not None else 1
    if torch.get_num_threads() != cpus:
        torch.set_num_threads(max(1, cpus))


def export_arrow_schema(columns: Sequence[str]):
    """The Arrow schema of ``export_schema`` (what the mapInArrow function yields)."""
    import pyarrow as pa

    fields = [("user_id", pa.int32()), ("rank", pa.int32()), ("movie_id", pa.int32())]
    fields += [("score", pa.float32())] + [(c, pa.float32()) for c in columns if c != "score"]
    return pa.schema(fields)


def make_scorer(broadcast, top_k: int, columns: list[str], fail_first_attempt: bool = False):
    """The mapInArrow function: Arrow batches of (user_id, items, ratings) -> top-N rows.

    Each batch's list columns become a CSR through their offsets (no per-user Python loop);
    ``recommend_csr`` scores it in dense chunks.
    """

    def score_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa
        from pyspark import TaskContext

        from jobs.ingested import csr_from_arrow
        from rbmcore.scoring import recommend_csr

        ctx = TaskContext.get()
        if (
            fail_first_attempt
            and ctx is not None
            and ctx.attemptNumber() == 0
            and ctx.partitionId() == 0
        ):
            raise RuntimeError("injected failure (score.inject_failure_first_attempt = true)")
        set_task_threads()
        model, movie_ids = model_on_worker(broadcast)
        schema = export_arrow_schema(columns)
        for batch in batches:
            if batch.num_rows == 0:
                continue
            csr = csr_from_arrow(batch, len(movie_ids))
            rec = recommend_csr(model, csr, top_k)
            arrays = [
                rec.user_ids.astype(np.int32),
                rec.ranks.astype(np.int32),
                movie_ids[rec.items].astype(np.int32),
                rec.scores.astype(np.float32),
            ] + [rec.extras[name].astype(np.float32) for name in columns if name != "score"]
            yield pa.RecordBatch.from_arrays([pa.array(a) for a in arrays], schema=schema)

    return score_partition


OUTPUT_COLUMNS = {
    "binary": ["p_like"],
    "softmax": ["p_like", "pred_rating"],
    "rated": ["p_rated"],
    "hybrid": ["p_rated", "p_like", "pred_rating"],
}


def output_columns(kind: str) -> list[str]:
    """The export's extra columns for a model kind (``score`` is always there): ``p_like``
    for like models, ``pred_rating`` for rating models (NaN in a hybrid whose like part is
    binary), ``p_rated`` (P(the user rates the movie)) for the rated and hybrid kinds."""
    return list(OUTPUT_COLUMNS.get(kind, ["p_like"]))


def arrow_batch_rows(n_items: int, n_states: int) -> int:
    """Users per Arrow batch, from the catalogue width: a few scoring chunks' worth.

    The input rows are sparse (a user's rated items only) and the dense block is bounded by
    ``recommend_csr``'s chunking, so a batch holds several chunks to amortise the per-batch
    cost; a wide catalogue means smaller chunks and so smaller batches.
    """
    from rbmcore.scoring import fast_users_per_chunk, users_per_chunk

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


FINGERPRINT_MOD = 2**31 - 1


def user_fingerprint(column: str = "user_id"):
    """A per-user number whose sum over a set of users identifies the set: equal sets give
    equal sums, and a set with one user lost and another counted twice gives another sum
    (xxhash64 of the id, mod 2**31 - 1; exact in a long up to ~4 billion users)."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(column), F.lit(FINGERPRINT_MOD))


def user_set(users) -> tuple[int, int]:
    """(number of rows, sum of ``user_fingerprint``) of a frame of users, in one scan."""
    from pyspark.sql import functions as F

    row = users.agg(F.count("*"), F.sum(user_fingerprint())).first()
    return int(row[0]), int(row[1] or 0)


def users_rated_everything(users, n_items: int) -> tuple[int, int]:
    """``user_set`` of the users who have rated the whole catalogue (no candidate left, so no
    export rows)."""
    from pyspark.sql import functions as F

    return user_set(users.where(F.size("items") >= n_items))


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
    from rbmcore.artifact import load_model

    dt = dt or date.today().isoformat()
    validate_dt(dt)
    top_k = int(conf["score"]["top_k"])
    if top_k < 1:
        raise UsageError(f"top_k must be >= 1, got {top_k}")
    model_path = model_path or layout.model_dir(out)
    vocab = load_vocabulary(spark, out)
    require(spark, model_path, "model")
    loaded = load_model(fs.download_dir(spark, model_path), vocab.checksum)
    kind = loaded.meta["kind"]
    columns = output_columns(kind)
    n_states = loaded.model.n_states if hasattr(loaded.model, "n_states") else 2
    # this job's Arrow batch size and split count, for its own reads only
    with restoring_conf(spark, ARROW_BATCH_ROWS, MIN_SPLITS):
        spark.conf.set(
            ARROW_BATCH_ROWS,
            str(arrow_batch_rows(vocab.n_items, n_states)),
        )
        users = read_users(spark, layout.train_ratings(out))
        expected = user_set(users)
        users = balanced_input(spark, users)
        broadcast = spark.sparkContext.broadcast(model_payload(loaded))
        inject = bool(conf["score"].get("inject_failure_first_attempt", False))
        scorer = make_scorer(broadcast, top_k, columns, inject)
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

        info = publish_date(spark, layout.recommendations(out), dt, write, manifest)
        broadcast.unpersist()
    log.info(
        "scored %d users, %d rows -> %s",
        info["users"],
        info["rows"],
        layout.recommendations_for(out, dt),
    )
    return info


def check_export(
    spark,
    path: str,
    expected: tuple[int, int],
    top_k: int,
    rated_everything: Callable[[], tuple[int, int]] = lambda: (0, 0),
) -> dict[str, int]:
    """{"rows", "users", "users_rated_everything"} of the written export at ``path``, read back
    in one scan (no shuffle). ``expected``: ``user_set`` of the ingested users. Raises
    ``JobError`` unless every ingested user is there exactly once (one rank-1 row each, and
    the rank-1 rows' ``user_fingerprint`` sum is the ingested users') with ranks 1..top_k, so
    a lost, a duplicated or a swapped part of the export is never published. Users who rated
    every movie have no rows: ``rated_everything()`` gives their ``user_set``, asked only when
    users are missing."""
    from pyspark.sql import functions as F

    first = F.col("rank") == 1
    row = (
        spark.read.parquet(path)
        .agg(
            F.count("*").alias("rows"),
            F.count(F.when(first, True)).alias("users"),
            F.sum(F.when(first, user_fingerprint())).alias("fingerprint"),
            F.min("rank").alias("min_rank"),
            F.max("rank").alias("max_rank"),
        )
        .first()
    )
    users, rows = int(row["users"]), int(row["rows"])
    expected_users, expected_print = expected
    full, full_print = rated_everything() if users < expected_users else (0, 0)
    if full:
        log.info(
            "%d of %d users have rated every movie: nothing to recommend, not in the export",
            full,
            expected_users,
        )
    if users != expected_users - full:
        what = "an incomplete" if users < expected_users - full else "a duplicated"
        raise JobError(
            f"export has {users} users but {expected_users - full} were ingested with a movie "
            f"left to recommend; not publishing {what} export"
        )
    if int(row["fingerprint"] or 0) != expected_print - full_print:
        raise JobError(
            f"export has {users} users, as many as were ingested, but not the same ones (some "
            "lost, others twice); not publishing it"
        )
    if rows and (row["min_rank"] < 1 or row["max_rank"] > top_k or rows > users * top_k):
        raise JobError(
            f"export has ranks {row['min_rank']}..{row['max_rank']} and {rows} rows for {users} "
            f"users (top_k {top_k}); not publishing it"
        )
    return {"rows": rows, "users": users, "users_rated_everything": full}


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


def validate_dt(dt: str) -> None:
    try:
        date.fromisoformat(dt)
    except ValueError as exc:
        raise UsageError(f"--dt must be a date YYYY-MM-DD, got {dt!r}") from exc


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run folder with ingest/ and model/")
    parser.add_argument("--model", help="model folder (default OUT/model)")
    parser.add_argument("--dt", help="export date YYYY-MM-DD (default: today)")
    parser.add_argument(
        "--top-k", type=int, dest="top_k", help="recommendations per user (default 10)"
    )
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco score", __doc__, add_arguments, argv)
    conf = resolve_conf(args, {"score": {"top_k": args.top_k}})
    spark = get_spark(conf, args.master)
    info = run_score(spark, conf, args.out, args.dt, args.model)
    print(
        f"exported {info['rows']} rows for {info['users']} users to "
        f"{layout.recommendations_for(args.out, info['dt'])}"
    )
    return 0


if __name__ == "__main__":
    run_main(main, None)
