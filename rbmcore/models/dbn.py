"""Deep belief nets: RBMs stacked on the rated / like RBMs, trained greedily, layer by layer.

The bottom layer is one of rbm-reco's RBMs over the users' ratings (``RatedRBM``: which
movies; ``CategoricalRBM``: likes or ratings), trained first, as it would be alone. Each layer
above is a binary ``DenseRBM`` whose visible units are the hidden units of the layer below:
it is trained (CD-k, ``rbmcore.training.composite.DeepBeliefTrainer``) on the mean-field
hidden probabilities of the layers below, which stay fixed (Hinton, Osindero & Teh, 2006).

Prediction goes through the stack: a mean-field pass up from the user's ratings to the top
layer, then down again (``p(h_below | h_above)`` of each upper RBM) to the bottom RBM's hidden
units, whose visible probabilities are the outputs (P(rated), P(like), the rating). The top
layers thus reconstruct the bottom RBM's hidden state from its own features of features.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale
from rbmcore.models.categorical import CategoricalRBM
from rbmcore.models.rated import RatedRBM


class DenseRBM(nn.Module):
    """A binary RBM over ``n_visible`` dense visible units (probabilities in [0, 1]) and
    ``n_hidden`` hidden units. W: (n_visible, n_hidden); b_v: (n_visible,); b_h: (n_hidden,)."""

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        generator: torch.Generator | None = None,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        self.n_visible = n_visible
        self.n_hidden = n_hidden
        self.W = nn.Parameter(torch.randn(n_visible, n_hidden, generator=generator) * init_std)
        self.b_v = nn.Parameter(torch.zeros(n_visible))
        self.b_h = nn.Parameter(torch.zeros(n_hidden))

    def up(self, v: torch.Tensor) -> torch.Tensor:
        """(batch, n_hidden) p(h = 1 | v); v: (batch, n_visible)."""
        return torch.sigmoid(torch.addmm(self.b_h, v, self.W))

    def down(self, h: torch.Tensor) -> torch.Tensor:
        """(batch, n_visible) p(v = 1 | h); h: (batch, n_hidden)."""
        return torch.sigmoid(torch.addmm(self.b_v, h, self.W.T))

    def free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """(batch,) F(v) = -v . b_v - sum_j softplus(b_h[j] + v . W[:, j])."""
        return -(v @ self.b_v) - F.softplus(torch.addmm(self.b_h, v, self.W)).sum(-1)

    def cd_loss_and_nll(
        self, v: torch.Tensor, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar whose gradient is the CD-k update of the data v: (batch, n_visible),
        (batch * n_visible,) cross-entropy of v's mean-field reconstruction, before the
        update). The chain samples the hidden units and keeps the visible probabilities."""
        with torch.no_grad():
            nll = F.binary_cross_entropy(self.down(self.up(v)), v, reduction="none").flatten()
            model = v
            for _ in range(max(k, 1)):
                h = torch.bernoulli(self.up(model), generator=generator)
                model = self.down(h)
        return self.free_energy(v).mean() - self.free_energy(model).mean(), nll


def bottom_hidden(bottom: nn.Module, batch: UserBatch) -> torch.Tensor:
    """(batch, hidden) the bottom RBM's mean-field hidden probabilities of the users' ratings."""
    p_h = bottom.hidden_probs(batch)
    return p_h[0] if isinstance(bottom, RatedRBM) else p_h


def bottom_outputs(bottom: nn.Module, batch: UserBatch, p_h: torch.Tensor):
    """(batch, n_items) each: the bottom RBM's ``score_all`` outputs from hidden
    probabilities p_h: (batch, hidden) instead of its own up-pass."""
    if isinstance(bottom, RatedRBM):
        p_rated = torch.sigmoid(bottom.visible_logits(p_h.unsqueeze(0))[0])
        return {"score": p_rated, "p_rated": p_rated}
    return bottom.outputs_of_hidden(p_h, bottom.batch_offsets(batch))


def bottom_pairs(
    bottom: nn.Module, batch: UserBatch, p_h: torch.Tensor, items: torch.Tensor,
    rows: torch.Tensor,
) -> dict[str, torch.Tensor]:  # fmt: skip
    """(n,) the bottom RBM's ``predict_pairs`` of (rows[n], items[n]) from hidden p_h."""
    if isinstance(bottom, RatedRBM):
        logits = (p_h[rows] * bottom.W[0, items]).sum(-1) + bottom.b_v[0, items]
        return {"p_like": torch.sigmoid(logits)}
    return bottom.pair_outputs(p_h, bottom.batch_offsets(batch), items, rows)


class DeepBeliefNet(nn.Module):
    """``bottom`` (a single ``RatedRBM`` or ``CategoricalRBM``) and ``layers`` (``DenseRBM``s,
    each over the hidden units of the one below), predicting through the stack."""

    n_models = 1

    def __init__(self, bottom: nn.Module, layers: list[DenseRBM]) -> None:
        super().__init__()
        if not isinstance(bottom, (RatedRBM, CategoricalRBM)) or bottom.n_models != 1:
            raise ValueError("a deep belief net's bottom layer is one rated, binary or softmax RBM")
        widths = [bottom.n_hidden] + [layer.n_hidden for layer in layers]
        if [layer.n_visible for layer in layers] != widths[:-1]:
            raise ValueError(f"each layer's visible units must be the hidden units below: {widths}")
        self.bottom = bottom
        self.layers = nn.ModuleList(layers)

    @classmethod
    def stacked(
        cls, bottom: nn.Module, widths: list[int], generator: torch.Generator | None = None
    ) -> DeepBeliefNet:
        """``bottom`` with fresh ``DenseRBM`` layers of ``widths`` hidden units above it."""
        sizes = [bottom.n_hidden, *widths]
        pairs = zip(sizes[:-1], sizes[1:], strict=True)
        return cls(bottom, [DenseRBM(a, b, generator) for a, b in pairs])

    def truncated(self, depth: int) -> DeepBeliefNet:
        """The net of the bottom RBM and the first ``depth`` layers (the same modules)."""
        return DeepBeliefNet(self.bottom, list(self.layers[:depth]))

    @property
    def kind(self) -> str:
        return self.bottom.kind

    @property
    def n_items(self) -> int:
        return self.bottom.n_items

    @property
    def n_hidden(self) -> int:
        return self.bottom.n_hidden

    @property
    def scale(self) -> RatingScale:
        return self.bottom.scale

    @property
    def n_states(self) -> int:
        return self.bottom.n_states

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.bottom.output_columns

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        self.bottom.init_visible_biases(csr)

    def up_to(self, depth: int, batch: UserBatch) -> torch.Tensor:
        """(batch, width) the mean-field activations after the bottom RBM and the first
        ``depth`` layers (depth 0: the bottom RBM's hidden probabilities)."""
        p = bottom_hidden(self.bottom, batch)
        for layer in self.layers[:depth]:
            p = layer.up(p)
        return p

    def stack_hidden(self, batch: UserBatch) -> torch.Tensor:
        """(batch, bottom hidden) up through every layer, then down to the bottom RBM."""
        p = self.up_to(len(self.layers), batch)
        for layer in reversed(self.layers):
            p = layer.down(p)
        return p

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: the bottom RBM's outputs, predicted through the stack."""
        return bottom_outputs(self.bottom, batch, self.stack_hidden(batch))

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) the bottom RBM's pair predictions, through the stack."""
        return bottom_pairs(self.bottom, batch, self.stack_hidden(batch), items, rows)

    def users_with_weights(self) -> None:
        """None: the net holds no per-user weights."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        widths = [layer.n_hidden for layer in self.layers]
        return {**self.bottom.hyperparameters(), "layers": widths}


class StackedLayer(nn.Module):
    """Layer ``index`` of ``net`` as the model a CD ``Trainer`` updates: its parameters are the
    layer's alone, its data the mean-field activations of the layers below it (fixed)."""

    def __init__(self, net: DeepBeliefNet, index: int) -> None:
        super().__init__()
        self.layer = net.layers[index]
        self.index = index
        self._below = net.up_to  # a bound method, not a submodule: the layers below stay out

    def cd_loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``DenseRBM.cd_loss_and_nll`` of the layer on the batch's activations below it."""
        with torch.no_grad():
            v = self._below(self.index, batch)
        return self.layer.cd_loss_and_nll(v, k, generator)
