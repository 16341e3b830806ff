"""The deep Boltzmann machine reference (rbmcore/baselines/dbm.py): it starts from a deep belief
net's weights, its mean field is a fixed point of the two layers' conditionals, and joint
training changes every layer's weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.baselines.dbm import DeepBoltzmannMachine, dbm_config, fit_dbm
from rbmcore.data.batch import to_batch
from rbmcore.models.dbn import DeepBeliefNet
from rbmcore.models.rated import RatedRBM
from tests.rbmcore.support import N_ITEMS, random_users


def pretrained_net(seed: int = 0) -> DeepBeliefNet:
    gen = torch.Generator().manual_seed(seed)
    net = DeepBeliefNet.stacked(RatedRBM(N_ITEMS, 6, gen), [4], gen)
    with torch.no_grad():
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.3)
    return net


def test_starts_from_the_deep_belief_net_and_its_mean_field_is_a_fixed_point():
    net = pretrained_net()
    dbm = DeepBoltzmannMachine.from_dbn(net, mean_field_steps=50)
    assert torch.equal(dbm.bottom.W, net.bottom.W) and torch.equal(dbm.top.W, net.layers[0].W)
    batch = to_batch(random_users(5, seed=1))
    mu1, mu2 = dbm.mean_field(batch)
    x1 = net.bottom.hidden_input(batch)[0] + dbm.top.b_v
    assert torch.allclose(mu1, torch.sigmoid(x1 + mu2 @ dbm.top.W.T), atol=1e-5)
    assert torch.allclose(mu2, dbm.top.up(mu1), atol=1e-5)
    p_rated = dbm.score_all(batch)["p_rated"]
    pairs = dbm.predict_pairs(batch, torch.tensor([3, 8]), torch.tensor([1, 4]))
    assert torch.allclose(pairs["p_like"], p_rated[[1, 4], [3, 8]], atol=1e-6)
    with pytest.raises(ValueError, match="one layer"):
        DeepBoltzmannMachine.from_dbn(DeepBeliefNet(net.bottom, []))


def test_joint_training_moves_both_layers():
    net = pretrained_net()
    train = random_users(30, seed=2)
    config = dbm_config(seed=0, epochs=2)
    dbm, trainer = fit_dbm(net, train, np.array_split(np.arange(len(train)), 3), None, config)
    assert len(trainer.history) == 2
    assert not torch.equal(dbm.bottom.W, net.bottom.W)
    assert not torch.equal(dbm.top.W, net.layers[0].W)
