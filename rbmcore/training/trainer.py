"""Training one RBM with contrastive divergence, batch by batch, with validation and early stop.

CD-k is the gradient of ``mean F(v_data) - mean F(v_model)`` (F the free energy, the model
sample detached), so any torch optimiser applies it: SGD with momentum and weight decay here.
Randomness comes from the seed and the epoch number only, so a run resumed at epoch e
continues exactly as the uninterrupted run would.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rbmcore.data.batch import BatchSource, UserBatch, batch_rows, split_batches, to_batch
from rbmcore.data.csr import RatingsCSR
from rbmcore.evaluation import heldout_metrics
from rbmcore.io.checkpoint import (
    DONE_MARKER,
    has_checkpoint,
    kept_checkpoint_note,
    load_checkpoint,
    save_checkpoint,
)
from rbmcore.models.contract import TrainableRBM
from rbmcore.training.config import TrainConfig
from rbmcore.training.lazy_sgd import LazySGD
from rbmcore.training.objective import estimator_of, make_optimizer, objective_for
from rbmcore.training.selection import selection_metric

log = logging.getLogger("rbm-reco.train")


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The torch generator of one epoch: a pure function of (seed, epoch)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def epoch_batch_order(seed: int, epoch: int, n_batches: int) -> np.ndarray:
    """The order batches are visited in during ``epoch``: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_batches)


def best_epoch_settings(best_epoch: int) -> dict[str, Any]:
    """Config overrides that retrain a model on all ratings: its best epoch count."""
    return {"epochs": max(best_epoch, 1)}


class Trainer:
    """Runs CD epochs over fixed user batches, tracks validation and keeps the best weights."""

    def __init__(
        self,
        model: TrainableRBM,
        config: TrainConfig,
        device: torch.device,
        after_backward: Callable[[torch.nn.Module], None] | None = None,
        evaluate: Callable[..., dict[str, float]] = heldout_metrics,
    ) -> None:
        """``after_backward(model)`` runs between backward and the optimiser step (e.g. an
        all-reduce of the gradients in data-parallel training). ``evaluate(model, context,
        target, device)`` gives the per-epoch validation / test numbers."""
        self.after_backward = after_backward
        self.evaluate = evaluate
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.estimator = estimator_of(self.model, config)  # "cd" or "srm" (objective.py)
        self.optimizer = self.make_optimizer()
        self.objective = None  # built from the first epoch's training rows
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The optimiser of the estimator: ``rbmcore.training.objective.make_optimizer``."""
        return make_optimizer(self.model, self.config, self.estimator)

    def update_loss(
        self, batch: UserBatch, epoch: int, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The scalar whose gradient is the update of ``batch`` (the estimator's: CD-``k`` or
        ratio matching) and its per-entry training loss before the update."""
        return self.objective.loss_and_nll(batch, k, generator)

    def epoch_settings(self, epoch: int) -> dict[str, Any]:
        """What an epoch's history record says of how it trained: its CD-k."""
        return {"cd_k": self.config.cd_k(epoch)}

    def train_epoch(
        self, train: RatingsCSR, batches: list[np.ndarray] | BatchSource, epoch: int
    ) -> float:
        """One pass of CD-k over ``batches`` (row positions of ``train`` per batch, or a
        ``BatchSource``); mean training loss.

        The loss reported is, for CD, the mean NLL of the training ratings' states under the
        mean-field reconstruction, measured on each batch before its update; for ratio
        matching, the mean over the rows of their sampled ratio-matching loss. It is summed on
        the device and read once per epoch (no host synchronisation per batch).
        """
        config = self.config
        k = config.cd_k(epoch)
        generator = epoch_generator(config.seed, epoch, self.device)
        if self.objective is None:
            self.objective = objective_for(
                self.model, config, self.estimator, self.optimizer, train
            )
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay**epoch
        order = epoch_batch_order(config.seed, epoch, len(batches))
        total = torch.zeros((), dtype=torch.float64, device=self.device)
        count = 0
        bar = tqdm(
            batch_rows(train, batches, order),
            total=len(order),
            desc=f"epoch {epoch + 1}",
            unit="batch",
            leave=False,
            disable=not sys.stderr.isatty(),
        )
        self.model.train()
        for rows in bar:
            batch = to_batch(rows, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss, nll = self.update_loss(batch, epoch, k, generator)
            total += nll.sum().double()
            count += nll.numel()
            loss.backward()
            if self.after_backward is not None:
                self.after_backward(self.model)
            self.optimizer.step()
        if isinstance(self.optimizer, LazySGD):
            self.optimizer.flush()  # every row up to date for validation and checkpoints
        self.model.eval()
        return float(total) / max(count, 1)

    def fit(
        self,
        train: RatingsCSR,
        batches: list[np.ndarray] | BatchSource,
        validation: tuple[RatingsCSR, RatingsCSR] | None = None,
        test: tuple[RatingsCSR, RatingsCSR] | None = None,
        start_epoch: int = 0,
        on_epoch: Callable[[Trainer, dict[str, Any]], None] | None = None,
    ) -> list[dict[str, Any]]:
        """Train from ``start_epoch`` to ``config.epochs`` (or an early stop); returns history.

        ``validation``/``test`` are (context, target) pairs: the users' known ratings and the
        held-out ones to predict. Validation drives early stopping; test is only reported.
        """
        config = self.config
        batches = split_batches(batches, config.sub_batches or 1)
        for epoch in range(start_epoch, config.epochs):
            start = time.perf_counter()
            try:
                loss = self.train_epoch(train, batches, epoch)
            except RuntimeError:  # e.g. sampling from NaN probabilities after a blow-up
                if self.weights_finite():
                    raise
                loss = math.nan
            if not math.isfinite(loss) or not self.weights_finite():
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1} (loss {loss}); lower the learning "
                    f"rate (now {config.lr})"
                )
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                **self.epoch_settings(epoch),
                "train_loss": loss,
                "seconds": time.perf_counter() - start,
            }
            if validation is not None:
                record["val"] = self.evaluate(self.model, *validation, self.device)
            if test is not None:
                record["test"] = self.evaluate(self.model, *test, self.device)
            self.history.append(record)
            self._log_epoch(record)
            if self._is_best(record):
                self.best_epoch = epoch + 1
                self.best_state = {
                    k: v.detach().clone() for k, v in self.model.state_dict().items()
                }
            if on_epoch is not None:
                on_epoch(self, record)
            if validation is not None and epoch + 1 - self.best_epoch >= config.patience:
                log.info("early stop: no validation improvement since epoch %d", self.best_epoch)
                break
        if self.best_state is not None and validation is not None:
            self.model.load_state_dict(self.best_state)
        return self.history

    def fit_checkpointed(
        self, folder: str | Path | None, resume: bool, label: str, **fit_args: Any
    ) -> Trainer:
        """``fit(**fit_args)`` with a checkpoint in ``folder`` after every epoch.

        With ``resume``, a finished checkpoint (``phase.done``) is loaded instead of training
        and an unfinished one is continued exactly. ``label`` names the stage in the log.
        Returns this trainer with its best weights in its model.
        """
        folder = Path(folder) if folder is not None else None
        start = 0
        if folder is not None and resume and has_checkpoint(folder):
            start = load_checkpoint(folder, self)
            if (folder / DONE_MARKER).exists():
                if self.best_state is not None:
                    self.model.load_state_dict(self.best_state)
                log.info("%s already trained (checkpoint %s)", label, folder)
                return self
            log.info("resuming %s after epoch %d", label, start)
        log.info("training %s (kind %s)", label, self.config.kind)

        def on_epoch(t: Trainer, _record: dict[str, Any]) -> None:
            if folder is not None:
                save_checkpoint(folder, t)

        try:
            self.fit(**fit_args, start_epoch=start, on_epoch=on_epoch)
        except FloatingPointError as exc:  # NaN/Inf in this stage: its last good checkpoint stays
            raise FloatingPointError(f"{label}: {exc}; {kept_checkpoint_note(folder)}") from exc
        if folder is not None:
            save_checkpoint(folder, self)
            (folder / DONE_MARKER).write_text("done\n")
        return self

    def refit_settings(self) -> dict[str, Any]:
        return best_epoch_settings(self.best_epoch)

    def release_weights(self) -> None:
        """Free this trainer's tensors: the model's parameters and buffers move to the ``meta``
        device (shapes kept, no storage), the best-epoch copy and the optimizer state are
        dropped. Config, history and best epoch stay."""
        self.model.to(torch.device("meta"))
        self.best_state = None
        self.optimizer.state.clear()

    def validation_choices(self) -> dict[str, Any]:
        """The blend weights chosen on validation: none for one RBM (composite trainers have
        ``alpha_search`` / ``weight_search``)."""
        return {}

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _is_best(self, record: dict[str, Any]) -> bool:
        if "val" not in record:
            return True
        best = min((selection_metric(r) for r in self.history[:-1]), default=math.inf)
        return selection_metric(record) < best

    def _log_epoch(self, record: dict[str, Any]) -> None:
        parts = [f"epoch {record['epoch']}/{self.config.epochs}"]
        if "cd_k" in record:
            parts.append(f"CD-{record['cd_k']}")
        parts.append(f"train loss {record['train_loss']:.4f}")
        for split in ("val", "test"):
            for name, value in record.get(split, {}).items():
                parts.append(f"{split} {name} {value:.4f}")
        parts.append(f"{record['seconds']:.1f} s")
        log.info(", ".join(parts))
