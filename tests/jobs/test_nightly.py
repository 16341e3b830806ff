"""The nightly export from fresh ratings (``rbm-reco score --ratings``, jobs/scoring/fresh.py) on
MovieLens 100k: a model trained on u1.base without a tenth of its users scores all of u1.base
plus movies it never saw. Every user gets N rows, none of them a seen or an unknown movie, the
counts are exact, the users held out of training are folded in and beat most-popular-unseen on
u1.test; bad input ends in a documented exit code with nothing published."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from jobs.common.config import DEFAULT_CONF, deep_merge
from jobs.ingest import run_ingest
from jobs.score import main as score_main
from jobs.score import run_score
from jobs.storage import fs
from jobs.train import run_train
from rbmcore.metrics import ranking_metrics
from tests.conftest import ML100K
from tests.jobs.support import exit_of, one_error_line, snapshot

DT = "2026-12-01"
TOP_K = 10
UNKNOWN = [(1, 5001, 4, 888000001), (1, 5002, 2, 888000002), (2, 5001, 5, 888000003),
           (3, 5002, 3, 888000004), (3, 5002, 4, 888000005)]  # fmt: skip
NAMES = ["user_id", "movie_id", "rating", "ts"]
# small and quick, two-way: the users it was trained on are scored with their item-based
# weights, the others by the user-based RBM alone
TRAIN = {"kind": "rated", "n_models": 1, "n_hidden": 64, "epochs": 12, "item_based": True,
         "item": {"n_models": 1, "n_hidden": 32, "epochs": 6}, "refit": False,
         "device": "cpu", "seed": 42}  # fmt: skip


def held_out(user_id: int) -> bool:
    """The tenth of u1.base's users the model never trains on."""
    return user_id % 10 == 3


@pytest.fixture(scope="module")
def nightly(spark, tmp_path_factory):
    root = tmp_path_factory.mktemp("nightly")
    base = pd.read_csv(ML100K / "u1.base", sep="\t", names=NAMES)
    train = base[~base["user_id"].map(held_out)]
    train.to_csv(root / "u.train", sep="\t", header=False, index=False)
    fresh = pd.concat([base, pd.DataFrame(UNKNOWN, columns=NAMES)])
    text = fresh.to_csv(sep="\t", header=False, index=False) + "not\ta\trating\tline\n"
    (root / "fresh.tsv").write_text(text)
    conf = deep_merge(DEFAULT_CONF, {"train": TRAIN, "score": {"top_k": TOP_K},
                                     "ingest": {"max_bad_fraction": 0.001}})  # fmt: skip
    out = root / "out"
    run_ingest(spark, conf, str(root / "u.train"), str(out))
    meta = run_train(spark, conf, str(out))
    manifest = run_score(spark, conf, str(out), DT, ratings=str(root / "fresh.tsv"))
    export = spark.read.parquet(str(out / "recommendations" / f"dt={DT}")).toPandas()
    return {"root": root, "out": out, "conf": conf, "base": base, "train": train,
            "meta": meta, "manifest": manifest, "export": export}  # fmt: skip


def test_every_fresh_user_gets_n_rows_never_seen_or_unknown(nightly):
    base, export = nightly["base"], nightly["export"]
    users = base["user_id"].nunique()
    assert export.groupby("user_id").size().eq(TOP_K).all()
    assert export["user_id"].nunique() == users
    seen = set(zip(base["user_id"], base["movie_id"], strict=True))
    seen |= {(u, m) for u, m, _, _ in UNKNOWN}
    assert not any(pair in seen for pair in zip(export["user_id"], export["movie_id"],
                                                 strict=True))  # fmt: skip
    assert not export["movie_id"].isin([5001, 5002]).any()
    assert (export["movie_id"].isin(nightly["train"]["movie_id"])).all()


def test_the_counts_are_exact(nightly):
    base, train, manifest = nightly["base"], nightly["train"], nightly["manifest"]
    fresh = manifest["fresh"]
    users, trained = base["user_id"].nunique(), train["user_id"].nunique()
    unknown_items = ~base["movie_id"].isin(train["movie_id"])  # movies only held-out users rated
    expected = {
        "lines_read": len(base) + len(UNKNOWN) + 1,
        "accepted": len(base) + len(UNKNOWN),
        "quarantined": 1,
        "duplicates_dropped": 1,  # user 3's two ratings of movie 5002
        "users": users,
        "ratings": int((~unknown_items).sum()),
        "unknown_movies": 2 + base.loc[unknown_items, "movie_id"].nunique(),
        "unknown_movie_ratings": 4 + int(unknown_items.sum()),
        "users_without_known_movies": 0,
        "scorable_users": users,
        "users_item_based": trained,
        "users_user_based": users - trained,
    }
    assert {k: fresh[k] for k in expected} == expected
    assert (manifest["users"], manifest["rows"]) == (users, users * TOP_K)
    assert manifest["model_id"] == nightly["meta"]["model_id"]
    assert manifest["model_created_at"] == nightly["meta"]["created_at"]
    assert manifest["model_newest_timestamp"] == int(train["ts"].max())
    summary = json.loads(Path(fs.local_path(fresh["summary"])).read_text())
    assert summary["status"] == "ok" and summary["unknown_movies"] == expected["unknown_movies"]
    assert summary["reasons"] == {"non-numeric user id": 1}


def test_folded_in_users_beat_most_popular_unseen(nightly):
    """The users held out of training, scored from their u1.base ratings alone, against their
    u1.test movies (nDCG@10): the model's recommendations and the most popular movies of the
    training data they have not rated."""
    base, train, export = nightly["base"], nightly["train"], nightly["export"]
    test = pd.read_csv(ML100K / "u1.test", sep="\t", names=NAMES)
    test = test[test["user_id"].map(held_out)]
    new = export[export["user_id"].map(held_out)]
    model = ranking_metrics(new["user_id"].to_numpy(), new["movie_id"].to_numpy(),
                            new["rank"].to_numpy(), test["user_id"].to_numpy(),
                            test["movie_id"].to_numpy(), k=10)  # fmt: skip
    popular = train["movie_id"].value_counts().index.to_numpy()
    rows = []
    for user, rated in base[base["user_id"].map(held_out)].groupby("user_id")["movie_id"]:
        unseen = popular[~np.isin(popular, rated.to_numpy())][:10]
        rows += [(user, movie, rank + 1) for rank, movie in enumerate(unseen)]
    pop = np.array(rows)
    baseline = ranking_metrics(pop[:, 0], pop[:, 1], pop[:, 2], test["user_id"].to_numpy(),
                               test["movie_id"].to_numpy(), k=10)  # fmt: skip
    assert model["n_users"] == baseline["n_users"] == 45  # held out and in u1.test
    print("held-out users, nDCG@10: folded in", model["ndcg"], "popular", baseline["ndcg"])
    assert model["ndcg"] > baseline["ndcg"] + 0.02, (model, baseline)


def test_bad_fresh_input_publishes_nothing(spark, nightly, tmp_path, capsys):
    out, conf = nightly["out"], nightly["conf"]
    published = out / "recommendations" / f"dt={DT}"
    before = snapshot(published)

    def score(fresh: Path, **kwargs):
        return exit_of(lambda: run_score(spark, conf, str(out), DT, ratings=str(fresh),
                                         **kwargs), capsys)  # fmt: skip

    empty = tmp_path / "empty.tsv"
    empty.write_text("")
    code, err = score(empty)
    assert code == 3 and "ratings input is empty" in one_error_line(err)
    unknown = tmp_path / "unknown.tsv"
    unknown.write_text("1\t9001\t4\t5\n2\t9002\t3\t5\n")
    code, err = score(unknown)
    assert code == 3 and "every movie in" in one_error_line(err)
    assert "(2 movies, 2 ratings)" in one_error_line(err)
    movie_ids = pd.read_parquet(out / "ingest" / "items")["movie_id"]
    everything = tmp_path / "everything.tsv"
    everything.write_text("".join(f"7\t{m}\t4\t5\n" for m in movie_ids))
    code, err = score(everything)
    assert code == 3 and "no user in" in one_error_line(err)
    not_a_model = tmp_path / "not-a-model"
    not_a_model.mkdir()
    (not_a_model / "notes.txt").write_text("mine")
    code, err = score(nightly["root"] / "fresh.tsv", model_path=str(not_a_model))
    assert code == 5 and "not a model folder" in one_error_line(err)
    assert snapshot(published) == before
    summary = json.loads((out / "fresh" / f"dt={DT}" / "ingest_summary.json").read_text())
    assert summary["status"] == "failed"


def test_a_stale_model_is_refused_with_exit_7(nightly, capsys):
    out = nightly["out"]
    fresh = str(nightly["root"] / "fresh.tsv")
    argv = ["--out", str(out), "--dt", "2099-01-01", "--ratings", fresh,
            "--max-model-age", "30", "--master", "local[2]"]  # fmt: skip
    code, err = exit_of(lambda: score_main(argv), capsys)
    line = one_error_line(err)
    assert code == 7 and "older than --max-model-age 30" in line
    assert not (out / "recommendations" / "dt=2099-01-01").exists()
