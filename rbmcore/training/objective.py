"""What one training update of an RBM follows, and the optimiser that applies it.

- Contrastive divergence (every kind): ``model.cd_loss_and_nll``; dense gradients, applied by
  ``torch.optim.SGD``.
- Stochastic ratio matching (rated RBMs, ``estimator = "srm"``, or ``"auto"`` above
  ``AUTO_DENSE_UNITS`` visible units; Dauphin & Bengio, NIPS 2013): the unrated units of each
  row are drawn from the units' popularity mixed with the uniform distribution
  (``rbmcore.ops.sampling.draw_unrated``), the rows of ``W`` the step reads are brought up to
  date, then ``RatedRBM.ratio_matching_loss_and_nll``; its sparse gradient is applied by
  ``LazySGD``, so a step costs the rated and drawn units, not the catalogue.
"""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.models.contract import TrainableRBM
from rbmcore.models.rated import RatedRBM
from rbmcore.ops.sampling import UnitProposal, draw_unrated
from rbmcore.training.config import TrainConfig
from rbmcore.training.lazy_sgd import LazySGD


def estimator_of(model: TrainableRBM, config: TrainConfig) -> str:
    """"cd" or "srm": how ``model`` trains under ``config`` (``TrainConfig.estimator_for`` of
    its visible units for a ``RatedRBM``; "cd" for any other model, and "srm" refused)."""
    if isinstance(model, RatedRBM):
        return config.estimator_for(model.n_items)
    if config.estimator == "srm":
        raise ValueError(f"stochastic ratio matching trains rated RBMs only, not {model.kind!r}")
    return "cd"


def is_weight(name: str) -> bool:
    """Whether the parameter ``name`` (``W``, ``layer.W``, ...) is an RBM's weight matrix."""
    return name.rsplit(".", 1)[-1] == "W"


def make_optimizer(
    model: torch.nn.Module, config: TrainConfig, estimator: str = "cd"
) -> torch.optim.Optimizer:
    """SGD with momentum; weight decay on the weights only, not on the biases. For "cd" torch's
    fused SGD (one kernel per parameter instead of one per term of the update; CPU and CUDA
    have it); for "srm" ``LazySGD``, the same rule applied to the rows a step touches."""
    decay = [p for name, p in model.named_parameters() if is_weight(name)]
    no_decay = [p for name, p in model.named_parameters() if not is_weight(name)]
    groups = [
        {"params": decay, "weight_decay": config.weight_decay},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    if estimator == "srm":
        return LazySGD(groups, lr=config.lr, momentum=config.momentum)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum, fused=True)


class ContrastiveDivergence:
    """The CD-k update of any ``TrainableRBM``."""

    def __init__(self, model: TrainableRBM) -> None:
        self.model = model

    def loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model.cd_loss_and_nll(batch, k, generator)


class SampledRatioMatching:
    """The stochastic ratio-matching update of a ``RatedRBM`` (module docstring); ``train``:
    the training rows, whose units' popularity is the proposal of the unrated draws."""

    def __init__(
        self, model: RatedRBM, optimizer: LazySGD, train: RatingsCSR, per_rating: float
    ) -> None:
        self.model, self.optimizer, self.per_rating = model, optimizer, float(per_rating)
        counts = np.bincount(train.items, minlength=model.n_items)
        self.proposal = UnitProposal(torch.as_tensor(counts, device=model.W.device))

    def loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` is not used (no Gibbs chain)."""
        model = self.model
        unrated = draw_unrated(batch, self.proposal, self.per_rating, generator)
        units = model.units_of(batch, unrated)
        members = torch.arange(model.n_models, device=units.device).unsqueeze(1)
        self.optimizer.catch_up(model.W, (members * model.n_items + units).view(-1))
        return model.ratio_matching_loss_and_nll(batch, unrated, units)


def objective_for(
    model: TrainableRBM,
    config: TrainConfig,
    estimator: str,
    optimizer: torch.optim.Optimizer,
    train: RatingsCSR,
) -> ContrastiveDivergence | SampledRatioMatching:
    """The update ``estimator`` ("cd" or "srm", ``estimator_of``) makes of ``model``."""
    if estimator == "srm":
        return SampledRatioMatching(model, optimizer, train, config.unrated_per_rating or 1.0)
    return ContrastiveDivergence(model)
