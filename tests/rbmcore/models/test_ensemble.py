"""Ensembles of like / rating RBMs (rbmcore.ensemble): averaged outputs, member-wise training
with seed + m, per-member refit epochs, save / rebuild."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.batch import iter_row_chunks, to_batch
from rbmcore.data.splits import split_holdout
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.factory import build_model, model_from_tensors
from rbmcore.scoring import predict_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import EnsembleTrainer, member_config, trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_on_all_ratings
from rbmcore.training.trainer import Trainer
from tests.rbmcore.test_hybrid import N_ITEMS, random_users

CPU = torch.device("cpu")


def small_config(**kw) -> TrainConfig:
    settings = dict(kind="binary", n_hidden=6, epochs=6, patience=2, n_models=3, item_based=False)
    return TrainConfig(**{**settings, **kw})


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


def test_each_member_trains_as_a_plain_trainer_with_seed_plus_m():
    every = random_users(80, 1)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(0))
    batches = iter_row_chunks(len(fit), 20)
    config = small_config()
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(config.seed))
    model.init_visible_biases(fit)
    start = [{k: v.clone() for k, v in m.state_dict().items()} for m in model.members]
    trainer = trainer_for(model, config, CPU)
    assert isinstance(trainer, EnsembleTrainer)
    trainer.fit(fit, batches, (fit, held))

    for m, member in enumerate(model.members):
        alone = build_model("binary", N_ITEMS, 6)
        alone.load_state_dict(start[m])
        plain = Trainer(alone, member_config(config, m), CPU)
        plain.fit(fit, batches, (fit, held))
        assert plain.config.seed == config.seed + m
        assert trainer.best_epochs[f"member{m + 1}"] == plain.best_epoch
        for name, value in alone.state_dict().items():
            torch.testing.assert_close(member.state_dict()[name], value, rtol=0, atol=0)
    assert {r["member"] for r in trainer.history} == {1, 2, 3}


def test_ensemble_refit_trains_each_member_for_its_own_best_epochs():
    every = random_users(90, 2)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(1))
    batches = iter_row_chunks(len(fit), 15)
    config = small_config(epochs=8, kind="softmax")
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(config.seed))
    model.init_visible_biases(fit)
    selected = trainer_for(model, config, CPU)
    selected.fit(fit, batches, (fit, held))
    best = [selected.best_epochs[f"member{m}"] for m in (1, 2, 3)]
    assert selected.refit_settings() == {"members": [{"epochs": b} for b in best]}

    refit = refit_on_all_ratings(selected, every, batches)
    for m in (1, 2, 3):
        epochs = [r["epoch"] for r in refit.history if r["member"] == m]
        assert epochs == list(range(1, best[m - 1] + 1))


def test_ensemble_and_hybrid_with_ensemble_rebuild_from_hyperparameters():
    users = random_users(40, 3)
    for config in (
        small_config(item_based=True, item={"n_hidden": 4}),
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
