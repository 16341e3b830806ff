"""Distributed training's bookkeeping (jobs/training/distributor.py): how a model is cut into the
parts of one distributed run (a hybrid's parts, an ensemble's members) and how their selected
epochs are put back into the trainer for the refit."""

from __future__ import annotations

import torch

from jobs.training.distributor import distributed_stages, module_at, record_selection
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import EnsembleTrainer, HybridTrainer, member_config, trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_config

CPU = torch.device("cpu")


def test_a_hybrid_with_a_like_ensemble_is_cut_into_its_members():
    config = TrainConfig(kind="hybrid", n_hidden=4, item_based=False, like={"n_models": 3},
                         rated={"n_hidden": 5, "n_models": 2})  # fmt: skip
    model = model_for_config(config, 30, torch.Generator().manual_seed(0))
    parts = distributed_stages(model, config)
    assert list(parts) == ["rated", "like.member1", "like.member2", "like.member3"]
    assert parts["rated"][0] is model.rated
    for m in range(3):
        module, member = parts[f"like.member{m + 1}"]
        assert module is model.like.members[m] is module_at(model, f"like.member{m + 1}")
        assert member == member_config(config.part("like"), m)
        assert member.seed == config.seed + m and member.kind == "binary"

    trainer = trainer_for(model, config, CPU)
    assert isinstance(trainer, HybridTrainer)
    record_selection(trainer, config, {"rated": 7, "like.member1": 4, "like.member2": 2,
                                       "like.member3": 5})  # fmt: skip
    settings = refit_config(trainer)
    assert settings.rated["epochs"] == 7
    assert settings.like["members"] == [{"epochs": 4}, {"epochs": 2}, {"epochs": 5}]
    assert [member_config(settings.part("like"), m).epochs for m in range(3)] == [4, 2, 5]


def test_an_ensemble_alone_and_a_single_rbm():
    config = TrainConfig(kind="softmax", n_hidden=4, n_models=2, item_based=False)
    model = model_for_config(config, 30, torch.Generator().manual_seed(1))
    assert list(distributed_stages(model, config)) == ["model.member1", "model.member2"]
    assert module_at(model, "model.member2") is model.members[1]
    trainer = trainer_for(model, config, CPU)
    assert isinstance(trainer, EnsembleTrainer)
    record_selection(trainer, config, {"model.member2": 3, "model.member1": 6})
    assert trainer.best_epoch == 6
    assert refit_config(trainer).members == [{"epochs": 6}, {"epochs": 3}]

    single = TrainConfig(kind="binary", n_hidden=4, n_models=1, item_based=False)
    rbm = model_for_config(single, 30, torch.Generator().manual_seed(2))
    assert distributed_stages(rbm, single) == {"model": (rbm, single)}
    plain = trainer_for(rbm, single, CPU)
    record_selection(plain, single, {"model": 9})
    assert refit_config(plain).epochs == 9
