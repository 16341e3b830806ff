"""The model kinds rbm-reco knows, built by name: fresh, or rebuilt from saved tensors.

Sizes come from the caller (``rbmcore.training.build.model_for_config`` turns a training
config into them); nothing here holds a tuned default.
"""

from __future__ import annotations

from typing import Any

import torch

from rbmcore.data.scale import RatingScale
from rbmcore.models.categorical import CATEGORICAL_KINDS, CategoricalRBM
from rbmcore.models.contract import Recommender
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.itembased import ItemBasedRBM
from rbmcore.models.rated import RatedRBM
from rbmcore.models.twoway import TwoWayRBM

KINDS = ("hybrid", *CATEGORICAL_KINDS, "rated")

# hyperparameters() entries that are not constructor arguments (alpha is a saved buffer)
_NOT_BUILD_PARAMS = ("kind", "n_items", "n_hidden", "alpha")


def build_model(
    kind: str, n_items: int, n_hidden: int, generator: torch.Generator | None = None, **params: Any
) -> Recommender:
    """A freshly initialised model of ``kind`` over ``n_items`` catalogue items.

    ``params``: ``n_models`` (RBMs averaged: stacked in one ``RatedRBM`` for ``rated``, an
    ``EnsembleRBM`` of whole models for ``binary`` / ``softmax``); ``scale`` (the ratings'
    ``RatingScale`` or its dict; default five stars) and ``states`` (the softmax kind's states,
    0 = one per level); ``build_hybrid``'s sizes for ``hybrid`` (whose ``n_hidden`` is the like
    sub-model's); ``item_based`` = {"n_users", "n_hidden", "n_models"} adds an item-based way
    (a ``TwoWayRBM``) to the other kinds.
    """
    if kind == "hybrid":
        return build_hybrid(n_items, n_hidden, generator, **params)
    item_based = params.pop("item_based", None)
    n_models = int(params.pop("n_models", 1)) if kind in CATEGORICAL_KINDS else 1
    if n_models > 1:
        return EnsembleRBM(
            [
                build_model(kind, n_items, n_hidden, generator, item_based=item_based, **params)
                for _ in range(n_models)
            ]
        )
    if kind in CATEGORICAL_KINDS:
        model = CategoricalRBM(n_items, n_hidden, kind, generator=generator, **params)
    elif kind == "rated":
        params.pop("states", None)  # the rated kind has one state per item
        model = RatedRBM(n_items, n_hidden, generator=generator, **params)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if item_based:
        return build_two_way(model, generator=generator, **item_based)
    return model


def build_two_way(
    user: Recommender,
    n_users: int,
    n_hidden: int,
    n_models: int,
    generator: torch.Generator | None = None,
) -> TwoWayRBM:
    """``user`` plus a fresh item-based RBM of its kind and scale over ``n_users`` visible
    users (``n_hidden`` hidden units; ``n_models`` RBMs averaged for the rated kind)."""
    params: dict[str, Any] = {"scale": user.scale}
    if user.kind == "rated":
        params["n_models"] = n_models
    else:
        params["states"] = user.hyperparameters().get("states", 0)
    inner = build_model(user.kind, n_users, n_hidden, generator, **params)
    return TwoWayRBM(user, ItemBasedRBM(inner, user.n_items))


def build_hybrid(
    n_items: int,
    n_hidden: int,
    generator: torch.Generator | None = None,
    *,
    like_kind: str,
    rated_hidden: int,
    rated_models: int,
    like_models: int,
    rated_item: dict[str, int] | None = None,
    like_item: dict[str, int] | None = None,
    scale: RatingScale | dict | None = None,
    like_states: int = 0,
) -> HybridRBM:
    """A fresh hybrid: ``n_hidden`` hidden units in the like model, ``rated_hidden`` in each
    of the ``rated_models`` rated RBMs, ``like_models`` like RBMs averaged; ``rated_item`` /
    ``like_item`` ({"n_users", "n_hidden", "n_models"}) make that part two-way (each like RBM,
    in an ensemble); ``scale`` and ``like_states``: the like part's ``scale`` and ``states``."""
    if like_kind not in CATEGORICAL_KINDS:
        raise ValueError(f"like_kind must be one of {CATEGORICAL_KINDS}, got {like_kind!r}")
    rated = build_model(
        "rated", n_items, rated_hidden, generator, n_models=rated_models, scale=scale
    )
    if rated_item:
        rated = build_two_way(rated, generator=generator, **rated_item)
    like = build_model(
        like_kind, n_items, n_hidden, generator, n_models=like_models, item_based=like_item,
        scale=scale, states=like_states,
    )  # fmt: skip
    return HybridRBM(rated, like)


def model_from_tensors(
    hyper: dict[str, Any], tensors: dict[str, torch.Tensor], share: bool = False
) -> Recommender:
    """Rebuild a model from its saved hyperparameters and tensors (shapes checked by torch).
    ``share``: the model's parameters and buffers are ``tensors`` themselves, not copies (for
    tensors nothing else holds, e.g. just read from a file: one copy of the weights in memory,
    not two)."""
    params = {k: v for k, v in hyper.items() if k not in _NOT_BUILD_PARAMS}
    model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]), **params)
    model.load_state_dict(tensors, strict=True, assign=share)
    model.eval()
    return model
