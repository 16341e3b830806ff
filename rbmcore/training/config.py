"""The training configuration: the single home of every default of a training run.

``KIND_DEFAULTS`` and ``ITEM_DEFAULTS`` hold the model hyperparameters per kind, chosen on the
validation split carved from u1.base (never on a test file; docs/models.md); ``TrainConfig``
is the ``[train]`` table of a run; ``JobSettings`` holds the ``[train]`` keys that say how the
job runs the training (where, on how much data) rather than what model it trains.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from rbmcore.models.factory import KINDS

# Per-kind defaults of the model hyperparameters. ``hybrid`` trains a ``rated`` sub-model
# and a ``like_kind`` sub-model, each with its own kind's defaults.
KIND_DEFAULTS: dict[str, dict[str, Any]] = {
    "binary": {
        "n_hidden": 100,
        "epochs": 40,
        "lr": 0.1,
        "weight_decay": 1e-2,
        "lr_decay": 0.97,
        "cd_schedule": [[0, 1], [15, 3], [25, 5]],
        # two-way RBMs averaged (models/ensemble.py); u1.base validation, seeds 0-2: like NLL
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
        "item_based": True,
        # dense CD over the catalogue up to AUTO_DENSE_UNITS visible units, stochastic ratio
        # matching (cost per rating) above; unrated units drawn per rated one by the latter
        "estimator": "auto",
        "unrated_per_rating": 1.0,
    },
}
# The item-based way of a two-way model (``item_based = true``; models/twoway.py): an RBM of the
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
RATED_ONLY = ("estimator", "unrated_per_rating")  # a hybrid's settings its rated part alone takes
# ``item_based = "auto"``: train the item-based way unless dense CD trains it over more than
# this many training users x catalogue items (a dense item-based rated RBM reconstructs every
# user for every item of a batch: about 1.6M cells on MovieLens 100k, 22M on ml-1m).
AUTO_ITEM_CELLS = 10_000_000
# ``estimator = "auto"`` (rated RBMs): dense CD up to this many visible units, stochastic ratio
# matching above. Dense CD costs visible units x hidden per training row, ratio matching its
# rated and sampled units x hidden (docs/models.md, "How the rated RBM is trained").
AUTO_DENSE_UNITS = 10_000
ESTIMATORS = ("auto", "cd", "srm")


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
    n_models: int | None = None  # RBMs averaged (an ensemble; models/ensemble.py, models/rated.py)
    members: list[dict[str, Any]] | None = None  # per-member overrides (the refit's epochs)
    sub_batches: int | None = None  # each ingest batch is cut into this many updates
    val_fraction: float = 0.1  # per-user holdout carved from the training data
    patience: int = 6  # epochs without validation improvement before stopping
    refit: bool = True  # after the validation choices, retrain on all ratings (refit.py)
    seed: int = 42
    device: str = "auto"
    like_kind: str = "binary"  # hybrid: the like sub-model's kind ("softmax" adds pred_rating)
    item_based: bool | str | None = None  # also an item-based RBM (a two-way model); or "auto"
    item_batch: int = 20  # items per update of the item-based way
    estimator: str | None = None  # rated RBMs: "cd" (dense), "srm" (ratio matching) or "auto"
    unrated_per_rating: float | None = None  # "srm": unrated units drawn per rated one
    item: dict[str, Any] = field(default_factory=dict)  # overrides for the item-based way
    rated: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the rated part
    like: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the like part

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown model kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.kind in KIND_DEFAULTS:
            for name, value in KIND_DEFAULTS[self.kind].items():
                if getattr(self, name) is None:
                    setattr(self, name, _copy(value))
        if self.item_based not in (None, True, False, "auto"):
            raise ValueError(f'item_based must be true, false or "auto", got {self.item_based!r}')
        if self.estimator not in (None, *ESTIMATORS):
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.estimator == "srm" and self.kind not in ("rated", "hybrid"):
            raise ValueError(
                f'estimator = "srm" trains rated RBMs only, not {self.kind!r} (for a hybrid\'s '
                "rated part: [train.rated] estimator)"
            )
        if self.unrated_per_rating is not None and not float(self.unrated_per_rating) > 0:
            raise ValueError(f"unrated_per_rating must be > 0, got {self.unrated_per_rating}")

    def estimator_for(self, n_units: int) -> str:
        """How an RBM of this config with ``n_units`` visible units is trained: "cd" or "srm"
        ("auto": dense CD up to ``AUTO_DENSE_UNITS`` units; kinds other than rated: "cd")."""
        if self.kind != "rated" or self.estimator in (None, "cd"):
            return "cd"
        if self.estimator == "auto":
            return "srm" if n_units > AUTO_DENSE_UNITS else "cd"
        return self.estimator

    def wants_item_way(self, n_users: int, n_items: int) -> bool:
        """Whether to train an item-based way for ``n_users`` x ``n_items`` training data
        ("auto": unless dense CD would train it over more than ``AUTO_ITEM_CELLS`` cells)."""
        if self.item_based == "auto":
            dense = self.item_way().estimator_for(n_users) == "cd"
            return not dense or n_users * n_items <= AUTO_ITEM_CELLS
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
        own = ("like_kind",) if name == "rated" else ("like_kind", *RATED_ONLY)
        shared = {k: v for k, v in asdict(self).items() if k not in (*HYBRID_PARTS, "kind")}
        shared = {k: v for k, v in shared.items() if v is not None and k not in own}
        return TrainConfig(kind=kind, **{**shared, **getattr(self, name)})

    def item_way(self) -> TrainConfig:
        """The config of a two-way model's item-based way: ``ITEM_DEFAULTS`` of the kind,
        then the ``item`` table; seed, device, momentum, validation carve and (rated) the
        estimator settings shared."""
        if self.kind not in ITEM_DEFAULTS:
            raise ValueError(f"kind {self.kind!r} has no item-based way")
        keys = ("momentum", "val_fraction", "seed", "device", *RATED_ONLY)
        shared = {k: getattr(self, k) for k in keys}
        settings = {"n_models": 1, "sub_batches": 1}
        settings.update({k: _copy(v) for k, v in ITEM_DEFAULTS[self.kind].items()})
        settings.update({**self.item, "item_based": False})
        return TrainConfig(kind=self.kind, item_batch=self.item_batch, **{**shared, **settings})

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def without_item_ways(config: TrainConfig) -> TrainConfig:
    """``config`` with ``item_based`` off, for a hybrid's parts too."""
    return replace(
        config,
        item_based=False,
        rated={k: v for k, v in config.rated.items() if k != "item_based"},
        like={k: v for k, v in config.like.items() if k != "item_based"},
    )


def _copy(value: Any) -> Any:
    return [list(x) for x in value] if isinstance(value, list) else value


DEFAULT_EVAL_USERS = 20_000  # users a run validates and reports on (train.eval_users)
CACHE_MODES = ("auto", "memory", "stream")
DEFAULT_DISTRIBUTED_TIMEOUT_S = 1800.0  # one collective (or joining the group) waits this long


@dataclass(frozen=True)
class JobSettings:
    """The ``[train]`` keys the train job reads itself, not the model's: ``distributed`` (data-
    parallel training processes on the executors; 0 = on the driver), ``distributed_gpu``
    (true, false or "auto": the executors were given GPUs), ``distributed_timeout_s`` (one
    collective's limit), ``cache`` (how the training data are held: auto, memory, stream),
    ``cache_budget_mb`` (auto streams above it), ``eval_users`` (validation and the per-epoch
    test report on at most this many users; 0 = all)."""

    distributed: int = 0
    distributed_gpu: bool | str = "auto"
    distributed_timeout_s: float = DEFAULT_DISTRIBUTED_TIMEOUT_S
    cache: str = "auto"
    cache_budget_mb: float = 2048.0
    eval_users: int = DEFAULT_EVAL_USERS

    def __post_init__(self) -> None:
        if int(self.distributed) < 0:
            raise ValueError(f"distributed must be >= 0 processes, got {self.distributed}")
        if not float(self.distributed_timeout_s) > 0:
            raise ValueError(
                f"distributed_timeout_s must be > 0 seconds, got {self.distributed_timeout_s}"
            )
        if self.cache not in CACHE_MODES:
            raise ValueError(f"cache must be one of {CACHE_MODES}, got {self.cache!r}")
        if not float(self.cache_budget_mb) > 0:
            raise ValueError(f"cache_budget_mb must be > 0, got {self.cache_budget_mb}")
        if int(self.eval_users) < 0:
            raise ValueError(f"eval_users must be >= 0 (0 = all users), got {self.eval_users}")


def settings_from_table(table: dict[str, Any]) -> tuple[TrainConfig, JobSettings]:
    """The ``[train]`` table as (TrainConfig, JobSettings). Raises ``ValueError`` naming an
    unknown key or a bad value."""
    config_keys = {f.name for f in dataclasses.fields(TrainConfig)}
    job_keys = {f.name for f in dataclasses.fields(JobSettings)}
    unknown = sorted(set(table) - config_keys - job_keys)
    if unknown:
        raise ValueError(
            f"unknown [train] settings: {', '.join(unknown)}; known: "
            f"{sorted(config_keys | job_keys)}"
        )
    config = TrainConfig(**{k: v for k, v in table.items() if k in config_keys})
    job = JobSettings(**{k: v for k, v in table.items() if k in job_keys})
    return config, job
