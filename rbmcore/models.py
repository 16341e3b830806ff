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

    ``params``: ``n_models`` for ``rated``; ``like_kind``, ``rated_hidden``, ``rated_models``
    for ``hybrid`` (whose ``n_hidden`` is the like sub-model's).
    """
    if kind in STATES_BY_KIND:
        return CategoricalRBM(n_items, n_hidden, kind=kind, generator=generator, **params)
    if kind == "rated":
        return RatedRBM(n_items, n_hidden, generator=generator, **params)
    if kind == "hybrid":
        from rbmcore.hybrid import build_hybrid

        return build_hybrid(n_items, n_hidden, generator, **params)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")


def model_from_tensors(hyper: dict[str, Any], tensors: dict[str, torch.Tensor]):
    """Rebuild a model from its saved hyperparameters and tensors (shapes checked by torch)."""
    params = {k: v for k, v in hyper.items() if k not in _NOT_BUILD_PARAMS}
    model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]), **params)
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
