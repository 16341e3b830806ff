"""Data-parallel training with torch.distributed (rbmcore/training/distributed.py), in one
process and without Spark: batches sharded across ranks, ``train_worker`` of a world of one
equal to plain training and refit, a missing peer ending in an error, and gloo's interface."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest
import torch
import torch.distributed as dist

from rbmcore.data.csr import csr_from_pairs, merge_rows
from rbmcore.data.splits import split_holdout
from rbmcore.models.factory import build_model
from rbmcore.training.config import TrainConfig
from rbmcore.training.distributed import (
    init_process_group_from_env,
    make_payload,
    pin_gloo_to_loopback,
    shard_batches,
    train_worker,
)
from rbmcore.training.refit import fresh_refit_model, refit_on_all_ratings
from rbmcore.training.trainer import Trainer
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


def test_train_worker_in_one_process_equals_plain_training(monkeypatch):
    """World size 1 (gloo, in this process): the all-reduce is the identity, so each stage of
    the payload (two here, trained one after the other in one process group, as a hybrid's
    parts are) gets the weights, history and best epoch of a plain ``Trainer.fit`` of its
    model, and its refit the weights of ``refit_on_all_ratings`` of that trainer."""
    rng = np.random.default_rng(3)
    users, items = rng.integers(0, 60, 1500), rng.integers(0, 40, 1500)
    key = np.unique(users * 40 + items)
    ratings = rng.integers(1, 6, len(key)).astype(np.int8)
    train = csr_from_pairs(key // 40, key % 40, ratings, 40)
    configs = {
        "rated": TrainConfig(kind="rated", n_hidden=8, n_models=2, epochs=3, patience=2,
                             item_based=False, device="cpu"),
        "like": TrainConfig(kind="softmax", n_hidden=8, epochs=4, patience=2, item_based=False,
                            device="cpu"),
    }  # fmt: skip  (user-based parts, as distributed training has)
    fit, held = split_holdout(train, 0.2, np.random.default_rng(0))
    every = merge_rows(fit, held)
    batches = [np.arange(s, min(s + 16, len(fit))) for s in range(0, len(fit), 16)]

    def fresh(name: str):
        params = {"n_models": 2} if name == "rated" else {}
        model = build_model(configs[name].kind, 40, 8, torch.Generator().manual_seed(7), **params)
        model.init_visible_biases(fit)
        return model

    expected = {}
    for name, config in configs.items():
        trainer = Trainer(fresh(name), config, torch.device("cpu"))
        expected[name] = (trainer, trainer.fit(fit, batches, (fit, held)))
    for name, value in dict(RANK="0", WORLD_SIZE="1", LOCAL_RANK="0",
                            MASTER_ADDR="127.0.0.1", MASTER_PORT=str(free_port())).items():
        monkeypatch.setenv(name, value)  # fmt: skip
    threads = torch.get_num_threads()
    stages = {name: (fresh(name), config) for name, config in configs.items()}
    refit_start = {name: fresh_refit_model(config, every) for name, config in configs.items()}
    try:
        result = train_worker(make_payload(stages, fit, batches, (fit, held),
                                           refit=(every, refit_start)))  # fmt: skip
    finally:
        torch.set_num_threads(threads)  # the worker set 1 thread; leave the session as it was
    assert list(result["stages"]) == ["rated", "like"]
    for name, (trainer, history) in expected.items():
        got = result["stages"][name]
        assert got["best_epoch"] == trainer.best_epoch
        assert [r["val"] for r in got["history"]] == [r["val"] for r in history]
        assert {r["processes"] for r in got["history"]} == {1}
        for key, tensor in trainer.model.state_dict().items():
            torch.testing.assert_close(got["state"][key], tensor, rtol=0, atol=1e-6)
        refit = refit_on_all_ratings(trainer, every, batches)
        assert len(got["refit"]["history"]) == max(trainer.best_epoch, 1)
        for key, tensor in refit.model.state_dict().items():
            torch.testing.assert_close(got["refit"]["state"][key], tensor, rtol=0, atol=1e-6)
            assert not torch.equal(tensor, got["state"][key]) or key.endswith("u_scale")


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
