"""Blends of two machines (rbmcore/models/blend.py): the weight mixes the outputs both give,
an output only one gives passes through, and the weight of a like blend whose ratings come
from one machine is chosen on the like NLL (rbmcore/training/selection.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.models.autoencoder import AutoRec, MultVAE
from rbmcore.models.blend import BlendModel
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.models.factory import is_blend, is_known_kind, is_ranking_kind
from rbmcore.models.rated import RatedRBM
from rbmcore.training.selection import blend_metric, like_nll_metric, selection_metric
from tests.rbmcore.support import N_ITEMS, random_users


def like_blend() -> BlendModel:
    gen = torch.Generator().manual_seed(0)
    return BlendModel(CategoricalRBM(N_ITEMS, 5, "binary", gen), AutoRec(N_ITEMS, 4, gen))


def test_the_weight_mixes_shared_outputs_and_single_outputs_pass_through():
    model = like_blend()
    batch = to_batch(random_users(4, seed=1))
    first, second = model.first.score_all(batch), model.second.score_all(batch)
    assert model.output_columns == ("p_like", "pred_rating")
    for weight in (1.0, 0.0, 0.3):
        model.weight.fill_(weight)
        out = model.score_all(batch)
        mixed = weight * first["p_like"] + (1 - weight) * second["p_like"]
        assert torch.allclose(out["p_like"], mixed)
        assert torch.equal(out["pred_rating"], second["pred_rating"])
    items, rows = torch.tensor([2, 3]), torch.tensor([0, 3])
    pairs = model.predict_pairs(batch, items, rows)
    assert torch.allclose(pairs["p_like"], out["p_like"][rows, items], atol=1e-6)
    assert torch.allclose(pairs["pred_rating"], out["pred_rating"][rows, items], atol=1e-6)


def test_blend_kinds_pair_two_machines_of_one_question():
    assert is_blend("binary+autorec") and is_blend("rated+multvae")
    assert not is_blend("rated+binary") and not is_blend("binary") and not is_blend("a+b+c")
    assert is_known_kind("softmax+autorec") and not is_known_kind("hybrid+rated")
    assert is_ranking_kind("rated+multvae") and not is_ranking_kind("binary+autorec")
    assert like_blend().kind == "binary+autorec"
    with pytest.raises(ValueError, match="n_items"):
        BlendModel(RatedRBM(N_ITEMS, 3), MultVAE(N_ITEMS + 1, 3))


def test_a_blend_is_chosen_on_what_both_machines_answer():
    assert blend_metric(like_blend()) is like_nll_metric  # binary predicts no ratings
    gen = torch.Generator().manual_seed(0)
    ratings = BlendModel(CategoricalRBM(N_ITEMS, 5, "softmax", gen), AutoRec(N_ITEMS, 4, gen))
    assert blend_metric(ratings) is selection_metric  # RMSE: both predict ratings
    ranking = BlendModel(RatedRBM(N_ITEMS, 3, gen), MultVAE(N_ITEMS, 3, gen))
    assert blend_metric(ranking) is selection_metric  # nDCG@10
    record = {"val": {"like_nll": 0.3, "rmse": 0.9}}
    assert like_nll_metric(record) == 0.3 and selection_metric(record) == 0.9
    assert np.isinf(like_nll_metric({}))
