"""The default model: a ``rated`` RBM (which movies will the user watch) combined with a like /
rating RBM (will they like it); the hybrid kinds ``dbn`` and ``autoencoder`` are the same
combination of other machines (rbmcore.models.factory).

``score = P(rated) * p_like ** alpha``: the rated RBM proposes what the user will watch, the
like RBM demotes what they would dislike; ``alpha`` is chosen on the validation split
(nDCG@10 of the held-out items) after both sub-models are trained
(``rbmcore.training.composite.HybridTrainer``). ``alpha = 0`` is the rated RBM alone. The
export's ``p_like`` (and ``pred_rating`` for a softmax like model) come from the like
sub-model, ``p_rated`` from the rated one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale
from rbmcore.models.ensemble import union_of_users

DEFAULT_ALPHA = 1.0  # the combination before validation chooses one
# a part's hyperparameters the hybrid's own keys hold (like_kind, rated_hidden, like_item, ...)
PART_SIZES = ("kind", "n_items", "n_hidden", "n_models", "item_based")


class HybridRBM(nn.Module):
    """A ranking part (a rated RBM, ``RatedRBM`` or a two-way one; or another machine that
    outputs ``p_rated``) and a like part (a like RBM, ``CategoricalRBM`` or a two-way one or
    an ensemble; or another machine that outputs ``p_like``) scored together (state keys
    ``rated.*``, ``like.*`` and the buffer ``alpha``). ``kind``: which hybrid kind it is
    (``hybrid``, ``dbn``, ``autoencoder``: rbmcore.models.factory)."""

    output_columns = ("p_rated", "p_like", "pred_rating")

    def __init__(
        self, rated: nn.Module, like: nn.Module, alpha: float = DEFAULT_ALPHA, kind: str = "hybrid"
    ):
        super().__init__()
        if rated.n_items != like.n_items:
            raise ValueError(f"sub-models disagree on n_items: {rated.n_items} vs {like.n_items}")
        self.kind = kind
        self.rated = rated
        self.like = like
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    @property
    def scale(self) -> RatingScale:
        return self.like.scale

    @property
    def n_items(self) -> int:
        return self.rated.n_items

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return self.like.n_states + self.rated.n_states

    @property
    def n_models(self) -> int:
        return 1

    @property
    def n_hidden(self) -> int:
        return self.like.n_hidden

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        self.rated.init_visible_biases(csr)
        self.like.init_visible_biases(csr)

    def combine(self, p_rated: torch.Tensor, p_like: torch.Tensor) -> torch.Tensor:
        """P(rated) * p_like ** alpha, any matching shapes."""
        return p_rated * p_like.clamp_min(1e-12) ** self.alpha

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score``, ``p_rated``, ``p_like`` and ``pred_rating`` (the
        like part's expected rating; NaN when it is a binary RBM)."""
        out = self.like.score_all(batch)
        out.pop("score")
        if "pred_rating" not in out:  # a binary like part: same columns, no rating scale
            out["pred_rating"] = torch.full_like(out["p_like"], float("nan"))
        p_rated = self.rated.score_all(batch)["p_rated"]
        return {"score": self.combine(p_rated, out["p_like"]), "p_rated": p_rated, **out}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) p_like (and pred_rating) of query pairs, from the like sub-model."""
        return self.like.predict_pairs(batch, items, rows)

    def users_with_weights(self) -> torch.Tensor | None:
        """The users either part holds weights for."""
        return union_of_users([self.rated.users_with_weights(), self.like.users_with_weights()])

    def hyperparameters(self) -> dict[str, Any]:
        hyper = {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.like.n_hidden,
            "like_kind": self.like.kind,
            "like_models": int(self.like.n_models),
            "rated_hidden": self.rated.n_hidden,
            "rated_models": self.rated.n_models,
            "alpha": float(self.alpha),
        }
        if self.rated.kind != "rated":
            hyper["rated_kind"] = self.rated.kind
        for part in ("rated", "like"):  # a two-way part's (each member's) item-based way
            part_hyper = getattr(self, part).hyperparameters()
            item_based = part_hyper.get("item_based")
            if item_based:
                hyper[f"{part}_item"] = item_based
            extra = {k: v for k, v in part_hyper.items() if k not in PART_SIZES}
            if extra:  # e.g. a deep belief net's layers, an autoencoder's settings
                hyper[f"{part}_extra"] = extra
        return hyper
