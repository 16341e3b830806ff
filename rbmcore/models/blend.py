"""Blends of two machines that answer the same question: two ranking models (``rated`` and
``multvae``: which movies) or two like / rating models (``binary``, ``softmax``, ``autorec``),
e.g. the kind ``binary+autorec``.

``weight x first + (1 - weight) x second`` of every output both give; an output only one of
them gives (e.g. ``pred_rating`` of ``autorec`` beside ``binary``) is that one's. The machines
are trained one after the other, each with its own kind's defaults, and ``weight`` (a buffer)
is chosen on the validation split from 0, 0.1, ..., 1
(``rbmcore.training.composite.BlendTrainer``), like a two-way model's. Different families make
different errors, so a blend can beat both.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale
from rbmcore.models.ensemble import union_of_users

BLEND_SEPARATOR = "+"
DEFAULT_BLEND_WEIGHT = 0.5  # the blend before validation chooses one


def blend_kind(first: str, second: str) -> str:
    """The kind of a blend of models of kinds ``first`` and ``second``."""
    return f"{first}{BLEND_SEPARATOR}{second}"


def blended_kinds(kind: str) -> list[str]:
    """The kinds a blend kind is made of (one entry for a kind that is not a blend)."""
    return kind.split(BLEND_SEPARATOR)


class BlendModel(nn.Module):
    """``first`` and ``second`` (any models over the same catalogue) blended with the buffer
    ``weight`` (1 = ``first`` only)."""

    n_models = 1

    def __init__(
        self, first: nn.Module, second: nn.Module, weight: float = DEFAULT_BLEND_WEIGHT
    ) -> None:
        super().__init__()
        if first.n_items != second.n_items:
            raise ValueError(
                f"blended models disagree on n_items: {first.n_items} vs {second.n_items}"
            )
        self.first = first
        self.second = second
        self.register_buffer("weight", torch.tensor(float(weight)))

    @property
    def kind(self) -> str:
        return blend_kind(self.first.kind, self.second.kind)

    @property
    def scale(self) -> RatingScale:
        return self.first.scale

    def users_with_weights(self) -> torch.Tensor | None:
        """The two models' users with weights, together."""
        return union_of_users([self.first.users_with_weights(), self.second.users_with_weights()])

    @property
    def n_items(self) -> int:
        return self.first.n_items

    @property
    def n_hidden(self) -> int:
        return self.first.n_hidden

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return self.first.n_states + self.second.n_states

    @property
    def output_columns(self) -> tuple[str, ...]:
        first = self.first.output_columns
        return first + tuple(c for c in self.second.output_columns if c not in first)

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        self.first.init_visible_biases(csr)
        self.second.init_visible_biases(csr)

    def _blend(
        self, first: dict[str, torch.Tensor], second: dict[str, torch.Tensor]
    ) -> dict[str, torch.Tensor]:
        w = self.weight
        out = {k: w * v + (1 - w) * second[k] if k in second else v for k, v in first.items()}
        out.update({k: v for k, v in second.items() if k not in first})
        return out

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: both models' outputs, blended."""
        return self._blend(self.first.score_all(batch), self.second.score_all(batch))

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) both models' predictions of query pairs (rows[n] of batch, items[n]), blended."""
        first = self.first.predict_pairs(batch, items, rows)
        return self._blend(first, self.second.predict_pairs(batch, items, rows))

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "parts": [self.first.hyperparameters(), self.second.hyperparameters()],
        }
