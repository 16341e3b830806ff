"""The model kinds rbm-reco knows, built by name."""

from __future__ import annotations

from typing import Any

import torch

from rbmcore.categorical import STATES_BY_KIND, CategoricalRBM
from rbmcore.rated import RatedRBM

KINDS = ("hybrid", *STATES_BY_KIND, "rated")

# hyperparameters() entries that are not constructor arguments (alpha is a saved buffer)
_NOT_BUILD_PARAMS = ("kind", "n_items", "n_hidden", "alpha")


def build_model(
    kind: str, n_items: int, n_hidden: int, generator: torch.Generator | None = None, **params: Any
):
    """A freshly initialised model of ``kind`` over ``n_items`` catalogue items.

    ``params``: ``n_models`` (RBMs averaged: stacked in one ``RatedRBM`` for ``rated``, an
    ``rbmcore.ensemble.EnsembleRBM`` of whole models for ``binary`` / ``softmax``);
    ``like_kind``, ``rated_hidden``, ``rated_models``, ``rated_item``, ``like_item``,
    ``like_models`` for ``hybrid`` (whose ``n_hidden`` is the like sub-model's);
    ``item_based`` = {"n_users", "n_hidden", "n_models"} adds an item-based part (a two-way
    model, ``rbmcore.twoway``) to the other kinds.
    """
    if kind == "hybrid":
        from rbmcore.hybrid import build_hybrid

        return build_hybrid(n_items, n_hidden, generator, **params)
    item_based = params.pop("item_based", None)
    n_models = int(params.pop("n_models", 1)) if kind in STATES_BY_KIND else 1
    if n_models > 1:
        from rbmcore.ensemble import EnsembleRBM

        return EnsembleRBM(
            [
                build_model(kind, n_items, n_hidden, generator, item_based=item_based, **params)
                for _ in range(n_models)
            ]
        )
    if kind in STATES_BY_KIND:
        model = CategoricalRBM(n_items, n_hidden, kind=kind, generator=generator, **params)
    elif kind == "rated":
        model = RatedRBM(n_items, n_hidden, generator=generator, **params)
    else:
        raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")
    if item_based:
        from rbmcore.twoway import build_two_way

        return build_two_way(model, generator=generator, **item_based)
    return model


def model_from_tensors(
    hyper: dict[str, Any], tensors: dict[str, torch.Tensor], share: bool = False
):
    """Rebuild a model from its saved hyperparameters and tensors (shapes checked by torch).
    ``share``: the model's parameters and buffers are ``tensors`` themselves, not copies (for
    tensors nothing else holds, e.g. just read from a file: one copy of the weights in memory,
    not two)."""
    params = {k: v for k, v in hyper.items() if k not in _NOT_BUILD_PARAMS}
    model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]), **params)
    model.load_state_dict(tensors, strict=True, assign=share)
    model.eval()
    return model
