"""Retrain on all training ratings after the validation choices (``train.refit``, default on).

Model selection holds out a tenth of every user's ratings: early stopping, the two-way
weights and the hybrid's alpha are chosen on it. The selected model has then never learned
from that tenth. The refit trains a fresh model with the same seed and sizes on every
training rating, each part for the epoch count validation chose for it, and keeps the chosen
blend weights (``weight`` of two-way parts, ``alpha`` of the hybrid): the usual last step of
model selection, so the choices stay honest and the model sees all the data. It costs about
one more training up to the best epochs; measured on MovieLens 100k in BENCHMARKS.md.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rbmcore.data.batch import BatchSource, ratings_in
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import STARS, RatingScale
from rbmcore.models.contract import Recommender
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import TrainConfig

log = logging.getLogger("rbm-reco.train")

# buffers holding choices made on validation (a two-way part's weight, the hybrid's alpha)
CHOSEN_BUFFERS = ("weight", "alpha")


def refit_config(selected: Any) -> TrainConfig:
    """The config of the refit: ``selected``'s (a trained trainer) with each part's epochs set
    to its best validation epoch count."""
    return replace(selected.config, **selected.refit_settings())


def copy_choices(source: torch.nn.Module, target: torch.nn.Module) -> None:
    """Copy the validation-chosen buffers (``CHOSEN_BUFFERS``) of ``source`` into ``target``
    (same architecture)."""
    chosen = {
        name: value
        for name, value in source.named_buffers()
        if name.rsplit(".", 1)[-1] in CHOSEN_BUFFERS
    }
    targets = dict(target.named_buffers())
    for name, value in chosen.items():
        targets[name].copy_(value)


def fresh_refit_model(
    config: TrainConfig, train: RatingsCSR, scale: RatingScale = STARS
) -> Recommender:
    """The refit's starting point: a model built from ``config``'s seed and sizes (its epoch
    counts do not change it) over ``scale``, visible biases from ``train`` (all training
    ratings)."""
    model = model_for_config(config, train.n_items, torch.Generator().manual_seed(config.seed),
                             len(train), scale)  # fmt: skip
    model.init_visible_biases(train)
    return model


def refit_on_all_ratings(
    selected: Any,
    train: RatingsCSR,
    batches: list[np.ndarray] | BatchSource,
    after_backward=None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    device: torch.device | None = None,
    release_selected: bool = False,
) -> Any:
    """Train a fresh copy of ``selected``'s model on ``train`` (all training ratings, the
    validation holdout included; ``batches``: its row positions per user batch) without
    validation; returns the new trainer, its model carrying ``selected``'s chosen weights.

    ``checkpoint_dir``: per-epoch checkpoints (per part for hybrid / two-way models) so that
    ``resume`` continues an interrupted refit exactly. ``device``: default ``selected``'s.
    ``release_selected``: free ``selected``'s weights once the refit has its choices (the
    job saves the refit's model, so it needs one set of weights in memory, not two).
    """
    config = refit_config(selected)
    model = fresh_refit_model(config, train, selected.model.scale)
    copy_choices(selected.model, model)
    if release_selected:
        selected.release_weights()
    trainer = trainer_for(
        model,
        config,
        device or selected.device,
        after_backward,
        checkpoint_dir=checkpoint_dir,
        resume=resume,
    )
    log.info(
        "refit: retraining on all %d training ratings (%s)",
        ratings_in(train, batches),
        describe(config),
    )
    # no validation: the copied weights / alpha stay
    return trainer.fit_checkpointed(
        checkpoint_dir, resume, "the refit", train=train, batches=batches
    )


def describe(config: TrainConfig) -> str:
    """``epochs N`` of the model and of each part (an ensemble's: per member), for the log."""

    def epochs(table: dict) -> str:
        item = table.get("item", {})
        way = f", item-based way {item['epochs']}" if "epochs" in item else ""
        return f"{table['epochs']}{way}"

    parts = [f"epochs {config.epochs}"] if config.epochs and not config.members else []
    tables = {"": {"members": config.members}} if config.members else {}
    tables.update({name: getattr(config, name, {}) or {} for name in ("rated", "like", "item")})
    for name, table in tables.items():
        if table.get("members"):
            members = "; ".join(epochs(m) for m in table["members"] if "epochs" in m)
            parts.append(f"{name + ' ' if name else ''}members {members}")
        elif "epochs" in table:
            parts.append(f"{name} {epochs(table)}")
    return "; ".join(parts)
