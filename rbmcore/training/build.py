"""A fresh model for a training config: the config's sizes handed to the model factory."""

from __future__ import annotations

import logging

import torch

from rbmcore.data.scale import STARS, RatingScale
from rbmcore.models.blend import BlendModel
from rbmcore.models.contract import Recommender
from rbmcore.models.factory import HYBRID_KINDS, build_model, check_part_kinds, is_blend
from rbmcore.models.hybrid import HybridRBM
from rbmcore.training.config import AUTO_ITEM_CELLS, HYBRID_PARTS, TrainConfig

log = logging.getLogger("rbm-reco.train")


def item_way_sizes(
    config: TrainConfig, n_users: int | None, n_items: int
) -> dict[str, int] | None:
    """{"n_users", "n_hidden", "n_models"} of ``config``'s item-based way, or None."""
    if not config.item_based:
        return None
    if not n_users:
        raise ValueError("an item-based way needs the number of training users (n_users)")
    if not config.wants_item_way(n_users, n_items):
        log.info(
            '%s: no item-based way (item_based = "auto": dense CD over %d users x %d items > '
            "%d cells; set item_based = true to train one)",
            config.kind,
            n_users,
            n_items,
            AUTO_ITEM_CELLS,
        )
        return None
    item = config.item_way()
    sizes = {"n_users": n_users, "n_hidden": item.n_hidden, "n_models": item.n_models}
    return {**sizes, **item.model_params()}


def model_for_config(
    config: TrainConfig,
    n_items: int,
    generator: torch.Generator | None = None,
    n_users: int | None = None,
    scale: RatingScale = STARS,
) -> Recommender:
    """A freshly initialised model of ``config.kind`` with the config's sizes; ``n_users``
    (the training users) sizes item-based ways (``item_based``); ``scale``: the training
    ratings' scale (ingest's), which the like and rating models encode. A hybrid kind's parts
    and a blend's machines are built in turn from their own configs."""
    if config.kind in HYBRID_KINDS:
        check_part_kinds(config.rated_kind, config.like_kind)
        rated, like = (
            model_for_config(config.part(name), n_items, generator, n_users, scale)
            for name in HYBRID_PARTS
        )
        return HybridRBM(rated, like, kind=config.kind)
    if is_blend(config.kind):
        first, second = (
            model_for_config(config.blend_member(m), n_items, generator, n_users, scale)
            for m in (0, 1)
        )
        return BlendModel(first, second)
    params = {"n_models": config.n_models or 1, **config.model_params(), "scale": scale}
    item_based = item_way_sizes(config, n_users, n_items)
    if item_based:
        params["item_based"] = item_based
    return build_model(config.kind, n_items, config.n_hidden, generator, **params)
