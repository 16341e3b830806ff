"""The tutorial's RBM kept as a benchmark reference (rbmcore/baselines/tutorial_rbm.py), on
tiny data: its conversion, chain, update rule, batching, predictions and recommendations."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rbmcore.baselines.tutorial_rbm import (
    TutorialConfig,
    TutorialRBM,
    predict_like_mean_field,
    predict_like_sampled,
    recommend_top_k,
    to_dense_binary,
    train_tutorial_rbm,
    tutorial_test_loss,
)


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _random_dense(n_users: int = 30, n_items: int = 12, density: float = 0.4, seed: int = 0):
    rng = np.random.default_rng(seed)
    mask = rng.random((n_users, n_items)) < density
    mask[:, 0] = True  # every user rated something
    users, items = np.nonzero(mask)
    ratings = rng.integers(1, 6, size=len(users))
    return users, items, ratings, to_dense_binary(users, items, ratings, n_users, n_items)


def test_to_dense_binary_tutorial_conversion() -> None:
    # ratings 1, 2 -> 0; 3, 4, 5 -> 1; everything else -1.
    users = np.array([0, 0, 1, 1, 2])
    items = np.array([0, 3, 1, 2, 3])
    ratings = np.array([1, 2, 3, 5, 4])
    d = to_dense_binary(users, items, ratings, n_users=4, n_items=4)
    assert d.dtype == torch.float32 and d.shape == (4, 4)
    expected = [
        [0, -1, -1, 0],
        [-1, 1, 1, -1],
        [-1, -1, -1, 1],
        [-1, -1, -1, -1],
    ]
    assert d.tolist() == expected


def test_shapes_and_ranges() -> None:
    model = TutorialRBM(n_visible=7, n_hidden=5, generator=_gen())
    assert model.W.shape == (5, 7) and model.a.shape == (1, 5) and model.b.shape == (1, 7)
    x = torch.tensor([[1.0, 0, -1, -1, 1, 0, -1], [-1.0] * 7, [1.0] * 7])
    p_h, h = model.sample_h(x)
    assert p_h.shape == h.shape == (3, 5)
    assert ((p_h > 0) & (p_h < 1)).all() and set(h.unique().tolist()) <= {0.0, 1.0}
    p_v, v = model.sample_v(h)
    assert p_v.shape == v.shape == (3, 7)
    assert set(v.unique().tolist()) <= {0.0, 1.0}


def test_chain_keeps_unrated_clamped_at_minus_one() -> None:
    model = TutorialRBM(n_visible=6, n_hidden=4, generator=_gen(3))
    v0 = torch.tensor([[1.0, -1, 0, -1, 1, -1], [-1.0, 0, -1, 1, -1, -1]])
    before = v0.clone()
    vk = model.gibbs_chain(v0, k=10)
    unrated = v0 < 0
    assert (vk[unrated] == -1).all()
    assert set(vk[~unrated].unique().tolist()) <= {0.0, 1.0}
    assert torch.equal(v0, before)  # the input batch is not modified


def test_train_step_is_the_tutorial_update(monkeypatch: pytest.MonkeyPatch) -> None:
    """With the chain's end fixed, the update is W += (v0' ph0 - vk' phk)', b += sum(v0 - vk),
    a += sum(ph0 - phk) (learning rate 1, summed over the batch, -1 entries included)."""
    model = TutorialRBM(n_visible=6, n_hidden=3, generator=_gen(1))
    v0 = torch.tensor([[1.0, 0, -1, 1, -1, -1], [-1.0, 1, 1, -1, 0, -1]])
    vk = torch.tensor([[0.0, 0, -1, 1, -1, -1], [-1.0, 1, 0, -1, 1, -1]])  # 3 of 6 rated differ
    monkeypatch.setattr(model, "gibbs_chain", lambda v, k: vk.clone())
    W, a, b = (t.numpy().astype(np.float64) for t in (model.W, model.a, model.b))
    v0n, vkn = v0.numpy().astype(np.float64), vk.numpy().astype(np.float64)

    def sig(z: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-z))

    ph0, phk = sig(v0n @ W.T + a), sig(vkn @ W.T + a)
    loss = model.train_step(v0, k=10)
    assert loss == pytest.approx(3 / 6)
    np.testing.assert_allclose(model.W.numpy(), W + (v0n.T @ ph0 - vkn.T @ phk).T, rtol=1e-5)
    np.testing.assert_allclose(model.b.numpy(), b + (v0n - vkn).sum(0), rtol=1e-5)
    np.testing.assert_allclose(model.a.numpy(), a + (ph0 - phk).sum(0), rtol=1e-5, atol=1e-6)
    # The -1s are multiplied into W: column 5, unrated by everyone, still moved by -(ph0 - phk).
    np.testing.assert_allclose(model.W.numpy()[:, 5] - W[:, 5], -(ph0 - phk).sum(0), rtol=1e-4)
    assert not np.allclose(model.W.numpy()[:, 5], W[:, 5])


def test_determinism_by_generator_seed() -> None:
    *_, dense = _random_dense()
    cfg = TutorialConfig(n_hidden=8, batch_size=10, epochs=2, cd_k=3, seed=5)
    m1 = train_tutorial_rbm(dense, cfg, log_every=0)
    m2 = train_tutorial_rbm(dense, cfg, log_every=0)
    other = TutorialConfig(n_hidden=8, batch_size=10, epochs=2, cd_k=3, seed=6)
    m3 = train_tutorial_rbm(dense, other)
    assert torch.equal(m1.W, m2.W) and torch.equal(m1.a, m2.a) and torch.equal(m1.b, m2.b)
    assert m1.train_losses == m2.train_losses
    assert not torch.equal(m1.W, m3.W)
    users, items = np.array([0, 1, 2, 2]), np.array([3, 4, 5, 6])
    p1 = predict_like_sampled(m1, dense, users, items, _gen(9))
    p2 = predict_like_sampled(m1, dense, users, items, _gen(9))
    assert np.array_equal(p1, p2)


def test_trains_on_tiny_matrix_and_predicts() -> None:
    users, items, ratings, dense = _random_dense(n_users=40, n_items=15)
    before = dense.clone()
    cfg = TutorialConfig(n_hidden=6, batch_size=8, epochs=3, cd_k=2, seed=0)
    model = train_tutorial_rbm(dense, cfg, log_every=1)
    assert torch.equal(dense, before)
    assert len(model.train_losses) == 3 and all(math.isfinite(x) for x in model.train_losses)
    assert all(0.0 <= x <= 1.0 for x in model.train_losses)

    q_users, q_items = np.array([0, 5, 5, 39]), np.array([1, 2, 14, 0])
    sampled = predict_like_sampled(model, dense, q_users, q_items, _gen(1))
    assert sampled.shape == (4,) and set(sampled.tolist()) <= {0, 1}
    p = predict_like_mean_field(model, dense, q_users, q_items)
    assert p.shape == (4,) and ((p >= 0) & (p <= 1)).all()
    full = model.mean_field_v(dense).numpy()
    np.testing.assert_allclose(p, full[q_users, q_items], rtol=1e-6)

    loss = tutorial_test_loss(model, dense, dense, _gen(2))
    assert 0.0 <= loss <= 1.0


def test_recommend_top_k_excludes_seen_and_pads() -> None:
    # user 0 rated items 0, 1; user 1 rated all but item 3; user 2 rated nothing.
    d = torch.full((3, 4), -1.0)
    d[0, 0], d[0, 1] = 1.0, 0.0
    d[1, [0, 1, 2]] = 1.0
    model = TutorialRBM(n_visible=4, n_hidden=3, generator=_gen())
    top = recommend_top_k(model, d, k=3)
    assert top.shape == (3, 3) and top.dtype == np.int64
    assert sorted(top[0, :2].tolist()) == [2, 3] and top[0, 2] == -1
    assert top[1].tolist() == [3, -1, -1]
    scores = model.mean_field_v(d).numpy()
    assert top[2].tolist() == np.argsort(-scores[2])[:3].tolist()


def test_tutorial_batching_skips_the_tail() -> None:
    # range(0, n_users - batch_size, batch_size) is empty when n_users <= batch_size: no update.
    *_, dense = _random_dense(n_users=10)
    cfg = TutorialConfig(n_hidden=4, batch_size=10, epochs=1, cd_k=1, seed=0)
    model = train_tutorial_rbm(dense, cfg, log_every=0)
    init = TutorialRBM(dense.shape[1], 4, torch.Generator().manual_seed(0))
    assert torch.equal(model.W, init.W) and math.isnan(model.train_losses[0])
