"""jobs/ml: RBMRecommender beside ALS in one CrossValidator on MovieLens 100k u1 (real local
Spark), its outputs in ALS's schema, transform's cold starts and fold-in, evaluation by
RankingEvaluator and RegressionEvaluator, save/load and a tampered saved model."""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import Pipeline
from pyspark.ml.evaluation import RankingEvaluator, RegressionEvaluator
from pyspark.ml.recommendation import ALS
from pyspark.ml.tuning import CrossValidator, ParamGridBuilder
from pyspark.sql import functions as F

from jobs.common.errors import UsageError
from jobs.ml import RBMRecommender, RBMRecommenderModel
from jobs.ml.recommender import predicted_column
from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import WEIGHTS_FILE, LoadedModel
from tests.conftest import ML100K

SCHEMA = "user int, item int, rating float, ts long"
K = 10
UNKNOWN = 999_999
USERS = 300  # u1's first users: the file's fits and folds within the suite's time budget


@pytest.fixture(scope="module")
def u1(spark):
    """u1.base and u1.test of the first ``USERS`` users."""
    if not (ML100K / "u1.base").exists():
        pytest.fail(f"MovieLens 100k is expected at {ML100K} (../shared/data beside the repo)")
    base, test = (
        spark.read.csv(str(ML100K / name), sep="\t", schema=SCHEMA)
        .where(f"user <= {USERS}")
        .cache()
        for name in ("u1.base", "u1.test")
    )
    return base, test


@pytest.fixture(scope="module")
def cv_model(u1, tmp_path_factory):
    """ALS and a softmax RBMRecommender as the two points of one grid over a Pipeline's stages,
    cross-validated on u1.base by RMSE (2 folds); the per-fold models kept."""
    base, _ = u1
    als = ALS(rank=8, maxIter=5, regParam=0.1, seed=1, coldStartStrategy="drop")
    rbm = RBMRecommender(
        kind="softmax", hiddenUnits=20, maxEpochs=2, seed=1, coldStartStrategy="drop",
        trainConf={"item_based": False, "refit": False},
        workDir=str(tmp_path_factory.mktemp("ml-work")),
    )  # fmt: skip
    pipeline = Pipeline(stages=[als])
    grid = ParamGridBuilder().addGrid(pipeline.stages, [[als], [rbm]]).build()
    rmse = RegressionEvaluator(metricName="rmse", labelCol="rating", predictionCol="prediction")
    cv = CrossValidator(
        estimator=pipeline, estimatorParamMaps=grid, evaluator=rmse, numFolds=2, seed=7,
        collectSubModels=True,
    )  # fmt: skip
    return cv.fit(base)


@pytest.fixture(scope="module")
def models(cv_model):
    """(ALS, RBM) models of the first fold: trained on the same rows."""
    fold = cv_model.subModels[0]
    return fold[0].stages[0], fold[1].stages[0]


def test_cross_validator_compares_als_and_rbm(cv_model, models):
    als_rmse, rbm_rmse = cv_model.avgMetrics
    assert 0.5 < als_rmse < 1.5
    assert 0.5 < rbm_rmse < 1.5  # the expected rating of a 2-epoch softmax RBM
    assert isinstance(models[1], RBMRecommenderModel)
    assert models[1].getKind() == "softmax" and models[1].getHiddenUnits() == 20


def test_ranking_evaluator_side_by_side(spark, u1, models):
    """Both models' top-10 for the u1.test users, scored by RankingEvaluator against the test
    items rated 4 or more."""
    _, test = u1
    relevant = (
        test.where("rating >= 4")
        .groupBy("user")
        .agg(F.collect_set(F.col("item").cast("double")).alias("label"))
    )
    scores = {}
    for name, model in zip(("als", "rbm"), models, strict=True):
        recs = model.recommendForUserSubset(test, K).select(
            "user", F.col("recommendations.item").cast("array<double>").alias("prediction")
        )
        evaluator = RankingEvaluator(metricName="precisionAtK", k=K)
        scores[name] = evaluator.evaluate(recs.join(relevant, "user"))
    assert all(0 <= s <= 1 for s in scores.values()), scores
    assert scores["rbm"] > 0, scores


def test_recommendations_have_als_schema(models):
    als, rbm = models
    expected = als.recommendForAllUsers(3).schema
    actual = rbm.recommendForAllUsers(3).schema
    assert actual.names == expected.names == ["user", "recommendations"]
    for got, want in zip(actual.fields, expected.fields, strict=True):
        assert got.dataType.simpleString() == want.dataType.simpleString()
    assert actual["recommendations"].dataType.elementType.names == ["item", "rating"]
    renamed = rbm.copy().setUserCol("u").setItemCol("i").recommendForAllUsers(3).schema
    expected_renamed = "struct<u:int,recommendations:array<struct<i:int,rating:float>>>"
    assert renamed.simpleString() == expected_renamed


def test_recommendations_sorted_unseen_and_complete(spark, models):
    rbm = models[1]
    recs = rbm.recommendForAllUsers(K).toPandas()
    users = rbm.users(spark).toPandas()
    movie_ids = rbm.loaded.movie_ids
    assert len(recs) == len(users) and set(recs["user"]) == set(users["user_id"])
    rated = {
        u: set(movie_ids[items]) for u, items in zip(users["user_id"], users["items"], strict=True)
    }
    for user, row in zip(recs["user"], recs["recommendations"], strict=True):
        items = [r["item"] for r in row]
        scores = [r["rating"] for r in row]
        assert len(items) == min(K, len(movie_ids) - len(rated[user]))
        assert scores == sorted(scores, reverse=True)
        assert not rated[user] & set(items)


def test_transform_cold_start_nan_and_drop(spark, models):
    als, rbm = models
    known_user, known_item = 1, 50
    rows = [(known_user, known_item), (UNKNOWN, known_item), (known_user, UNKNOWN)]
    pairs = spark.createDataFrame(rows, "user int, item int")
    with_nan = rbm.copy().setColdStartStrategy("nan").transform(pairs).orderBy("user", "item")
    assert (
        with_nan.schema.simpleString()
        == als.copy().setColdStartStrategy("nan").transform(pairs).schema.simpleString()
    )
    rows = {(r["user"], r["item"]): r["prediction"] for r in with_nan.collect()}
    assert len(rows) == 3
    assert 1 <= rows[(known_user, known_item)] <= 5
    assert math.isnan(rows[(UNKNOWN, known_item)]) and math.isnan(rows[(known_user, UNKNOWN)])
    dropped = rbm.copy().setColdStartStrategy("drop").transform(pairs).collect()
    assert [(r["user"], r["item"]) for r in dropped] == [(known_user, known_item)]


def test_transform_folds_in_an_unseen_user(spark, models):
    """A user unseen in training with the ratings of a training user gets that user's
    predictions (no per-user weights: a user is their ratings)."""
    rbm = models[1]
    row = rbm.users(spark).orderBy("user_id").first()
    movies = rbm.loaded.movie_ids[np.asarray(row["items"])].tolist()
    ratings = [float(r) for r in row["ratings"]]  # five stars: the codes are the stars
    pairs = list(zip(movies, ratings, strict=True))
    data = [(user, m, r) for user in (row["user_id"], UNKNOWN) for m, r in pairs]
    df = spark.createDataFrame(data, "user int, item int, rating float")
    out = rbm.copy().setColdStartStrategy("nan").transform(df).toPandas()
    known = out[out["user"] == row["user_id"]].sort_values("item")["prediction"].to_numpy()
    folded = out[out["user"] == UNKNOWN].sort_values("item")["prediction"].to_numpy()
    assert len(folded) == len(movies) and not np.isnan(folded).any()
    np.testing.assert_allclose(folded, known, rtol=1e-5)


def test_save_load_round_trip(spark, models, tmp_path):
    rbm = models[1]
    path = str(tmp_path / "model")
    rbm.write().save(path)
    assert {"metadata", "model", "users"} <= {p.name for p in Path(path).iterdir()}
    again = RBMRecommenderModel.load(path)
    assert again.uid == rbm.uid and again.getKind() == rbm.getKind()
    assert again.getColdStartStrategy() == rbm.getColdStartStrategy()

    def recs(model):
        return sorted(map(tuple, model.recommendForAllUsers(5).collect()))

    assert recs(again) == recs(rbm)


def test_tampered_saved_model_refused(spark, models, tmp_path):
    path = tmp_path / "model"
    models[1].write().save(str(path))
    weights = path / "model" / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[len(data) // 2] ^= 0x01
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum"):
        RBMRecommenderModel.load(str(path))
    shutil.rmtree(path)


def test_bad_param_is_a_usage_error(u1):
    with pytest.raises(UsageError, match="kind"):
        RBMRecommender(kind="nope").fit(u1[0])


@pytest.mark.parametrize(
    ("kind", "like_kind", "column"),
    [("softmax", None, "pred_rating"), ("binary", None, "p_like"), ("rated", None, "p_like"),
     ("hybrid", "binary", "p_like"), ("hybrid", "softmax", "pred_rating"),
     ("autorec", None, "pred_rating"), ("multvae", None, "p_like"),
     ("hybrid", "binary+autorec", "pred_rating"), ("autoencoder", "autorec", "pred_rating"),
     ("dbn", "binary", "p_like")],
)  # fmt: skip
def test_predicted_column_per_kind(kind, like_kind, column):
    hyper = {"kind": kind, **({"like_kind": like_kind} if like_kind else {})}
    loaded = LoadedModel(None, np.arange(3), {"kind": kind, "hyperparameters": hyper})
    assert predicted_column(loaded) == column
