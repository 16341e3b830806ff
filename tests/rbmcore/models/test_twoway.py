"""Two-way models (rbmcore/models/twoway.py) and their item-based way
(rbmcore/models/itembased.py): item-based scores are the inner RBM's reconstruction on the
transposed ratings, the blend weight, users the item-based way never saw, and the round trip of
the artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import csr_from_lists, transpose_csr
from rbmcore.data.splits import split_holdout
from rbmcore.io.artifact import load_model, save_model
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.config import TrainConfig
from tests.rbmcore import support

N_ITEMS = 30


def random_users(n_users: int, seed: int, first_id: int = 100):
    return support.random_users(n_users, seed, n_items=N_ITEMS, most=14, first_id=first_id)


def two_way(kind: str, users, seed: int = 0) -> TwoWayRBM:
    """A two-way model over ``users`` with random non-trivial weights and item states."""
    n_models = 2 if kind == "rated" else 1  # a stacked rated ensemble; one categorical RBM
    config = TrainConfig(
        kind=kind, n_hidden=5, item_based=True, item={"n_hidden": 4}, n_models=n_models
    )
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(seed), len(users))
    model.init_visible_biases(users)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.5)
    model.item.set_item_states(users)
    return model


@pytest.mark.parametrize("kind", ["softmax", "binary"])
def test_item_based_scores_are_the_inner_rbms_reconstruction(kind):
    """p(user u's unit | item i's hidden probabilities) computed by the inner RBM on the
    transposed batch (its own visible reconstruction) equals the item-based scoring path."""
    users = random_users(25, 1)
    model = two_way(kind, users)
    inner, items = model.item.inner, transpose_csr(users)
    batch = to_batch(items)
    p_h, offsets = inner.hidden_probs(batch), inner.batch_offsets(batch)
    expected = inner.p_like(
        torch.softmax(inner.visible_logits(p_h, batch, offsets), -1)
    )  # (nnz,) over (item, user) pairs
    scored = model.item.score_all_known(to_batch(users))[0]["p_like"]  # (users, items)
    user_rows = torch.as_tensor(items.items)
    item_rows = torch.as_tensor(items.row_of_entries())
    torch.testing.assert_close(scored[user_rows, item_rows], expected)
    pairs = model.item.predict_pairs_known(to_batch(users), item_rows, user_rows)[0]["p_like"]
    torch.testing.assert_close(pairs, expected)


def test_rated_item_based_pairs_match_its_catalogue_scores():
    users = random_users(25, 2)
    model = two_way("rated", users)
    batch = to_batch(users)
    out, known = model.item.score_all_known(batch)
    assert bool(known.all())
    rows = torch.arange(len(users)).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(len(users))
    pairs = model.item.predict_pairs_known(batch, items, rows)[0]["p_like"]
    torch.testing.assert_close(pairs.view(len(users), N_ITEMS), out["p_rated"])


@pytest.mark.parametrize("kind", ["softmax", "rated"])
def test_blend_weight_and_unknown_users(kind):
    users = random_users(20, 3)
    model = two_way(kind, users)
    strangers = random_users(3, 4, first_id=5000)  # ids the item-based part never saw
    both = csr_from_lists(
        np.concatenate([users.user_ids[:4], strangers.user_ids]),
        [users.take([i]).items for i in range(4)] + [strangers.take([i]).items for i in range(3)],
        [users.take([i]).ratings for i in range(4)]
        + [strangers.take([i]).ratings for i in range(3)],
        N_ITEMS,
    )
    batch = to_batch(both)
    user_out = model.user.score_all(batch)
    item_out, known = model.item.score_all_known(batch)
    assert known.tolist() == [True] * 4 + [False] * 3
    model.weight.fill_(0.3)
    out = model.score_all(batch)
    for key, value in user_out.items():
        torch.testing.assert_close(out[key][:4], 0.3 * value[:4] + 0.7 * item_out[key][:4])
        torch.testing.assert_close(out[key][4:], value[4:])  # strangers: user-based alone
    model.weight.fill_(1.0)  # the item-based part is skipped: exactly the user-based outputs
    out = model.score_all(batch)
    assert all(torch.equal(out[key], value) for key, value in user_out.items())


def test_two_way_artifact_round_trip(tmp_path):
    users = random_users(30, 5)
    model = two_way("softmax", users, seed=2)
    model.weight.fill_(0.4)
    save_model(tmp_path / "m", model, np.arange(7000, 7000 + N_ITEMS), {"note": "test"})
    loaded = load_model(tmp_path / "m").model
    assert isinstance(loaded, TwoWayRBM) and float(loaded.weight) == pytest.approx(0.4)
    ctx, held = split_holdout(users, 0.3, np.random.default_rng(0))
    for name, values in predict_csr(model, ctx, held).items():
        np.testing.assert_allclose(predict_csr(loaded, ctx, held)[name], values, rtol=1e-5)
    np.testing.assert_array_equal(
        recommend_csr(model, ctx, 5).items, recommend_csr(loaded, ctx, 5).items
    )
