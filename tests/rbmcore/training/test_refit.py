"""The refit on all ratings after the validation choices (rbmcore/training/refit.py): a fresh
run for the best epochs, a hybrid's choices and each part's (and each ensemble member's) own
best epochs kept, and the selected weights released without changing the refit."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from rbmcore.data.batch import iter_row_chunks
from rbmcore.data.csr import merge_rows
from rbmcore.data.splits import split_holdout
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import HybridTrainer, trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_config, refit_on_all_ratings
from rbmcore.training.selection import selection_metric
from rbmcore.training.trainer import Trainer
from tests.rbmcore.support import N_ITEMS, ensemble_config, random_users

CPU = torch.device("cpu")


def best_epoch_of(history: list[dict]) -> int:
    """The epoch with the lowest validation selection metric (the first of ties)."""
    best, best_value = -1, math.inf
    for record in history:
        if selection_metric(record) < best_value:
            best, best_value = record["epoch"], selection_metric(record)
    return best


def test_refit_of_one_rbm_is_a_fresh_run_on_all_ratings_for_the_best_epochs():
    every = random_users(80, 1)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(0))
    config = TrainConfig(kind="softmax", n_hidden=6, epochs=8, patience=2, item_based=False)
    batches = iter_row_chunks(len(fit), 20)
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(config.seed))
    model.init_visible_biases(fit)
    selected = Trainer(model, config, CPU)
    selected.fit(fit, batches, (fit, held))
    best = best_epoch_of(selected.history)
    assert refit_config(selected).epochs == best

    refit = refit_on_all_ratings(selected, every, batches)

    by_hand_config = TrainConfig(
        kind="softmax", n_hidden=6, epochs=best, patience=2, item_based=False
    )
    by_hand = model_for_config(by_hand_config, N_ITEMS, torch.Generator().manual_seed(42))
    by_hand.init_visible_biases(every)
    Trainer(by_hand, by_hand_config, CPU).fit(every, batches)
    assert [r["epoch"] for r in refit.history] == list(range(1, best + 1))
    for name, value in by_hand.state_dict().items():
        torch.testing.assert_close(refit.model.state_dict()[name], value, rtol=0, atol=0)
    assert not torch.equal(refit.model.W, selected.model.W)  # it learned from more ratings


def test_hybrid_refit_keeps_every_choice_and_each_parts_best_epochs(tmp_path):
    every = random_users(70, 2)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(1))
    config = TrainConfig(
        kind="hybrid",
        epochs=5,
        patience=2,
        like_kind="binary",
        rated={"n_hidden": 4, "item": {"epochs": 4, "n_hidden": 3, "patience": 2}},
        like={"n_hidden": 3, "item_based": False, "n_models": 1},
    )
    batches = iter_row_chunks(len(fit), 20)
    model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(0), len(fit))
    model.init_visible_biases(fit)
    selected = HybridTrainer(model, config, CPU)
    selected.fit(fit, batches, (fit, held))
    model.alpha.fill_(3.0)  # choices differ from the defaults a fresh model starts with
    model.rated.weight.fill_(0.3)

    def best(part: str, way: str | None = None) -> int:
        return best_epoch_of(
            [r for r in selected.history if r["part"] == part and r.get("way") == way]
        )

    refit = refit_on_all_ratings(
        selected, every, batches, checkpoint_dir=tmp_path / "refit", release_selected=True
    )
    assert all(t.is_meta for t in selected.model.state_dict().values())  # as the job runs it

    epochs = {
        (r["part"], r.get("way")): r["epoch"] for r in refit.history
    }  # the last epoch of each part
    assert epochs == {
        ("rated", "user"): best("rated", "user"),
        ("rated", "item"): best("rated", "item"),
        ("like", None): best("like"),
    }
    assert all("val" not in r for r in refit.history)  # no validation in the refit
    assert float(refit.model.alpha) == pytest.approx(3.0)
    assert float(refit.model.rated.weight) == pytest.approx(0.3)
    for part in ("rated/user", "rated/item", "like"):
        assert (tmp_path / "refit" / part / "phase.done").exists()
    # the item part's states come from every rating: same as setting them from ``every``
    states = refit.model.rated.item.state_dict()
    refit.model.rated.item.set_item_states(merge_rows(fit, held))
    for name, value in refit.model.rated.item.state_dict().items():
        torch.testing.assert_close(states[name], value)


def test_ensemble_refit_trains_each_member_for_its_own_best_epochs():
    every = random_users(90, 2)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(1))
    batches = iter_row_chunks(len(fit), 15)
    config = ensemble_config(epochs=8, kind="softmax")
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


def test_release_selected_frees_the_selected_weights_and_gives_the_same_refit():
    every = random_users(60, 3)
    fit, held = split_holdout(every, 0.2, np.random.default_rng(2))
    config = TrainConfig(kind="softmax", n_hidden=5, epochs=3, patience=2, item_based=False)
    batches = iter_row_chunks(len(fit), 20)

    def selected_trainer() -> Trainer:
        model = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(config.seed))
        model.init_visible_biases(fit)
        trainer = Trainer(model, config, CPU)
        trainer.fit(fit, batches, (fit, held))
        return trainer

    kept, released = selected_trainer(), selected_trainer()
    assert released.best_state is not None and released.optimizer.state
    refit_kept = refit_on_all_ratings(kept, every, batches)
    refit_released = refit_on_all_ratings(released, every, batches, release_selected=True)

    for name, value in refit_kept.model.state_dict().items():
        torch.testing.assert_close(refit_released.model.state_dict()[name], value, rtol=0, atol=0)
    assert all(t.is_meta for t in released.model.state_dict().values())  # no storage left
    assert released.best_state is None and not released.optimizer.state
    assert not any(t.is_meta for t in kept.model.state_dict().values())
    assert released.refit_settings() == kept.refit_settings()  # the job still reads these
    assert released.best_epoch == kept.best_epoch
    assert [r["val"] for r in released.history] == [r["val"] for r in kept.history]
