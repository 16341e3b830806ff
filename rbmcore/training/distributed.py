"""Data-parallel RBM training with ``torch.distributed`` (pure torch; no Spark here).

Every process of a run (started by ``torchrun`` or Spark's ``TorchDistributor``, which set
``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and ``MASTER_PORT``) calls
:func:`train_worker` with the same payload:

- the payload holds one or more named *stages* (a model and its config; a hybrid's ``rated``
  and ``like`` RBMs), trained one after another in the same process group, so a hybrid needs
  one distributed run, not two; with a ``refit`` entry each stage is then retrained from its
  refit starting weights on all training ratings for its best epoch count
  (``rbmcore.training.refit``), still in the same group;
- each stage is the same initialised module in every process (built once on the driver,
  shipped as a ``rbmcore.io.payload`` of plain arrays; no pickle), so the replicas start
  identical;
- each user batch is split across the processes (``batch[rank::world]``): every process takes
  one optimiser step per batch, on its share of the batch's users, and the gradients are
  averaged with an all-reduce before the step (``Trainer(after_backward=...)``). The replicas
  stay identical, and one step sees the whole batch, as in single-process training, so the same
  hyperparameters apply (same batch size, same number of updates per epoch). Splitting the
  batches rather than dealing whole batches to ranks also keeps the step count equal on every
  rank, which collective operations need;
- validation (early stopping, best-epoch weights) runs on rank 0 only; after each epoch rank 0
  broadcasts its best epoch, so every rank takes the same stop decision. The test split, when
  given, is reported by rank 0 only. Per-epoch checkpoints are not written (no ``--resume``);
- rank 0 returns, per stage, the trained weights (CPU tensors), its history and best epoch
  (and the refit's weights and history); the other ranks return ``None``.

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
from rbmcore.training.config import DEFAULT_DISTRIBUTED_TIMEOUT_S, TrainConfig
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
    "refit_stage",
    "shard_batches",
    "train_stage",
    "train_worker",
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


def make_payload(
    stages: dict[str, tuple[torch.nn.Module, TrainConfig]],
    fit: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None = None,
    test: tuple[RatingsCSR, RatingsCSR] | None = None,
    threads_per_process: int = 1,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    refit: tuple[RatingsCSR, dict[str, torch.nn.Module]] | None = None,
) -> dict[str, Any]:
    """Everything :func:`train_worker` needs, as one dict of plain values and numpy arrays.
    ``stages``: {name: (initialised model, its config)}, trained in this order. ``refit``: (all
    training ratings, the rows of ``fit`` in the same order, {name: the refit's starting
    model}): after its selection run each stage is retrained on all ratings for its best
    epoch count (``rbmcore.training.refit``), in the same process group."""

    def pair(p: tuple[RatingsCSR, RatingsCSR] | None):
        return None if p is None else (csr_to_payload(p[0]), csr_to_payload(p[1]))

    return {
        "stages": {
            name: {**model_payload(model), "config": asdict(config)}
            for name, (model, config) in stages.items()
        },
        "refit": None
        if refit is None
        else {
            "every": csr_to_payload(refit[0]),
            "stages": {name: model_payload(model) for name, model in refit[1].items()},
        },
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
    """Replace every gradient by its mean over the process group (one flat all-reduce)."""
    grads = [p.grad for p in model.parameters() if p.grad is not None]
    if not grads:
        return
    flat = torch.cat([g.reshape(-1) for g in grads])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    flat /= dist.get_world_size()
    offset = 0
    for g in grads:
        n = g.numel()
        g.copy_(flat[offset : offset + n].view_as(g))
        offset += n


def shard_batches(batches: list[np.ndarray], rank: int, world: int) -> list[np.ndarray]:
    """This rank's share of every batch: ``batch[rank::world]``; a batch with fewer users
    than processes is given whole to every rank (so no rank ever has an empty step)."""
    return [b[rank::world] if len(b) >= world else b for b in batches]


def train_worker(payload: dict[str, Any]) -> dict[str, Any] | None:
    """The body of one training process; see the module docstring. Rank 0 returns
    ``{"stages": {name: {"state", "history", "best_epoch"[, "refit": {"state", "history"}]}},
    "processes", "device"}``."""
    stages = payload["stages"]
    first = TrainConfig(**next(iter(stages.values()))["config"])
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
            ", ".join(stages),
            len(batches),
            sum(len(b) for b in batches),
            len(fit),
        )
        refit = payload.get("refit")
        every = csr_from_payload(refit["every"]) if refit else None
        results = {}
        for name, stage in stages.items():
            results[name] = train_stage(stage, device, fit, batches, validation, test)
            if refit:
                results[name]["refit"] = refit_stage(
                    refit["stages"][name], stage, results[name]["best_epoch"], device, every,
                    batches,
                )  # fmt: skip
        if rank != 0:
            return None
        for result in results.values():
            for record in result["history"] + result.get("refit", {}).get("history", []):
                record["processes"] = world
        return {"stages": results, "processes": world, "device": str(device)}
    finally:
        dist.destroy_process_group()


def train_stage(
    stage: dict[str, Any],
    device: torch.device,
    fit: RatingsCSR,
    batches: list[np.ndarray],
    validation: tuple[RatingsCSR, RatingsCSR] | None,
    test: tuple[RatingsCSR, RatingsCSR] | None,
) -> dict[str, Any]:
    """Train one stage of the payload in the joined process group: its weights (CPU), history
    and best epoch (rank 0's, broadcast after every epoch so all ranks stop together)."""
    config = TrainConfig(**stage["config"])
    trainer = Trainer(model_from_payload(stage), config, device, allreduce_mean_grads)

    def sync_best_epoch(t: Trainer, _record: dict[str, Any]) -> None:
        best = torch.tensor([t.best_epoch], dtype=torch.int64, device=device)
        dist.broadcast(best, src=0)
        t.best_epoch = int(best.item())

    history = trainer.fit(
        fit,
        batches,
        validation,
        test,
        on_epoch=sync_best_epoch if validation is not None else None,
    )
    return {
        "state": cpu_state(trainer.model),
        "history": history,
        "best_epoch": trainer.best_epoch,
    }


def refit_stage(
    start: dict[str, Any],
    stage: dict[str, Any],
    best_epoch: int,
    device: torch.device,
    every: RatingsCSR,
    batches: list[np.ndarray],
) -> dict[str, Any]:
    """The refit of one stage (``rbmcore.training.refit``): ``start`` (the refit's starting
    weights) trained on ``every`` (all training ratings) for ``best_epoch`` epochs of the
    stage's config, no validation; its weights (CPU) and history. Every rank has the same
    ``best_epoch`` (it was broadcast during selection), so all ranks take the same steps."""
    config = replace(TrainConfig(**stage["config"]), **best_epoch_settings(best_epoch))
    trainer = Trainer(model_from_payload(start), config, device, allreduce_mean_grads)
    history = trainer.fit(every, batches)
    return {
        "state": cpu_state(trainer.model),
        "history": history,
    }


def cpu_state(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """The model's state dict as detached CPU tensors (what rank 0 sends back)."""
    return {k: v.detach().cpu() for k, v in model.state_dict().items()}
