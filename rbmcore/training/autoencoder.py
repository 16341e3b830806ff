"""Training an autoencoder (``autorec``, ``multvae``): the CD ``Trainer``'s epochs, validation,
early stopping, checkpoints and refit, with a gradient step of the autoencoder's own loss.

Adam (Kingma & Ba) minimises ``training_loss`` (rbmcore.models.contract.TrainableAutoencoder)
batch by batch; ``weight_decay`` is an L2 penalty on the weight matrices (the biases are not
decayed), the ``lr`` decays by ``lr_decay`` per epoch. The randomness of an epoch (the
denoising corruption, a variational code's noise) comes from the seed and the epoch number,
as in CD training, so a resumed run continues exactly.
"""

from __future__ import annotations

from typing import Any

import torch

from rbmcore.data.batch import UserBatch
from rbmcore.training.trainer import Trainer


class AutoencoderTrainer(Trainer):
    """A ``Trainer`` whose update is a gradient step of the model's ``training_loss``."""

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam; weight decay on the weight matrices only (parameters of 2 or more dims)."""
        params = list(self.model.parameters())
        return torch.optim.Adam(
            [
                {"params": [p for p in params if p.dim() >= 2],
                 "weight_decay": self.config.weight_decay},
                {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
            ],
            lr=self.config.lr,
        )  # fmt: skip

    def update_loss(
        self, batch: UserBatch, epoch: int, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's ``training_loss`` of ``batch`` at ``epoch`` (``k`` is CD's: unused)."""
        return self.model.training_loss(batch, epoch, generator)

    def epoch_settings(self, epoch: int) -> dict[str, Any]:
        """Nothing: an autoencoder's epoch has no CD-k."""
        return {}
