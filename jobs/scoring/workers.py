"""What runs on the executors' Python workers: the broadcast model, built once per worker, and
the ``mapInArrow`` functions that turn Arrow batches of users into top-N rows (score) or
per-pair predictions (evaluate), calling the same ``rbmcore`` functions as the in-process
scorer."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np

from jobs.common.memory import configure_allocator
from jobs.ingestion.readback import csr_from_arrow
from rbmcore.io.artifact import LoadedModel
from rbmcore.io.payload import model_from_payload, model_payload
from rbmcore.scoring import predict_csr, recommend_csr

_MODEL_CACHE: dict[str, Any] = {}


def broadcast_payload(loaded: LoadedModel) -> dict[str, Any]:
    """What the executors need, as plain numpy arrays (broadcast once per executor)."""
    return {
        "model_id": loaded.meta["model_id"],
        **model_payload(loaded.model),
        "movie_ids": loaded.movie_ids,
    }


def model_on_worker(broadcast) -> tuple[Any, np.ndarray]:
    """The model built from a broadcast, once per Python worker process (whose allocator is
    configured first, ``jobs.common.memory``)."""
    configure_allocator()
    payload = broadcast.value  # deserialised once per worker process by pyspark
    cached = _MODEL_CACHE.get(payload["model_id"])
    if cached is None:
        # the model's tensors share the broadcast's arrays (one copy per worker, not two)
        model = model_from_payload(payload, share=True)
        cached = (model, np.asarray(payload["movie_ids"]))
        _MODEL_CACHE.clear()
        _MODEL_CACHE[payload["model_id"]] = cached
    return cached


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


def make_scorer(broadcast, top_k: int, columns: Sequence[str]):
    """The mapInArrow function: Arrow batches of (user_id, items, ratings) -> top-N rows.

    Each batch's list columns become a CSR through their offsets (no per-user Python loop);
    ``recommend_csr`` scores it in dense chunks.
    """

    def score_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

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


def make_predictor(broadcast):
    """mapInArrow: rows (user_id, items, ratings, test_items, test_ratings) -> one row per
    test pair with its rating (on the model's scale), p_like and pred_rating (NaN when the
    model predicts no ratings)."""

    def predict_partition(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        set_task_threads()
        model, movie_ids = model_on_worker(broadcast)
        n_items = len(movie_ids)
        schema = pa.schema(
            [("user_id", pa.int32()), ("movie_id", pa.int32()), ("rating", pa.float32())]
            + [("p_like", pa.float32()), ("pred_rating", pa.float32())]
        )
        for batch in batches:
            if batch.num_rows == 0:
                continue
            context = csr_from_arrow(batch, n_items)
            queries = csr_from_arrow(
                pa.RecordBatch.from_arrays(
                    [batch.column("user_id"), batch.column("test_items")]
                    + [batch.column("test_ratings")],
                    ["user_id", "items", "ratings"],
                ),
                n_items,
            )
            preds = predict_csr(model, context, queries)
            n = queries.nnz
            arrays = [
                np.repeat(context.user_ids, queries.row_lengths()).astype(np.int32),
                movie_ids[queries.items].astype(np.int32),
                model.scale.value_of(queries.ratings).astype(np.float32),
                preds["p_like"].astype(np.float32),
                preds.get("pred_rating", np.full(n, np.nan)).astype(np.float32),
            ]
            yield pa.RecordBatch.from_arrays([pa.array(a) for a in arrays], schema=schema)

    return predict_partition
