"""The model kinds rbm-reco knows, built by name: fresh, or rebuilt from saved tensors.

Sizes come from the caller (``rbmcore.training.build.model_for_config`` turns a training
config into them); nothing here holds a tuned default.

The kinds are *machines*, each answering one question -- which movies will the user rate
(``RANKING_MACHINES``: ``rated``, ``multvae``) or will the user like them
(``LIKE_MACHINES``: ``binary``, ``softmax``, ``autorec``) -- and the *hybrid kinds*
(``HYBRID_KINDS``: ``hybrid``, ``dbn``, ``autoencoder``), a ranking part and a like part scored
together (``HybridRBM``). A blend of two machines of one question is a kind too
(``binary+autorec``; ``BlendModel``). Structure on top of a machine: ``n_models`` (an
ensemble), ``item_based`` (a two-way model), ``layers`` (a deep belief net over an RBM).
"""

from __future__ import annotations

from typing import Any

import torch

from rbmcore.models.autoencoder import AutoRec, ItemBasedAutoRec, MultVAE
from rbmcore.models.blend import BlendModel, blended_kinds
from rbmcore.models.categorical import CATEGORICAL_KINDS, CategoricalRBM
from rbmcore.models.contract import Recommender
from rbmcore.models.dbn import DeepBeliefNet
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.itembased import ItemBasedRBM
from rbmcore.models.rated import RatedRBM
from rbmcore.models.twoway import TwoWayRBM

RANKING_MACHINES = ("rated", "multvae")
LIKE_MACHINES = (*CATEGORICAL_KINDS, "autorec")
HYBRID_KINDS = ("hybrid", "dbn", "autoencoder")
KINDS = ("hybrid", *CATEGORICAL_KINDS, "rated", "autorec", "multvae", "dbn", "autoencoder")
RBM_MACHINES = (*CATEGORICAL_KINDS, "rated")  # what a deep belief net can stack on

# hyperparameters() entries that are not constructor arguments (alpha is a saved buffer)
_NOT_BUILD_PARAMS = ("kind", "n_items", "n_hidden", "alpha")


def is_blend(kind: str) -> bool:
    """Whether ``kind`` is a blend of two machines of one question (``binary+autorec``)."""
    machines = blended_kinds(kind)
    return len(machines) == 2 and any(
        all(m in group for m in machines) for group in (RANKING_MACHINES, LIKE_MACHINES)
    )


def is_known_kind(kind: str) -> bool:
    """Whether rbm-reco can build ``kind``: one of ``KINDS`` or a blend."""
    return kind in KINDS or is_blend(kind)


def is_ranking_kind(kind: str) -> bool:
    """Whether a model of ``kind`` answers "which movies" (judged by how it ranks unseen
    items); the others answer "will the user like it" (judged by likes and ratings)."""
    return kind in HYBRID_KINDS or all(m in RANKING_MACHINES for m in blended_kinds(kind))


def build_model(
    kind: str, n_items: int, n_hidden: int, generator: torch.Generator | None = None, **params: Any
) -> Recommender:
    """A freshly initialised model of ``kind`` over ``n_items`` catalogue items.

    ``params``: ``n_models`` (models averaged: stacked in one ``RatedRBM`` for ``rated``, an
    ``EnsembleRBM`` of whole models for the other kinds and for deep belief nets); ``scale``
    (the ratings' ``RatingScale`` or its dict; default five stars) and ``states`` (the softmax
    kind's states, 0 = one per level);
    ``item_based`` = {"n_users", "n_hidden", "n_models", and the inner model's other
    hyperparameters} adds an item-based way (a ``TwoWayRBM``); ``layers`` (hidden units per
    layer) stacks RBMs on an RBM kind (a ``DeepBeliefNet``); the kind's own hyperparameters
    (``MultVAE``'s, ``AutoRec``'s); ``build_hybrid``'s sizes for the hybrid kinds (whose
    ``n_hidden`` is the like part's); ``parts`` (each part's hyperparameters) for a blend.
    """
    if kind in HYBRID_KINDS:
        return build_hybrid(n_items, n_hidden, generator, kind=kind, **params)
    if is_blend(kind):
        return build_blend(params["parts"], generator)
    item_based = params.pop("item_based", None)
    layers = list(params.pop("layers", None) or [])
    n_models = int(params.pop("n_models", 1))
    if n_models > 1 and (kind != "rated" or layers):
        return EnsembleRBM(
            [
                build_model(
                    kind, n_items, n_hidden, generator, item_based=item_based, layers=layers,
                    **params,
                )  # fmt: skip
                for _ in range(n_models)
            ]
        )
    model = build_machine(kind, n_items, n_hidden, generator, n_models, **params)
    if layers:
        if kind not in RBM_MACHINES:
            raise ValueError(
                f"layers stack RBMs on an RBM kind ({', '.join(RBM_MACHINES)}), not {kind!r}"
            )
        model = DeepBeliefNet.stacked(model, layers, generator)
    if item_based:
        return build_two_way(model, generator=generator, **item_based)
    return model


def build_machine(
    kind: str,
    n_items: int,
    n_hidden: int,
    generator: torch.Generator | None,
    n_models: int,
    **params: Any,
) -> Recommender:
    """One machine of ``kind`` (``n_models`` stacked RBMs for ``rated``)."""
    if kind in CATEGORICAL_KINDS:
        return CategoricalRBM(n_items, n_hidden, kind, generator=generator, **params)
    if kind == "rated":
        params.pop("states", None)  # the rated kind has one state per item
        return RatedRBM(n_items, n_hidden, generator=generator, n_models=n_models, **params)
    if kind == "autorec":
        return AutoRec(n_items, n_hidden, generator=generator, **params)
    if kind == "multvae":
        return MultVAE(n_items, n_hidden, generator=generator, **params)
    raise ValueError(f"unknown model kind {kind!r}; choose one of {', '.join(KINDS)}")


def build_two_way(
    user: Recommender,
    n_users: int,
    n_hidden: int,
    n_models: int,
    generator: torch.Generator | None = None,
    **params: Any,
) -> TwoWayRBM:
    """``user`` plus a fresh item-based way of its kind and scale over ``n_users`` visible
    users (``n_hidden`` hidden units; ``n_models`` RBMs averaged for the rated kind;
    ``params``: the inner model's other hyperparameters, by default the user-based way's
    states)."""
    params.setdefault("scale", user.scale)
    if user.kind == "softmax":
        params.setdefault("states", user.hyperparameters().get("states", 0))
    inner = build_machine(user.kind, n_users, n_hidden, generator, n_models, **params)
    if user.kind == "autorec":
        return TwoWayRBM(user, ItemBasedAutoRec(inner, user.n_items))
    if user.kind not in RBM_MACHINES:
        raise ValueError(f"kind {user.kind!r} has no item-based way")
    return TwoWayRBM(user, ItemBasedRBM(inner, user.n_items))


def build_blend(parts: list[dict[str, Any]], generator: torch.Generator | None = None):
    """A ``BlendModel`` of two models rebuilt from their ``hyperparameters()``."""
    first, second = (
        build_model(p["kind"], int(p["n_items"]), int(p["n_hidden"]), generator, **build_params(p))
        for p in parts
    )
    return BlendModel(first, second)


def build_params(hyper: dict[str, Any]) -> dict[str, Any]:
    """The ``build_model`` parameters in a model's ``hyperparameters()`` (beyond kind and
    sizes)."""
    return {k: v for k, v in hyper.items() if k not in _NOT_BUILD_PARAMS}


def build_hybrid(
    n_items: int,
    n_hidden: int,
    generator: torch.Generator | None = None,
    *,
    like_kind: str,
    rated_hidden: int,
    rated_models: int,
    like_models: int,
    rated_item: dict[str, Any] | None = None,
    like_item: dict[str, Any] | None = None,
    rated_kind: str = "rated",
    rated_extra: dict[str, Any] | None = None,
    like_extra: dict[str, Any] | None = None,
    kind: str = "hybrid",
) -> HybridRBM:
    """A fresh model of a hybrid ``kind``: a ranking part of ``rated_kind`` (``rated_hidden``
    hidden units, ``rated_models`` models averaged) and a like part of ``like_kind``
    (``n_hidden``, ``like_models``); ``rated_item`` / ``like_item`` make that part two-way,
    ``rated_extra`` / ``like_extra`` are the parts' other ``build_model`` parameters."""
    check_part_kinds(rated_kind, like_kind)
    rated = build_model(
        rated_kind, n_items, rated_hidden, generator, n_models=rated_models,
        item_based=rated_item, **(rated_extra or {}),
    )  # fmt: skip
    like = build_model(
        like_kind, n_items, n_hidden, generator, n_models=like_models, item_based=like_item,
        **(like_extra or {}),
    )  # fmt: skip
    return HybridRBM(rated, like, kind=kind)


def check_part_kinds(rated_kind: str, like_kind: str) -> None:
    """Raise ``ValueError`` unless ``rated_kind`` answers "which movies" and ``like_kind``
    "will they like it" (a machine or a blend of machines each)."""
    if not is_ranking_kind(rated_kind) or rated_kind in HYBRID_KINDS:
        raise ValueError(
            f"rated_kind must be one of {RANKING_MACHINES} or their blend, got {rated_kind!r}"
        )
    if not is_known_kind(like_kind) or is_ranking_kind(like_kind):
        raise ValueError(
            f"like_kind must be one of {LIKE_MACHINES} or their blend, got {like_kind!r}"
        )


def model_from_tensors(
    hyper: dict[str, Any], tensors: dict[str, torch.Tensor], share: bool = False
) -> Recommender:
    """Rebuild a model from its saved hyperparameters and tensors (shapes checked by torch).
    ``share``: the model's parameters and buffers are ``tensors`` themselves, not copies (for
    tensors nothing else holds, e.g. just read from a file: one copy of the weights in memory,
    not two)."""
    params = build_params(hyper)
    model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]), **params)
    model.load_state_dict(tensors, strict=True, assign=share)
    model.eval()
    return model
