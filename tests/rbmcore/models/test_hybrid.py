"""The hybrid model: combined score, export columns, artifact round trip; and that unrated items
give no input to the categorical RBMs' hidden units."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import iter_row_chunks, to_batch
from rbmcore.data.csr import csr_from_lists
from rbmcore.data.splits import split_holdout
from rbmcore.evaluation import ranking_quality
from rbmcore.io.artifact import load_model, save_model
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.factory import build_hybrid
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.scoring import predict_csr, recommend_csr
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import HybridTrainer
from rbmcore.training.config import TrainConfig
from rbmcore.training.selection import alpha_grid_quality, choose_alpha

N_ITEMS = 25
CPU = torch.device("cpu")


def random_users(n_users: int, seed: int):
    rng = np.random.default_rng(seed)
    items = [
        np.sort(rng.choice(N_ITEMS, rng.integers(3, 12), replace=False)) for _ in range(n_users)
    ]
    ratings = [rng.integers(1, 6, len(row)) for row in items]
    return csr_from_lists(np.arange(100, 100 + n_users), items, ratings, N_ITEMS)


def small_hybrid(seed: int = 0, like_kind: str = "softmax"):
    model = build_hybrid(
        N_ITEMS,
        6,
        torch.Generator().manual_seed(seed),
        like_kind=like_kind,
        rated_hidden=5,
        rated_models=2,
        like_models=1,
    )
    model.alpha.fill_(2.0)
    with torch.no_grad():  # non-trivial weights
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.3)
    return model


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


def test_score_combines_and_excludes_seen_items():
    model = small_hybrid()
    csr = random_users(10, 1)
    batch = to_batch(csr)
    out = model.score_all(batch)
    assert set(out) == {"score", "p_rated", "p_like", "pred_rating"}
    torch.testing.assert_close(out["score"], out["p_rated"] * out["p_like"] ** 2.0)
    recs = recommend_csr(model, csr, top_k=N_ITEMS)
    for row in range(len(csr)):
        user = csr.user_ids[row]
        mine = recs.items[recs.user_ids == user]
        assert not set(mine) & set(csr.take([row]).items)  # never a seen item
        assert len(mine) == N_ITEMS - csr.row_lengths()[row]  # every unseen item, once
        scores = recs.scores[recs.user_ids == user]
        assert np.all(np.diff(scores) <= 0)


def test_alpha_zero_ranks_like_the_rated_model():
    model = small_hybrid(seed=3)
    csr = random_users(6, 2)
    model.alpha.fill_(0.0)
    a = recommend_csr(model, csr, 5)
    b = recommend_csr(model.rated, csr, 5)
    np.testing.assert_array_equal(a.items, b.items)


def test_the_alpha_search_scores_once_and_finds_what_each_alpha_would():
    """``alpha_grid_quality`` (sub-models score a chunk once) gives, alpha by alpha, exactly the
    validation nDCG@10 of ranking the users with ``model.alpha`` set to it; over several
    chunks, and with a user who has fewer than 10 unseen items."""
    model = small_hybrid(seed=7)
    rng = np.random.default_rng(8)
    items = [np.sort(rng.choice(N_ITEMS, rng.integers(3, 12), replace=False)) for _ in range(30)]
    items.append(np.arange(22))  # 3 unseen items left
    ratings = [rng.integers(1, 6, len(row)) for row in items]
    csr = csr_from_lists(np.arange(len(items)), items, ratings, N_ITEMS)
    context, target = split_holdout(csr, 0.2, np.random.default_rng(1))
    assert N_ITEMS - context.row_lengths().max() < 10
    grid = (0.0, 0.5, 2.0, 5.0)
    found = alpha_grid_quality(model, context, target, CPU, grid, chunk_users=7)
    expected = {}
    for alpha in grid:
        model.alpha.fill_(alpha)
        expected[alpha] = ranking_quality(model, context, target, CPU)["ndcg"]
    assert found == expected
    assert len(set(found.values())) > 1  # the grid does change the ranking here
    best, _ = choose_alpha(model, context, target, CPU, grid)
    assert best == max(grid, key=lambda a: (expected[a], -a)) and float(model.alpha) == best


def test_artifact_round_trip(tmp_path):
    model = small_hybrid(seed=5)
    movie_ids = np.arange(1000, 1000 + N_ITEMS)
    save_model(tmp_path / "m", model, movie_ids, {"note": "test"})
    loaded = load_model(tmp_path / "m")
    assert loaded.meta["kind"] == "hybrid"
    assert loaded.model.kind == "hybrid" and float(loaded.model.alpha) == 2.0
    csr = random_users(7, 4)
    ctx, held = split_holdout(csr, 0.3, np.random.default_rng(0))
    for name, a in predict_csr(model, ctx, held).items():
        np.testing.assert_allclose(predict_csr(loaded.model, ctx, held)[name], a)
    np.testing.assert_array_equal(
        recommend_csr(model, ctx, 5).items, recommend_csr(loaded.model, ctx, 5).items
    )


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
