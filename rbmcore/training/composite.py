"""Trainers of composite models: stages trained one after another, then the blend chosen.

A *stage* is one sub-training of a composite: a hybrid's ``rated`` and ``like`` parts, a
two-way model's ``user`` and ``item`` ways, an ensemble's members. Each stage checkpoints to
``checkpoint_dir/<stage>`` and ``resume`` continues it exactly (``Trainer.fit_checkpointed``);
a stage that is itself composite nests its own stages below its folder.

- ``TwoWayTrainer``: the user way (a ``Trainer`` over the users' batches), then the item way
  (a ``Trainer`` over batches of items of the transposed ratings, validated in user space
  with the same metrics), then the blend weight; finally (``use_all_ratings``, after every
  choice made on validation) the items' hidden states are computed from all training
  ratings, the validation holdout included, as scoring uses every rating.
- ``EnsembleTrainer``: member m with the config's seed + m (its own initialisation, sampling
  and batch order) and its own early stopping on the shared validation split; the refit
  (``rbmcore.training.refit``) retrains each member for its own best epoch count.
- ``HybridTrainer``: the rated part, then the like part (each with its own config from
  ``TrainConfig.part`` and its own early stopping), then alpha.
- ``BlendTrainer``: the blend's first machine, then its second (each with its own kind's
  config, ``TrainConfig.blend_member``), then their weight.
- ``DeepBeliefTrainer``: a deep belief net layer by layer: its RBM (as it would train alone),
  then each layer above it (``TrainConfig.layer_config``) on the activations of the layers
  below, validated through the stack so far.

A single model is trained by ``single_trainer``: the CD ``Trainer`` for an RBM, the
``AutoencoderTrainer`` for an autoencoder.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from rbmcore.data.batch import BatchSource, iter_row_chunks
from rbmcore.data.csr import RatingsCSR, merge_rows, transpose_csr
from rbmcore.evaluation import heldout_metrics
from rbmcore.models.blend import BlendModel
from rbmcore.models.contract import Recommender, TrainableAutoencoder
from rbmcore.models.dbn import DeepBeliefNet, StackedLayer
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.hybrid import HybridRBM
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.autoencoder import AutoencoderTrainer
from rbmcore.training.config import HYBRID_PARTS, TrainConfig
from rbmcore.training.selection import blend_metric, choose_alpha, choose_weight
from rbmcore.training.trainer import Trainer

log = logging.getLogger("rbm-reco.train")

Batches = list[np.ndarray] | BatchSource
Pair = tuple[RatingsCSR, RatingsCSR]


class CompositeTrainer:
    """Common state of the trainers whose model is trained in named stages one after another.
    ``best_epoch`` is that of the stage named ``MAIN_STAGE``. ``use_all_ratings``: False for a
    composite that is itself a stage of another, whose trainer computes the two-way item states
    from all training ratings itself, after its own validation choices."""

    MAIN_STAGE = ""

    def __init__(
        self,
        model: Recommender,
        config: TrainConfig,
        device: torch.device,
        after_backward: Callable[[torch.nn.Module], None] | None = None,
        checkpoint_dir: str | Path | None = None,
        resume: bool = False,
        use_all_ratings: bool = True,
    ) -> None:
        self.model = model.to(device)
        self.config = config
        self.device = device
        self.after_backward = after_backward
        self.checkpoint_dir = Path(checkpoint_dir) if checkpoint_dir is not None else None
        self.resume = resume
        self.use_all_ratings = use_all_ratings
        self.history: list[dict[str, Any]] = []
        self.best_epochs: dict[str, int] = {}
        self.stage_settings: dict[str, dict[str, Any]] = {}  # each stage's refit_settings()
        self.weight_search: dict[Any, Any] = {}  # blend weights chosen on validation

    @property
    def best_epoch(self) -> int:
        return self.best_epochs.get(self.MAIN_STAGE, -1)

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        raise NotImplementedError

    def fit_checkpointed(
        self, folder: str | Path | None, resume: bool, label: str, **fit_args: Any
    ) -> CompositeTrainer:
        """``fit(**fit_args)``: the stages checkpoint under this trainer's own
        ``checkpoint_dir`` (``folder`` and ``resume`` were given to it when it was built)."""
        self.fit(**fit_args)
        return self

    def refit_settings(self) -> dict[str, Any]:
        """Config overrides that retrain every stage on all ratings for its best epoch count."""
        raise NotImplementedError

    def release_weights(self) -> None:
        """Free the model's tensors (moved to the ``meta`` device); config, history and the
        validation choices stay."""
        self.model.to(torch.device("meta"))

    def validation_choices(self) -> dict[str, Any]:
        """The blend weights chosen on validation, for the model's metadata."""
        return {"weight_search": self.weight_search} if self.weight_search else {}

    def stage_folder(self, stage: str) -> Path | None:
        """Where stage ``stage`` checkpoints (None without a checkpoint folder)."""
        return self.checkpoint_dir / stage if self.checkpoint_dir is not None else None

    def stage_trainer(self, model: Recommender, config: TrainConfig, stage: str):
        """The trainer of one stage's model (a composite one nested below ``stage``)."""
        return trainer_for(
            model, config, self.device, self.after_backward, self.stage_folder(stage),
            self.resume, use_all_ratings=False,
        )  # fmt: skip

    def fit_stage(
        self, name: str, trainer: Any, label: str, tag: dict[str, Any], **fit_args: Any
    ) -> Any:
        """Train ``trainer`` as stage ``name`` (``fit_args``: its ``fit`` arguments) with its
        checkpoints in ``stage_folder(name)``. Records the stage's best epoch, refit settings,
        validation choices and history (each record tagged with ``tag``)."""
        trainer.fit_checkpointed(self.stage_folder(name), self.resume, label, **fit_args)
        self.best_epochs[name] = trainer.best_epoch
        self.stage_settings[name] = trainer.refit_settings()
        chosen = trainer.validation_choices().get("weight_search")
        if chosen:
            self.weight_search[name] = chosen
        self.history += [{**record, **tag} for record in trainer.history]
        return trainer


class TwoWayTrainer(CompositeTrainer):
    """Trains a ``TwoWayRBM``: user way, item way, weight (see the module docstring). Its
    ``weight_search`` is {weight: validation metric}; history records are tagged ``way``."""

    MAIN_STAGE = "user"

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        """``train``: the training users' rows (the item way's visible units, in order);
        ``batches``: row positions per user batch; ``validation`` / ``test``: (context,
        target) pairs in user space. Returns the combined history."""
        model, config = self.model, self.config
        data = {"validation": validation, "test": test}
        user = self.stage_trainer(model.user, config, "user")
        self.fit_stage(
            "user", user, "the user-based way", {"way": "user"}, train=train, batches=batches,
            **data,
        )  # fmt: skip

        item = single_trainer(
            model.item.inner, config.item_way(), self.device, self.after_backward,
            item_way_evaluation(model, train),
        )  # fmt: skip
        items, item_batches = item_way_data(train, config)
        self.fit_stage(
            "item", item, "the item-based way", {"way": "item"}, train=items,
            batches=item_batches, **data,
        )  # fmt: skip
        self.weight_search = choose_blends(model, train, validation, self.device)
        if self.use_all_ratings:
            use_all_ratings(model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """The user way's best epochs; the item way's in the ``item`` table."""
        item = {**self.config.item, **self.stage_settings["item"]}
        return {**self.stage_settings["user"], "item": item}


def item_way_data(train: RatingsCSR, config: TrainConfig) -> tuple[RatingsCSR, list[np.ndarray]]:
    """What a two-way model's item-based way trains on: the transposed ratings of ``train``
    (the training users' rows) and its batches of ``config.item_batch`` items."""
    items = transpose_csr(train)
    return items, iter_row_chunks(len(items), config.item_batch)


def item_way_evaluation(model: TwoWayRBM, train: RatingsCSR) -> Callable[..., dict[str, float]]:
    """The item-based way's validation: its items' hidden states from ``train`` (the training
    users' rows in training order), then the held-out metrics of ``model.item`` in user space."""

    def evaluate(_inner, context, target, device):  # noqa: ANN001 (Trainer's evaluate)
        if target.nnz == 0:  # nothing to measure (a distributed rank other than 0)
            return {}
        model.item.set_item_states(train)
        return heldout_metrics(model.item, context, target, device)

    return evaluate


def member_name(m: int) -> str:
    """The stage name of ensemble member ``m`` (0-based): ``member1``, ``member2``, ..."""
    return f"member{m + 1}"


def member_config(config: TrainConfig, m: int) -> TrainConfig:
    """The config member ``m`` trains with: seed + m, one model, its ``members[m]`` table."""
    own = config.members[m] if config.members else {}
    return replace(config, **{**own, "seed": config.seed + m, "n_models": 1, "members": None})


class EnsembleTrainer(CompositeTrainer):
    """Trains an ``EnsembleRBM`` member by member (stages ``member1``, ``member2``, ...; each a
    ``Trainer`` or, for two-way members, a ``TwoWayTrainer``). ``best_epoch`` is the first
    member's; ``weight_search`` is {member: its two-way weight search}."""

    MAIN_STAGE = "member1"

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        """Train every member as ``Trainer.fit`` / ``TwoWayTrainer.fit`` would; returns the
        combined history (records tagged ``member``)."""
        for m, member in enumerate(self.model.members):
            name, config = member_name(m), member_config(self.config, m)
            label = f"ensemble member {m + 1}/{len(self.model.members)}"
            log.info("%s of %s models (seed %d)", label, config.kind, config.seed)
            self.fit_stage(
                name, self.stage_trainer(member, config, name), label, {"member": m + 1},
                train=train, batches=batches, validation=validation, test=test,
            )  # fmt: skip
        if self.use_all_ratings:
            use_all_ratings(self.model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """Each member's best epochs, in ``members``."""
        names = [member_name(m) for m in range(len(self.model.members))]
        return {"members": [self.stage_settings[n] for n in names]}


class HybridTrainer(CompositeTrainer):
    """Trains a ``HybridRBM``: the rated part, then the like part, then alpha (module
    docstring). History records are tagged with ``part``; ``best_epoch`` is the rated part's;
    ``alpha_search`` is {alpha: validation nDCG@10}, ``weight_search`` {part: its two-way
    weight search}."""

    MAIN_STAGE = "rated"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.alpha_search: dict[float, float] = {}

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        """Train both parts; ``validation``/``test`` are (context, target) pairs as for
        ``Trainer.fit``. Returns the combined history."""
        for part in HYBRID_PARTS:
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
            part: {**getattr(self.config, part), **self.stage_settings[part]}
            for part in HYBRID_PARTS
        }

    def validation_choices(self) -> dict[str, Any]:
        return {"alpha_search": self.alpha_search, "weight_search": self.weight_search}

    def _fit_part(self, part, train, batches, validation, test):
        sub_model = getattr(self.model, part)
        config = self.config.part(part)
        if isinstance(sub_model, (TwoWayRBM, EnsembleRBM)):
            what = "two-way" if isinstance(sub_model, TwoWayRBM) else "ensemble of"
            log.info("training the hybrid's %s part (%s %s)", part, what, config.kind)
        self.fit_stage(
            part, self.stage_trainer(sub_model, config, part), f"the hybrid's {part} part",
            {"part": part}, train=train, batches=batches, validation=validation, test=test,
        )  # fmt: skip


class BlendTrainer(CompositeTrainer):
    """Trains a ``BlendModel``: stages ``first`` and ``second`` (each machine with its own
    config, ``TrainConfig.blend_member``), then the weight of the first on validation.
    ``best_epoch`` is the first machine's; ``weight_search`` holds {"blend": {weight:
    validation metric}} and each machine's own blend weights."""

    MAIN_STAGE = "first"
    STAGES = ("first", "second")

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        """Train both machines as their own trainers would; returns the combined history
        (records tagged ``machine``)."""
        for m, name in enumerate(self.STAGES):
            config = self.config.blend_member(m)
            label = f"the blend's {name} machine ({config.kind})"
            self.fit_stage(
                name, self.stage_trainer(getattr(self.model, name), config, name), label,
                {"machine": config.kind}, train=train, batches=batches, validation=validation,
                test=test,
            )  # fmt: skip
        if validation is not None and validation[1].nnz:
            weight, self.weight_search["blend"] = choose_weight(
                self.model, *validation, self.device, metric=blend_metric(self.model)
            )
            log.info(
                "blend %s: weight %.1f of %s (validation by weight: %s)",
                self.model.kind,
                weight,
                self.model.first.kind,
                ", ".join(f"{w:g}: {v:.4f}" for w, v in self.weight_search["blend"].items()),
            )
        if self.use_all_ratings:
            use_all_ratings(self.model, train, validation)
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """Each machine's best epochs (and its own settings) in ``members``."""
        own = self.config.members or [{}, {}]
        settings = [self.stage_settings[name] for name in self.STAGES]
        return {"members": [{**own[m], **s} for m, s in enumerate(settings)]}


class DeepBeliefTrainer(CompositeTrainer):
    """Trains a ``DeepBeliefNet`` greedily: stage ``rbm`` (its RBM, as it would train alone),
    then stages ``layer1``, ``layer2``, ... (each upper layer by CD on the fixed activations
    below it, early-stopped on validation through the stack so far). ``best_epoch`` is the
    RBM's."""

    MAIN_STAGE = "rbm"

    def fit(
        self,
        train: RatingsCSR,
        batches: Batches,
        validation: Pair | None = None,
        test: Pair | None = None,
    ) -> list[dict[str, Any]]:
        """Train the layers bottom-up; returns the combined history (records tagged
        ``layer``: 0 for the RBM)."""
        net, data = self.model, {"validation": validation, "test": test}
        rbm = self.stage_trainer(net.bottom, self.config, "rbm")
        self.fit_stage(
            "rbm", rbm, "the deep belief net's RBM", {"layer": 0}, train=train,
            batches=batches, **data,
        )  # fmt: skip
        for index in range(1, len(net.layers) + 1):
            stack = net.truncated(index)

            def evaluate(_layer, context, target, device, stack=stack):  # through the stack
                return heldout_metrics(stack, context, target, device)

            layer = Trainer(
                StackedLayer(net, index - 1), self.config.layer_config(index), self.device,
                self.after_backward, evaluate,
            )  # fmt: skip
            self.fit_stage(
                f"layer{index}", layer, f"layer {index} of the deep belief net",
                {"layer": index}, train=train, batches=batches, **data,
            )  # fmt: skip
        return self.history

    def refit_settings(self) -> dict[str, Any]:
        """The RBM's best epochs; each upper layer's in the ``layer`` table's ``epochs``."""
        layers = range(1, len(self.model.layers) + 1)
        epochs = [self.stage_settings[f"layer{i}"]["epochs"] for i in layers]
        return {**self.stage_settings["rbm"], "layer": {**self.config.layer, "epochs": epochs}}


def single_trainer(
    model: Recommender,
    config: TrainConfig,
    device: torch.device,
    after_backward: Callable[[torch.nn.Module], None] | None = None,
    evaluate: Callable[..., dict[str, float]] = heldout_metrics,
) -> Trainer:
    """The trainer of one machine: ``AutoencoderTrainer`` for an autoencoder
    (``TrainableAutoencoder``), else the CD ``Trainer``."""
    if isinstance(model, TrainableAutoencoder):
        return AutoencoderTrainer(model, config, device, after_backward, evaluate)
    return Trainer(model, config, device, after_backward, evaluate)


def trainer_for(
    model: Recommender,
    config: TrainConfig,
    device: torch.device,
    after_backward: Callable[[torch.nn.Module], None] | None = None,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    use_all_ratings: bool = True,
) -> Trainer | CompositeTrainer:
    """The trainer of ``model``: a composite one (``COMPOSITE_TRAINERS``) or a single
    machine's (``single_trainer``, whose ``fit_checkpointed`` takes the checkpoint folder
    itself)."""
    composite = COMPOSITE_TRAINERS.get(type(model))
    if composite is None:
        return single_trainer(model, config, device, after_backward)
    return composite(
        model, config, device, after_backward, checkpoint_dir, resume, use_all_ratings
    )


COMPOSITE_TRAINERS: dict[type, type[CompositeTrainer]] = {
    HybridRBM: HybridTrainer,
    EnsembleRBM: EnsembleTrainer,
    TwoWayRBM: TwoWayTrainer,
    BlendModel: BlendTrainer,
    DeepBeliefNet: DeepBeliefTrainer,
}


def use_all_ratings(
    model: Recommender, train: RatingsCSR, validation: Pair | None
) -> None:
    """Recompute the item states of every two-way part of ``model`` from all training ratings
    (``train`` plus the validation holdout): the last step, after every validation choice."""
    every = merge_rows(train, validation[1]) if validation is not None else train
    for module in model.modules():
        if isinstance(module, TwoWayRBM):
            module.item.set_item_states(every)


def choose_blends(
    model: Recommender, train: RatingsCSR, validation: Pair | None, device: torch.device
) -> dict[Any, Any]:
    """The blend weights a composite trainer chooses after its parts are trained, for a model
    whose parts were trained elsewhere (on the executors): every two-way part's items' hidden
    states from ``train``, then its user-based weight on ``validation``. Returns the weight
    searches in the trainer's ``weight_search`` shape ({weight: metric} for a two-way model,
    {member or part: that} for an ensemble or a hybrid)."""
    if isinstance(model, TwoWayRBM):
        model.item.set_item_states(train)
        if validation is None or not validation[1].nnz:
            return {}
        weight, search = choose_weight(model, *validation, device)
        log.info(
            "two-way %s: user-based weight %.1f (validation by weight: %s)",
            model.kind,
            weight,
            ", ".join(f"{w:g}: {v:.4f}" for w, v in search.items()),
        )
        return search
    if isinstance(model, EnsembleRBM):
        named = {member_name(m): member for m, member in enumerate(model.members)}
    elif isinstance(model, HybridRBM):
        named = {part: getattr(model, part) for part in HYBRID_PARTS}
    else:
        return {}
    searches = {name: choose_blends(sub, train, validation, device) for name, sub in named.items()}
    return {name: search for name, search in searches.items() if search}
