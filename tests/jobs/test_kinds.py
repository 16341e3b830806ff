"""The kinds beyond the single RBMs through the jobs: the hybrid with its like part a blend of
binary RBMs and AutoRec, ``dbn`` and ``autoencoder`` are trained by the train job on the
driver, saved in the same artifact and scored by the same broadcast scorer on Spark, whose
export equals in-process scoring; ``--distributed`` trains RBMs only and says so."""

from __future__ import annotations

import shutil

import numpy as np
import pandas as pd
import pytest

from jobs.common.errors import UsageError
from jobs.ingestion.readback import load_user_rows, load_vocabulary
from jobs.score import run_score
from jobs.storage import layout
from jobs.train import run_train
from rbmcore.io.artifact import load_model
from rbmcore.scoring import recommend_csr
from tests.jobs.support import DT, TOP_K

SMALL = {"epochs": 2, "n_hidden": 8, "item": {"epochs": 2}, "layer": {"epochs": 2}}
KIND_SETTINGS = {
    "hybrid": {  # the like part a blend of binary RBMs and AutoRec
        "rated": {"n_models": 2}, "like_kind": "binary+autorec",
        "like": {"members": [{"n_models": 2}, {}]},
    },
    "dbn": {},
    "autoencoder": {"like": {"item_based": True}},
}


@pytest.mark.parametrize("kind", list(KIND_SETTINGS))
def test_kind_is_trained_saved_and_scored_on_spark(kind, run, spark, tmp_path):
    out = str(tmp_path / "run")
    shutil.copytree(run.out / "ingest", tmp_path / "run" / "ingest")
    train = {**run.conf["train"], "item_based": None, "n_models": None, **SMALL,
             **KIND_SETTINGS[kind], "kind": kind}  # fmt: skip
    conf = {**run.conf, "train": train}
    meta = run_train(spark, conf, out)
    assert meta["kind"] == kind
    manifest = run_score(spark, conf, out, DT)
    assert manifest["kind"] == kind
    vocab = load_vocabulary(spark, out)
    csr, _ = load_user_rows(spark, layout.train_ratings(out), vocab.n_items)
    model = load_model(layout.model_dir(out)).model
    rec = recommend_csr(model, csr, TOP_K)
    export = pd.read_parquet(layout.recommendations_for(out, DT)).sort_values(["user_id", "rank"])
    order = np.lexsort((rec.ranks, rec.user_ids))
    assert np.array_equal(export["user_id"], rec.user_ids[order])
    assert np.array_equal(export["movie_id"], vocab.movie_ids[rec.items[order]])
    assert np.allclose(export["score"], rec.scores[order], atol=1e-5, rtol=0)
    assert export["p_rated"].between(0, 1).all() and export["p_like"].between(0, 1).all()
    rates = kind in ("hybrid", "autoencoder")  # AutoRec in the like part predicts ratings
    ratings = export["pred_rating"]
    assert ratings.between(1, 5).all() if rates else ratings.isna().all()


def test_distributed_training_trains_rbms_only(run, spark):
    conf = {**run.conf, "train": {**run.conf["train"], "kind": "autoencoder", "distributed": 2}}
    with pytest.raises(UsageError, match="trains RBMs only.*not an RBM"):
        run_train(spark, conf, str(run.out), "/tmp/unused-model")
