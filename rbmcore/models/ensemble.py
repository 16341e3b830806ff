"""Ensembles of like / rating RBMs: ``n_models`` RBMs of one kind, their predictions averaged.

Averaging RBMs trained from different initialisations and sampling streams lowers the
variance of their predictions: on the u1.base validation holdout three binary two-way RBMs
averaged have a lower like NLL and a higher AUC than each of them, in each of 3 seeds
(``bench/like_validation.py``, BENCHMARKS.md). The ``rated`` kind holds its ensemble in one
module (stacked weights, ``rbmcore.models.rated``); the categorical kinds (``binary``,
``softmax``), whose training code is per-RBM, are held here as a list of whole models (each
one user-based or two-way), trained member by member
(``rbmcore.training.composite.EnsembleTrainer``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale


def union_of_users(parts: list[torch.Tensor | None]) -> torch.Tensor | None:
    """The ascending union of some models' ``users_with_weights`` (None when none has any)."""
    held = [p for p in parts if p is not None]
    return torch.unique(torch.cat(held)) if held else None


class EnsembleRBM(nn.Module):
    """``members``: RBMs of one kind over the same catalogue; every output is their mean."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len({(m.kind, m.n_items) for m in members}) != 1:
            raise ValueError("ensemble members must share one kind and catalogue")
        self.members = nn.ModuleList(members)

    @property
    def kind(self) -> str:
        return self.members[0].kind

    @property
    def scale(self) -> RatingScale:
        return self.members[0].scale

    @property
    def n_items(self) -> int:
        return self.members[0].n_items

    @property
    def n_hidden(self) -> int:
        return self.members[0].n_hidden

    @property
    def n_models(self) -> int:
        return len(self.members)

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.members[0].output_columns

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return sum(m.n_states for m in self.members)

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        for member in self.members:
            member.init_visible_biases(csr)

    def _mean(self, outputs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([o[k] for o in outputs]).mean(0) for k in outputs[0]}

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: the members' ``score_all`` outputs, averaged."""
        return self._mean([m.score_all(batch) for m in self.members])

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) the members' predictions of query pairs (rows[n] of batch, items[n]), averaged."""
        return self._mean([m.predict_pairs(batch, items, rows) for m in self.members])

    def users_with_weights(self) -> torch.Tensor | None:
        """The members' users with weights, together."""
        return union_of_users([m.users_with_weights() for m in self.members])

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.members[0].hyperparameters(), "n_models": self.n_models}
