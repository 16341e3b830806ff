"""Ensembles of like / rating RBMs: ``n_models`` RBMs of one kind, their predictions averaged.

Averaging RBMs trained from different initialisations and sampling streams lowers the
variance of their predictions: on the u1.base validation holdout three binary two-way RBMs
averaged have a lower like NLL and a higher AUC than each of them, in each of 3 seeds
(``bench/like_validation.py``, BENCHMARKS.md). The ``rated`` kind holds its ensemble in one
module (stacked weights, ``rbmcore.rated``); the categorical kinds (``binary``, ``softmax``),
whose training code is per-RBM, are held here as a list of whole models (each one user-based
or two-way).

``EnsembleTrainer`` trains the members one after another, member m with the config's seed
+ m (its own initialisation, sampling and batch order) and its own early stopping on the
shared validation split; the refit (``rbmcore.refit``) retrains each member for its own best
epoch count (``TrainConfig.members``).
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import Any

import numpy as np
import torch
from torch import nn

from rbmcore.data import RatingsCSR, UserBatch
from rbmcore.training import PartsTrainer, TrainConfig

log = logging.getLogger("rbm-reco.train")


class EnsembleRBM(nn.Module):
    """``members``: RBMs of one kind over the same catalogue; every output is their mean."""

    def __init__(self, members: list[nn.Module]) -> None:
        super().__init__()
        if len({(m.kind, m.n_items) for m in members}) != 1:
            raise ValueError("ensemble members must share one kind and catalogue")
        self.members = nn.ModuleList(members)

    @property
    def kind(self) -> str:
        return self.members[0].kind

    @property
    def n_items(self) -> int:
        return self.members[0].n_items

    @property
    def n_hidden(self) -> int:
        return self.members[0].n_hidden

    @property
    def n_models(self) -> int:
        return len(self.members)

    @property
    def n_states(self) -> int:
        """Dense floats per (user, item) while scoring, for chunk sizing."""
        return sum(m.n_states for m in self.members)

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        for member in self.members:
            member.init_visible_biases(csr)

    def _mean(self, outputs: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
        return {k: torch.stack([o[k] for o in outputs]).mean(0) for k in outputs[0]}

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: the members' ``score_all`` outputs, averaged."""
        return self._mean([m.score_all(batch) for m in self.members])

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) the members' predictions of query pairs (rows[n] of batch, items[n]), averaged."""
        return self._mean([m.predict_pairs(batch, items, rows) for m in self.members])

    def hyperparameters(self) -> dict[str, Any]:
        return {**self.members[0].hyperparameters(), "n_models": self.n_models}


def member_name(m: int) -> str:
    """The part name of member ``m`` (0-based): ``member1``, ``member2``, ..."""
    return f"member{m + 1}"


def member_config(config: TrainConfig, m: int) -> TrainConfig:
    """The config member ``m`` trains with: seed + m, one model, its ``members[m]`` table."""
    own = config.members[m] if config.members else {}
    return replace(config, seed=config.seed + m, n_models=1, members=None, **own)


class EnsembleTrainer(PartsTrainer):
    """Trains an ``EnsembleRBM`` member by member (parts ``member1``, ``member2``, ...; each a
    ``Trainer`` or, for two-way members, a ``TwoWayTrainer``), checkpointing each member to
    ``checkpoint_dir/memberN``. ``best_epoch`` is the first member's."""

    MAIN_PART = "member1"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.weight_search: dict[str, dict[float, float]] = {}  # two-way members' weights

    def fit(
        self,
        train: RatingsCSR,
        batches: list[np.ndarray],
        validation: tuple[RatingsCSR, RatingsCSR] | None = None,
        test: tuple[RatingsCSR, RatingsCSR] | None = None,
    ) -> list[dict[str, Any]]:
        """Train every member as ``Trainer.fit`` / ``TwoWayTrainer.fit`` would; returns the
        combined history (records tagged ``member``)."""
        from rbmcore.hybrid import trainer_for
        from rbmcore.twoway import use_all_ratings

        for m, member in enumerate(self.model.members):
            name, config = member_name(m), member_config(self.config, m)
            label = f"ensemble member {m + 1}/{len(self.model.members)}"
            log.info("%s of %s RBMs (seed %d)", label, config.kind, config.seed)
            trainer = trainer_for(
                member, config, self.device, self.after_backward, self.part_folder(name),
                self.resume,
            )  # fmt: skip
            self.fit_part(
                name, trainer, label, {"member": m + 1},
                train=train, batches=batches, validation=validation, test=test,
            )  # fmt: skip
            if hasattr(trainer, "weight_search"):
                self.weight_search[name] = trainer.weight_search
        if self.use_all_ratings:
            use_all_ratings(self.model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """Each member's best epochs, in ``members``."""
        names = [member_name(m) for m in range(len(self.model.members))]
        return {"members": [self.part_settings[n] for n in names]}
