"""The model kinds rbm-reco knows, built by name."""

from __future__ import annotations

from typing import Any

import torch

from rbmcore.categorical import STATES_BY_KIND, CategoricalRBM

KINDS = tuple(STATES_BY_KIND)


def build_model(
    kind: str, n_items: int, n_hidden: int, generator: torch.Generator | None = None, **params: Any
):
    """A freshly initialised model of ``kind`` over ``n_items`` catalogue items."""
    if kind in STATES_BY_KIND:
        return CategoricalRBM(n_items, n_hidden, kind=kind, generator=generator, **params)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")


def model_from_tensors(hyper: dict[str, Any], tensors: dict[str, torch.Tensor]):
    """Rebuild a model from its saved hyperparameters and tensors (shapes checked by torch)."""
    model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]))
    model.load_state_dict(tensors, strict=True)
    model.eval()
    return model
