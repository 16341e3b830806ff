"""Trainers of composite models (rbmcore/training/composite.py): the hybrid's parts trained in
turn with alpha and the rated part's blend weight chosen on validation (and resumed from its
checkpoints), each ensemble member trained as a plain ``Trainer`` with seed + m, and the
two-way blend chosen on validation beating its user-based way on MovieLens u1."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from rbmcore import metrics
from rbmcore.data.batch import iter_row_chunks
from rbmcore.data.csr import csr_from_pairs
from rbmcore.data.splits import split_holdout
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.factory import build_model
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import (
    EnsembleTrainer,
    HybridTrainer,
    member_config,
    trainer_for,
)
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer
from tests.conftest import ML100K
from tests.rbmcore.support import N_ITEMS, ensemble_config, random_users

CPU = torch.device("cpu")


def test_hybrid_trainer_trains_both_parts_and_picks_alpha(tmp_path):
    csr = random_users(60, 6)
    fit, held = split_holdout(csr, 0.2, np.random.default_rng(0))
    config = TrainConfig(
        kind="hybrid",
        epochs=2,
        like_kind="binary",
        rated={"n_hidden": 4, "item": {"epochs": 2, "n_hidden": 3}},
        like={"n_hidden": 3, "item_based": False, "n_models": 2},
    )
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(0), len(fit))
    assert model.rated.n_hidden == 4 and model.like.n_hidden == 3 and model.like.kind == "binary"
    assert isinstance(model.rated, TwoWayRBM) and model.rated.item.inner.n_hidden == 3
    assert isinstance(model.like, EnsembleRBM)  # 2 user-based RBMs, as configured
    assert all(isinstance(m, CategoricalRBM) for m in model.like.members)
    model.init_visible_biases(fit)
    trainer = HybridTrainer(model, config, torch.device("cpu"), checkpoint_dir=tmp_path / "ck")
    history = trainer.fit(fit, iter_row_chunks(len(fit), 20), (fit, held))
    assert [(r["part"], r.get("way"), r.get("member")) for r in history] == [
        *[("rated", "user", None)] * 2,
        *[("rated", "item", None)] * 2,
        *[("like", None, 1)] * 2,
        *[("like", None, 2)] * 2,
    ]
    assert float(model.alpha) in trainer.alpha_search
    searched = trainer.weight_search["rated"]  # the best validation score, ties to the user
    best = min(searched, key=lambda w: (searched[w], -w))
    assert float(model.rated.weight) == pytest.approx(best)
    for part in ("rated/user", "rated/item", "like/member1", "like/member2"):
        assert (tmp_path / "ck" / part / "phase.done").exists()
    # resuming a finished run retrains nothing and restores the same weights
    again = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(9), len(fit))
    again.init_visible_biases(fit)
    resumed = HybridTrainer(
        again, config, torch.device("cpu"), checkpoint_dir=tmp_path / "ck", resume=True
    )
    resumed.fit(fit, iter_row_chunks(len(fit), 20), (fit, held))
    for key, value in model.state_dict().items():
        torch.testing.assert_close(again.state_dict()[key], value)


def test_each_member_trains_as_a_plain_trainer_with_seed_plus_m():
    every = random_users(80, 1)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(0))
    batches = iter_row_chunks(len(fit), 20)
    config = ensemble_config()
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


def u1() -> tuple:
    def read(name: str) -> pd.DataFrame:
        return pd.read_csv(ML100K / name, sep="\t", names=["user", "movie", "rating", "ts"])

    train, test = read("u1.base"), read("u1.test")
    movies = np.sort(train.movie.unique())
    test = test[test.movie.isin(movies)]
    index = pd.Series(np.arange(len(movies)), index=movies)

    def csr(df: pd.DataFrame):
        return csr_from_pairs(df.user.values, index[df.movie].values, df.rating.values, len(movies))

    full, held = csr(train), csr(test)
    context = full.take(np.searchsorted(full.user_ids, held.user_ids))
    return full, context, held


def test_two_way_softmax_beats_its_user_based_part_on_u1():
    """Defaults of the softmax kind on MovieLens u1 (choices on a validation carve of
    u1.base only): the test RMSE is at most 0.925 and below the user-based RBM's."""
    torch.manual_seed(0)
    full, context, test = u1()
    config = TrainConfig(kind="softmax", seed=42)
    fit, held = split_holdout(full, config.val_fraction, np.random.default_rng(config.seed))
    model = model_for_config(config, full.n_items, torch.Generator().manual_seed(42), len(fit))
    model.init_visible_biases(fit)
    trainer_for(model, config, torch.device("cpu")).fit(
        fit, iter_row_chunks(len(fit), 100), (fit, held)
    )
    truth = test.ratings.astype(np.float64)
    both = metrics.rmse(truth, predict_csr(model, context, test)["pred_rating"])
    model.weight.fill_(1.0)
    user_only = metrics.rmse(truth, predict_csr(model, context, test)["pred_rating"])
    assert both <= 0.925, both
    assert both < user_only - 0.01, (both, user_only)
