"""Training on the executors: ``train.distributed`` = N data-parallel torch processes started
by Spark's ``TorchDistributor`` (barrier tasks), each running
``rbmcore.training.distributed.train_worker`` on its share of every batch.

A hybrid's parts and an ensemble's members are *stages* of one distributed run, trained one
after another in the same process group, each then refit on all ratings in the same run; the
driver chooses a hybrid's alpha afterwards. The data travel with the tasks as numpy arrays, so
no shared file system is needed.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from jobs.common.errors import JobError, UsageError
from rbmcore.models.contract import Recommender
from rbmcore.models.ensemble import EnsembleRBM
from rbmcore.training.composite import EnsembleTrainer, member_config, member_name, trainer_for
from rbmcore.training.config import HYBRID_PARTS, JobSettings, TrainConfig
from rbmcore.training.distributed import make_payload
from rbmcore.training.refit import copy_choices, fresh_refit_model
from rbmcore.training.selection import choose_alpha
from rbmcore.training.trainer import best_epoch_settings

log = logging.getLogger("rbm-reco.train")


def distributed_stages(model: Recommender, config: TrainConfig) -> dict[str, tuple]:
    """{name: (module, config)} of what one distributed run trains, in order: a hybrid's
    ``rated`` and ``like`` parts (else the ``model`` itself), an ensemble (``EnsembleRBM``)
    as its members (``like.member1``, ..., each with its member config)."""
    hybrid = config.kind == "hybrid"
    named = [(n, getattr(model, n), config.part(n)) for n in HYBRID_PARTS] if hybrid else [
        ("model", model, config)
    ]
    stages: dict[str, tuple] = {}
    for name, module, part_config in named:
        if isinstance(module, EnsembleRBM):
            for m, member in enumerate(module.members):
                stages[f"{name}.{member_name(m)}"] = (member, member_config(part_config, m))
        else:
            stages[name] = (module, part_config)
    return stages


def module_at(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The module a ``distributed_stages`` name refers to in ``model`` (same architecture)."""
    path = name.split(".")
    module = model if path[0] == "model" else getattr(model, path[0])
    if len(path) > 1:
        module = module.members[member_number(name) - 1]
    return module


def record_selection(trainer, config: TrainConfig, best: dict[str, int]) -> None:
    """Set ``trainer``'s best epochs and refit settings from each distributed part's best
    epoch (``best``: {``distributed_stages`` name: epoch}), as its own ``fit`` would."""

    def settings(prefix: str) -> tuple[int, dict[str, Any]]:
        members = sorted((n for n in best if n.startswith(f"{prefix}.member")), key=member_number)
        if not members:
            return best[prefix], best_epoch_settings(best[prefix])
        return best[members[0]], {"members": [best_epoch_settings(best[n]) for n in members]}

    if config.kind == "hybrid":
        for part in HYBRID_PARTS:
            trainer.best_epochs[part], trainer.stage_settings[part] = settings(part)
    elif isinstance(trainer, EnsembleTrainer):
        for n in sorted(best, key=member_number):
            member = n.split(".")[1]
            trainer.best_epochs[member] = best[n]
            trainer.stage_settings[member] = best_epoch_settings(best[n])
    else:
        trainer.best_epoch = best["model"]


def member_number(name: str) -> int:
    """The member number (1, 2, ...) of a ``distributed_stages`` name; 0 for a whole part."""
    tail = name.rsplit(".", 1)[-1]
    return int(tail.removeprefix("member")) if tail.startswith("member") else 0


def train_with_distributor(
    spark, job: JobSettings, model, config: TrainConfig, train, batches, validation, test,
    every=None,
):  # fmt: skip
    """Train the initialised ``model`` with ``fit_distributed``: one distributed run, in which
    the ``distributed_stages`` (a hybrid's parts, an ensemble's members) train one after another
    (as ``HybridTrainer.fit`` / ``EnsembleTrainer.fit`` do) and, given ``every`` (all training
    ratings), each stage is then refit on it (``rbmcore.training.refit``); a hybrid's alpha is
    chosen on the driver. Returns (a trainer holding the selected model, its history and best
    epochs; the refit's trainer, or None)."""
    cpu = torch.device("cpu")
    hybrid = config.kind == "hybrid"
    stages = distributed_stages(model, config)
    refit_model = None if every is None else fresh_refit_model(config, every, model.scale)
    refit_start = None
    if refit_model is not None:
        refit_start = (every, {n: module_at(refit_model, n) for n in stages})
    results, device = fit_distributed(
        spark, job, stages, train, batches, validation, test, refit_start
    )
    trainer = trainer_for(model, config, cpu)
    refit = None if refit_model is None else trainer_for(refit_model, config, cpu)
    for name, result in results.items():
        module_at(model, name).load_state_dict(result["state"])
        tag = {"part": name.split(".")[0]} if hybrid else {}
        if member_number(name):
            tag["member"] = member_number(name)
        trainer.history += [{**record, **tag} for record in result["history"]]
        if refit is not None:
            module_at(refit_model, name).load_state_dict(result["refit"]["state"])
            refit.history += [{**record, **tag} for record in result["refit"]["history"]]
    record_selection(trainer, config, {n: int(r["best_epoch"]) for n, r in results.items()})
    if hybrid and validation is not None and validation[1].nnz:
        _, trainer.alpha_search = choose_alpha(model, *validation, cpu)
    if refit is not None:
        copy_choices(model, refit_model)
        refit.device = device
    trainer.device = device
    return trainer, refit


def fit_distributed(
    spark,
    job: JobSettings,
    stages: dict[str, tuple[torch.nn.Module, TrainConfig]],
    fit_rows,
    batches: list[np.ndarray],
    validation=None,
    test=None,
    refit_start: tuple[Any, dict[str, torch.nn.Module]] | None = None,
) -> tuple[dict[str, dict[str, Any]], torch.device]:
    """Train the initialised ``parts`` ({name: (model, config)}, one after another) in one run
    of ``train.distributed`` TorchDistributor processes, each then refit when ``refit_start``
    = (all training ratings, {name: the refit's starting model}) is given; ({name: {"state",
    "history", "best_epoch"[, "refit": {"state", "history"}]}}, device of rank 0). The models
    themselves are not changed."""
    from pyspark.ml.torch.distributor import TorchDistributor

    processes = int(job.distributed)
    if processes < 1:
        raise UsageError(f"train.distributed must be >= 1 processes, got {processes}")
    timeout_s = float(job.distributed_timeout_s)
    use_gpu = executors_have_gpus(spark, job.distributed_gpu)
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    log.info(
        "distributed training of %s: %d processes on the executors (%s, %d threads "
        "each, collectives time out after %.0f s), %d users, %d ratings",
        " then ".join(f"{name} ({config.kind} RBM)" for name, (_, config) in stages.items()),
        processes,
        "GPU/nccl" if use_gpu else "CPU/gloo",
        threads,
        timeout_s,
        len(fit_rows),
        fit_rows.nnz,
    )
    payload = make_payload(
        stages, fit_rows, batches, validation, test, threads, timeout_s, refit_start
    )
    distributor = TorchDistributor(num_processes=processes, local_mode=False, use_gpu=use_gpu)
    result = distributor.run(distributed_entry(), payload)
    if not result or set(result.get("stages", {})) != set(stages):
        raise JobError("distributed training returned no model from rank 0")
    if refit_start is not None and not all("refit" in r for r in result["stages"].values()):
        raise JobError("distributed training returned no refit model from rank 0")
    return result["stages"], torch.device(result["device"])


def executors_have_gpus(spark, setting: Any = "auto") -> bool:
    """``train.distributed_gpu``: true/false, or "auto" = the executors were given GPUs
    (``spark.executor.resource.gpu.amount`` > 0; TorchDistributor then also needs
    ``spark.task.resource.gpu.amount``)."""
    if isinstance(setting, bool):
        return setting
    if str(setting).lower() in ("true", "1", "yes"):
        return True
    if str(setting).lower() in ("false", "0", "no"):
        return False
    return float(spark.conf.get("spark.executor.resource.gpu.amount", "0") or 0) > 0


def distributed_entry():
    """The function each torch process runs: ``rbmcore.training.distributed.train_worker``.

    Built as a closure so cloudpickle ships it by value: the process that runs it (started
    by torchrun on an executor) does not inherit the Python worker's ``sys.path``, so when the
    code came with ``--py-files`` rather than installed, it first appends the ``.zip`` files
    in its working directory (where standalone and YARN executors fetch ``--py-files``).
    Elsewhere, install the project in the executors' Python (wheel, or a venv-pack archive).
    Once training has returned, the process leaves with ``os._exit(0)`` at exit (see below).
    """

    def entry(payload):
        import atexit
        import faulthandler
        import glob
        import os
        import sys

        faulthandler.enable()  # a native abort (SIGABRT) prints every thread's Python stack
        for path in sorted(glob.glob(os.path.join(os.getcwd(), "*.zip"))):
            if path not in sys.path:
                sys.path.append(path)
        from rbmcore.training.distributed import train_worker

        result = train_worker(payload)

        def exit_without_finalizing() -> None:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(0)

        # after the output is written (the launcher's script does that once this returns),
        # leave without interpreter finalization, where torch/gloo threads torn down at exit
        # can abort the process ("terminate called without an active exception", SIGABRT); a
        # rank aborted like that, at a time not pinned down, in a run of the cluster test
        atexit.register(exit_without_finalizing)
        return result

    return entry
