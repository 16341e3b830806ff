"""Data-parallel RBM training with ``torch.distributed`` (pure torch; no Spark here).

Every process of a run (started by ``torchrun`` or Spark's ``TorchDistributor``, which set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) calls
:func:`train_worker` with the same payload:

- the payload holds the initialised model (built once on the driver, shipped as a
  ``rbmcore.io.payload`` of plain arrays; no pickle), so the replicas start identical, and its
  *stages* (``plan_stages``): every single RBM the model is made of, in the order the
  composite trainers train them (a hybrid's rated part, then its like part; an ensemble's
  members; a two-way model's user-based way, then its item-based way, trained on the
  transposed ratings in batches of ``item_batch`` items), all in one process group; with a
  ``refit`` entry (a second initialised model and all training ratings) every stage is then
  retrained on all ratings for its best epoch count (``rbmcore.training.refit``), still in the
  same group;
- each batch (of users, or of items for an item-based way) is split across the processes
  (``batch[rank::world]``): every process takes one optimiser step per batch, on its share of
  the batch, and the gradients are averaged with an all-reduce before the step
  (``Trainer(after_backward=...)``; a sparse gradient, as ratio matching makes, is gathered
  from every process and summed). The replicas stay identical, and one step sees the whole
  batch, as in single-process training, so the same hyperparameters apply (same batch size,
  same number of updates per epoch). Splitting the batches rather than dealing whole batches
  to ranks also keeps the step count equal on every rank, which collective operations need;
- validation (early stopping, best-epoch weights; an item-based way is measured in user space,
  as ``TwoWayTrainer`` does) runs on rank 0 only; after each epoch rank 0 broadcasts its best
  epoch, so every rank takes the same stop decision. The test split, when given, is reported
  by rank 0 only. Per-epoch checkpoints are not written (no ``--resume``);
- rank 0 returns the trained model's weights (CPU tensors) and every stage's history and best
  epoch (and the refit's weights and histories); the other ranks return ``None``. The choices
  made after training (two-way weights, the hybrid's alpha, the items' hidden states from all
  ratings) are the driver's: ``trainers_from_result``.

Backend: ``nccl`` on CUDA devices (``cuda:LOCAL_RANK``), ``gloo`` on CPU. Every collective
(and joining the group) gives up after ``timeout_s`` (payload ``"timeout_s"``) with an error
instead of waiting for ever. When every process runs on one host (``MASTER_ADDR`` is a loopback
address) gloo is pinned to the loopback interface: by default it binds to the address the host
name resolves to, which on some machines is not reachable from the host itself.
"""

from __future__ import annotations

import datetime
import ipaddress
import logging
import os
import socket
from dataclasses import asdict, replace
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

from rbmcore.data.csr import RatingsCSR, empty_csr
from rbmcore.io.payload import model_from_payload, model_payload
from rbmcore.models.contract import Recommender
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.composite import (
    CompositeTrainer,
    EnsembleTrainer,
    HybridTrainer,
    TwoWayTrainer,
    choose_blends,
    item_way_data,
    item_way_evaluation,
    member_config,
    member_name,
    trainer_for,
    use_all_ratings,
)
from rbmcore.training.config import DEFAULT_DISTRIBUTED_TIMEOUT_S, HYBRID_PARTS, TrainConfig
from rbmcore.training.refit import copy_choices
from rbmcore.training.selection import choose_alpha
from rbmcore.training.trainer import Trainer, best_epoch_settings

log = logging.getLogger("rbm-reco.distributed")

DEFAULT_TIMEOUT_S = DEFAULT_DISTRIBUTED_TIMEOUT_S

__all__ = [
    "allreduce_mean_grads",
    "csr_from_payload",
    "csr_to_payload",
    "init_process_group_from_env",
    "pin_gloo_to_loopback",
    "make_payload",
    "plan_stages",
    "record_selection",
    "refit_stage",
    "shard_batches",
    "train_stage",
    "train_worker",
    "trainers_from_result",
]


def csr_to_payload(csr: RatingsCSR) -> dict[str, Any]:
    """A compact picklable form of a CSR (int32 items, int8 ratings)."""
    return {
        "user_ids": csr.user_ids.astype(np.int64),
        "indptr": csr.indptr.astype(np.int64),
        "items": csr.items.astype(np.int32),
        "ratings": csr.ratings.astype(np.int8),
        "n_items": int(csr.n_items),
    }


def csr_from_payload(data: dict[str, Any]) -> RatingsCSR:
    return RatingsCSR(
        user_ids=np.asarray(data["user_ids"], dtype=np.int64),
        indptr=np.asarray(data["indptr"], dtype=np.int64),
        items=np.asarray(data["items"], dtype=np.int64),
        ratings=np.asarray(data["ratings"], dtype=np.int8),
        n_items=int(data["n_items"]),
    )


def plan_stages(model: Recommender, config: TrainConfig) -> list[dict[str, Any]]:
    """Every single RBM of ``model`` as a stage, in training order: {"name", "path" (the
    module's name in ``model``, for ``get_submodule``), "way" ("user" or "item" for a two-way
    module's ways, else None), "config" (the config its composite trainer gives it)}. Names:
    a hybrid's ``rated`` / ``like``, else ``model``; then ``.memberN`` for an ensemble's members
    and ``.user`` / ``.item`` for a two-way model's ways (e.g. ``like.member2.item``)."""
    stages: list[dict[str, Any]] = []

    def walk(module: torch.nn.Module, part: TrainConfig, name: str, path: str) -> None:
        if isinstance(module, EnsembleRBM):
            for m, member in enumerate(module.members):
                walk(member, member_config(part, m), f"{name}.{member_name(m)}",
                     f"{path}.members.{m}".lstrip("."))  # fmt: skip
            return
        ways = ("user", "item") if isinstance(module, TwoWayRBM) else (None,)
        for way in ways:
            label = f"{name}.{way}" if way else name
            stages.append({"name": label, "path": path, "way": way, "config": asdict(part)})

    if config.kind == "hybrid":
        for part in HYBRID_PARTS:
            walk(getattr(model, part), config.part(part), part, part)
    else:
        walk(model, config, "model", "")
    return stages


def make_payload(
    model: Recommender,
    config: TrainConfig,
    fit: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None = None,
    test: tuple[RatingsCSR, RatingsCSR] | None = None,
    threads_per_process: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    refit: tuple[RatingsCSR, Recommender] | None = None,
) -> dict[str, Any]:
    """Everything :func:`train_worker` needs, as one dict of plain values and numpy arrays:
    the initialised ``model`` and its ``plan_stages`` under ``config``, the rows ``fit`` and
    its user ``batches`` (row positions). ``refit``: (all training ratings, the refit's
    initialised model): after the selection run every stage is retrained on all ratings for
    its best epoch count (``rbmcore.training.refit``), in the same process group."""

    def pair(p: tuple[RatingsCSR, RatingsCSR] | None):
        return None if p is None else (csr_to_payload(p[0]), csr_to_payload(p[1]))

    return {
        "model": model_payload(model),
        "stages": plan_stages(model, config),
        "refit": None
        if refit is None
        else {"every": csr_to_payload(refit[0]), "model": model_payload(refit[1])},
        "fit": csr_to_payload(fit),
        "batches": [np.asarray(b, dtype=np.int64) for b in batches],
        "validation": pair(validation),
        "test": pair(test),
        "threads": int(threads_per_process),
        "timeout_s": float(timeout_s),
    }


def is_loopback_host(host: str) -> bool:
    """True for ``localhost`` and 127.0.0.0/8 or ::1 addresses."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def pin_gloo_to_loopback() -> str | None:
    """Set ``GLOO_SOCKET_IFNAME`` to the loopback interface when every process runs on this
    host (``MASTER_ADDR`` is loopback) and the user has not chosen one; the name set, or None."""
    if os.environ.get("GLOO_SOCKET_IFNAME") or not is_loopback_host(
        os.environ.get("MASTER_ADDR", "")
    ):
        return None
    names = {name for _, name in socket.if_nameindex()}
    loopback = next((name for name in ("lo", "lo0") if name in names), None)
    if loopback is not None:
        os.environ["GLOO_SOCKET_IFNAME"] = loopback
    return loopback


def init_process_group_from_env(
    device: str | None = "auto", timeout_s: float = DEFAULT_TIMEOUT_S
) -> tuple[int, int, torch.device]:
    """Join the process group described by the torchrun environment; (rank, world, device).
    Joining and every later collective fail after ``timeout_s`` seconds instead of hanging."""
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if device in (None, "", "auto"):
        use_cuda = torch.cuda.is_available()
    else:
        use_cuda = torch.device(device).type == "cuda"
    chosen = torch.device(f"cuda:{local_rank}" if use_cuda else "cpu")
    if chosen.type == "cuda":
        torch.cuda.set_device(chosen)
    if not dist.is_initialized():
        backend = "nccl" if chosen.type == "cuda" else "gloo"
        if backend == "gloo":
            pin_gloo_to_loopback()
        dist.init_process_group(
            backend=backend,
            init_method="env://",
            rank=rank,
            world_size=world,
            timeout=datetime.timedelta(seconds=timeout_s),
        )
    return rank, world, chosen


def allreduce_mean_grads(model: torch.nn.Module) -> None:
    """Replace every gradient by its mean over the process group: the dense ones in one flat
    all-reduce, each sparse one (``torch.sparse_coo_tensor``) gathered from every process."""
    params = [p for p in model.parameters() if p.grad is not None]
    dense = [p.grad for p in params if not p.grad.is_sparse]
    world = dist.get_world_size()
    if dense:
        flat = torch.cat([g.reshape(-1) for g in dense])
        dist.all_reduce(flat, op=dist.ReduceOp.SUM)
        flat /= world
        offset = 0
        for g in dense:
            n = g.numel()
            g.copy_(flat[offset : offset + n].view_as(g))
            offset += n
    for p in params:
        if p.grad.is_sparse:
            p.grad = allgather_sparse(p.grad.coalesce()) / world


def allgather_sparse(grad: torch.Tensor) -> torch.Tensor:
    """The sum over the process group of a coalesced sparse COO tensor (one per process,
    same shape), coalesced: every process's indices and values gathered (padded to the
    longest), then summed where they meet."""
    world = dist.get_world_size()
    count = torch.tensor([grad.indices().shape[1]], device=grad.device)
    counts = [torch.zeros_like(count) for _ in range(world)]
    dist.all_gather(counts, count)
    most = int(max(int(c) for c in counts))
    indices = torch.zeros(grad.sparse_dim(), most, dtype=torch.int64, device=grad.device)
    values = torch.zeros(most, *grad.values().shape[1:], device=grad.device)
    indices[:, : int(count)] = grad.indices()
    values[: int(count)] = grad.values()
    all_indices = [torch.zeros_like(indices) for _ in range(world)]
    all_values = [torch.zeros_like(values) for _ in range(world)]
    dist.all_gather(all_indices, indices)
    dist.all_gather(all_values, values)
    kept = [(i[:, : int(c)], v[: int(c)]) for i, v, c in zip(all_indices, all_values, counts,
                                                            strict=True)]  # fmt: skip
    return torch.sparse_coo_tensor(
        torch.cat([i for i, _ in kept], 1), torch.cat([v for _, v in kept]), grad.shape,
        check_invariants=False,
    ).coalesce()  # fmt: skip


def shard_batches(batches: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
    """This rank's share of every batch: ``batch[rank::world]``; a batch with fewer users
    than processes is given whole to every rank (so no rank ever has an empty step)."""
    return [b[rank::world] if len(b) >= world else b for b in batches]


def train_worker(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The body of one training process; see the module docstring. Rank 0 returns
    ``{"state", "stages": {name: {"history", "best_epoch"}}[, "refit": {"state", "stages":
    {name: {"history"}}}], "processes", "device"}``."""
    stages = payload["stages"]
    first = TrainConfig(**stages[0]["config"])
    rank, world, device = init_process_group_from_env(
        first.device, float(payload.get("timeout_s", DEFAULT_TIMEOUT_S))
    )
    try:
        torch.set_num_threads(max(1, int(payload.get("threads", 1))))
        fit = csr_from_payload(payload["fit"])
        batches = shard_batches(payload["batches"], rank, world)
        validation = test = None
        if payload["validation"] is not None:
            context, target = (csr_from_payload(d) for d in payload["validation"])
            # only rank 0 measures; the others keep the loop's shape with an empty target
            validation = (context, target) if rank == 0 else (empty_csr(fit.n_items),) * 2
        if payload["test"] is not None and rank == 0:
            test = tuple(csr_from_payload(d) for d in payload["test"])
        log.info(
            "rank %d/%d on %s: stages %s, %d batches, %d of %d users",
            rank,
            world,
            device,
            ", ".join(stage["name"] for stage in stages),
            len(batches),
            sum(len(b) for b in batches),
            len(fit),
        )
        shards = Shards(rank, world, batches)
        model = model_from_payload(payload["model"]).to(device)
        results = {
            stage["name"]: train_stage(model, stage, device, fit, shards, validation, test)
            for stage in stages
        }
        refit = payload.get("refit")
        refit_result = None
        if refit:
            every = csr_from_payload(refit["every"])
            refit_model = model_from_payload(refit["model"]).to(device)
            refit_result = {
                "stages": {
                    stage["name"]: refit_stage(
                        refit_model, stage, results[stage["name"]]["best_epoch"], device, every,
                        shards,
                    )
                    for stage in stages
                },
                "state": cpu_state(refit_model),
            }  # fmt: skip
        if rank != 0:
            return None
        for result in [*results.values(), *(refit_result or {}).get("stages", {}).values()]:
            for record in result["history"]:
                record["processes"] = world
        out = {"state": cpu_state(model), "stages": results, "processes": world,
               "device": str(device)}  # fmt: skip
        if refit_result is not None:
            out["refit"] = refit_result
        return out
    finally:
        dist.destroy_process_group()


class Shards:
    """This rank's share of the user batches, and of the item batches of an item-based way."""

    def __init__(self, rank: int, world: int, user_batches: list[np.ndarray]) -> None:
        self.rank, self.world, self.users = rank, world, user_batches

    def of(self, batches: list[np.ndarray]) -> list[np.ndarray]:
        return shard_batches(batches, self.rank, self.world)


def stage_trainer(
    model: Recommender, stage: dict[str, Any], config: TrainConfig, device: torch.device,
    rows: RatingsCSR, shards: Shards,
) -> tuple[Trainer, RatingsCSR, list[np.ndarray]]:  # fmt: skip
    """The trainer of one stage's RBM in ``model`` under ``config`` (its ``epochs`` as given),
    with this rank's share of its batches over ``rows`` (the users' rows; an item-based way
    trains on their transpose, validated in user space as ``TwoWayTrainer`` does)."""
    module = model.get_submodule(stage["path"])
    if stage["way"] == "item":
        items, item_batches = item_way_data(rows, config)
        trainer = Trainer(module.item.inner, config.item_way(), device, allreduce_mean_grads,
                          item_way_evaluation(module, rows))  # fmt: skip
        return trainer, items, shards.of(item_batches)
    target = module.user if stage["way"] == "user" else module
    return Trainer(target, config, device, allreduce_mean_grads), rows, shards.users


def train_stage(
    model: Recommender,
    stage: dict[str, Any],
    device: torch.device,
    fit: RatingsCSR,
    shards: Shards,
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    test: tuple[RatingsCSR, RatingsCSR] | None,
) -> dict[str, Any]:
    """Train one stage of the payload in ``model`` (in place, ending with its best weights) in
    the joined process group: its history and best epoch (rank 0's, broadcast after every
    epoch so all ranks stop together)."""
    config = TrainConfig(**stage["config"])
    trainer, rows, batches = stage_trainer(model, stage, config, device, fit, shards)

    def sync_best_epoch(t: Trainer, _record: dict[str, Any]) -> None:
        best = torch.tensor([t.best_epoch], dtype=torch.int64, device=device)
        dist.broadcast(best, src=0)
        t.best_epoch = int(best.item())

    history = trainer.fit(
        rows,
        batches,
        validation,
        test,
        on_epoch=sync_best_epoch if validation is not None else None,
    )
    return {"history": history, "best_epoch": trainer.best_epoch}


def refit_stage(
    model: Recommender,
    stage: dict[str, Any],
    best_epoch: int,
    device: torch.device,
    every: RatingsCSR,
    shards: Shards,
) -> dict[str, Any]:
    """The refit of one stage (``rbmcore.training.refit``) in ``model`` (the refit's starting
    weights): trained on ``every`` (all training ratings) for ``best_epoch`` epochs (an
    item-based way: its own best epochs), no validation; its history. Every rank has the same
    ``best_epoch`` (it was broadcast during selection), so all ranks take the same steps."""
    config = TrainConfig(**stage["config"])
    epochs = best_epoch_settings(best_epoch)
    if stage["way"] == "item":
        config = replace(config, item={**config.item, **epochs})
    else:
        config = replace(config, **epochs)
    trainer, rows, batches = stage_trainer(model, stage, config, device, every, shards)
    return {"history": trainer.fit(rows, batches)}


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as detached CPU tensors (what rank 0 sends back)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}


# -- on the driver, after the run ----------------------------------------------------------


def stage_tags(name: str) -> dict[str, Any]:
    """The history tags the composite trainers give a stage's records: ``part`` (a hybrid's),
    ``member`` (an ensemble's, 1-based) and ``way`` (a two-way model's)."""
    tags: dict[str, Any] = {}
    for piece in name.split("."):
        if piece in HYBRID_PARTS:
            tags["part"] = piece
        elif piece.startswith("member"):
            tags["member"] = int(piece.removeprefix("member"))
        elif piece in ("user", "item"):
            tags["way"] = piece
    return tags


def record_selection(trainer: Trainer | CompositeTrainer, config: TrainConfig,
                     best: dict[str, int]) -> None:  # fmt: skip
    """Set ``trainer``'s best epochs and refit settings from every stage's best epoch
    (``best``: {``plan_stages`` name: epoch}), as its own ``fit`` would have."""

    def main(name: str) -> int:  # the best epoch the composite trainer reports for ``name``
        for suffix in ("", ".user", ".member1", ".member1.user"):
            if name + suffix in best:
                return best[name + suffix]
        raise KeyError(name)

    def settings(part: TrainConfig, module: torch.nn.Module, name: str) -> dict[str, Any]:
        if isinstance(module, EnsembleRBM):
            return {"members": [settings(member_config(part, m), member, f"{name}.{member_name(m)}")
                                for m, member in enumerate(module.members)]}  # fmt: skip
        if isinstance(module, TwoWayRBM):
            item = {**part.item, **best_epoch_settings(best[f"{name}.item"])}
            return {**best_epoch_settings(best[f"{name}.user"]), "item": item}
        return best_epoch_settings(best[name])

    model = trainer.model
    if isinstance(trainer, HybridTrainer):
        named = {part: (config.part(part), getattr(model, part), part) for part in HYBRID_PARTS}
    elif isinstance(trainer, EnsembleTrainer):
        named = {member_name(m): (member_config(config, m), member, f"model.{member_name(m)}")
                 for m, member in enumerate(model.members)}  # fmt: skip
    elif isinstance(trainer, TwoWayTrainer):
        for way in ("user", "item"):
            trainer.best_epochs[way] = best[f"model.{way}"]
            trainer.stage_settings[way] = best_epoch_settings(best[f"model.{way}"])
        return
    else:
        trainer.best_epoch = best["model"]
        return
    for stage, (part, module, name) in named.items():
        trainer.best_epochs[stage] = main(name)
        trainer.stage_settings[stage] = settings(part, module, name)


def trainers_from_result(
    model: Recommender,
    config: TrainConfig,
    result: dict[str, Any],
    fit: RatingsCSR,
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    device: torch.device,
    refit: tuple[RatingsCSR, Recommender] | None = None,
) -> tuple[Trainer | CompositeTrainer, Trainer | CompositeTrainer | None]:
    """The driver's side of a run whose rank 0 returned ``result`` (``train_worker``): the
    trained weights loaded into ``model``, then the choices the composite trainers make after
    training (``choose_blends``: every two-way weight; a hybrid's alpha) on ``validation``, and
    the items' hidden states from all training ratings. Returns (a trainer holding the selected
    model, its history, best epochs and choices; with ``refit`` = (all training ratings, the
    refit's model), which the refit's weights are loaded into, that model's trainer, or None).
    ``device``: where the run trained, for the model's metadata."""
    cpu = torch.device("cpu")
    model.load_state_dict(result["state"])
    trainer = trainer_for(model, config, cpu)
    for name, stage in result["stages"].items():
        trainer.history += [{**record, **stage_tags(name)} for record in stage["history"]]
    best = {name: int(stage["best_epoch"]) for name, stage in result["stages"].items()}
    record_selection(trainer, config, best)
    searches = choose_blends(model, fit, validation, cpu)
    if isinstance(trainer, CompositeTrainer):
        trainer.weight_search = searches
    if isinstance(trainer, HybridTrainer) and validation is not None and validation[1].nnz:
        _, trainer.alpha_search = choose_alpha(model, *validation, cpu)
    use_all_ratings(model, fit, validation)
    trainer.device = device
    if refit is None:
        return trainer, None
    every, refit_model = refit
    refit_model.load_state_dict(result["refit"]["state"])
    copy_choices(model, refit_model)
    use_all_ratings(refit_model, every, None)
    refit_trainer = trainer_for(refit_model, config, cpu)
    for name, stage in result["refit"]["stages"].items():
        refit_trainer.history += [{**record, **stage_tags(name)} for record in stage["history"]]
    refit_trainer.device = device
    return trainer, refit_trainer
