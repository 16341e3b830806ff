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
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from rbmcore import metrics
from rbmcore.data import LIKE_THRESHOLD, RatingsCSR, to_batch
from rbmcore.scoring import predict_csr, recommend_csr

log = logging.getLogger("rbm-reco.train")


# Per-kind defaults of the model hyperparameters, chosen on the validation split carved from
# u1.base (never on a test file); see BENCHMARKS.md. ``hybrid`` trains a ``rated`` sub-model
# and a ``like_kind`` sub-model, each with its own kind's defaults.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "binary": {
        "n_hidden": 100,
        "epochs": 40,
        "lr": 0.1,
        "weight_decay": 1e-2,
        "lr_decay": 0.97,
        "cd_schedule": [[0, 1], [15, 3], [25, 5]],
        # two-way RBMs averaged (rbmcore.ensemble); u1.base validation, seeds 0-2: like NLL
        # 0.3559 / AUC 0.820 averaged vs 0.3582 / 0.818 per member (bench/like_validation.py)
        "n_models": 3,
        "sub_batches": 1,
        "item_based": True,
    },
    "softmax": {
        "n_hidden": 100,
        "epochs": 40,
        "lr": 0.1,
        "weight_decay": 1e-2,
        "lr_decay": 0.97,
        "cd_schedule": [[0, 1], [15, 3], [25, 5]],
        "n_models": 1,
        "sub_batches": 1,
        "item_based": True,
    },
    "rated": {
        "n_hidden": 200,
        "epochs": 60,
        "lr": 0.05,
        "weight_decay": 1e-2,
        "lr_decay": 1.0,
        "cd_schedule": [[0, 1]],
        # RBMs averaged; u1 validation nDCG@10: 0.190 (1), 0.212 (3), 0.217 (5), 0.220 (10)
        "n_models": 5,
        "sub_batches": 2,
        "item_based": "auto",
    },
}
# The item-based part of a two-way model (``item_based = true``; rbmcore.twoway): an RBM of the
# same kind over the transposed ratings, batches of ``item_batch`` items. Chosen on the u1.base
# validation split like KIND_DEFAULTS (BENCHMARKS.md); ``[train.item]`` overrides them.
_ITEM_SOFTMAX: dict[str, Any] = {
    "n_hidden": 100,
    "epochs": 150,
    "lr": 0.01,
    "weight_decay": 1e-4,
    "lr_decay": 1.0,
    "cd_schedule": [[0, 1]],
}
ITEM_DEFAULTS: dict[str, dict[str, Any]] = {
    "binary": dict(_ITEM_SOFTMAX),  # the softmax part's settings, not tuned separately
    "softmax": _ITEM_SOFTMAX,
    "rated": {
        "n_hidden": 200,
        "epochs": 150,
        "lr": 0.05,
        "weight_decay": 1e-2,
        "lr_decay": 1.0,
        "cd_schedule": [[0, 1]],
        "patience": 15,
        # u1 hybrid validation nDCG@10, mean of seeds 1 and 2, by item-based RBMs x hidden:
        # 3 x 100: 0.2326, 3 x 200: 0.2336, 5 x 200: 0.2353 (seed 42: 1 x 100 0.2343)
        "n_models": 5,
    },
}
HYBRID_PARTS = ("rated", "like")
# ``item_based = "auto"``: train the item-based part when the training users x catalogue items
# are at most this many cells. A rated item-based RBM is dense over the users (every update
# reconstructs all of them), so its cost grows with users x items: about 1.6M cells on
# MovieLens 100k (on), 22M on ml-1m (off: it would take longer than everything else).
AUTO_ITEM_CELLS = 10_000_000


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    Model hyperparameters left ``None`` take the kind's tuned defaults (``KIND_DEFAULTS``).
    For ``kind = "hybrid"`` a value given here applies to both sub-models, and the tables
    ``rated`` / ``like`` (``[train.rated]``, ``[train.like]`` in TOML) override one of them.
    """

    kind: str = "hybrid"
    n_hidden: int | None = None
    epochs: int | None = None
    lr: float | None = None
    momentum: float = 0.9
    weight_decay: float | None = None
    lr_decay: float | None = None  # multiplied into the learning rate after every epoch
    cd_schedule: list[list[int]] | None = None  # [[from_epoch, k], ...]
    n_models: int | None = None  # RBMs averaged (an ensemble; rbmcore.ensemble, rbmcore.rated)
    members: list[dict[str, Any]] | None = None  # per-member overrides (the refit's epochs)
    sub_batches: int | None = None  # each ingest batch is cut into this many updates
    val_fraction: float = 0.1  # per-user holdout carved from the training data
    patience: int = 6  # epochs without validation improvement before stopping
    refit: bool = True  # after the validation choices, retrain on all ratings (rbmcore.refit)
    seed: int = 42
    device: str = "auto"
    like_kind: str = "binary"  # hybrid: the like sub-model's kind ("softmax" adds pred_rating)
    item_based: bool | str | None = None  # also an item-based RBM (rbmcore.twoway); or "auto"
    item_batch: int = 20  # items per update of the item-based part
    item: dict[str, Any] = field(default_factory=dict)  # overrides for the item-based part
    rated: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the rated part
    like: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the like part

    def __post_init__(self) -> None:
        if self.kind in KIND_DEFAULTS:
            for name, value in KIND_DEFAULTS[self.kind].items():
                if getattr(self, name) is None:
                    setattr(self, name, _copy(value))
        if self.item_based not in (None, True, False, "auto"):
            raise ValueError(f'item_based must be true, false or "auto", got {self.item_based!r}')

    def wants_item_part(self, n_users: int, n_items: int) -> bool:
        """Whether to train an item-based part for ``n_users`` x ``n_items`` training data."""
        if self.item_based == "auto":
            return n_users * n_items <= AUTO_ITEM_CELLS
        return bool(self.item_based)

    def cd_k(self, epoch: int) -> int:
        """CD steps at ``epoch`` (0-based) from the schedule [[from_epoch, k], ...]."""
        k = 1
        for start, steps in sorted(self.cd_schedule or []):
            if epoch >= start:
                k = steps
        return k

    def part(self, name: str) -> TrainConfig:
        """The config of a hybrid's sub-model ``name`` ("rated" or "like")."""
        if name not in HYBRID_PARTS:
            raise ValueError(f"unknown hybrid part {name!r}; expected one of {HYBRID_PARTS}")
        kind = "rated" if name == "rated" else self.like_kind
        shared = {k: v for k, v in asdict(self).items() if k not in (*HYBRID_PARTS, "kind")}
        shared = {k: v for k, v in shared.items() if v is not None and k != "like_kind"}
        return TrainConfig(kind=kind, **{**shared, **getattr(self, name)})

    def item_part(self) -> TrainConfig:
        """The config of a two-way model's item-based part: ``ITEM_DEFAULTS`` of the kind,
        then the ``item`` table; seed, device, momentum and validation carve shared."""
        if self.kind not in ITEM_DEFAULTS:
            raise ValueError(f"kind {self.kind!r} has no item-based part")
        shared = {k: getattr(self, k) for k in ("momentum", "val_fraction", "seed", "device")}
        settings = {"n_models": 1, "sub_batches": 1}
        settings.update({k: _copy(v) for k, v in ITEM_DEFAULTS[self.kind].items()})
        settings.update({**self.item, "item_based": False})
        return TrainConfig(kind=self.kind, item_batch=self.item_batch, **shared, **settings)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def without_item_parts(config: TrainConfig) -> TrainConfig:
    """``config`` with ``item_based`` off, for a hybrid's parts too."""
    return replace(
        config,
        item_based=False,
        rated={k: v for k, v in config.rated.items() if k != "item_based"},
        like={k: v for k, v in config.like.items() if k != "item_based"},
    )


def _copy(value: Any) -> Any:
    return [list(x) for x in value] if isinstance(value, list) else value


def epoch_generator(seed: int, epoch: int, device: torch.device) -> torch.Generator:
    """The torch generator of one epoch: a pure function of (seed, epoch)."""
    return torch.Generator(device=device).manual_seed(seed * 1_000_003 + epoch)


def epoch_batch_order(seed: int, epoch: int, n_batches: int) -> np.ndarray:
    """The order batches are visited in during ``epoch``: a pure function of (seed, epoch)."""
    return np.random.default_rng([seed, epoch]).permutation(n_batches)


def make_optimizer(model: torch.nn.Module, config: TrainConfig) -> torch.optim.SGD:
    """SGD with momentum; weight decay on the weights only, not on the biases. Fused: one
    kernel per parameter instead of one per term of the update (CPU and CUDA have it)."""
    decay = [p for name, p in model.named_parameters() if name == "W"]
    no_decay = [p for name, p in model.named_parameters() if name != "W"]
    return torch.optim.SGD(
        [
            {"params": decay, "weight_decay": config.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=config.lr,
        momentum=config.momentum,
        fused=True,
    )


RANKING_KINDS = ("rated", "hybrid")  # models judged by how they rank unseen items
RANKING_K = 10


def is_ranking_model(model) -> bool:
    return getattr(model, "kind", "") in RANKING_KINDS


@torch.no_grad()
def ranking_quality(
    model, context: RatingsCSR, target: RatingsCSR, device: torch.device, k: int = RANKING_K
) -> dict[str, float]:
    """P@k, R@k, nDCG@k, MAP@k of the model's top-k unseen items (``context`` = what the users
    are known to have rated) against ``target`` (their held-out items, any rating)."""
    recs = recommend_csr(model, context, k, device)
    return ranking_quality_of(recs.user_ids, recs.items, recs.ranks, target, k)


def ranking_quality_of(
    user_ids: np.ndarray, items: np.ndarray, ranks: np.ndarray, target: RatingsCSR, k: int
) -> dict[str, float]:
    """``ranking_quality``'s numbers from recommendations already made, (n,) each."""
    rel_users = np.repeat(target.user_ids, target.row_lengths())
    out = metrics.ranking_metrics(user_ids, items, ranks, rel_users, target.items, k)
    out.pop("n_users", None)
    return out


@torch.no_grad()
def heldout_metrics(
    model, context: RatingsCSR, target: RatingsCSR, device: torch.device
) -> dict[str, float]:
    """Held-out quality: for ranking models (``rated``, ``hybrid``) the top-10 ranking metrics
    (early stopping maximises nDCG@10); for like/rating models the negative log-likelihood of
    the held-out likes, like error (per-user, DESIGN section 5), AUC of p_like and, for
    rating models, RMSE."""
    if target.nnz == 0:
        return {}
    if is_ranking_model(model):
        return ranking_quality(model, context, target, device)
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
    """The validation number early stopping minimises: -nDCG@10 for ranking models, RMSE for
    rating models, else the like NLL."""
    val = record.get("val", {})
    if "ndcg" in val:
        return -val["ndcg"]
    return val.get("rmse", val.get("like_nll", math.inf))


def best_epoch_settings(best_epoch: int) -> dict[str, Any]:
    """Config overrides that retrain a model on all ratings: its best epoch count."""
    return {"epochs": max(best_epoch, 1)}


def split_batches(batches: list[np.ndarray], parts: int) -> list[np.ndarray]:
    """Each batch (row positions) cut into ``parts`` consecutive pieces (none empty)."""
    if parts <= 1:
        return batches
    return [piece for b in batches for piece in np.array_split(b, parts) if len(piece)]


class Trainer:
    """Runs CD epochs over fixed user batches, tracks validation and keeps the best weights."""

    def __init__(
        self,
        model: torch.nn.Module,
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
        # ``batches``: row positions of ``train``, or a source that yields the batches' CSR
        # rows itself in a given order (jobs.ingested.StreamingBatches: ``len`` + ``epoch``)
        if hasattr(batches, "epoch"):
            rows = batches.epoch(order)
        else:
            rows = (train.take(batches[b]) for b in order)
        bar = tqdm(
            rows,
            total=len(order),
            desc=f"epoch {epoch + 1}",
            unit="batch",
            leave=False,
            disable=not sys.stderr.isatty(),
        )
        self.model.train()
        for part in bar:
            batch = to_batch(part, self.device)
            self.optimizer.zero_grad(set_to_none=True)
            loss, nll = self.cd_loss_and_nll(batch, k, generator)
            total += float(nll.sum())
            count += nll.numel()
            loss.backward()
            if self.after_backward is not None:
                self.after_backward(self.model)
            self.optimizer.step()
        self.model.eval()
        return total / max(count, 1)

    def cd_loss_and_nll(
        self, batch, k: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The model's CD-k loss of ``batch`` and (n,) the NLL of its ratings under the
        mean-field reconstruction before the update: in one pass where the model has
        ``cd_loss_and_nll``, else by its ``reconstruction_nll``."""
        model = self.model
        if hasattr(model, "cd_loss_and_nll"):
            return model.cd_loss_and_nll(batch, k, generator)
        with torch.no_grad():
            nll = model.reconstruction_nll(batch)
        return model.cd_loss(batch, k, generator), nll

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
                "cd_k": config.cd_k(epoch),
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

    def refit_settings(self) -> dict[str, Any]:
        return best_epoch_settings(self.best_epoch)

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


class PartsTrainer:
    """Common state of trainers whose model is trained in named parts one after another
    (``HybridTrainer``, ``TwoWayTrainer``): each part checkpoints to ``checkpoint_dir/<part>``
    and ``resume`` continues as ``rbmcore.checkpoint.fit_resumable`` does. ``best_epoch`` is
    that of the part named ``MAIN_PART``."""

    MAIN_PART = ""

    def __init__(
        self,
        model: torch.nn.Module,
        config: TrainConfig,
        device: torch.device,
        after_backward: Callable[[torch.nn.Module], None] | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
    ) -> None:
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.after_backward = after_backward
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.history: list[dict[str, Any]] = []
        self.best_epochs: dict[str, int] = {}
        self.part_settings: dict[str, dict[str, Any]] = {}  # each part's refit_settings()
        # False inside a hybrid / ensemble, whose trainer computes the two-way item states from
        # all training ratings itself, after its own validation choices (``use_all_ratings``)
        self.use_all_ratings = True

    @property
    def best_epoch(self) -> int:
        return self.best_epochs.get(self.MAIN_PART, -1)

    def refit_settings(self) -> dict[str, Any]:
        """Config overrides that retrain every part on all ratings for its best epoch count."""
        raise NotImplementedError

    def part_folder(self, part: str) -> Path | None:
        """Where part ``part`` checkpoints (None without a checkpoint folder)."""
        return self.checkpoint_dir / part if self.checkpoint_dir is not None else None

    def fit_part(
        self, name: str, trainer: Any, label: str, tag: dict[str, Any], **fit_args: Any
    ) -> Any:
        """Train ``trainer`` as part ``name`` (``fit_args``: its ``fit`` arguments): a
        ``PartsTrainer`` (a two-way or ensemble part) with its own per-part checkpoints and
        without its last ``use_all_ratings`` step (this trainer's owner takes it), a plain
        ``Trainer`` through ``fit_resumable`` in ``part_folder(name)``. Records the part's best
        epoch, refit settings and history (each record tagged with ``tag``)."""
        from rbmcore.checkpoint import fit_resumable

        if isinstance(trainer, PartsTrainer):
            trainer.use_all_ratings = False
            trainer.fit(**fit_args)
        else:
            fit_resumable(trainer, self.part_folder(name), self.resume, label, **fit_args)
        self.best_epochs[name] = trainer.best_epoch
        self.part_settings[name] = trainer.refit_settings()
        self.history += [{**record, **tag} for record in trainer.history]
        return trainer
