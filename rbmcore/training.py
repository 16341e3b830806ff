"""Training an RBM with contrastive divergence, batch by batch, with validation and early stop.

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
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rbmcore import metrics
from rbmcore.data import LIKE_THRESHOLD, RatingsCSR, to_batch
from rbmcore.scoring import predict_csr

log = logging.getLogger("rbm-reco.train")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run (the defaults are the tuned ``binary`` ones)."""

    kind: str = "binary"
    n_hidden: int = 100
    epochs: int = 40
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 1e-2
    lr_decay: float = 0.97  # multiplied into the learning rate after every epoch
    cd_schedule: list[list[int]] = field(default_factory=lambda: [[0, 1], [15, 3], [25, 5]])
    val_fraction: float = 0.1  # per-user holdout carved from the training data
    patience: int = 6  # epochs without validation improvement before stopping
    seed: int = 42
    device: str = "auto"

    def cd_k(self, epoch: int) -> int:
        """CD steps at ``epoch`` (0-based) from the schedule [[from_epoch, k], ...]."""
        k = 1
        for start, steps in sorted(self.cd_schedule):
            if epoch >= start:
                k = steps
        return k

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The torch generator of one epoch: a pure function of (seed, epoch)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def epoch_batch_order(seed: int, epoch: int, n_batches: int) -> np.ndarray:
    """The order batches are visited in during ``epoch``: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_batches)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on the weights only, not on the biases."""
    decay = [p for name, p in model.named_parameters() if name == "W"]
    no_decay = [p for name, p in model.named_parameters() if name != "W"]
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
    )


@torch.no_grad()
def heldout_metrics(
    model, context: RatingsCSR, target: RatingsCSR, device: torch.device
) -> dict[str, float]:
    """Held-out quality: negative log-likelihood of the held-out ratings' states, like error
    (per-user, DESIGN section 5), AUC of p_like and, for rating models, RMSE."""
    if target.nnz == 0:
        return {}
    preds = predict_csr(model, context, target, device)
    like = (target.ratings >= LIKE_THRESHOLD).astype(np.int8)
    users = target.row_of_entries()
    p_like = np.clip(preds["p_like"], 1e-7, 1 - 1e-7)
    out = {
        "like_nll": float(-np.mean(like * np.log(p_like) + (1 - like) * np.log(1 - p_like))),
        "like_error": metrics.like_error(users, like, preds["p_like"]),
        "auc": metrics.auc(like, preds["p_like"]),
    }
    if "pred_rating" in preds:
        out["rmse"] = metrics.rmse(target.ratings.astype(np.float64), preds["pred_rating"])
    return out


def selection_metric(record: dict[str, Any]) -> float:
    """The validation number early stopping minimises (RMSE for rating models, else NLL)."""
    val = record.get("val", {})
    return val.get("rmse", val.get("like_nll", math.inf))


class Trainer:
    """Runs CD epochs over fixed user batches, tracks validation and keeps the best weights."""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        device: torch.device,
        after_backward: Callable[[torch.nn.Module], None] | None = None,
    ) -> None:
        """``after_backward(model)`` runs between backward and the optimiser step (e.g. an
        all-reduce of the gradients in data-parallel training)."""
        self.after_backward = after_backward
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.optimizer = make_optimizer(self.model, config)
        self.history: list[dict[str, Any]] = []
        self.best_state: dict[str, torch.Tensor] | None = None
        self.best_epoch = -1

    def train_epoch(self, train: RatingsCSR, batches: list[np.ndarray], epoch: int) -> float:
        """One pass of CD-k over ``batches`` (row positions of ``train``); mean training loss.

        The loss reported is the mean NLL of the training ratings' states under the mean-field
        reconstruction, measured on each batch before its update.
        """
        config = self.config
        k = config.cd_k(epoch)
        generator = epoch_generator(config.seed, epoch, self.device)
        for group in self.optimizer.param_groups:
            group["lr"] = config.lr * config.lr_decay**epoch
        order = epoch_batch_order(config.seed, epoch, len(batches))
        total, count = 0.0, 0
        bar = tqdm(
            order,
            desc=f"epoch {epoch + 1}",
            unit="batch",
            leave=False,
            disable=not sys.stderr.isatty(),
        )
        self.model.train()
        for b in bar:
            batch = to_batch(train.take(batches[b]), self.device)
            with torch.no_grad():
                total += float(self.reconstruction_nll(batch).sum())
                count += batch.nnz
            self.optimizer.zero_grad(set_to_none=True)
            self.model.cd_loss(batch, k, generator).backward()
            if self.after_backward is not None:
                self.after_backward(self.model)
            self.optimizer.step()
        self.model.eval()
        return total / max(count, 1)

    def reconstruction_nll(self, batch) -> torch.Tensor:
        """(nnz,) -log p(v_i = data state | mean-field h of the same ratings)."""
        model = self.model
        logits = model.visible_logits(model.hidden_probs(batch), batch, model.batch_offsets(batch))
        states = model.states_of(batch.ratings)
        return -torch.log_softmax(logits, -1).gather(1, states.unsqueeze(1)).squeeze(1)

    def fit(
        self,
        train: RatingsCSR,
        batches: list[np.ndarray],
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
        for epoch in range(start_epoch, config.epochs):
            start = time.perf_counter()
            loss = self.train_epoch(train, batches, epoch)
            if not math.isfinite(loss) or not self.weights_finite():
                raise FloatingPointError(
                    f"training diverged at epoch {epoch + 1} (loss {loss}); lower the learning "
                    f"rate (now {config.lr})"
                )
            record: dict[str, Any] = {
                "epoch": epoch + 1,
                "cd_k": config.cd_k(epoch),
                "train_loss": loss,
                "seconds": time.perf_counter() - start,
            }
            if validation is not None:
                record["val"] = heldout_metrics(self.model, *validation, self.device)
            if test is not None:
                record["test"] = heldout_metrics(self.model, *test, self.device)
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

    def weights_finite(self) -> bool:
        return all(bool(torch.isfinite(p).all()) for p in self.model.parameters())

    def _is_best(self, record: dict[str, Any]) -> bool:
        if "val" not in record:
            return True
        best = min((selection_metric(r) for r in self.history[:-1]), default=math.inf)
        return selection_metric(record) < best

    def _log_epoch(self, record: dict[str, Any]) -> None:
        parts = [
            f"epoch {record['epoch']}/{self.config.epochs}",
            f"CD-{record['cd_k']}",
            f"train loss {record['train_loss']:.4f}",
        ]
        for split in ("val", "test"):
            for name, value in record.get(split, {}).items():
                parts.append(f"{split} {name} {value:.4f}")
        parts.append(f"{record['seconds']:.1f} s")
        log.info(", ".join(parts))
