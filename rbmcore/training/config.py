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

from rbmcore.models.blend import blended_kinds
from rbmcore.models.factory import KINDS, RBM_MACHINES, check_part_kinds, is_known_kind

# AutoRec's settings, user-based and item-based alike (KIND_DEFAULTS, ITEM_DEFAULTS)
_AUTOREC: dict[str, Any] = {
    "n_hidden": 500,
    "epochs": 60,
    "lr": 1e-3,
    "weight_decay": 0.08,
    "lr_decay": 1.0,
    "like_slope": 2.0,
    "dropout": 0.0,
}
# Per-kind defaults of the model hyperparameters. The hybrid kinds (``HYBRID_PRESETS``) train a
# ranking part of kind ``rated_kind`` and a like part of kind ``like_kind``, each with its own
# kind's defaults; a blend kind (``binary+autorec``) trains each machine with its own.
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
        # the item-based way unless dense CD would train it over more than AUTO_ITEM_CELLS
        # cells (on at u1 and ml-25m sizes, off at ml-1m's: wants_item_way)
        "item_based": "auto",
        # dense CD over the catalogue up to AUTO_DENSE_UNITS visible units, stochastic ratio
        # matching (cost per rating) above; unrated units drawn per rated one by the latter
        "estimator": "auto",
        "unrated_per_rating": 1.0,
    },
    # AutoRec (models/autoencoder.py), chosen on the u1.base validation carve (seed 42): user-
    # based and item-based (I-AutoRec, ITEM_DEFAULTS) blended, RMSE 0.891 (item-based alone
    # 0.907, user-based 0.970); Adam, weight decay = the L2 penalty (0.04-0.2: 0.889-0.901)
    "autorec": {**_AUTOREC, "n_models": 1, "sub_batches": 1, "item_based": True},
    # the which-movies autoencoder (models/autoencoder.py), u1.base validation carve (seed 42):
    # nDCG@10 0.216 (denoising, 600 units, weight decay 0.02) vs 0.208 (weight decay 0.01)
    "multvae": {
        "n_hidden": 600,
        "epochs": 200,
        "lr": 1e-3,
        "weight_decay": 0.02,
        "lr_decay": 1.0,
        "n_models": 1,
        "sub_batches": 1,
        "item_based": False,
        "encoder_hidden": 0,
        "variational": False,
        "dropout": 0.5,
        "beta": 0.2,
        "anneal_epochs": 50,
        "patience": 20,
    },
}
# The hybrid kinds: which machine answers "which movies" (``rated_kind``) and which "will they
# like it" (``like_kind``), and the parts' settings (``[train.rated]``, ``[train.like]``
# override them). ``dbn``: deep belief nets over the rated and the like RBMs (models/dbn.py);
# ``autoencoder``: the which-movies autoencoder and AutoRec.
HYBRID_PRESETS: dict[str, dict[str, Any]] = {
    # like part: the 3 binary RBMs (the blend with AutoRec, "binary+autorec", is a choice:
    # bench/selection.py compares them on validation)
    "hybrid": {"rated_kind": "rated", "like_kind": "binary", "rated": {}, "like": {}},
    "dbn": {
        "rated_kind": "rated",
        "like_kind": "binary",
        "rated": {"layers": [100], "n_models": 1, "item_based": False},
        "like": {"layers": [50], "n_models": 1, "item_based": False},
    },
    "autoencoder": {"rated_kind": "multvae", "like_kind": "autorec", "rated": {}, "like": {}},
}
# The layers a deep belief net stacks on its RBM (``layers``): how each is trained (CD-k on the
# mean-field activations below it); ``[train.layer]`` overrides them (``epochs`` may be a list,
# one per layer). u1.base validation carve.
LAYER_DEFAULTS: dict[str, Any] = {
    "epochs": 30,
    "lr": 0.05,
    "weight_decay": 1e-3,
    "lr_decay": 1.0,
    "cd_schedule": [[0, 1]],
}
# model hyperparameters a kind's constructor takes beyond its sizes (models/factory.py)
MODEL_PARAMS: dict[str, tuple[str, ...]] = {
    "autorec": ("like_slope", "dropout"),
    "multvae": ("encoder_hidden", "variational", "dropout", "beta", "anneal_epochs"),
}
DEFAULT_PATIENCE = 6  # epochs without validation improvement before stopping
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
    "autorec": dict(_AUTOREC),  # I-AutoRec: a case per item, the training users its units
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


# Integer settings that size or seed a run, and their ranges: a value outside is refused, not
# clipped (a mistyped n_hidden would otherwise allocate without bound).
SETTING_RANGES: dict[str, tuple[int, int]] = {
    "n_hidden": (1, 100_000),
    "epochs": (1, 100_000),
    "n_models": (1, 1_000),
    "sub_batches": (1, 100_000),
    "item_batch": (1, 10_000_000),
    "patience": (0, 100_000),
    "seed": (0, 2**31 - 1),
}
MAX_LR = 1_000.0


def check_ranges(settings: dict[str, Any]) -> None:
    """``SETTING_RANGES`` and a positive, finite learning rate, for the settings given."""
    for name, (low, high) in SETTING_RANGES.items():
        value = settings.get(name)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high
        ):
            raise ValueError(f"{name} must be an integer within [{low}, {high}], got {value!r}")
    lr = settings.get("lr")
    if lr is not None and (
        isinstance(lr, bool) or not isinstance(lr, int | float) or not 0 < lr <= MAX_LR
    ):
        raise ValueError(f"lr must be a number within (0, {MAX_LR:g}], got {lr!r}")


@dataclass
class TrainConfig:
    """Hyperparameters of one training run.

    Model hyperparameters left ``None`` take the kind's tuned defaults (``KIND_DEFAULTS``).
    For the hybrid kinds (``hybrid``, ``dbn``, ``autoencoder``) a value given here applies to
    both sub-models, and the tables ``rated`` / ``like`` (``[train.rated]``, ``[train.like]``
    in TOML) override one of them; likewise for the machines of a blend kind
    (``binary+autorec``), with ``members`` (one table per machine) overriding one.
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
    patience: int | None = None  # epochs without validation improvement before stopping
    refit: bool = True  # after the validation choices, retrain on all ratings (refit.py)
    seed: int = 42
    device: str = "auto"
    rated_kind: str | None = None  # hybrid kinds: the ranking part's kind (rated, multvae)
    like_kind: str | None = None  # hybrid kinds: the like part's kind ("softmax" adds ratings)
    # the softmax kind's visible states: 0 = one per level of the rating scale (10 on half
    # stars), N = the levels merged into N (rbmcore.data.scale.rating_states; docs/models.md)
    softmax_states: int = 0
    item_based: bool | str | None = None  # also an item-based RBM (a two-way model); or "auto"
    item_batch: int = 20  # items per update of the item-based way
    estimator: str | None = None  # rated RBMs: "cd" (dense), "srm" (ratio matching) or "auto"
    unrated_per_rating: float | None = None  # "srm": unrated units drawn per rated one
    item: dict[str, Any] = field(default_factory=dict)  # overrides for the item-based way
    rated: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the rated part
    like: dict[str, Any] = field(default_factory=dict)  # hybrid: overrides for the like part
    layers: list[int] | None = None  # deep belief net: hidden units of the layers above the RBM
    layer: dict[str, Any] = field(default_factory=dict)  # overrides for those layers' training
    like_slope: float | None = None  # autorec: P(like) = sigmoid(slope x (rating - 2.5))
    dropout: float | None = None  # autoencoders: input entries dropped while training
    encoder_hidden: int | None = None  # multvae: tanh units between the input and the code
    variational: bool | None = None  # multvae: a Gaussian code (Mult-VAE), else Mult-DAE
    beta: float | None = None  # multvae, variational: the KL term's weight
    anneal_epochs: int | None = None  # multvae, variational: epochs to raise it from 0

    def __post_init__(self) -> None:
        if not is_known_kind(self.kind):
            raise ValueError(
                f"unknown model kind {self.kind!r}; choose one of {', '.join(KINDS)}, or a "
                "blend of two machines of one question (e.g. binary+autorec)"
            )
        if self.kind in HYBRID_PRESETS:  # the parts fill in their own kinds' defaults
            preset = HYBRID_PRESETS[self.kind]
            defaults = {"rated_kind": preset["rated_kind"], "like_kind": preset["like_kind"]}
            self.rated = {**_copy(preset["rated"]), **self.rated}
            self.like = {**_copy(preset["like"]), **self.like}
        elif len(blended_kinds(self.kind)) > 1:  # so do the machines of a blend
            defaults = {}
        else:
            defaults = {"patience": DEFAULT_PATIENCE, **KIND_DEFAULTS[self.kind]}
        for name, value in defaults.items():
            if getattr(self, name) is None:
                setattr(self, name, _copy(value))
        if self.item_based not in (None, True, False, "auto"):
            raise ValueError(f'item_based must be true, false or "auto", got {self.item_based!r}')
        check_ranges(asdict(self))
        if self.estimator not in (None, *ESTIMATORS):
            raise ValueError(f"estimator must be one of {ESTIMATORS}, got {self.estimator!r}")
        if self.estimator == "srm" and not self.has_rated_rbm():
            raise ValueError(
                f'estimator = "srm" trains rated RBMs only, not {self.kind!r} (for a hybrid\'s '
                "rated part: [train.rated] estimator)"
            )
        if self.unrated_per_rating is not None and not float(self.unrated_per_rating) > 0:
            raise ValueError(f"unrated_per_rating must be > 0, got {self.unrated_per_rating}")

        self._check_structure()

    def _check_structure(self) -> None:
        """Raise ``ValueError`` for parts of the wrong question, layers on a machine that is
        not an RBM, and (through their own configs) bad values in the part tables."""
        if self.kind in HYBRID_PRESETS:
            check_part_kinds(self.rated_kind, self.like_kind)
            for name in HYBRID_PARTS:
                self.part(name)
        elif len(blended_kinds(self.kind)) > 1:
            if self.members is not None and len(self.members) != 2:
                raise ValueError(f"a blend's members are its 2 machines, got {len(self.members)}")
            for m in range(2):
                self.blend_member(m)
        elif self.layers and self.kind not in RBM_MACHINES:
            raise ValueError(f"layers stack RBMs on an RBM kind, not on {self.kind!r}")

    def model_params(self) -> dict[str, Any]:
        """The constructor's hyperparameters beyond the sizes and the rating scale:
        ``MODEL_PARAMS`` of the kind, the softmax kind's ``states``, and ``layers`` of an RBM
        made a deep belief net."""
        params = {name: getattr(self, name) for name in MODEL_PARAMS.get(self.kind, ())}
        if self.kind == "softmax":
            params["states"] = self.softmax_states
        if self.layers:
            params["layers"] = list(self.layers)
        return params

    def has_rated_rbm(self) -> bool:
        """Whether the model has a rated RBM to train: the rated kind, a blend with it, or a
        hybrid kind (whose ranking part may be one)."""
        return self.kind in HYBRID_PRESETS or "rated" in blended_kinds(self.kind)

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
        kind = self.rated_kind if name == "rated" else self.like_kind
        return TrainConfig(kind=kind, **{**self._shared(kind), **getattr(self, name)})

    def blend_member(self, m: int) -> TrainConfig:
        """The config of machine ``m`` (0-based) of a blend kind: its kind's defaults, the
        values set here, then its ``members[m]`` table."""
        own = self.members[m] if self.members else {}
        kind = blended_kinds(self.kind)[m]
        return TrainConfig(kind=kind, **{**self._shared(kind), **own})

    def _shared(self, kind: str) -> dict[str, Any]:
        """The values set here that a hybrid's part or a blend's machine of ``kind`` shares:
        every one but the kind, the part kinds, the part and member tables, and the rated
        RBM's estimator settings for a part without a rated RBM."""
        own = (*HYBRID_PARTS, "kind", "rated_kind", "like_kind", "members")
        if kind not in HYBRID_PRESETS and "rated" not in blended_kinds(kind):
            own = (*own, *RATED_ONLY)
        return {k: v for k, v in asdict(self).items() if k not in own and v is not None}

    def item_way(self) -> TrainConfig:
        """The config of a two-way model's item-based way: ``ITEM_DEFAULTS`` of the kind,
        then the ``item`` table; seed, device, momentum, validation carve, the softmax states
        and (rated) the estimator settings shared."""
        if self.kind not in ITEM_DEFAULTS:
            raise ValueError(f"kind {self.kind!r} has no item-based way")
        shared = {
            k: getattr(self, k)
            for k in ("momentum", "val_fraction", "seed", "device", "softmax_states", *RATED_ONLY)
        }
        settings = {"n_models": 1, "sub_batches": 1}
        settings.update({k: _copy(v) for k, v in ITEM_DEFAULTS[self.kind].items()})
        settings.update({**self.item, "item_based": False})
        return TrainConfig(kind=self.kind, item_batch=self.item_batch, **{**shared, **settings})

    def layer_config(self, index: int) -> TrainConfig:
        """The config that trains layer ``index`` (1-based: the first layer above the RBM) of
        a deep belief net: ``LAYER_DEFAULTS``, then the ``layer`` table (a list of epochs
        gives each layer its own); seed + index, device, momentum, validation carve and
        patience shared."""
        settings = {k: _copy(v) for k, v in LAYER_DEFAULTS.items()}
        settings.update(_copy(self.layer))
        if isinstance(settings["epochs"], list):
            settings["epochs"] = settings["epochs"][index - 1]
        shared = {k: getattr(self, k) for k in ("momentum", "val_fraction", "device", "patience")}
        return TrainConfig(
            kind=self.kind, seed=self.seed + index, n_hidden=self.layers[index - 1],
            n_models=1, sub_batches=self.sub_batches, item_based=False, **shared, **settings,
        )  # fmt: skip

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def without_item_ways(config: TrainConfig) -> TrainConfig:
    """``config`` with ``item_based`` off, for a hybrid's parts too (a blend's machines take
    the value set here)."""
    def plain(table: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in table.items() if k != "item_based"}

    members = [plain(m) for m in config.members] if config.members else config.members
    return replace(
        config, item_based=False, rated=plain(config.rated), like=plain(config.like),
        members=members,
    )  # fmt: skip


def rbm_machines_only(config: TrainConfig) -> TrainConfig:
    """``config`` with every blend (the kind, or a hybrid's part) reduced to its RBM machine,
    for training that runs CD on RBMs only (distributed training). Raises ``ValueError``
    naming a part that has no RBM or stacks layers (a deep belief net)."""

    def machine(kind: str, what: str) -> str:
        rbms = [k for k in blended_kinds(kind) if k in RBM_MACHINES]
        if not rbms:
            raise ValueError(f"{what} kind {kind!r} is not an RBM")
        return rbms[0]

    tables = [config.rated, config.like] if config.kind in HYBRID_PRESETS else []
    if config.layers or any(table.get("layers") for table in tables):
        raise ValueError(f"kind {config.kind!r} stacks layers on its RBMs (a deep belief net)")
    if config.kind in HYBRID_PRESETS:
        return replace(
            config, rated_kind=machine(config.rated_kind, "the ranking part's"),
            like_kind=machine(config.like_kind, "the like part's"),
        )  # fmt: skip
    reduced = machine(config.kind, "the")
    return config if reduced == config.kind else replace(config, kind=reduced, members=None)


def _copy(value: Any) -> Any:
    """A copy of a default deep enough that a config never shares a list or table with it."""
    if isinstance(value, dict):
        return {k: _copy(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy(x) for x in value]
    return value


DEFAULT_EVAL_USERS = 20_000  # users a run validates and reports on (train.eval_users)
CACHE_MODES = ("auto", "memory", "stream")
DEFAULT_DISTRIBUTED_TIMEOUT_S = 1800.0  # one collective (or joining the group) waits this long
MAX_DISTRIBUTED = 4096  # training processes


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
        if not 0 <= int(self.distributed) <= MAX_DISTRIBUTED:
            raise ValueError(
                f"distributed must be within [0, {MAX_DISTRIBUTED}] processes, got "
                f"{self.distributed}"
            )
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
