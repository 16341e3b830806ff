"""The metrics of ``rbmcore.metrics`` over DataFrames, without collecting the rows.

The export and the per-pair predictions are partitioned by user, so every user's rows sit in
one partition; on the executors each partition's users get ``rbmcore.metrics``' additive sums
(``ranking_sums``, ``like_and_rating_sums``: the same per-user maths as validation in
training), and the driver adds the partitions' sums, one small row each. AUC needs the global
order of the scores: Spark counts the likes and dislikes per distinct score and adds up the
Mann-Whitney terms (``auc``).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from rbmcore.data.scale import STARS, RatingScale
from rbmcore.metrics import (
    LIKE_AND_RATING_METRICS,
    RANKING_METRICS,
    like_and_rating_of_sums,
    like_and_rating_sums,
    ranking_of_sums,
    ranking_sums,
)

RANKING_SUMS = ("n_users", *RANKING_METRICS)
LIKE_SUMS = ("pairs", "users", "like_nll", "like_error", "squared_error", "absolute_error")
COUNTS = ("n_users", "pairs", "users")  # long columns; the others double


def sums_schema(columns: tuple[str, ...]) -> str:
    """The DDL schema of one partition's sums row."""
    return ", ".join(f"{c} {'long' if c in COUNTS else 'double'}" for c in columns)


def ranking_block(
    recs: DataFrame, relevant: DataFrame, k: int, partitions: int
) -> dict[str, float]:
    """``rbmcore.metrics.ranking_metrics`` of ``recs`` (``user_id, movie_id, rank``) against
    ``relevant`` (``user_id, movie_id``), averaged over the users with a relevant item."""
    rows = recs.select("user_id", "movie_id", "rank").unionByName(
        relevant.select("user_id", "movie_id", F.lit(None).cast("int").alias("rank"))
    )
    sums = rows.repartition(partitions, "user_id").mapInArrow(
        partition_sums(lambda t: ranking_of_table(t, k), RANKING_SUMS), sums_schema(RANKING_SUMS)
    )
    return ranking_of_sums(added(sums, RANKING_SUMS))


def ranking_of_table(table: Any, k: int) -> dict[str, float]:
    """``ranking_sums`` of one partition's rows (Arrow): recommendations have a rank, the
    relevant pairs a null one."""
    import pyarrow.compute as pc

    is_rec = pc.is_valid(table.column("rank"))
    recs, rel = table.filter(is_rec), table.filter(pc.invert(is_rec))
    return ranking_sums(
        recs.column("user_id").to_numpy(),
        recs.column("movie_id").to_numpy(),
        recs.column("rank").to_numpy(),
        rel.column("user_id").to_numpy(),
        rel.column("movie_id").to_numpy(),
        k,
    )


def like_and_rating_block(
    pred: DataFrame, partitions: int, scale: RatingScale = STARS
) -> dict[str, float]:
    """``rbmcore.metrics.like_and_rating_metrics`` of the per-pair predictions ``pred``
    (``user_id, rating, p_like, pred_rating``; ratings on ``scale``'s values), with ``pairs``
    and ``users`` counted. Implicit data: the counts only."""
    sums = pred.repartition(partitions, "user_id").mapInArrow(
        partition_sums(lambda t: like_and_rating_of_table(t, scale), LIKE_SUMS),
        sums_schema(LIKE_SUMS),
    )
    total = added(sums, LIKE_SUMS)
    out = like_and_rating_of_sums({k: v for k, v in total.items() if v is not None})
    if total["pairs"] and not scale.implicit:
        out["auc"] = auc(pred, scale)
    ordered = {name: out[name] for name in LIKE_AND_RATING_METRICS if name in out}
    return {**ordered, "pairs": int(total["pairs"]), "users": int(total["users"])}


def like_and_rating_of_table(table: Any, scale: RatingScale = STARS) -> dict[str, float]:
    """``like_and_rating_sums`` of one partition's predictions (Arrow; ratings on ``scale``'s
    values)."""
    return like_and_rating_sums(
        table.column("user_id").to_numpy(),
        scale.code_of(table.column("rating").to_numpy()),
        table.column("p_like").to_numpy(),
        table.column("pred_rating").to_numpy(),
        scale,
    )


def partition_sums(of_table: Callable[[Any], dict[str, float]], columns: tuple[str, ...]):
    """The mapInArrow function: one row of ``of_table``'s sums (``columns``, null where
    absent) per non-empty partition."""

    def sums(batches: Iterator[Any]) -> Iterator[Any]:
        import pyarrow as pa

        batches = [b for b in batches if b.num_rows]
        if batches:
            row = of_table(pa.Table.from_batches(batches))
            types = [pa.int64() if c in COUNTS else pa.float64() for c in columns]
            arrays = [pa.array([row.get(c)], t) for c, t in zip(columns, types, strict=True)]
            yield pa.RecordBatch.from_arrays(arrays, names=list(columns))

    return sums


def added(sums: DataFrame, columns: tuple[str, ...]) -> dict[str, Any]:
    """The column sums of the partitions' rows (None for a column that is null everywhere;
    zero counts for no rows)."""
    row = sums.agg(*[F.sum(c).alias(c) for c in columns]).first()
    total = {c: row[c] for c in columns}
    for count in COUNTS:
        if count in total and total[count] is None:
            total[count] = 0
    return total


def auc(pred: DataFrame, scale: RatingScale = STARS) -> float:
    """``rbmcore.metrics.auc`` of ``p_like`` against like = ``rating >= scale.like_value``
    (3 on five stars): per distinct score the likes and dislikes; a like beats every dislike
    with a lower score and ties half of those with the same score (average ranks)."""
    like = (F.col("rating") >= float(scale.like_value)).cast("long")
    counts = pred.groupBy("p_like").agg(F.sum(like).alias("pos"), F.sum(1 - like).alias("neg"))
    # one window partition over the distinct scores (a column key: Spark drops a literal one
    # and warns); the rows below this score's
    lower = Window.partitionBy(F.col("p_like").isNull()).orderBy("p_like").rowsBetween(
        Window.unboundedPreceding, -1
    )
    below = F.coalesce(F.sum("neg").over(lower), F.lit(0)) + F.col("neg") / 2
    terms = counts.select("pos", "neg", below.alias("below"))
    row = terms.agg(
        F.sum(F.col("pos") * F.col("below")).alias("u"), F.sum("pos").alias("pos"),
        F.sum("neg").alias("neg"),
    ).first()  # fmt: skip
    if not row["pos"] or not row["neg"]:
        return float("nan")
    return float(row["u"] / (row["pos"] * row["neg"]))
