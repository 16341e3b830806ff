"""Data-parallel training with torch.distributed (rbmcore/training/distributed.py), in one
process and without Spark: batches sharded across ranks, every RBM of a model as a stage,
``train_worker`` of a world of one plus the driver's choices equal to plain training and
refit, a missing peer ending in an error, and gloo's interface."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from rbmcore.data.csr import csr_from_pairs, merge_rows
from rbmcore.data.splits import split_holdout
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.distributed import (
    init_process_group_from_env,
    make_payload,
    pin_gloo_to_loopback,
    plan_stages,
    shard_batches,
    train_worker,
    trainers_from_result,
)
from rbmcore.training.refit import fresh_refit_model, refit_on_all_ratings
from tests.rbmcore.support import free_port


def test_shard_batches_splits_every_batch_across_ranks():
    batches = [np.arange(0, 5), np.arange(5, 6), np.arange(6, 10)]
    shards = [shard_batches(batches, rank, 2) for rank in range(2)]
    assert [len(s) for s in shards] == [3, 3]  # same number of steps on every rank
    for b, (first, second) in enumerate(zip(*shards, strict=True)):
        if len(batches[b]) >= 2:
            assert sorted([*first, *second]) == list(batches[b])
        else:  # fewer users than ranks: every rank takes the whole batch
            assert list(first) == list(second) == list(batches[b])


def small_data():
    """60 users x 40 items, a validation carve, every rating, and batches of 16 users."""
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 60, 1500), rng.integers(0, 40, 1500)
    key = np.unique(users * 40 + items)
    ratings = rng.integers(1, 6, len(key)).astype(np.int8)
    train = csr_from_pairs(key // 40, key % 40, ratings, 40)
    fit, held = split_holdout(train, 0.2, np.random.default_rng(0))
    batches = [np.arange(s, min(s + 16, len(fit))) for s in range(0, len(fit), 16)]
    return fit, held, merge_rows(fit, held), batches


def hybrid_config() -> TrainConfig:
    """A small default-shaped hybrid: a two-way rated part (trained by ratio matching: sparse
    gradients) and an ensemble of 2 two-way binary RBMs (the like part distributed training
    keeps of the default's blend, ``rbm_machines_only``)."""
    item = {"n_hidden": 5, "epochs": 3, "patience": 2}
    return TrainConfig(
        kind="hybrid", like_kind="binary", n_hidden=6, epochs=3, patience=2, device="cpu",
        item_batch=8,
        rated={"n_models": 2, "estimator": "srm", "item": item},
        like={"n_models": 2, "item": item},
    )  # fmt: skip


def fresh_model(config: TrainConfig, fit):
    model = model_for_config(config, fit.n_items, torch.Generator().manual_seed(7), len(fit))
    model.init_visible_biases(fit)
    return model


def test_plan_stages_lists_every_rbm_in_training_order():
    config = hybrid_config()
    model = fresh_model(config, small_data()[0])
    stages = plan_stages(model, config)
    assert [s["name"] for s in stages] == [
        "rated.user", "rated.item", "like.member1.user", "like.member1.item",
        "like.member2.user", "like.member2.item",
    ]  # fmt: skip
    assert model.get_submodule(stages[3]["path"]) is model.like.members[0]
    assert stages[4]["config"]["seed"] == config.seed + 1  # the member's own config
    assert stages[0]["config"]["estimator"] == "srm" and stages[2]["way"] == "user"


def test_train_worker_in_one_process_equals_plain_training(monkeypatch):
    """World size 1 (gloo, in this process): the all-reduce is the identity, so the run (every
    RBM of a hybrid with two-way parts, one after the other in one process group) and the
    driver's choices after it give the weights, history, blend weights, alpha and refit
    settings of a plain ``HybridTrainer.fit``, and the refit trained in the same run the
    weights of ``refit_on_all_ratings``."""
    fit, held, every, batches = small_data()
    config = hybrid_config()
    cpu = torch.device("cpu")
    expected = trainer_for(fresh_model(config, fit), config, cpu)
    expected.fit(fit, batches, (fit, held))
    expected_refit = refit_on_all_ratings(expected, every, batches)
    for name, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(name, value)  # fmt: skip
    threads = torch.get_num_threads()
    model = fresh_model(config, fit)
    refit = (every, fresh_refit_model(config, every))
    try:
        result = train_worker(make_payload(model, config, fit, batches, (fit, held),
                                           refit=refit))  # fmt: skip
    finally:
        torch.set_num_threads(threads)  # the worker set 1 thread; leave the session as it was
    trainer, refit_trainer = trainers_from_result(model, config, result, fit, (fit, held), cpu,
                                                  refit)  # fmt: skip
    assert [r.get("val") for r in trainer.history] == [r.get("val") for r in expected.history]
    assert [{k: r.get(k) for k in ("part", "member", "way")} for r in trainer.history] == [
        {k: r.get(k) for k in ("part", "member", "way")} for r in expected.history
    ]
    assert {r["processes"] for r in trainer.history} == {1}
    assert trainer.refit_settings() == expected.refit_settings()
    assert trainer.alpha_search == expected.alpha_search
    assert trainer.weight_search == expected.weight_search and trainer.weight_search["rated"]
    for got, want in ((model, expected.model), (refit_trainer.model, expected_refit.model)):
        for key, tensor in want.state_dict().items():
            torch.testing.assert_close(got.state_dict()[key], tensor, rtol=0, atol=1e-6,
                                       msg=key)  # fmt: skip
    assert len(refit_trainer.history) == len(expected_refit.history)


def test_process_group_gives_up_on_a_missing_peer(monkeypatch):
    """A world of 2 with only rank 0 started: joining raises after ``timeout_s`` instead of
    waiting for ever (a hung run must end in an error the barrier stage can retry)."""
    for name, value in dict(RANK="0", WORLD_SIZE="2", LOCAL_RANK="0",
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(name, value)  # fmt: skip
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "")  # unset, and restored after the test
    start = time.monotonic()
    with pytest.raises((RuntimeError, dist.DistError)):
        init_process_group_from_env("cpu", timeout_s=3)
    assert time.monotonic() - start < 60
    assert not dist.is_initialized()
    assert os.environ["GLOO_SOCKET_IFNAME"] in ("lo", "lo0")  # one host: gloo on loopback


def test_gloo_interface_left_alone_off_loopback_or_when_chosen(monkeypatch):
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "")
    monkeypatch.setenv("MASTER_ADDR", "10.1.2.3")  # several hosts: gloo's own choice
    assert pin_gloo_to_loopback() is None
    assert os.environ["GLOO_SOCKET_IFNAME"] == ""
    monkeypatch.setenv("MASTER_ADDR", "localhost")
    monkeypatch.setenv("GLOO_SOCKET_IFNAME", "eth7")  # the user's choice wins
    assert pin_gloo_to_loopback() is None
    assert os.environ["GLOO_SOCKET_IFNAME"] == "eth7"
