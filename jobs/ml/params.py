"""The Params of ``RBMRecommender`` and its model (ALS's names where ALS has one), and the job
configuration they make: ``DEFAULT_CONF`` with the [ingest] and [train] settings the Params
give, checked as the CLI's is (``jobs.common.config.resolve_conf``)."""

from __future__ import annotations

import argparse
from typing import Any

from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.param.shared import HasPredictionCol

from jobs.common.config import DEFAULT_CONF, deep_merge, resolve_conf
from jobs.train import train_overrides
from rbmcore.models.factory import KINDS
from rbmcore.training.config import TrainConfig

COLD_START_STRATEGIES = ("nan", "drop")
PARAM_NAMES = (
    "userCol", "itemCol", "ratingCol", "predictionCol", "coldStartStrategy", "kind",
    "hiddenUnits", "maxEpochs", "learningRate", "seed", "device", "likeKind", "trainConf",
    "batchSize", "maxBadFraction", "workDir",
)  # fmt: skip


def _dict(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"expected a dict of [train] settings, got {value!r}")
    return value


def _param(name: str, doc: str, converter=TypeConverters.identity) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class RBMRecommenderParams(HasPredictionCol):
    """Params shared by ``RBMRecommender`` and ``RBMRecommenderModel`` (docs/spark-ml.md)."""

    userCol = _param("userCol", "column of user ids (integers)", TypeConverters.toString)
    itemCol = _param("itemCol", "column of item ids (integers)", TypeConverters.toString)
    ratingCol = _param(
        "ratingCol", "column of ratings; absent from the data: implicit", TypeConverters.toString
    )
    coldStartStrategy = _param(
        "coldStartStrategy",
        "transform's pairs of an unknown user or item: 'nan' (a NaN prediction) or 'drop'",
        TypeConverters.toString,
    )
    kind = _param("kind", f"model kind: {', '.join(KINDS)} (train.kind)", TypeConverters.toString)
    hiddenUnits = _param(
        "hiddenUnits", "hidden units; None: the kind's default (train.n_hidden)",
        TypeConverters.toInt,
    )  # fmt: skip
    maxEpochs = _param(
        "maxEpochs", "most epochs of every part, item-based ways too; None: the kind's "
        "defaults (train.epochs)", TypeConverters.toInt,
    )  # fmt: skip
    learningRate = _param(
        "learningRate", "learning rate; None: the kind's default (train.lr)", TypeConverters.toFloat
    )
    seed = _param("seed", "random seed (train.seed)", TypeConverters.toInt)
    device = _param("device", "auto, cpu, cuda, cuda:N (train.device)", TypeConverters.toString)
    likeKind = _param(
        "likeKind", "a hybrid kind's like part: binary, softmax, autorec, blend (train.like_kind)",
        TypeConverters.toString,
    )  # fmt: skip
    trainConf = _param("trainConf", "any other [train] settings, as the TOML table", _dict)
    batchSize = _param("batchSize", "users per training batch (ingest.batch_size)",
                       TypeConverters.toInt)  # fmt: skip
    maxBadFraction = _param(
        "maxBadFraction", "fail when a larger fraction of rows is invalid "
        "(ingest.max_bad_fraction)", TypeConverters.toFloat,
    )  # fmt: skip
    workDir = _param(
        "workDir", "folder (local path or URI) each fit writes its ingested rows and model "
        "under; empty: a new local temporary folder", TypeConverters.toString,
    )  # fmt: skip

    def __init__(self) -> None:
        super().__init__()
        ingest = DEFAULT_CONF["ingest"]
        self._setDefault(
            userCol="user", itemCol="item", ratingCol="rating", predictionCol="prediction",
            coldStartStrategy="nan", kind=TrainConfig.kind, hiddenUnits=None, maxEpochs=None,
            learningRate=None, seed=TrainConfig.seed, device=TrainConfig.device,
            likeKind=TrainConfig.like_kind, trainConf={}, batchSize=ingest["batch_size"],
            maxBadFraction=ingest["max_bad_fraction"], workDir="",
        )  # fmt: skip

    def getUserCol(self) -> str:
        return self.getOrDefault(self.userCol)

    def getItemCol(self) -> str:
        return self.getOrDefault(self.itemCol)

    def getRatingCol(self) -> str:
        return self.getOrDefault(self.ratingCol)

    def getColdStartStrategy(self) -> str:
        return self.getOrDefault(self.coldStartStrategy)

    def getKind(self) -> str:
        return self.getOrDefault(self.kind)

    def getHiddenUnits(self) -> int | None:
        return self.getOrDefault(self.hiddenUnits)

    def getMaxEpochs(self) -> int | None:
        return self.getOrDefault(self.maxEpochs)

    def getLearningRate(self) -> float | None:
        return self.getOrDefault(self.learningRate)

    def getSeed(self) -> int:
        return self.getOrDefault(self.seed)

    def getDevice(self) -> str:
        return self.getOrDefault(self.device)

    def getLikeKind(self) -> str:
        return self.getOrDefault(self.likeKind)

    def getTrainConf(self) -> dict[str, Any]:
        return self.getOrDefault(self.trainConf)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)

    def getMaxBadFraction(self) -> float:
        return self.getOrDefault(self.maxBadFraction)

    def getWorkDir(self) -> str:
        return self.getOrDefault(self.workDir)

    def job_conf(self, columns: list[str]) -> dict[str, Any]:
        """The job configuration of these Params for data with ``columns``: the [ingest]
        columns named by userCol/itemCol/ratingCol (no rating column: implicit data; no time
        column), the [train] table of ``trainConf`` with the other training Params over it;
        a bad value is a ``UsageError``, as on the command line."""
        strategy = self.getColdStartStrategy()
        if strategy not in COLD_START_STRATEGIES:
            raise ValueError(
                f"coldStartStrategy must be one of {', '.join(COLD_START_STRATEGIES)}, "
                f"got {strategy!r}"
            )
        flags = argparse.Namespace(
            kind=self.getKind(), epochs=self.getMaxEpochs(), n_hidden=self.getHiddenUnits(),
            lr=self.getLearningRate(), seed=self.getSeed(), device=self.getDevice(),
            distributed=None,
        )  # fmt: skip
        train = {k: v for k, v in train_overrides(flags)["train"].items() if v is not None}
        train["like_kind"] = self.getLikeKind()
        rating = self.getRatingCol() if self.getRatingCol() in columns else ""
        ingest = {
            "columns": {"user": self.getUserCol(), "item": self.getItemCol(), "rating": rating,
                        "time": ""},
            "batch_size": self.getBatchSize(),
            "max_bad_fraction": self.getMaxBadFraction(),
        }  # fmt: skip
        overrides = {"ingest": ingest, "train": deep_merge(self.getTrainConf(), train)}
        return resolve_conf(argparse.Namespace(conf=None, set=[]), overrides)
