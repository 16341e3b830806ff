"""Deep belief nets (rbmcore/models/dbn.py) and their greedy training
(rbmcore/training/composite.py, DeepBeliefTrainer): predictions go up the stack and back down
to the bottom RBM, each layer trains on the fixed activations below it, and the refit keeps
each layer's epochs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.models.dbn import DeepBeliefNet, DenseRBM
from rbmcore.models.rated import RatedRBM
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import DeepBeliefTrainer, trainer_for
from rbmcore.training.config import TrainConfig
from rbmcore.training.refit import refit_config
from tests.rbmcore.support import N_ITEMS, random_users

CPU = torch.device("cpu")


def randomised(net: DeepBeliefNet, seed: int = 1) -> DeepBeliefNet:
    with torch.no_grad():
        gen = torch.Generator().manual_seed(seed)
        for p in net.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.5)
    return net


@pytest.mark.parametrize("kind", ["rated", "binary", "softmax"])
def test_predictions_go_up_the_stack_and_down_to_the_bottom_rbm(kind):
    gen = torch.Generator().manual_seed(0)
    bottom = RatedRBM(N_ITEMS, 6, gen) if kind == "rated" else CategoricalRBM(N_ITEMS, 6, kind, gen)
    net = randomised(DeepBeliefNet.stacked(bottom, [4, 3], gen))
    batch = to_batch(random_users(5, seed=2))
    if kind == "rated":
        up = torch.sigmoid(bottom.hidden_input(batch)[0])
    else:
        up = torch.sigmoid(bottom.hidden_input(batch, bottom.states_of(batch.ratings)))
    first, second = net.layers
    top = torch.sigmoid(torch.sigmoid(up @ first.W + first.b_h) @ second.W + second.b_h)
    down = torch.sigmoid(torch.sigmoid(top @ second.W.T + second.b_v) @ first.W.T + first.b_v)
    assert torch.allclose(net.stack_hidden(batch), down, atol=1e-6)
    scores = net.score_all(batch)
    assert set(scores) == {"score", *bottom.output_columns}
    if kind == "rated":
        expected = torch.sigmoid(down @ bottom.W[0].T + bottom.b_v[0])
        assert torch.allclose(scores["p_rated"], expected, atol=1e-6)
    items, rows = torch.tensor([1, 4, 9]), torch.tensor([0, 2, 4])
    pairs = net.predict_pairs(batch, items, rows)
    column = "p_rated" if kind == "rated" else "p_like"
    assert torch.allclose(pairs["p_like"], scores[column][rows, items], atol=1e-6)


def test_without_layers_the_net_predicts_as_its_rbm():
    bottom = CategoricalRBM(N_ITEMS, 6, "softmax", torch.Generator().manual_seed(0))
    net = randomised(DeepBeliefNet.stacked(bottom, [4]))
    batch = to_batch(random_users(4, seed=3))
    for name, value in net.truncated(0).score_all(batch).items():
        assert torch.allclose(value, bottom.score_all(batch)[name], atol=1e-6)
    with pytest.raises(ValueError, match="visible units"):
        DeepBeliefNet(bottom, [DenseRBM(5, 3)])
    with pytest.raises(ValueError, match="one rated"):
        DeepBeliefNet(RatedRBM(N_ITEMS, 6, n_models=2), [])


def test_dense_rbm_cd_learns_its_data():
    """Two patterns of 8 units: CD-1 makes their mean-field reconstruction close."""
    gen = torch.Generator().manual_seed(0)
    rbm = DenseRBM(8, 4, gen, init_std=0.1)
    data = torch.tensor([[1.0] * 4 + [0.0] * 4, [0.0] * 4 + [1.0] * 4]).repeat(20, 1)
    optimiser = torch.optim.SGD(rbm.parameters(), lr=0.1, momentum=0.9)
    first = None
    for _ in range(300):
        optimiser.zero_grad()
        loss, nll = rbm.cd_loss_and_nll(data, 1, gen)
        first = float(nll.mean()) if first is None else first
        loss.backward()
        optimiser.step()
    assert float(rbm.cd_loss_and_nll(data, 1, gen)[1].mean()) < 0.3 * first


def test_greedy_training_keeps_the_rbm_fixed_while_a_layer_trains_and_refits_per_layer():
    config = TrainConfig(kind="binary", n_hidden=6, epochs=3, n_models=1, item_based=False,
                         layers=[4, 3], layer={"epochs": 2}, patience=5)  # fmt: skip
    train = random_users(40, seed=4)
    validation = (random_users(40, seed=4), random_users(40, seed=5))
    net = model_for_config(config, N_ITEMS, torch.Generator().manual_seed(0), len(train))
    assert isinstance(net, DeepBeliefNet) and [layer.n_hidden for layer in net.layers] == [4, 3]
    net.init_visible_biases(train)
    trainer = trainer_for(net, config, CPU)
    assert isinstance(trainer, DeepBeliefTrainer)
    seen: dict[int, torch.Tensor] = {}
    original = trainer.fit_stage

    def watch(name, stage, *args, **kwargs):  # the bottom RBM's weights when each stage starts
        seen[len(seen)] = net.bottom.W.detach().clone()
        return original(name, stage, *args, **kwargs)

    trainer.fit_stage = watch
    trainer.fit(train, np.array_split(np.arange(len(train)), 4), validation)
    assert [r["layer"] for r in trainer.history] == [0, 0, 0, 1, 1, 2, 2]
    assert torch.equal(seen[1], seen[2]) and torch.equal(seen[2], net.bottom.W)
    assert not torch.equal(seen[0], seen[1])  # the RBM trained before the layers
    assert "val" in trainer.history[-1] and "ndcg" not in trainer.history[-1]["val"]
    settings = refit_config(trainer)
    assert settings.epochs == trainer.best_epochs["rbm"]
    layers = [trainer.best_epochs["layer1"], trainer.best_epochs["layer2"]]
    assert settings.layer["epochs"] == layers
    assert settings.layer_config(2).epochs == trainer.best_epochs["layer2"]
