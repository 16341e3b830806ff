"""A deep Boltzmann machine over the rated signal, as a benchmark reference (not a kind).

The tutorial names deep Boltzmann machines beside deep belief nets. This one has the rated
RBM's visible units (every catalogue item, 1 if the user rated it), a hidden layer h1 and a
top layer h2, all undirected (Salakhutdinov & Hinton, AISTATS 2009):

    E(v, h1, h2) = -v.W1.h1 - h1.W2.h2 - v.b_v - h1.b1 - h2.b2

Unlike a deep belief net, h1 hears both v and h2: ``p(h1 | v, h2) = sigmoid(v.W1 + W2.h2 +
b1)``. It starts from a trained deep belief net (``rbmcore.models.dbn.DeepBeliefNet``: the
rated RBM and one layer, the greedy pretraining) and is then trained as a whole: the data's
statistics from a mean-field posterior (``mean_field``: a fixed-point iteration of mu1, mu2
given v), the model's from a Gibbs chain of k steps started at the data (CD-k; the paper's
persistent chains are not kept). Written as a loss, ``mean E(data, mu) - mean E(chain)``, the
CD ``Trainer`` applies it. Prediction: the mean-field mu1 of the user's rated set, then
``P(v_i = 1 | mu1)``.

``tests/rbmcore/baselines`` and ``bench/`` use it; nothing in the library or the jobs does
(docs/models.md, "Deep Boltzmann machine", says why it is not a kind).
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.evaluation import ranking_quality
from rbmcore.models.dbn import DeepBeliefNet, DenseRBM
from rbmcore.models.rated import RatedRBM
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer


class DeepBoltzmannMachine(nn.Module):
    """v (``n_items``) - h1 (``n_hidden``) - h2 (``n_top``). ``bottom``: a one-RBM
    ``RatedRBM`` holding W1, b_v and b1; ``top``: a ``DenseRBM`` holding W2 and b2 (its
    visible bias adds to b1). Meets ``rbmcore.models.contract.TrainableRBM``."""

    kind = "dbm"
    n_models = 1
    n_states = 1
    output_columns = ("p_rated",)

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        n_top: int,
        generator: torch.Generator | None = None,
        mean_field_steps: int = 10,
    ) -> None:
        super().__init__()
        self.bottom = RatedRBM(n_items, n_hidden, generator=generator)
        self.top = DenseRBM(n_hidden, n_top, generator)
        self.mean_field_steps = mean_field_steps

    @classmethod
    def from_dbn(cls, net: DeepBeliefNet, mean_field_steps: int = 10) -> DeepBoltzmannMachine:
        """A DBM with the weights of ``net`` (a rated RBM and one layer above it)."""
        if net.kind != "rated" or len(net.layers) != 1:
            raise ValueError("a DBM starts from a deep belief net of a rated RBM and one layer")
        dbm = cls(net.n_items, net.n_hidden, net.layers[0].n_hidden, None, mean_field_steps)
        dbm.bottom.load_state_dict(net.bottom.state_dict())
        dbm.top.load_state_dict(net.layers[0].state_dict())
        return dbm

    @property
    def n_items(self) -> int:
        return self.bottom.n_items

    @property
    def n_hidden(self) -> int:
        return self.bottom.n_hidden

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        self.bottom.init_visible_biases(csr)

    def h1_bias(self) -> torch.Tensor:
        """(n_hidden,) b1: the bottom RBM's hidden bias plus the top RBM's visible bias."""
        return self.bottom.b_h[0] + self.top.b_v

    def mean_field(self, batch: UserBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """(mu1, mu2), (batch, n_hidden) and (batch, n_top): the mean-field posterior of the
        users' rated sets, ``mean_field_steps`` fixed-point iterations from the up-pass."""
        x1 = self.bottom.hidden_input(batch)[0] + self.top.b_v  # v.W1 + b1
        mu1 = torch.sigmoid(x1)
        mu2 = self.top.up(mu1)
        for _ in range(self.mean_field_steps):
            mu1 = torch.sigmoid(x1 + mu2 @ self.top.W.T)
            mu2 = self.top.up(mu1)
        return mu1, mu2

    def data_energy(self, batch: UserBatch, mu1: torch.Tensor, mu2: torch.Tensor):
        """(batch,) E(v, mu1, mu2) of the users' rated sets."""
        vw = self.bottom.hidden_input(batch)[0] - self.bottom.b_h[0]  # sum of W1 rows
        visible = torch.zeros(batch.size, device=mu1.device, dtype=mu1.dtype)
        visible = visible.index_add(0, batch.rows, self.bottom.b_v[0, batch.items])
        return -(
            (vw * mu1).sum(1) + ((mu1 @ self.top.W) * mu2).sum(1) + visible
            + mu1 @ self.h1_bias() + mu2 @ self.top.b_h
        )  # fmt: skip

    def dense_energy(self, v: torch.Tensor, h1: torch.Tensor, h2: torch.Tensor):
        """(batch,) E(v, h1, h2) of dense states (batch, n_items), (batch, n_hidden), ..."""
        return -(
            ((v @ self.bottom.W[0]) * h1).sum(1) + ((h1 @ self.top.W) * h2).sum(1)
            + v @ self.bottom.b_v[0] + h1 @ self.h1_bias() + h2 @ self.top.b_h
        )  # fmt: skip

    def cd_loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar whose gradient is the update: mean E(data, mu) - mean E(chain), (batch *
        n_items,) cross-entropy of the rated set's mean-field reconstruction)."""
        with torch.no_grad():
            mu1, mu2 = self.mean_field(batch)
            v = batch.dense_mask().to(mu1.dtype)
            logits = self.bottom.visible_logits(mu1.unsqueeze(0))[0]
            nll = F.binary_cross_entropy_with_logits(logits, v, reduction="none").flatten()
            h2 = torch.bernoulli(mu2, generator=generator)
            for _ in range(max(k, 1)):
                x1 = v @ self.bottom.W[0] + h2 @ self.top.W.T + self.h1_bias()
                h1 = torch.bernoulli(torch.sigmoid(x1), generator=generator)
                v = torch.bernoulli(
                    torch.sigmoid(self.bottom.visible_logits(h1.unsqueeze(0))[0]),
                    generator=generator,
                )
                h2 = torch.bernoulli(self.top.up(h1), generator=generator)
        data = self.data_energy(batch, mu1, mu2).mean()
        return data - self.dense_energy(v, h1, h2).mean(), nll

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score`` = ``p_rated`` = P(v_i = 1 | mu1)."""
        mu1, _ = self.mean_field(batch)
        p_rated = torch.sigmoid(self.bottom.visible_logits(mu1.unsqueeze(0))[0])
        return {"score": p_rated, "p_rated": p_rated}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) P(rated) of query pairs, reported as ``p_like`` (no like model)."""
        mu1, _ = self.mean_field(batch)
        logits = (mu1[rows] * self.bottom.W[0, items]).sum(-1) + self.bottom.b_v[0, items]
        return {"p_like": torch.sigmoid(logits)}

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "n_top": self.top.n_hidden,
            "mean_field_steps": self.mean_field_steps,
        }


def dbm_config(seed: int, epochs: int = 30) -> TrainConfig:
    """How the DBM is trained as a whole: the rated RBM's CD settings (momentum, weight decay,
    batches, patience) with a lower learning rate (0.01) for at most ``epochs`` epochs."""
    return replace(TrainConfig(kind="rated", seed=seed), n_models=1, epochs=epochs, lr=0.01)


def fit_dbm(
    net: DeepBeliefNet,
    train: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    config: TrainConfig,
) -> tuple[DeepBoltzmannMachine, Trainer]:
    """A DBM started from ``net`` (a rated RBM and one layer, trained greedily) and trained as
    a whole on ``train`` (``batches``: row positions per batch), early-stopped on validation
    nDCG@10 when ``validation`` is given; returns it and its trainer."""
    dbm = DeepBoltzmannMachine.from_dbn(net)
    trainer = Trainer(dbm, config, next(dbm.parameters()).device, evaluate=ranking_numbers)
    trainer.fit(train, batches, validation)
    return dbm, trainer


def ranking_numbers(model, context, target, device) -> dict[str, float]:
    """Validation of a DBM: its ranking numbers (it has no like model)."""
    return ranking_quality(model, context, target, device)
