"""Training on the executors: ``train.distributed`` = N data-parallel torch processes started
by Spark's ``TorchDistributor`` (barrier tasks), each running
``rbmcore.training.distributed.train_worker`` on its share of every batch.

Every single RBM of the model (a hybrid's parts, an ensemble's members, a two-way model's
user-based and item-based ways) is a *stage* of one distributed run, trained one after another
in the same process group, each then refit on all ratings in the same run; the driver then
makes the choices made after training (the two-way weights, a hybrid's alpha) on the same
validation split as single-process training (``trainers_from_result``). The data travel with
the tasks as numpy arrays, so no shared file system is needed.
"""

from __future__ import annotations

import logging
from typing import Any

import torch

from jobs.common.errors import JobError, UsageError
from rbmcore.training.config import JobSettings, TrainConfig
from rbmcore.training.distributed import make_payload, trainers_from_result
from rbmcore.training.refit import fresh_refit_model

log = logging.getLogger("rbm-reco.train")


def train_with_distributor(
    spark, job: JobSettings, model, config: TrainConfig, train, batches, validation, test,
    every=None,
):  # fmt: skip
    """Train the initialised ``model`` on the executors: one distributed run in which every
    stage (``rbmcore.training.distributed.plan_stages``) trains one after another, as the
    composite trainers would, and, given ``every`` (all training ratings), is then refit on it
    (``rbmcore.training.refit``); the blend weights are chosen on the driver. Returns (a
    trainer holding the selected model, its history and best epochs; the refit's trainer, or
    None)."""
    refit = None if every is None else (every, fresh_refit_model(config, every, model.scale))
    processes = int(job.distributed)
    if processes < 1:
        raise UsageError(f"train.distributed must be >= 1 processes, got {processes}")
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    payload = make_payload(
        model, config, train, batches, validation, test, threads,
        float(job.distributed_timeout_s), refit,
    )  # fmt: skip
    result = fit_distributed(spark, job, payload, train)
    if refit is not None and "refit" not in result:
        raise JobError("distributed training returned no refit model from rank 0")
    return trainers_from_result(
        model, config, result, train, validation, torch.device(result["device"]), refit
    )


def fit_distributed(spark, job: JobSettings, payload: dict[str, Any], fit_rows) -> dict[str, Any]:
    """Run ``payload``'s stages (``make_payload``) in one run of ``train.distributed``
    TorchDistributor processes; rank 0's result (``train_worker``)."""
    from pyspark.ml.torch.distributor import TorchDistributor

    processes = int(job.distributed)
    use_gpu = executors_have_gpus(spark, job.distributed_gpu)
    stages = payload["stages"]
    log.info(
        "distributed training of %s: %d processes on the executors (%s, %d threads "
        "each, collectives time out after %.0f s), %d users, %d ratings",
        " then ".join(
            f"{stage['name']} ({stage['config']['kind']} RBM)" for stage in stages
        ),
        processes,
        "GPU/nccl" if use_gpu else "CPU/gloo",
        payload["threads"],
        payload["timeout_s"],
        len(fit_rows),
        fit_rows.nnz,
    )
    distributor = TorchDistributor(num_processes=processes, local_mode=False, use_gpu=use_gpu)
    result = distributor.run(distributed_entry(), payload)
    names = {stage["name"] for stage in stages}
    if not result or set(result.get("stages", {})) != names:
        raise JobError("distributed training returned no model from rank 0")
    return result


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
