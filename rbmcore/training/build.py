"""A fresh model for a training config: the config's sizes handed to the model factory."""

from __future__ import annotations

import logging

import torch

from rbmcore.models.contract import Recommender
from rbmcore.models.factory import build_hybrid, build_model
from rbmcore.training.config import AUTO_ITEM_CELLS, TrainConfig

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
    return {"n_users": n_users, "n_hidden": item.n_hidden, "n_models": item.n_models}


def model_for_config(
    config: TrainConfig,
    n_items: int,
    generator: torch.Generator | None = None,
    n_users: int | None = None,
) -> Recommender:
    """A freshly initialised model of ``config.kind`` with the config's sizes; ``n_users``
    (the training users) sizes item-based ways (``item_based``)."""
    if config.kind == "hybrid":
        rated, like = config.part("rated"), config.part("like")
        return build_hybrid(
            n_items,
            like.n_hidden,
            generator,
            like_kind=like.kind,
            rated_hidden=rated.n_hidden,
            rated_models=rated.n_models,
            like_models=like.n_models or 1,
            rated_item=item_way_sizes(rated, n_users, n_items),
            like_item=item_way_sizes(like, n_users, n_items),
        )
    params = {"n_models": config.n_models or 1}
    item_based = item_way_sizes(config, n_users, n_items)
    if item_based:
        params["item_based"] = item_based
    return build_model(config.kind, n_items, config.n_hidden, generator, **params)
