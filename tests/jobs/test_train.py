"""jobs/train.py pieces that need no Spark: how a model is cut into the parts of one
distributed run (a hybrid's parts, an ensemble's members) and put back together."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jobs import run as run_job
from jobs import train as train_job
from jobs.common.args import parse_job_args
from jobs.common.config import resolve_conf
from jobs.common.errors import UsageError
from jobs.train import train_overrides, train_settings
from jobs.training.data import all_training_data, evaluation_sample
from jobs.training.distributor import distributed_stages, module_at, record_selection
from rbmcore.data.csr import csr_from_pairs, merge_rows
from rbmcore.data.splits import split_holdout
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import EnsembleTrainer, HybridTrainer, member_config, trainer_for
from rbmcore.training.config import JobSettings, TrainConfig
from rbmcore.training.refit import refit_config

CPU = torch.device("cpu")


def test_the_epochs_flag_caps_every_part_the_item_based_ways_too():
    argv = ["--out", "/tmp/unused", "--epochs", "1", "--set", "train.item.lr=0.02"]
    args = parse_job_args("rbm-reco run", None, run_job.add_arguments, argv)
    config, _ = train_settings(resolve_conf(args, train_overrides(args)))
    rated = config.part("rated")
    like = member_config(config.part("like"), 2)
    assert [rated.epochs, rated.item_way().epochs, like.epochs, like.item_way().epochs] == [1] * 4
    assert like.item_way().lr == 0.02  # the rest of [train.item] is kept
    defaults = parse_job_args("rbm-reco run", None, run_job.add_arguments, ["--out", "/x"])
    config, _ = train_settings(resolve_conf(defaults, train_overrides(defaults)))
    assert config.part("rated").item_way().epochs == 150  # without the flag: the item default


def test_run_and_train_take_the_same_training_flags():
    flags = ["--kind", "binary", "--epochs", "2", "--hidden", "7", "--lr", "0.1", "--seed", "3"]
    flags += ["--device", "cpu", "--resume"]
    run_args = parse_job_args("rbm-reco run", None, run_job.add_arguments, ["--out", "/x", *flags])
    train_args = parse_job_args("rbm-reco train", None, train_job.add_arguments,
                                ["--out", "/x", *flags])  # fmt: skip
    overrides = train_overrides(run_args)
    assert overrides == train_overrides(train_args)
    assert overrides["train"]["n_hidden"] == 7 and run_args.resume and train_args.resume


def test_validation_and_the_test_report_use_the_users_of_the_first_batches_beyond_eval_users():
    rng = np.random.default_rng(0)
    users, items = np.repeat(np.arange(100, 150), 6), rng.permutation(np.tile(np.arange(40), 8))
    train = csr_from_pairs(users, items[:300], rng.integers(1, 6, 300), 40)
    fit_part, held = split_holdout(train, 0.2, np.random.default_rng(1))
    batches = np.array_split(rng.permutation(50), 5)  # in batch-id order, 10 users each
    odd = np.flatnonzero(train.user_ids % 2)  # the test file has the odd users only
    test = (train.take(odd), train.take(odd))
    _, job = train_settings({"train": {"eval_users": 20}})
    sampled_fit, (context, target), (test_context, _) = evaluation_sample(
        job, fit_part, batches, (fit_part, held), test
    )
    sample = np.sort(np.concatenate(batches[:2]))
    assert list(context.user_ids) == list(target.user_ids) == list(train.user_ids[sample])
    assert list(test_context.user_ids) == [u for u in train.user_ids[sample] if u % 2]
    # the sample keeps its holdout; every other user trains on all of its ratings again
    lengths = sampled_fit.row_lengths()
    others = np.setdiff1d(np.arange(50), sample)
    assert list(lengths[sample]) == list(fit_part.row_lengths()[sample])
    assert list(lengths[others]) == list(train.row_lengths()[others])
    assert target.nnz == held.take(sample).nnz > 0
    every = merge_rows(sampled_fit, target)  # the refit's data: every training rating
    assert every.nnz == train.nnz and np.array_equal(every.items, train.items)
    for everyone in ({"train": {"eval_users": 0}}, {"train": {"eval_users": 50}}, {}):
        pair = (fit_part, held)
        _, job = train_settings(everyone)
        kept_fit, validation, kept = evaluation_sample(job, fit_part, batches, pair, test)
        assert kept_fit is fit_part and validation is pair and kept is test
    with pytest.raises(UsageError, match="eval_users"):
        train_settings({"train": {"eval_users": -1}})


def test_a_two_way_model_trains_on_the_evaluation_sample_and_its_refit_gets_every_rating():
    rng = np.random.default_rng(3)
    users, items = np.repeat(np.arange(60), 8), rng.integers(0, 30, 480)
    train = csr_from_pairs(users, items, rng.integers(1, 6, 480), 30)
    train = train.take(np.flatnonzero(train.row_lengths() > 1))
    fit_part, held = split_holdout(train, 0.2, np.random.default_rng(1))
    batches = np.array_split(np.arange(len(train)), 6)
    fit_part, validation, _ = evaluation_sample(
        JobSettings(eval_users=25), fit_part, batches, (fit_part, held), None
    )
    config = TrainConfig(kind="binary", n_hidden=4, epochs=1, n_models=1, item_based=True,
                         item={"epochs": 1, "n_hidden": 3})  # fmt: skip
    model = model_for_config(config, 30, torch.Generator().manual_seed(0), len(fit_part))
    model.init_visible_biases(fit_part)
    trainer = trainer_for(model, config, CPU)
    trainer.fit(fit_part, batches, validation)  # the item states from every training rating
    assert len(validation[0]) == 25 and trainer.history
    every, _ = all_training_data(fit_part, batches, validation)
    assert every.nnz == train.nnz and np.array_equal(every.user_ids, train.user_ids)


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
