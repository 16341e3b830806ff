"""The hybrid model (rbmcore/models/hybrid.py): its combined score, what alpha does to the
ranking, and the round trip of its artifact."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.splits import split_holdout
from rbmcore.io.artifact import load_model, save_model
from rbmcore.scoring import predict_csr, recommend_csr
from tests.rbmcore.support import N_ITEMS, random_users, small_hybrid


def test_score_combines_and_excludes_seen_items():
    model = small_hybrid()
    csr = random_users(10, 1)
    batch = to_batch(csr)
    out = model.score_all(batch)
    assert set(out) == {"score", "p_rated", "p_like", "pred_rating"}
    torch.testing.assert_close(out["score"], out["p_rated"] * out["p_like"] ** 2.0)
    recs = recommend_csr(model, csr, top_k=N_ITEMS)
    for row in range(len(csr)):
        user = csr.user_ids[row]
        mine = recs.items[recs.user_ids == user]
        assert not set(mine) & set(csr.take([row]).items)  # never a seen item
        assert len(mine) == N_ITEMS - csr.row_lengths()[row]  # every unseen item, once
        scores = recs.scores[recs.user_ids == user]
        assert np.all(np.diff(scores) <= 0)


def test_alpha_zero_ranks_like_the_rated_model():
    model = small_hybrid(seed=3)
    csr = random_users(6, 2)
    model.alpha.fill_(0.0)
    a = recommend_csr(model, csr, 5)
    b = recommend_csr(model.rated, csr, 5)
    np.testing.assert_array_equal(a.items, b.items)


def test_artifact_round_trip(tmp_path):
    model = small_hybrid(seed=5)
    movie_ids = np.arange(1000, 1000 + N_ITEMS)
    save_model(tmp_path / "m", model, movie_ids, {"note": "test"})
    loaded = load_model(tmp_path / "m")
    assert loaded.meta["kind"] == "hybrid"
    assert loaded.model.kind == "hybrid" and float(loaded.model.alpha) == 2.0
    csr = random_users(7, 4)
    ctx, held = split_holdout(csr, 0.3, np.random.default_rng(0))
    for name, a in predict_csr(model, ctx, held).items():
        np.testing.assert_allclose(predict_csr(loaded.model, ctx, held)[name], a)
    np.testing.assert_array_equal(
        recommend_csr(model, ctx, 5).items, recommend_csr(loaded.model, ctx, 5).items
    )
