"""The default model: a ``rated`` RBM (which movies will the user watch) combined with a like /
rating RBM (will they like it), and the code that trains the two one after another.

``score = P(rated) * p_like ** alpha``: the rated RBM proposes what the user will watch, the
like RBM demotes what they would dislike; ``alpha`` is chosen on the validation split
(nDCG@10 of the held-out items) after both sub-models are trained. ``alpha = 0`` is the rated
RBM alone. The export's ``p_like`` (and ``pred_rating`` for a softmax like model) come from the
like sub-model, ``p_rated`` from the rated one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from rbmcore.categorical import STATES_BY_KIND
from rbmcore.data import RatingsCSR, UserBatch, to_batch
from rbmcore.ensemble import EnsembleRBM, EnsembleTrainer
from rbmcore.scoring import ranked_rows, top_k_unseen, users_per_chunk
from rbmcore.training import (
    AUTO_ITEM_CELLS,
    RANKING_K,
    PartsTrainer,
    TrainConfig,
    Trainer,
    ranking_quality_of,
)
from rbmcore.twoway import TwoWayRBM, TwoWayTrainer, build_two_way, use_all_ratings

log = logging.getLogger("rbm-reco.train")

ALPHA_GRID = (0.0, 0.25, 0.5, 1.0, 2.0, 3.0, 5.0)
DEFAULT_ALPHA = 1.0


class HybridRBM(nn.Module):
    """A rated RBM (``RatedRBM``, or a two-way one) and a like RBM (``CategoricalRBM``, or a
    two-way one) scored together (state keys ``rated.*``, ``like.*`` and the buffer
    ``alpha``)."""

    kind = "hybrid"

    def __init__(self, rated: nn.Module, like: nn.Module, alpha: float = DEFAULT_ALPHA):
        super().__init__()
        if rated.n_items != like.n_items:
            raise ValueError(f"sub-models disagree on n_items: {rated.n_items} vs {like.n_items}")
        self.rated = rated
        self.like = like
        self.register_buffer("alpha", torch.tensor(float(alpha)))

    @property
    def n_items(self) -> int:
        return self.rated.n_items

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return self.like.n_states + self.rated.n_states

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

    def hyperparameters(self) -> dict[str, Any]:
        hyper = {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.like.n_hidden,
            "like_kind": self.like.kind,
            "like_models": int(getattr(self.like, "n_models", 1)),
            "rated_hidden": self.rated.n_hidden,
            "rated_models": self.rated.n_models,
            "alpha": float(self.alpha),
        }
        for part in ("rated", "like"):
            model = getattr(self, part)
            one = model.members[0] if isinstance(model, EnsembleRBM) else model
            if isinstance(one, TwoWayRBM):
                hyper[f"{part}_item"] = one.item.hyperparameters()
        return hyper


def build_hybrid(
    n_items: int,
    n_hidden: int,
    generator: torch.Generator | None = None,
    like_kind: str = "softmax",
    rated_hidden: int = 200,
    rated_models: int = 1,
    alpha: float = DEFAULT_ALPHA,
    rated_item: dict[str, int] | None = None,
    like_item: dict[str, int] | None = None,
    like_models: int = 1,
) -> HybridRBM:
    """A fresh hybrid: ``n_hidden`` hidden units in the like model, ``rated_hidden`` in each
    of the ``rated_models`` rated RBMs, ``like_models`` like RBMs averaged
    (``rbmcore.ensemble``); ``rated_item`` / ``like_item`` ({"n_users", "n_hidden",
    "n_models"}) make that part two-way (each like RBM, in an ensemble)."""
    from rbmcore.models import build_model

    if like_kind not in STATES_BY_KIND:
        raise ValueError(f"like_kind must be one of {sorted(STATES_BY_KIND)}, got {like_kind!r}")
    rated = build_model("rated", n_items, rated_hidden, generator, n_models=rated_models)
    if rated_item:
        rated = build_two_way(rated, generator=generator, **rated_item)
    like = build_model(
        like_kind, n_items, n_hidden, generator, n_models=like_models, item_based=like_item
    )
    return HybridRBM(rated, like, alpha)


def item_part_sizes(
    config: TrainConfig, n_users: int | None, n_items: int
) -> dict[str, int] | None:
    """{"n_users", "n_hidden", "n_models"} of ``config``'s item-based part, or None."""
    if not config.item_based:
        return None
    if not n_users:
        raise ValueError("an item-based part needs the number of training users (n_users)")
    if not config.wants_item_part(n_users, n_items):
        log.info(
            '%s: no item-based part (item_based = "auto": %d users x %d items > %d cells; '
            "set item_based = true to train one)",
            config.kind,
            n_users,
            n_items,
            AUTO_ITEM_CELLS,
        )
        return None
    item = config.item_part()
    return {"n_users": n_users, "n_hidden": item.n_hidden, "n_models": item.n_models}


def model_for_config(
    config: TrainConfig,
    n_items: int,
    generator: torch.Generator | None = None,
    n_users: int | None = None,
):
    """A freshly initialised model of ``config.kind`` with the config's sizes; ``n_users``
    (the training users) sizes item-based parts (``item_based``)."""
    from rbmcore.models import build_model

    if config.kind == "hybrid":
        rated, like = config.part("rated"), config.part("like")
        return build_hybrid(
            n_items,
            like.n_hidden,
            generator,
            like_kind=like.kind,
            rated_hidden=rated.n_hidden,
            rated_models=rated.n_models,
            rated_item=item_part_sizes(rated, n_users, n_items),
            like_item=item_part_sizes(like, n_users, n_items),
            like_models=like.n_models or 1,
        )
    params = {"n_models": config.n_models or 1}
    item_based = item_part_sizes(config, n_users, n_items)
    if item_based:
        params["item_based"] = item_based
    return build_model(config.kind, n_items, config.n_hidden, generator, **params)


def trainer_for(
    model: torch.nn.Module,
    config: TrainConfig,
    device: torch.device,
    after_backward=None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
):
    """The trainer of ``model``: ``HybridTrainer``, ``TwoWayTrainer``, ``EnsembleTrainer`` or
    a plain ``Trainer`` (which checkpoints through the job itself)."""
    if isinstance(model, HybridRBM):
        return HybridTrainer(model, config, device, after_backward, checkpoint_dir, resume)
    if isinstance(model, EnsembleRBM):
        return EnsembleTrainer(model, config, device, after_backward, checkpoint_dir, resume)
    if isinstance(model, TwoWayRBM):
        return TwoWayTrainer(model, config, device, after_backward, checkpoint_dir, resume)
    return Trainer(model, config, device, after_backward)


@torch.no_grad()
def choose_alpha(
    model: HybridRBM,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...] = ALPHA_GRID,
) -> tuple[float, dict[float, float]]:
    """The alpha of ``grid`` with the best validation nDCG@10 (ties: the smaller alpha)."""
    scores = alpha_grid_quality(model, context, target, device, grid)
    best = max(grid, key=lambda a: (scores[a], -a))
    model.alpha.fill_(best)
    return best, scores


@torch.no_grad()
def alpha_grid_quality(
    model: HybridRBM,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...],
    chunk_users: int | None = None,
) -> dict[float, float]:
    """{alpha: validation nDCG@10} for every alpha of ``grid``: the numbers of
    ``ranking_quality`` with ``model.alpha`` set to each, but both sub-models score each chunk
    of users (``recommend_csr``'s chunks) once; only the combination and the top-k are
    repeated per alpha. Leaves ``model.alpha`` at the grid's last value."""
    k = min(RANKING_K, context.n_items)  # recommendations per user; the metrics cut at RANKING_K
    chunk = chunk_users or users_per_chunk(context.n_items, model.n_states)
    found: dict[float, list[tuple[np.ndarray, ...]]] = {alpha: [] for alpha in grid}
    for start in range(0, len(context), chunk):
        sub = context.slice(start, min(start + chunk, len(context)))
        batch = to_batch(sub, device)
        p_rated = model.rated.score_all(batch)["p_rated"]
        p_like = model.like.score_all(batch)["p_like"]
        for alpha in grid:
            model.alpha.fill_(alpha)
            top_values, top_indices = top_k_unseen(model.combine(p_rated, p_like), batch, k)
            rows, ranks, items, _ = ranked_rows(top_indices, torch.isfinite(top_values), {})
            found[alpha].append((sub.user_ids[rows], items, ranks))
    quality = {}
    for alpha, parts in found.items():
        users, items, ranks = [np.concatenate(c) for c in zip(*parts, strict=True)] or [
            np.zeros(0, np.int64)
        ] * 3
        quality[alpha] = ranking_quality_of(users, items, ranks, target, RANKING_K)["ndcg"]
    return quality


class HybridTrainer(PartsTrainer):
    """Trains a ``HybridRBM``: the rated part, then the like part (each a ``Trainer`` with its
    own config from ``config.part`` and its own early stopping), then chooses alpha.

    With ``checkpoint_dir`` each part checkpoints every epoch to ``checkpoint_dir/<part>``;
    ``resume=True`` skips finished parts and continues an interrupted one exactly.
    Attributes used by the job: ``model``, ``config``, ``device``, ``history`` (records tagged
    with ``part``), ``best_epoch`` (of the rated part), ``best_epochs``, ``alpha_search``.
    """

    MAIN_PART = "rated"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha_search: dict[float, float] = {}
        self.weight_search: dict[str, dict[float, float]] = {}  # two-way parts' weights

    def fit(
        self,
        train: RatingsCSR,
        batches: list[np.ndarray],
        validation: tuple[RatingsCSR, RatingsCSR] | None = None,
        test: tuple[RatingsCSR, RatingsCSR] | None = None,
    ) -> list[dict[str, Any]]:
        """Train both parts; ``validation``/``test`` are (context, target) pairs as for
        ``Trainer.fit``. Returns the combined history."""
        for part in ("rated", "like"):
            self._fit_part(part, train, batches, validation, test)
        if validation is not None and validation[1].nnz:
            alpha, self.alpha_search = choose_alpha(self.model, *validation, self.device)
            log.info(
                "hybrid alpha %.2f (validation nDCG@10 by alpha: %s)",
                alpha,
                ", ".join(f"{a:g}: {v:.4f}" for a, v in self.alpha_search.items()),
            )
        use_all_ratings(self.model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """Each part's best epochs in its ``rated`` / ``like`` table."""
        return {
            part: {**getattr(self.config, part), **self.part_settings[part]}
            for part in ("rated", "like")
        }

    def _fit_part(self, part, train, batches, validation, test):
        sub_model = getattr(self.model, part)
        config = self.config.part(part)
        if isinstance(sub_model, (TwoWayRBM, EnsembleRBM)):
            what = "two-way" if isinstance(sub_model, TwoWayRBM) else "ensemble of"
            log.info("training the hybrid's %s part (%s %s RBM)", part, what, config.kind)
        trainer = trainer_for(
            sub_model, config, self.device, self.after_backward, self.part_folder(part),
            self.resume,
        )  # fmt: skip
        self.fit_part(
            part, trainer, f"the hybrid's {part} part", {"part": part},
            train=train, batches=batches, validation=validation, test=test,
        )  # fmt: skip
        if hasattr(trainer, "weight_search"):
            self.weight_search[part] = trainer.weight_search
