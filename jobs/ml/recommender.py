"""``RBMRecommender``: rbm-reco as a ``pyspark.ml`` Estimator, used where ALS is
(docs/spark-ml.md).

``fit(df)`` runs the CLI's ingest (validation, quarantine, vocabulary, per-user rows) on ``df``
as a temporary view and the CLI's training, into a folder of its own under ``workDir``. The
``RBMRecommenderModel`` it returns keeps that model folder and the users' ingested rows (an RBM
has no per-user parameters: a user is scored from their ratings, which the model keeps as ALS
keeps its user factors). Recommendations and predictions are made on the executors by the score
job's broadcast scorer (``jobs.score.score_users``) and the evaluate job's predictor
(``jobs.score.pair_predictions``); a saved model is the safe model artifact (checksums,
safetensors) beside the Params as JSON and the users' rows.
"""

from __future__ import annotations

import shutil
import tempfile
import uuid
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pyspark import keyword_only
from pyspark.ml import Estimator, Model
from pyspark.ml.util import (
    DefaultParamsReadable,
    DefaultParamsReader,
    DefaultParamsWritable,
    DefaultParamsWriter,
    MLReadable,
    MLReader,
    MLWritable,
    MLWriter,
)
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.ingest import run_ingest
from jobs.ml.params import PARAM_NAMES, RBMRecommenderParams
from jobs.score import balanced_input, pair_predictions, score_users
from jobs.scoring.fresh import read_fresh
from jobs.scoring.workers import broadcast_payload
from jobs.storage import fs, layout, model_store
from jobs.storage.layout import join_path
from jobs.train import run_train
from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import MODEL_FILES, LoadedModel
from rbmcore.models.blend import blended_kinds

USERS = ("user_id", "items", "ratings")  # the ingested users' rows a model keeps


def work_folder(path: str, prefix: str) -> str:
    """A new folder name under ``path`` (a new local temporary folder when it is empty)."""
    base = path or tempfile.mkdtemp(prefix="rbm-reco-ml-")
    return join_path(base, f"{prefix}-{uuid.uuid4().hex[:12]}")


def temp_view(df: DataFrame) -> str:
    """``df`` registered as a temporary view of a new name (ingest reads it as a table)."""
    name = f"rbm_reco_{uuid.uuid4().hex}"
    df.createOrReplaceTempView(name)
    return name


RATING_MACHINES = ("softmax", "autorec")  # the like machines that predict a rating


def predicted_column(loaded: LoadedModel) -> str:
    """What ``transform`` predicts: the rating (``pred_rating``) when the model predicts
    ratings (a like machine ``softmax`` or ``autorec``, alone, in a blend or as a hybrid's like
    part), else ``p_like`` (P(like); for the ranking kinds, P(rated), their score)."""
    hyper = loaded.meta["hyperparameters"]
    machines = blended_kinds(hyper.get("like_kind", hyper["kind"]))
    return "pred_rating" if any(m in RATING_MACHINES for m in machines) else "p_like"


class RBMRecommender(Estimator, RBMRecommenderParams, DefaultParamsReadable, DefaultParamsWritable):
    """Trains an rbm-reco model on a DataFrame of (user, item, rating) rows, as the CLI's ingest
    and train would on the same ratings."""

    @keyword_only
    def __init__(self, **kwargs: Any) -> None:
        super().__init__()
        self._set(**self._input_kwargs)

    @keyword_only
    def setParams(self, **kwargs: Any) -> RBMRecommender:
        """Set any of the Params by name (``userCol=``, ``kind=``, ...)."""
        return self._set(**self._input_kwargs)

    def _fit(self, dataset: DataFrame) -> RBMRecommenderModel:
        spark = dataset.sparkSession
        conf = self.job_conf(dataset.columns)
        out = work_folder(self.getWorkDir(), "fit")
        view = temp_view(dataset)
        try:
            run_ingest(spark, conf, None, out, ratings_table=view)
        finally:
            spark.catalog.dropTempView(view)
        run_train(spark, conf, out)
        model = RBMRecommenderModel(layout.model_dir(out), layout.train_ratings(out))
        return self._copyValues(model)


def _setter(name: str):
    def setter(self, value):
        return self._set(**{name: value})

    setter.__name__ = f"set{name[0].upper()}{name[1:]}"
    setter.__doc__ = f"Sets the value of :py:attr:`{name}`."
    return setter


for _name in PARAM_NAMES:  # ALS-style setters: setUserCol, setKind, ...
    setattr(RBMRecommender, _setter(_name).__name__, _setter(_name))


class RBMRecommenderModel(Model, RBMRecommenderParams, MLWritable, MLReadable):
    """A trained rbm-reco model with ALS's outputs: ``recommendForAllUsers``,
    ``recommendForUserSubset``, ``transform``; ``write().save`` / ``load``."""

    def __init__(self, model_path: str | None = None, users_path: str | None = None) -> None:
        super().__init__()
        self._model_path = model_path
        self._users_path = users_path
        self._loaded: LoadedModel | None = None
        self._broadcast = None

    def setUserCol(self, value: str) -> RBMRecommenderModel:
        return self._set(userCol=value)

    def setItemCol(self, value: str) -> RBMRecommenderModel:
        return self._set(itemCol=value)

    def setPredictionCol(self, value: str) -> RBMRecommenderModel:
        return self._set(predictionCol=value)

    def setColdStartStrategy(self, value: str) -> RBMRecommenderModel:
        return self._set(coldStartStrategy=value)

    # -- the artifact and the users' rows ---------------------------------------------------

    @property
    def loaded(self) -> LoadedModel:
        """The model artifact, loaded and verified once (``ModelFileError`` when it is bad)."""
        if self._loaded is None:
            self._loaded = model_store.load(SparkSession.active(), self._model_path, None)
        return self._loaded

    def _model_broadcast(self, spark):
        if self._broadcast is None:
            self._broadcast = spark.sparkContext.broadcast(broadcast_payload(self.loaded))
        return self._broadcast

    def users(self, spark) -> DataFrame:
        """The training users' rows (``user_id, items, ratings``; items as the model's item
        indices)."""
        return spark.read.parquet(self._users_path).select(*USERS)

    def _vocabulary(self, spark) -> DataFrame:
        ids = self.loaded.movie_ids
        return spark.createDataFrame(
            pd.DataFrame({"movie_id": ids.astype(np.int32),
                          "item_idx": np.arange(len(ids), dtype=np.int32)})
        )  # fmt: skip

    # -- recommendations ---------------------------------------------------------------------

    def recommendForAllUsers(self, numItems: int) -> DataFrame:
        """Top ``numItems`` items of every training user, best first, never one the user rated:
        ``userCol int, recommendations array<struct<itemCol int, rating float>>`` (ALS's schema;
        ``rating`` is the ranking score)."""
        spark = SparkSession.active()
        return self._recommend(spark, self.users(spark), numItems)

    def recommendForUserSubset(self, dataset: DataFrame, numItems: int) -> DataFrame:
        """``recommendForAllUsers`` for the training users among ``dataset``'s userCol."""
        spark = dataset.sparkSession
        ids = dataset.select(F.col(self.getUserCol()).cast("int").alias("user_id")).distinct()
        return self._recommend(spark, self.users(spark).join(ids, "user_id", "left_semi"), numItems)

    def _recommend(self, spark, users: DataFrame, k: int) -> DataFrame:
        recs = score_users(
            self.loaded, self._model_broadcast(spark), balanced_input(spark, users), k
        )
        ranked = F.array_sort(F.collect_list(F.struct("rank", "movie_id", "score")))
        as_als = F.transform(
            ranked,
            lambda r: F.struct(r["movie_id"].alias(self.getItemCol()), r["score"].alias("rating")),
        )
        return (
            recs.groupBy("user_id")
            .agg(as_als.alias("recommendations"))
            .withColumnRenamed("user_id", self.getUserCol())
        )

    # -- predictions -------------------------------------------------------------------------

    def _transform(self, dataset: DataFrame) -> DataFrame:
        """``dataset`` with predictionCol (float) for each (userCol, itemCol) row: the expected
        rating or P(like) (``predicted_column``). A user unseen in training is folded in from
        their ratings in ``dataset`` (when it has ratingCol, or the model is implicit);
        pairs of a user or item the model cannot score get NaN (``coldStartStrategy = "nan"``)
        or are dropped (``"drop"``)."""
        spark = dataset.sparkSession
        conf = self.job_conf(dataset.columns)  # checks the Params
        user, item = F.col(self.getUserCol()).cast("int"), F.col(self.getItemCol()).cast("int")
        vocab = F.broadcast(self._vocabulary(spark))
        keys = dataset.select(user.alias("user_id"), item.alias("movie_id")).distinct()
        queries = (
            keys.join(vocab, "movie_id")
            .groupBy("user_id")
            .agg(F.sort_array(F.collect_list("item_idx")).alias("test_items"))
            .withColumn(
                "test_ratings", F.transform("test_items", lambda _: F.lit(1).cast("tinyint"))
            )
        )
        context = self._context(spark, conf, dataset)
        column = predicted_column(self.loaded)
        preds = pair_predictions(self._model_broadcast(spark), context, queries).select(
            F.col("user_id").alias("_rbm_user"),
            F.col("movie_id").alias("_rbm_item"),
            F.col(column).alias("_rbm_prediction"),
        )
        on = (user == F.col("_rbm_user")) & (item == F.col("_rbm_item"))
        joined = dataset.join(preds, on, "left")
        if self.getColdStartStrategy() == "drop":
            joined = joined.where(F.col("_rbm_prediction").isNotNull())
        prediction = F.coalesce(F.col("_rbm_prediction"), F.lit(float("nan")).cast("float"))
        return joined.withColumn(self.getPredictionCol(), prediction).drop(
            "_rbm_user", "_rbm_item", "_rbm_prediction"
        )

    def _context(self, spark, conf: dict[str, Any], dataset: DataFrame) -> DataFrame:
        """The rows the predictions are made from: the training users', and the folded-in
        users' (unseen in training, with a rating of a known item in ``dataset``)."""
        trained = self.users(spark)
        if self.getRatingCol() not in dataset.columns and not self.loaded.model.scale.implicit:
            return trained
        user, item = F.col(self.getUserCol()).cast("int"), F.col(self.getItemCol()).cast("int")
        known_items = F.broadcast(self._vocabulary(spark).select(F.col("movie_id").alias("_m")))
        unseen = dataset.join(
            trained.select(F.col("user_id").alias("_u")), user == F.col("_u"), "left_anti"
        ).join(known_items, item == F.col("_m"), "left_semi")
        if unseen.isEmpty():
            return trained
        return trained.unionByName(self._fold_in(spark, conf, unseen))

    def _fold_in(self, spark, conf: dict[str, Any], unseen: DataFrame) -> DataFrame:
        """Unseen users' rows, validated and mapped onto the model's vocabulary as
        ``score --ratings`` does (``jobs.scoring.fresh.read_fresh``), written under workDir."""
        out = work_folder(self.getWorkDir(), "fold-in")
        view = temp_view(unseen)
        try:
            fresh = read_fresh(spark, conf, out, date.today().isoformat(), self.loaded, None, view)
            try:
                fresh.users.write.parquet(join_path(out, "users"))
            except BaseException:
                fresh.finish("failed")
                raise
            fresh.finish("ok")
        finally:
            spark.catalog.dropTempView(view)
        return spark.read.parquet(join_path(out, "users")).select(*USERS)

    # -- persistence -------------------------------------------------------------------------

    def write(self) -> MLWriter:
        return RBMRecommenderModelWriter(self)

    @classmethod
    def read(cls) -> MLReader:
        return RBMRecommenderModelReader(cls)


def copy_model_files(source: Path, target: Path) -> None:
    for name in MODEL_FILES:
        if (source / name).is_file():
            shutil.copy2(source / name, target / name)


class RBMRecommenderModelWriter(MLWriter):
    """``path/metadata`` (the Params, as pyspark.ml writes them), ``path/model`` (the model
    artifact, copied as it is: its checksums travel with it) and ``path/users`` (Parquet)."""

    def __init__(self, instance: RBMRecommenderModel) -> None:
        super().__init__()
        self.instance = instance

    def saveImpl(self, path: str) -> None:
        spark = self.sparkSession
        model = self.instance
        meta = model.loaded.meta  # verified before it is copied
        extra = {"model_id": meta["model_id"], "vocab_sha256": meta["vocab_sha256"]}
        DefaultParamsWriter.saveMetadata(model, path, spark, extraMetadata=extra)
        target = fs.qualify(spark, join_path(path, "model"))
        with model_store.local_copy(spark, fs.qualify(spark, model._model_path)) as folder:
            model_store.publish(spark, lambda stage: copy_model_files(folder, stage), target)
        model.users(spark).write.parquet(join_path(path, "users"))


class RBMRecommenderModelReader(MLReader):
    """Reads what ``RBMRecommenderModelWriter`` wrote; the model artifact is verified on load
    (``ModelFileError`` for a truncated, tampered or edited one, or one not saved with these
    users' rows)."""

    def __init__(self, cls: type) -> None:
        super().__init__()
        self.cls = cls

    def load(self, path: str) -> RBMRecommenderModel:
        spark = self.sparkSession
        name = f"{self.cls.__module__}.{self.cls.__name__}"
        metadata = DefaultParamsReader.loadMetadata(path, spark, name)
        model = self.cls(join_path(path, "model"), join_path(path, "users"))
        model._resetUid(metadata["uid"])
        DefaultParamsReader.getAndSetParams(model, metadata)
        if model.loaded.meta["vocab_sha256"] != metadata.get("vocab_sha256"):
            raise ModelFileError(
                f"the model in {path} is not the one its users' rows were saved with"
            )
        return model
