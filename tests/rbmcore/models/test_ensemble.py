"""Ensembles of like / rating RBMs (rbmcore/models/ensemble.py): outputs are the members'
mean, and ensembles (alone or as a hybrid's part) rebuild from their hyperparameters."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.batch import to_batch
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.factory import build_model, model_from_tensors
from rbmcore.scoring import predict_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.config import TrainConfig
from tests.rbmcore.support import N_ITEMS, ensemble_config, random_users


def test_ensemble_outputs_are_the_members_mean():
    model = build_model("softmax", N_ITEMS, 5, torch.Generator().manual_seed(0), n_models=3)
    assert isinstance(model, EnsembleRBM) and model.n_models == 3
    users = random_users(12, 0)
    model.init_visible_biases(users)
    batch = to_batch(users)
    out = model.score_all(batch)
    for key in ("score", "p_like", "pred_rating"):
        by_hand = sum(m.score_all(batch)[key] for m in model.members) / 3
        torch.testing.assert_close(out[key], by_hand)
    items, rows = batch.items[:7], batch.rows[:7]
    pairs = model.predict_pairs(batch, items, rows)["p_like"]
    by_hand = sum(m.predict_pairs(batch, items, rows)["p_like"] for m in model.members) / 3
    torch.testing.assert_close(pairs, by_hand)
    # the members differ (their own initialisation), so the mean is not one member's output
    assert not torch.allclose(model.members[0].W, model.members[1].W)


def test_ensemble_and_hybrid_with_ensemble_rebuild_from_hyperparameters():
    users = random_users(40, 3)
    for config in (
        ensemble_config(item_based=True, item={"n_hidden": 4}),
        TrainConfig(kind="hybrid", n_hidden=5, like_kind="binary", item_based=False,
                    rated={"n_hidden": 4, "n_models": 2}, like={"n_models": 2}),
    ):  # fmt: skip
        model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(3), len(users))
        model.init_visible_biases(users)
        rebuilt = model_from_tensors(model.hyperparameters(), model.state_dict())
        for name, value in model.state_dict().items():
            torch.testing.assert_close(rebuilt.state_dict()[name], value, rtol=0, atol=0)
        a = predict_csr(model, users, users)["p_like"]
        b = predict_csr(rebuilt, users, users)["p_like"]
        np.testing.assert_array_equal(a, b)
