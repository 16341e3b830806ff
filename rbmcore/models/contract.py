"""The model contract: what every model kind and composite offers the rest of rbmcore and the
jobs. Scoring, evaluation, saving and the Spark jobs rely on these members only.

``Recommender`` is met by every model (``CategoricalRBM``, ``RatedRBM``, ``AutoRec``,
``MultVAE``, the item-based ways, ``DeepBeliefNet``, ``TwoWayRBM``, ``EnsembleRBM``,
``BlendModel``, ``HybridRBM``); ``TrainableRBM`` by the single RBMs that a
``rbmcore.training.trainer.Trainer`` updates with contrastive divergence (``CategoricalRBM``,
``RatedRBM``, a deep belief net's upper layers); ``TrainableAutoencoder`` by the autoencoders
that ``rbmcore.training.autoencoder.AutoencoderTrainer`` updates by gradient descent
(``AutoRec``, ``MultVAE``); ``ItemBasedWay`` by the item-based way of a two-way model
(``ItemBasedRBM``, ``ItemBasedAutoRec``). ``tests/rbmcore/models/test_contract.py`` checks
every kind and composite.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale


@runtime_checkable
class Recommender(Protocol):
    """A model that scores users from their ratings alone (mean-field passes, no sampling)."""

    kind: str  # the model kind (model.json's for a whole model; rbmcore.models.factory.KINDS)
    n_items: int  # catalogue width: the visible items
    n_hidden: int  # hidden units (of the like part for a hybrid)
    n_models: int  # RBMs averaged (1 for a single RBM and for a hybrid as a whole)
    n_states: int  # dense floats per (user, item) while scoring, for chunk sizing
    output_columns: tuple[str, ...]  # score_all's outputs besides "score", export order
    scale: RatingScale  # what the rating codes it reads mean, and its like threshold

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        """Visible biases from the training users' rows ``csr`` (before training)."""
        ...

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score`` (the ranking) and every ``output_columns`` entry."""
        ...

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) each: ``p_like`` (and ``pred_rating`` for rating models) of the query pairs
        (rows[n] of ``batch``, items[n])."""
        ...

    def hyperparameters(self) -> dict[str, Any]:
        """What ``rbmcore.models.factory.model_from_tensors`` rebuilds the model from."""
        ...

    def users_with_weights(self) -> torch.Tensor | None:
        """(n,) int64 ascending ids of the users the model holds weights of its own for (the
        training users of its item-based ways); None when it has no per-user weights. Any
        other user is scored from their ratings alone (fold-in)."""
        ...


@runtime_checkable
class TrainableRBM(Recommender, Protocol):
    """A single RBM that contrastive divergence trains."""

    def cd_loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A scalar whose gradient is the CD-k update of ``batch`` and (n,) the NLL of the
        batch's data under the mean-field reconstruction before the update."""
        ...


@runtime_checkable
class TrainableAutoencoder(Recommender, Protocol):
    """An autoencoder that gradient descent trains."""

    def training_loss(
        self, batch: UserBatch, epoch: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar loss of ``batch`` at ``epoch`` (0-based, for schedules in the loss) and
        (n,) its per-entry terms before the update (the training loss report)."""
        ...


@runtime_checkable
class ItemBasedWay(Recommender, Protocol):
    """The item-based way of a two-way model: ``inner`` (a user-based model whose visible
    units are the training users) trained on the transposed ratings, and the items' states
    computed from the users' rows for scoring."""

    inner: Any
    n_users: int

    def set_item_states(self, csr: RatingsCSR) -> None:
        """Every item's states from ``csr``: the training users' rows, in training order."""
        ...

    def score_all_known(self, batch: UserBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``score_all``'s outputs and (batch,) bool: the rows of users the model knows."""
        ...

    def predict_pairs_known(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """``predict_pairs``' outputs and (n,) bool: the pairs of users the model knows."""
        ...
