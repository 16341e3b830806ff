"""The model contract (rbmcore/models/contract.py) for every kind and composite: each trains a
few batches, scores the catalogue, predicts pairs, and gives the same outputs after a save and
load of its artifact."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.csr import RatingsCSR, csr_from_pairs
from rbmcore.data.splits import split_holdout
from rbmcore.io.artifact import load_model, save_model
from rbmcore.models.blend import BlendModel
from rbmcore.models.contract import Recommender, TrainableAutoencoder, TrainableRBM
from rbmcore.models.dbn import DeepBeliefNet
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import TrainConfig

CPU = torch.device("cpu")
N_USERS, N_ITEMS = 40, 25
SMALL = {
    "n_hidden": 4, "epochs": 2, "item": {"n_hidden": 3, "epochs": 2}, "refit": False,
    "layer": {"epochs": 2},
}  # fmt: skip

# (case name, structure) -> the [train] settings that build it
CASES = {
    **{
        (kind, "user-based"): {"kind": kind, "n_models": 1, "item_based": False}
        for kind in ("binary", "softmax", "rated", "autorec", "multvae")
    },
    **{
        (kind, "two-way"): {"kind": kind, "n_models": 1, "item_based": True}
        for kind in ("binary", "softmax", "rated", "autorec")
    },
    **{
        (kind, "ensemble"): {"kind": kind, "n_models": 2, "item_based": False}
        for kind in ("binary", "softmax", "rated", "autorec")
    },
    ("multvae-variational", "user-based"): {
        "kind": "multvae", "variational": True, "encoder_hidden": 5, "anneal_epochs": 1,
    },  # fmt: skip
    **{
        (kind, "deep"): {"kind": kind, "n_models": 1, "item_based": False, "layers": [3, 2]}
        for kind in ("binary", "softmax", "rated")
    },
    ("binary+autorec", "blend"): {"kind": "binary+autorec", "n_models": 1, "item_based": True},
    ("rated+multvae", "blend"): {"kind": "rated+multvae", "n_models": 1, "item_based": False},
    **{
        (like, "hybrid"): {
            "kind": "hybrid",
            "like_kind": like,
            "item_based": False,
            "rated": {"n_models": 2},
            "like": {"n_models": 2, "item_based": True},
        }
        for like in ("binary", "softmax")
    },
    ("dbn", "hybrid"): {"kind": "dbn"},
    ("autoencoder", "hybrid"): {"kind": "autoencoder", "like": {"item_based": True}},
}
STRUCTURE = {
    "user-based": (torch.nn.Module,),
    "two-way": (TwoWayRBM,),
    "ensemble": (EnsembleRBM, torch.nn.Module),  # a rated ensemble is one stacked RatedRBM
    "deep": (DeepBeliefNet,),
    "blend": (BlendModel,),
    "hybrid": (HybridRBM,),
}
RATING_CASES = ("softmax", "autorec", "binary+autorec", "autoencoder")  # predict ratings
ITEM_WAY_CASES = (  # composites with an item-based way inside (the dbn preset has none)
    ("binary", "hybrid"), ("softmax", "hybrid"), ("autoencoder", "hybrid"),
    ("binary+autorec", "blend"),
)  # fmt: skip


def ratings(seed: int = 0) -> RatingsCSR:
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(1, N_USERS + 1), 8)
    items = rng.integers(0, N_ITEMS, len(users))
    keep = np.unique(users * N_ITEMS + items, return_index=True)[1]
    return csr_from_pairs(users[keep], items[keep], rng.integers(1, 6, len(keep)), N_ITEMS)


def parameters(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.named_parameters()}


@pytest.mark.parametrize("case", list(CASES), ids=lambda c: f"{c[0]}-{c[1]}")
def test_every_kind_and_composite_meets_the_contract(case, tmp_path):
    settings = CASES[case]
    config = TrainConfig(**{**SMALL, **settings})
    train = ratings()
    fit_part, held = split_holdout(train, 0.2, np.random.default_rng(1))
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(0), len(fit_part))
    assert isinstance(model, Recommender)
    assert isinstance(model, STRUCTURE[case[1]])
    assert model.kind == settings["kind"]
    composite = (TwoWayRBM, EnsembleRBM, HybridRBM, DeepBeliefNet, BlendModel)
    single = not isinstance(model, composite)
    autoencoder = settings["kind"] in ("autorec", "multvae")
    assert isinstance(model, TrainableRBM) == (single and not autoencoder)
    assert isinstance(model, TrainableAutoencoder) == (single and autoencoder)
    model.init_visible_biases(fit_part)

    before = parameters(model)
    trainer = trainer_for(model, config, CPU)
    batches = np.array_split(np.arange(len(fit_part)), 4)
    trainer.fit(fit_part, batches, (fit_part, held))
    assert trainer.history and trainer.best_epoch >= 1
    after = parameters(model)
    assert set(after) == set(before)
    assert any(not torch.equal(before[k], after[k]) for k in before), "training changed nothing"

    recs = recommend_csr(model, fit_part, 5, CPU)
    assert set(recs.extras) == set(model.output_columns)
    assert len(recs.user_ids) == 5 * len(fit_part)
    for name in model.output_columns:
        values = recs.extras[name]
        if name != "pred_rating" or case[0] in RATING_CASES:
            assert np.all(np.isfinite(values)), name
    preds = predict_csr(model, fit_part, held, CPU)
    assert len(preds["p_like"]) == held.nnz
    assert np.all((preds["p_like"] >= 0) & (preds["p_like"] <= 1))
    assert ("pred_rating" in preds) == (case[0] in RATING_CASES)

    movie_ids = np.arange(N_ITEMS) * 7 + 3
    save_model(tmp_path / "model", model, movie_ids, {"history": trainer.history})
    loaded = load_model(tmp_path / "model")
    assert loaded.meta["kind"] == model.kind
    assert loaded.model.hyperparameters() == model.hyperparameters()
    assert np.array_equal(loaded.movie_ids, movie_ids)
    again = recommend_csr(loaded.model, fit_part, 5, CPU)
    assert np.array_equal(again.user_ids, recs.user_ids)
    assert np.array_equal(again.items, recs.items)
    assert np.array_equal(again.scores, recs.scores)
    for name in model.output_columns:
        assert np.array_equal(again.extras[name], recs.extras[name], equal_nan=True), name
    preds_again = predict_csr(loaded.model, fit_part, held, CPU)
    for name, values in preds.items():
        assert np.array_equal(preds_again[name], values), name

    # per-user weights: the item-based ways' training users, none for user-based models
    expected = np.sort(fit_part.user_ids) if case[1] == "two-way" or case in ITEM_WAY_CASES \
        else None  # fmt: skip
    for held_users in (model.users_with_weights(), loaded.model.users_with_weights()):
        if expected is None:
            assert held_users is None
        else:
            assert np.array_equal(held_users.numpy(), expected)
