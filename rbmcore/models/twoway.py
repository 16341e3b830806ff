"""Two-way models: a user-based RBM (or AutoRec) and the item-based one of the same kind,
blended.

The user-based RBM sees each user's ratings and generalises across users; the item-based one
(``rbmcore.models.itembased``) sees each item's ratings and generalises across items. Their
errors differ, so ``weight * user + (1 - weight) * item`` of their predictions (every output
column) beats both; ``weight`` is chosen on the validation split after both are trained
(``rbmcore.training.composite.TwoWayTrainer``). A user the item-based way never saw (not in
the training data) gets the user-based prediction alone.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale
from rbmcore.models.contract import ItemBasedWay

DEFAULT_WEIGHT = 0.5  # the blend before validation chooses one


class TwoWayRBM(nn.Module):
    """``user`` (a user-based model of any kind) and ``item`` (its kind's item-based way:
    ``ItemBasedRBM``, ``ItemBasedAutoRec``) blended with the buffer ``weight`` (1 =
    user-based only)."""

    def __init__(self, user: nn.Module, item: ItemBasedWay, weight: float = DEFAULT_WEIGHT):
        super().__init__()
        if item.kind != user.kind or item.n_items != user.n_items:
            raise ValueError("the item-based way must be of the same kind and catalogue")
        self.user = user
        self.item = item
        self.register_buffer("weight", torch.tensor(float(weight)))

    @property
    def kind(self) -> str:
        return self.user.kind

    @property
    def scale(self) -> RatingScale:
        return self.user.scale

    @property
    def n_items(self) -> int:
        return self.user.n_items

    @property
    def n_hidden(self) -> int:
        return self.user.n_hidden

    @property
    def n_models(self) -> int:
        return self.user.n_models

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.user.output_columns

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return self.user.n_states + self.item.n_states

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        """Both parts' visible biases from the training users' rows ``csr``."""
        self.user.init_visible_biases(csr)
        self.item.init_visible_biases(csr)

    def _blend(self, user_out: dict, item_out: dict, known: torch.Tensor) -> dict:
        w = torch.where(known, self.weight, torch.ones_like(self.weight))
        w = w.view(-1, *([1] * (next(iter(user_out.values())).dim() - 1)))
        blends: dict[tuple[int, int], torch.Tensor] = {}  # outputs are often one tensor twice
        for k, v in user_out.items():  # (score is p_like): blend each pair once
            pair = (id(v), id(item_out[k]))
            if pair not in blends:
                blends[pair] = w * v + (1 - w) * item_out[k]
        return {k: blends[(id(v), id(item_out[k]))] for k, v in user_out.items()}

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: the user-based kind's outputs, blended. With a user-based
        weight of 1 the blend is the user-based outputs exactly, so the item-based way is
        not scored."""
        if float(self.weight) == 1.0:
            return self.user.score_all(batch)
        item_out, known = self.item.score_all_known(batch)
        return self._blend(self.user.score_all(batch), item_out, known)

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) predictions of query pairs (rows[n] of batch, items[n]), blended."""
        item_out, known = self.item.predict_pairs_known(batch, items, rows)
        return self._blend(self.user.predict_pairs(batch, items, rows), item_out, known)

    def users_with_weights(self) -> torch.Tensor:
        """The item-based way's training users (blended); the others get the user-based
        prediction alone."""
        return self.item.users_with_weights()

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.user.hyperparameters(), "item_based": self.item.hyperparameters()}
