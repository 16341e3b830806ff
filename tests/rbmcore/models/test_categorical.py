"""The binary and softmax RBMs over rated items (rbmcore/models/categorical.py): shapes, hidden
input from rated items only (a dislike is a signal, a missing rating none), and CD training on a
planted pattern."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import iter_row_chunks, to_batch
from rbmcore.data.csr import csr_from_lists, csr_from_pairs
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer
from tests.rbmcore.support import N_ITEMS, random_users


def one_user(items, ratings, n_items=6):
    return to_batch(csr_from_lists([1], [np.array(items)], [np.array(ratings)], n_items))


@pytest.mark.parametrize("kind,states", [("binary", 2), ("softmax", 5)])
def test_shapes(kind, states):
    model = CategoricalRBM(6, 4, kind=kind, generator=torch.Generator().manual_seed(0))
    batch = to_batch(csr_from_lists([1, 2], [np.array([0, 3]), np.array([5])],
                                    [np.array([5, 1]), np.array([3])], 6))
    p_h, h = model.sample_h(batch, model.states_of(batch.ratings))
    assert p_h.shape == h.shape == (2, 4)
    p_v, v = model.sample_v(h, batch)
    assert p_v.shape == (3, states) and v.shape == (3,)
    assert torch.allclose(p_v.sum(-1), torch.ones(3))
    out = model.score_all(batch)
    assert out["score"].shape == (2, 6)
    assert ("pred_rating" in out) == (kind == "softmax")


def test_hidden_input_is_the_sum_over_rated_units_only():
    torch.manual_seed(0)
    model = CategoricalRBM(6, 3, kind="binary", generator=torch.Generator().manual_seed(1))
    batch = one_user([1, 4], [4, 2])  # item 1 liked (state 1), item 4 disliked (state 0)
    expected = model.b_h + model.W[1 * 2 + 1] + model.W[4 * 2 + 0]
    got = model.hidden_input(batch, model.states_of(batch.ratings))[0]
    assert torch.allclose(got, expected)


def test_unrated_items_have_no_effect_on_hidden_probabilities():
    model = CategoricalRBM(6, 5, kind="softmax", generator=torch.Generator().manual_seed(2))
    batch = one_user([0, 2], [5, 3])
    before = model.hidden_probs(batch).clone()
    with torch.no_grad():  # change every weight of the unrated items 1, 3, 4, 5
        w = model.W.view(6, 5, 5)
        w[[1, 3, 4, 5]] += 7.0
        model.b_v[[1, 3, 4, 5]] -= 3.0
    assert torch.equal(model.hidden_probs(batch), before)


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_unrated_items_give_no_hidden_input(kind):
    model = CategoricalRBM(N_ITEMS, 4, kind=kind, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        model.W.normal_(generator=torch.Generator().manual_seed(1))
    csr = random_users(3, 0)
    before = model.hidden_probs(to_batch(csr))
    unrated = np.setdiff1d(
        np.arange(N_ITEMS), np.concatenate([csr.take([i]).items for i in range(3)])
    )
    with torch.no_grad():  # scramble the weights of items nobody rated
        w = model.W.view(N_ITEMS, model.n_states, 4)
        w[torch.as_tensor(unrated)] = 100.0
    torch.testing.assert_close(model.hidden_probs(to_batch(csr)), before)


def test_dislike_and_missing_differ():
    """The seed multiplied -1 into W for missing items; here a dislike is a real signal and a
    missing rating is nothing: they must give different hidden activations."""
    model = CategoricalRBM(6, 5, kind="binary", generator=torch.Generator().manual_seed(3))
    rated = model.hidden_probs(one_user([0, 2], [5, 1]))
    missing = model.hidden_probs(one_user([0], [5]))
    assert not torch.allclose(rated, missing)


def planted_csr(n_users=200, n_items=20, seed=0):
    """Two taste groups: group A likes items 0-9 and dislikes 10-19, group B the reverse."""
    rng = np.random.default_rng(seed)
    users, items, ratings = [], [], []
    for u in range(n_users):
        group = u % 2
        for i in rng.choice(n_items, size=12, replace=False):
            like = (i < n_items // 2) == (group == 0)
            users.append(u)
            items.append(i)
            ratings.append(5 if like else 1)
    return csr_from_pairs(np.array(users), np.array(items), np.array(ratings), n_items)


@torch.no_grad()
def reconstruction_error(model, csr) -> float:
    batch = to_batch(csr)
    probs = model.state_probs(model.hidden_probs(batch), model.batch_offsets(batch),
                              batch.items, batch.rows)
    like = (batch.ratings >= 3).float()
    return float((model.p_like(probs) - like).abs().mean())


def test_cd_training_lowers_reconstruction_error_on_a_planted_pattern():
    csr = planted_csr()
    gen = torch.Generator().manual_seed(0)
    model = CategoricalRBM(csr.n_items, 8, kind="binary", generator=gen)
    model.init_visible_biases(csr)
    before = reconstruction_error(model, csr)
    config = TrainConfig(kind="binary", n_hidden=8, epochs=15, lr=0.1, val_fraction=0.0, seed=0)
    Trainer(model, config, torch.device("cpu")).fit(csr, iter_row_chunks(len(csr), 20))
    after = reconstruction_error(model, csr)
    assert before > 0.4
    assert after < 0.15
