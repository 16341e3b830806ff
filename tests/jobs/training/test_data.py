"""The training data of the train job (jobs/training/data.py): validation and the test report
use the users of the first batches (``train.eval_users``), the others train on all their
ratings, and the refit gets every training rating back."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from jobs.common.errors import UsageError
from jobs.train import train_settings
from jobs.training.data import all_training_data, evaluation_sample
from rbmcore.data.csr import csr_from_pairs, merge_rows
from rbmcore.data.splits import split_holdout
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import JobSettings, TrainConfig

CPU = torch.device("cpu")


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
