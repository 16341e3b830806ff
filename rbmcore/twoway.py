"""Two-way models: a user-based RBM and the item-based RBM of the same kind, blended.

The user-based RBM sees each user's ratings and generalises across users; the item-based one
(``rbmcore.itembased``) sees each item's ratings and generalises across items. Their errors
differ, so ``weight * user + (1 - weight) * item`` of their predictions (every output column)
beats both; ``weight`` is chosen on the validation split after both are trained. A user the
item-based part never saw (not in the training data) gets the user-based prediction alone.

``TwoWayTrainer`` trains the user part (a ``Trainer`` over the users' batches), then the item
part (a ``Trainer`` over batches of items of the transposed ratings, validated in user space
with the same metrics), then the weight; finally (``use_all_ratings``, after every choice made
on validation) the items' hidden states are computed from all training ratings, the
validation holdout included, as scoring uses every rating.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from rbmcore.data import RatingsCSR, UserBatch, iter_row_chunks, merge_rows
from rbmcore.itembased import ItemBasedRBM, transpose_csr
from rbmcore.training import (
    PartsTrainer,
    Trainer,
    heldout_metrics,
    selection_metric,
)

log = logging.getLogger("rbm-reco.train")

WEIGHT_GRID = tuple(round(0.1 * i, 1) for i in range(11))
DEFAULT_WEIGHT = 0.5


class TwoWayRBM(nn.Module):
    """``user`` (a user-based RBM of any kind) and ``item`` (``ItemBasedRBM`` of that kind)
    blended with the buffer ``weight`` (1 = user-based only)."""

    def __init__(self, user: nn.Module, item: ItemBasedRBM, weight: float = DEFAULT_WEIGHT):
        super().__init__()
        if item.kind != user.kind or item.n_items != user.n_items:
            raise ValueError("the item-based part must be of the same kind and catalogue")
        self.user = user
        self.item = item
        self.register_buffer("weight", torch.tensor(float(weight)))

    @property
    def kind(self) -> str:
        return self.user.kind

    @property
    def n_items(self) -> int:
        return self.user.n_items

    @property
    def n_hidden(self) -> int:
        return self.user.n_hidden

    @property
    def n_models(self) -> int:
        return getattr(self.user, "n_models", 1)

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return self.user.n_states + self.item.n_states

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        """Both parts' visible biases from the training users' rows ``csr``."""
        self.user.init_visible_biases(csr)
        self.item.init_visible_biases(csr)

    def _blend(self, user_out: dict, item_out: dict, known: torch.Tensor) -> dict:
        w = torch.where(known, self.weight, torch.ones_like(self.weight))
        w = w.view(-1, *([1] * (next(iter(user_out.values())).dim() - 1)))
        blends: dict[tuple[int, int], torch.Tensor] = {}  # outputs are often one tensor twice
        for k, v in user_out.items():  # (score is p_like): blend each pair once
            pair = (id(v), id(item_out[k]))
            if pair not in blends:
                blends[pair] = w * v + (1 - w) * item_out[k]
        return {k: blends[(id(v), id(item_out[k]))] for k, v in user_out.items()}

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: the user-based kind's outputs, blended. With a user-based
        weight of 1 the blend is the user-based outputs exactly, so the item-based part is
        not scored."""
        if float(self.weight) == 1.0:
            return self.user.score_all(batch)
        item_out, known = self.item.score_all_known(batch)
        return self._blend(self.user.score_all(batch), item_out, known)

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) predictions of query pairs (rows[n] of batch, items[n]), blended."""
        item_out, known = self.item.predict_pairs_known(batch, items, rows)
        return self._blend(self.user.predict_pairs(batch, items, rows), item_out, known)

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.user.hyperparameters(), "item_based": self.item.hyperparameters()}


def build_two_way(
    user: nn.Module,
    n_users: int,
    n_hidden: int,
    n_models: int = 1,
    generator: torch.Generator | None = None,
) -> TwoWayRBM:
    """``user`` plus a fresh item-based RBM of its kind over ``n_users`` visible users
    (``n_hidden`` hidden units; ``n_models`` RBMs averaged for the rated kind)."""
    from rbmcore.models import build_model

    params = {"n_models": n_models} if user.kind == "rated" else {}
    inner = build_model(user.kind, n_users, n_hidden, generator, **params)
    return TwoWayRBM(user, ItemBasedRBM(inner, user.n_items))


@torch.no_grad()
def choose_weight(
    model: TwoWayRBM,
    context: RatingsCSR,
    target: RatingsCSR,
    device: torch.device,
    grid: tuple[float, ...] = WEIGHT_GRID,
) -> tuple[float, dict[float, float]]:
    """The weight of ``grid`` with the best validation selection metric (-nDCG@10 for ranking
    kinds, RMSE for rating kinds, else like NLL); ties go to the larger (user) weight."""
    scores: dict[float, float] = {}
    for weight in grid:
        model.weight.fill_(weight)
        scores[weight] = selection_metric({"val": heldout_metrics(model, context, target, device)})
    best = min(grid, key=lambda w: (scores[w], -w))
    model.weight.fill_(best)
    return best, scores


class TwoWayTrainer(PartsTrainer):
    """Trains a ``TwoWayRBM``: user part, item part, weight (see the module docstring).

    With ``checkpoint_dir`` the parts checkpoint to ``checkpoint_dir/user`` and ``/item``.
    Attributes used by the jobs: those of ``PartsTrainer`` (``history`` tagged with ``way``,
    ``best_epoch`` of the user part) and ``weight_search``.
    """

    MAIN_PART = "user"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_search: dict[float, float] = {}

    def fit(
        self,
        train: RatingsCSR,
        batches: list[np.ndarray],
        validation: tuple[RatingsCSR, RatingsCSR] | None = None,
        test: tuple[RatingsCSR, RatingsCSR] | None = None,
    ) -> list[dict[str, Any]]:
        """``train``: the training users' rows (the item part's visible units, in order);
        ``batches``: row positions per user batch; ``validation`` / ``test``: (context,
        target) pairs in user space. Returns the combined history."""
        model, config = self.model, self.config
        data = {"validation": validation, "test": test}
        user = Trainer(model.user, config, self.device, self.after_backward)
        self.fit_part(
            "user", user, "the user-based part", {"way": "user"}, train=train, batches=batches,
            **data,
        )  # fmt: skip
        item_config = config.item_part()

        def evaluate(_inner, context, target, device):  # the item part, scored in user space
            model.item.set_item_states(train)
            return heldout_metrics(model.item, context, target, device)

        item = Trainer(model.item.inner, item_config, self.device, self.after_backward, evaluate)
        items = transpose_csr(train)
        self.fit_part(
            "item", item, "the item-based part", {"way": "item"}, train=items,
            batches=iter_row_chunks(len(items), config.item_batch), **data,
        )  # fmt: skip
        model.item.set_item_states(train)
        if validation is not None and validation[1].nnz:
            weight, self.weight_search = choose_weight(model, *validation, self.device)
            log.info(
                "two-way %s: user-based weight %.1f (validation by weight: %s)",
                config.kind,
                weight,
                ", ".join(f"{w:g}: {v:.4f}" for w, v in self.weight_search.items()),
            )
        if self.use_all_ratings:
            use_all_ratings(model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """The user part's best epochs; the item part's in the ``item`` table."""
        item = {**self.config.item, **self.part_settings["item"]}
        return {**self.part_settings["user"], "item": item}


def use_all_ratings(
    model: nn.Module, train: RatingsCSR, validation: tuple[RatingsCSR, RatingsCSR] | None
) -> None:
    """Recompute the item states of every two-way part of ``model`` from all training ratings
    (``train`` plus the validation holdout): the last step, after every validation choice."""
    every = merge_rows(train, validation[1]) if validation is not None else train
    for module in model.modules():
        if isinstance(module, TwoWayRBM):
            module.item.set_item_states(every)
