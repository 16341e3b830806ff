"""The binary kind's fast top-k path in rbmcore/scoring.py (one gemm + two-stage top-k) ==
``model.score_all``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore import scoring
from rbmcore.data.csr import csr_from_pairs
from rbmcore.models.factory import build_model


def data(n_items, n_users=150, per_user=25, seed=1):
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(n_users), per_user)
    items = rng.integers(0, n_items, len(users))
    keep = np.unique(users * n_items + items, return_index=True)[1]
    return csr_from_pairs(users[keep], items[keep], rng.integers(1, 6, len(keep)), n_items)


def model(n_items, seed=0):
    m = build_model("binary", n_items, 12, torch.Generator().manual_seed(seed), init_std=0.3)
    with torch.no_grad():
        m.b_v.normal_(generator=torch.Generator().manual_seed(seed + 1))
    return m.eval()


def generic(m, csr, k):
    """recommend_batch without the fast ranker: model.score_all, full topk."""
    rows, ranks, items, cols = scoring.recommend_batch(m, csr, k)
    return csr.user_ids[rows], ranks, items, cols


@pytest.mark.parametrize("n_items", [9, 200, 3000])  # plain topk, and the two-stage top-k
@pytest.mark.parametrize("chunk", [None, 7])
def test_fast_path_equals_score_all(n_items, chunk):
    csr, m = data(n_items), model(n_items)
    assert scoring.ranker_for(m, "cpu") is not None
    fast = scoring.recommend_csr(m, csr, 10, chunk_users=chunk)
    users, ranks, items, cols = generic(m, csr, 10)
    assert fast.user_ids.tolist() == users.tolist()
    assert fast.ranks.tolist() == ranks.tolist()
    np.testing.assert_allclose(fast.scores, cols["score"], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(fast.extras["p_like"], cols["p_like"], rtol=1e-5, atol=1e-6)
    # items agree wherever the score is not tied with a neighbour's (tie order is arbitrary)
    s = cols["score"]
    untied = np.ones(len(s), bool)
    same_user = users[1:] == users[:-1]
    tie = same_user & np.isclose(s[1:], s[:-1], rtol=0, atol=1e-6)
    untied[1:] &= ~tie
    untied[:-1] &= ~tie
    assert untied.mean() > 0.5
    assert (fast.items[untied] == items[untied]).all()


def test_seen_items_are_never_recommended_and_short_rows_are_cut():
    n_items = 300
    csr = data(n_items, n_users=20, per_user=295)  # some users have < 10 unseen items
    m = model(n_items)
    rec = scoring.recommend_csr(m, csr, 10)
    for r, u in enumerate(csr.user_ids):
        seen = set(csr.items[csr.indptr[r] : csr.indptr[r + 1]].tolist())
        mine = rec.items[rec.user_ids == u]
        assert not seen & set(mine.tolist())
        assert len(mine) == min(10, n_items - len(seen))
        assert len(set(mine.tolist())) == len(mine)
    assert (rec.items < n_items).all()


def test_two_stage_top_k_matches_torch_topk():
    ranker = scoring.BinaryRanker(model(5000), "cpu")
    g = torch.Generator().manual_seed(3)
    logits = torch.randn(17, ranker.n_blocks * ranker.BLOCK, generator=g)
    logits[:, 5000:] = float("-inf")
    logits[0, :4990] = float("-inf")  # a row with few finite values
    values, indices = ranker.top_k(logits, 10)
    expected = torch.topk(logits, 10, dim=1)
    torch.testing.assert_close(values, expected.values)
    assert torch.equal(indices, expected.indices)  # randn: no ties


def test_ranker_is_cached_and_rebuilt_when_weights_change():
    m = model(300)
    first = scoring.ranker_for(m, "cpu")
    assert scoring.ranker_for(m, "cpu") is first
    with torch.no_grad():
        m.W.add_(1.0)
    assert scoring.ranker_for(m, "cpu") is not first


def test_softmax_kind_takes_the_generic_path():
    m = build_model("softmax", 50, 6, torch.Generator().manual_seed(0)).eval()
    assert scoring.ranker_for(m, "cpu") is None
    rec = scoring.recommend_csr(m, data(50, n_users=10, per_user=5), 5)
    assert set(rec.extras) == {"p_like", "pred_rating"}
