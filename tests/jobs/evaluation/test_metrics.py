"""jobs/evaluation/metrics.py: the evaluate job's metrics computed on the executors equal
rbmcore.metrics on the collected rows, Spark's RankingEvaluator on the same recommendations and
Spark's RegressionEvaluator on the same predictions."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pyspark.ml.evaluation import RankingEvaluator, RegressionEvaluator
from pyspark.sql import functions as F

from jobs.evaluation.metrics import like_and_rating_block, ranking_block
from rbmcore import metrics

K = 5


def synthetic(seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(recommendations: user_id, movie_id, rank; test pairs: user_id, movie_id, rating,
    p_like, pred_rating), with users without recommendations, without test pairs, with fewer
    than K recommendations and with tied scores."""
    rng = np.random.default_rng(seed)
    recs = []
    for user in range(1, 61):
        n = K if user % 7 else 3
        for rank, movie in enumerate(rng.choice(40, n, replace=False), start=1):
            recs.append((user, int(movie), rank))
    pairs = []
    for user in list(range(5, 71)):  # users 61..70 have test pairs and no recommendations
        for movie in rng.choice(40, int(rng.integers(1, 9)), replace=False):
            rating = int(rng.integers(1, 6))
            p_like = float(np.round(rng.random(), 1))  # many ties
            pairs.append((user, int(movie), rating, p_like, rating + rng.normal(0, 0.8)))
    return (
        pd.DataFrame(recs, columns=["user_id", "movie_id", "rank"]),
        pd.DataFrame(pairs, columns=["user_id", "movie_id", "rating", "p_like", "pred_rating"]),
    )


def recs_frame(spark, recs: pd.DataFrame):
    return spark.createDataFrame(recs).select(
        F.col("user_id").cast("int"), F.col("movie_id").cast("int"), F.col("rank").cast("int")
    )


def pairs_frame(spark, pairs: pd.DataFrame):
    return spark.createDataFrame(pairs).select(
        F.col("user_id").cast("int"), F.col("movie_id").cast("int"),
        F.col("rating").cast("int"), F.col("p_like").cast("float"),
        F.col("pred_rating").cast("float"),
    )  # fmt: skip


def spark_ranking(spark, recs_df, relevant_df, metric: str) -> float:
    """RankingEvaluator's ``metric`` at K: one row per user with a relevant item, the user's
    recommendations in rank order (empty if none) and its relevant items."""
    labels = relevant_df.groupBy("user_id").agg(
        F.collect_set(F.col("movie_id").cast("double")).alias("label")
    )
    ranked = recs_df.groupBy("user_id").agg(
        F.sort_array(F.collect_list(F.struct("rank", "movie_id"))).alias("_r")
    ).select("user_id", F.transform("_r", lambda x: x["movie_id"].cast("double")).alias("pred"))
    rows = labels.join(ranked, "user_id", "left").select(
        F.coalesce("pred", F.array().cast("array<double>")).alias("prediction"), "label"
    )
    evaluator = RankingEvaluator(predictionCol="prediction", labelCol="label", k=K)
    return evaluator.setMetricName(metric).evaluate(rows)


SPARK_NAMES = {
    "precision": "precisionAtK", "recall": "recallAtK", "ndcg": "ndcgAtK",
    "map": "meanAveragePrecisionAtK",
}  # fmt: skip


@pytest.mark.parametrize("relevant_ge4", [False, True])
def test_ranking_equals_rbmcore_and_sparks_ranking_evaluator(spark, relevant_ge4):
    recs, pairs = synthetic()
    if relevant_ge4:
        pairs = pairs[pairs["rating"] >= 4]
    recs_df, pairs_df = recs_frame(spark, recs), pairs_frame(spark, pairs)
    got = ranking_block(recs_df, pairs_df, K, partitions=3)
    expected = metrics.ranking_metrics(
        recs["user_id"], recs["movie_id"], recs["rank"], pairs["user_id"], pairs["movie_id"], K
    )
    assert got["n_users"] == expected["n_users"] == pairs["user_id"].nunique()
    for name, spark_name in SPARK_NAMES.items():
        assert got[name] == pytest.approx(expected[name], abs=1e-12), name
        assert got[name] == pytest.approx(spark_ranking(spark, recs_df, pairs_df, spark_name),
                                          abs=1e-12), name  # fmt: skip


def test_like_and_rating_equal_rbmcore_and_sparks_regression_evaluator(spark):
    _, pairs = synthetic(1)
    pairs_df = pairs_frame(spark, pairs)
    got = like_and_rating_block(pairs_df, partitions=3)
    p_like = pairs["p_like"].to_numpy(np.float32)
    pred = pairs["pred_rating"].to_numpy(np.float32)
    expected = metrics.like_and_rating_metrics(pairs["user_id"], pairs["rating"], p_like, pred)
    assert list(got)[:5] == ["like_nll", "like_error", "auc", "rmse", "mae"]
    for name, value in expected.items():
        assert got[name] == pytest.approx(value, rel=1e-9), name
    assert (got["pairs"], got["users"]) == (len(pairs), pairs["user_id"].nunique())
    for name in ("rmse", "mae"):
        evaluator = RegressionEvaluator(predictionCol="pred_rating", labelCol="rating")
        spark_value = evaluator.setMetricName(name).evaluate(
            pairs_df.withColumn("rating", F.col("rating").cast("double"))
        )
        assert got[name] == pytest.approx(spark_value, rel=1e-9), name


def test_a_model_without_a_rating_scale_has_no_rmse(spark):
    _, pairs = synthetic(2)
    pairs["pred_rating"] = np.nan
    got = like_and_rating_block(pairs_frame(spark, pairs), partitions=2)
    assert "rmse" not in got and "mae" not in got and np.isfinite(got["auc"])
