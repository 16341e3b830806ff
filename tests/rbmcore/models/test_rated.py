"""The rated/unrated RBM (rbmcore/models/rated.py): shapes, sparse input, conditional logits
as free-energy differences, the shortened CD chain, and that it learns co-occurrence."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.batch import iter_row_chunks, to_batch
from rbmcore.data.csr import csr_from_lists
from rbmcore.models.rated import RatedRBM
from rbmcore.ops.sampling import sample_of_logits
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer

N_ITEMS = 30


def two_taste_users(n_users: int, seed: int):
    """Half the users rate 6-8 of items 0..9, half 6-8 of items 10..19; items 20..29 are rated
    by anyone with probability 0.1. Both tastes are equally popular."""
    rng = np.random.default_rng(seed)
    items, ratings = [], []
    for u in range(n_users):
        block = 0 if u % 2 == 0 else 10
        taste = block + rng.choice(10, size=rng.integers(6, 9), replace=False)
        noise = 20 + np.flatnonzero(rng.random(10) < 0.1)
        row = np.sort(np.concatenate([taste, noise]))
        items.append(row)
        ratings.append(rng.integers(1, 6, size=len(row)))
    return csr_from_lists(np.arange(n_users), items, ratings, N_ITEMS)


def test_shapes_and_ensemble_average():
    csr = two_taste_users(8, 0)
    model = RatedRBM(N_ITEMS, 7, torch.Generator().manual_seed(0), init_std=0.1, n_models=3)
    batch = to_batch(csr)
    out = model.score_all(batch)
    assert out["score"].shape == (8, N_ITEMS) and out["p_rated"].shape == (8, N_ITEMS)
    assert model.hidden_input(batch).shape == (3, 8, 7)
    assert torch.all((out["p_rated"] > 0) & (out["p_rated"] < 1))
    rows = torch.tensor([0, 0, 5])
    items = torch.tensor([3, 25, 11])
    pairs = model.predict_pairs(batch, items, rows)["p_like"]
    torch.testing.assert_close(pairs, out["p_rated"][rows, items])


def test_conditional_logits_are_free_energy_differences():
    """score_i = F(v) - F(v + e_i), checked against the dense free energy."""
    csr = two_taste_users(4, 1)
    model = RatedRBM(N_ITEMS, 5, torch.Generator().manual_seed(1), init_std=0.3)
    batch = to_batch(csr)
    logits = model.conditional_logits(batch, block=64)  # forces several item chunks
    v = batch.dense_mask().float().unsqueeze(0)
    user, item = 2, int(np.setdiff1d(np.arange(N_ITEMS), csr.take([2]).items)[0])
    v_plus = v.clone()
    v_plus[0, user, item] = 1.0
    expected = model.dense_free_energy(v)[0, user] - model.dense_free_energy(v_plus)[0, user]
    torch.testing.assert_close(logits[user, item], expected)


def test_learns_the_planted_co_occurrence():
    train = two_taste_users(200, 2)
    config = TrainConfig(kind="rated", n_hidden=10, epochs=30, lr=0.1, val_fraction=0, seed=3)
    model = RatedRBM(N_ITEMS, 10, torch.Generator().manual_seed(3))
    model.init_visible_biases(train)
    Trainer(model, config, torch.device("cpu")).fit(train, iter_row_chunks(len(train), 20))
    # new users who rated 4 items of one taste: their top-5 unseen must be the same taste
    probe = csr_from_lists(
        [0, 1], [np.array([0, 2, 4, 6]), np.array([11, 13, 15, 17])], [np.ones(4)] * 2, N_ITEMS
    )
    score = model.score_all(to_batch(probe))["score"]
    score[to_batch(probe).dense_mask()] = -float("inf")
    top = torch.topk(score, 5, dim=1).indices
    assert set(top[0].tolist()) <= set(range(10))
    assert set(top[1].tolist()) <= set(range(10, 20))


def full_chain_gradient(model: RatedRBM, batch, k: int, generator: torch.Generator):
    """The CD-k gradient of W written out with every hidden sample of the chain, the last one
    included (the textbook chain ``cd_loss`` shortens)."""
    with torch.no_grad():
        h = sample_of_logits(model.hidden_input(batch), generator)
        for _ in range(k):
            v = sample_of_logits(model.visible_logits(h), generator)
            h = sample_of_logits(model.dense_hidden_input(v), generator)
    model.zero_grad()
    gap = model.data_free_energy(batch).mean(1) - model.dense_free_energy(v).mean(1)
    gap.sum().backward()
    return model.W.grad.clone()


def test_cd_loss_skips_the_last_hidden_sample_without_changing_the_update():
    """The shortened chain gives the full chain's gradient exactly and leaves the generator
    where the full chain does (so trained models do not depend on the shortcut)."""
    batch = to_batch(two_taste_users(12, 4))
    model = RatedRBM(N_ITEMS, 6, torch.Generator().manual_seed(4), init_std=0.3, n_models=2)
    for k in (1, 3):
        ours, reference = torch.Generator().manual_seed(9), torch.Generator().manual_seed(9)
        expected = full_chain_gradient(model, batch, k, reference)
        model.zero_grad()
        model.cd_loss(batch, k, ours).backward()
        assert torch.equal(model.W.grad, expected)
        assert torch.equal(torch.rand(4, generator=ours), torch.rand(4, generator=reference))
