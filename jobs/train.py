"""Train the RBM on the driver from ingest's per-user batches and save the model artifact.

    rbm-reco train --out OUT [--kind binary] [--epochs N] [--resume]
    spark-submit jobs/train.py --out OUT ...

Reads OUT/ingest/{train,items}/ (and OUT/ingest/test/ when present, reported per epoch, never
used for choices); writes OUT/model/ (weights, model.json, training.png) and checkpoints each
epoch to OUT/model.checkpoint/ (local disk) so ``--resume`` continues after a kill. After the
choices made on the validation holdout, the model is retrained on all training ratings
(``train.refit``, rbmcore.refit), checkpointed to OUT/model.checkpoint.refit/.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import shutil
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from jobs import fs, layout  # noqa: E402
from jobs.common import (  # noqa: E402
    JobError,
    UsageError,
    add_common_arguments,
    get_spark,
    parse_job_args,
    resolve_conf,
    run_main,
)
from jobs.ingested import (  # noqa: E402
    DEFAULT_CACHE_BUDGET_MB,
    StreamingBatches,
    align_rows,
    choose_cache,
    load_user_rows,
    load_user_rows_of,
    load_vocabulary,
    require,
)
from jobs.report import LOSS_PLOT, plot_training  # noqa: E402
from rbmcore.checkpoint import fit_resumable  # noqa: E402
from rbmcore.data import (  # noqa: E402
    DEFAULT_EVAL_USERS,
    batches_from_assignment,
    bounded_evaluation,
    merge_rows,
    split_holdout,
)
from rbmcore.device import choose_device  # noqa: E402
from rbmcore.ensemble import EnsembleRBM, EnsembleTrainer, member_config, member_name  # noqa: E402
from rbmcore.hybrid import (  # noqa: E402
    choose_alpha,
    model_for_config,
    trainer_for,
)
from rbmcore.models import KINDS  # noqa: E402
from rbmcore.refit import copy_choices, fresh_refit_model, refit_on_all_ratings  # noqa: E402
from rbmcore.training import (  # noqa: E402
    HYBRID_PARTS,
    TrainConfig,
    Trainer,
    best_epoch_settings,
    without_item_parts,
)

log = logging.getLogger("rbm-reco.train")


# [train] keys this job reads itself (not TrainConfig's): the number of data-parallel training
# processes on the executors (0 = train on the driver) and whether they use GPUs; how the
# training data are held (cache = auto/memory/stream, cache_budget_mb; load_training_data);
# how many users validation and the per-epoch test report score (eval_users; evaluation_sample).
JOB_KEYS = frozenset(
    {
        "distributed", "distributed_gpu", "distributed_timeout_s", "cache", "cache_budget_mb",
        "eval_users",
    }
)  # fmt: skip


def train_config_from(conf: dict[str, Any]) -> TrainConfig:
    """The [train] table as a TrainConfig; unknown keys are an error, not silently ignored."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    settings = {k: v for k, v in conf.get("train", {}).items() if k not in JOB_KEYS}
    unknown = sorted(set(settings) - fields)
    if unknown:
        raise UsageError(f"unknown [train] settings: {', '.join(unknown)}; known: {sorted(fields)}")
    try:
        config = TrainConfig(**settings)
    except ValueError as exc:
        raise UsageError(f"bad [train] setting: {exc}") from exc
    if config.kind not in KINDS:
        raise UsageError(f"unknown model kind {config.kind!r}; choose one of {', '.join(KINDS)}")
    return config


def checkpoint_dir(model_path: str) -> str:
    """Checkpoints live on the driver's local disk beside a local model folder, else in /tmp."""
    if fs.is_local(model_path):
        return fs.local_path(model_path).rstrip("/") + ".checkpoint"
    return os.path.join(tempfile.gettempdir(), "rbm-reco-checkpoints", str(abs(hash(model_path))))


def user_based_only(config: TrainConfig, reason: str) -> TrainConfig:
    """``config`` without item-based parts (they need every rating in the driver's memory),
    logged when that changes the model."""
    plain = without_item_parts(config)
    if plain != config:
        log.warning("%s: training user-based RBMs only (no item-based parts)", reason)
    return plain


def load_training_data(spark, conf: dict[str, Any], config: TrainConfig, out: str, n_items: int):
    """The training data, held in memory or streamed (``train.cache``; DESIGN section 4).

    Returns (fit_part, batches, validation, test, n_users, n_ratings). ``memory``: the whole
    CSR on the driver, ``batches`` its row positions per ingest batch, validation and test
    over every user (``evaluation_sample`` bounds what each epoch evaluates). ``stream``:
    ``batches`` is a ``StreamingBatches`` that reads a bounded group of batches from the
    Parquet at a time (the driver's memory does not grow with the number of users);
    validation, test and the visible-bias initialisation (``fit_part``) use a bounded sample
    of users (the lowest batch ids, a quarter of the budget).
    ``auto`` (the default) streams when the in-memory data would exceed
    ``train.cache_budget_mb`` (default 2048).
    """
    settings = conf.get("train", {})
    budget_mb = float(settings.get("cache_budget_mb", DEFAULT_CACHE_BUDGET_MB))
    path = layout.train_ratings(out)
    require(spark, path, "ingested ratings")
    mode = choose_cache(path, str(settings.get("cache", "auto")), budget_mb)
    if mode == "stream":
        budget = int(budget_mb * 2**20)
        stream = StreamingBatches(
            path, n_items, group_bytes=budget // 4, holdout=config.val_fraction, seed=config.seed
        )
        if len(stream) == 0:
            raise JobError("no training users in the ingested data")
        fit_part, held, sample_users = stream.sample(budget // 4)
        validation = (fit_part, held) if config.val_fraction > 0 else None
        test = None
        if fs.exists(spark, layout.test_ratings(out)):
            test_rows = load_user_rows_of(layout.test_ratings(out), n_items, sample_users)
            test = align_rows(fit_part, test_rows)
        log.info(
            "streaming the training data in groups of about %d MB (%d batches); validation "
            "and test on a sample of %d users",
            budget // 4 // 2**20,
            len(stream),
            len(sample_users),
        )
        return fit_part, stream, validation, test, stream.n_users, stream.nnz
    train, batch_ids = load_user_rows(spark, path, n_items, True)
    if len(train) == 0:
        raise JobError("no training users in the ingested data")
    test = None
    if fs.exists(spark, layout.test_ratings(out)):
        test_rows, _ = load_user_rows(spark, layout.test_ratings(out), n_items)
        test = align_rows(train, test_rows)
    fit_part, validation = train, None
    if config.val_fraction > 0:
        fit_part, held = split_holdout(
            train, config.val_fraction, np.random.default_rng(config.seed)
        )
        validation = (fit_part, held)
    batches = batches_from_assignment(batch_ids)
    return fit_part, batches, validation, test, len(train), train.nnz


def evaluation_sample(conf: dict[str, Any], fit_part, batches, validation, test):
    """``rbmcore.data.bounded_evaluation`` with ``train.eval_users`` (default 20,000; 0 = all):
    in memory, validation (early stopping, two-way weights, alpha) and the per-epoch test
    report on the users of the lowest batch ids up to that many (ingest assigns batches by a
    hash of the user id: a fixed pseudo-random sample), the other users' holdout trained on;
    each epoch's evaluation then costs the same at any data size and the refit still gets
    every rating. Streamed data are a bounded sample already. Returns (fit_part, validation,
    test)."""
    limit = int(conf.get("train", {}).get("eval_users", DEFAULT_EVAL_USERS))
    if limit < 0:
        raise UsageError(f"train.eval_users must be >= 0 (0 = all users), got {limit}")
    if isinstance(batches, StreamingBatches):
        return fit_part, validation, test
    if 0 < limit < len(fit_part):
        log.info(
            "validation and the per-epoch test report on %d of %d training users "
            "(train.eval_users)",
            limit,
            len(fit_part),
        )
    return bounded_evaluation(fit_part, batches, validation, test, limit)


def run_train(
    spark, conf: dict[str, Any], out: str, model_path: str | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train on OUT's ingested data; returns the saved model's metadata."""
    if int(conf.get("train", {}).get("distributed") or 0) > 0:
        return run_train_distributed(spark, conf, out, model_path, resume)
    config = train_config_from(conf)
    device = choose_device(config.device)
    model_path = model_path or layout.model_dir(out)
    vocab = load_vocabulary(spark, out)
    fit_part, batches, validation, test, n_users, n_ratings = load_training_data(
        spark, conf, config, out, vocab.n_items
    )
    fit_part, validation, test = evaluation_sample(conf, fit_part, batches, validation, test)
    if isinstance(batches, StreamingBatches):
        config = user_based_only(config, "streamed training data (train.cache = stream)")
    log.info(
        "training %s RBM: %d users, %d items, %d ratings, %s hidden, device %s",
        config.kind,
        n_users,
        vocab.n_items,
        n_ratings,
        config.n_hidden or "per-part",
        device,
    )
    model = model_for_config(
        config, vocab.n_items, torch.Generator().manual_seed(config.seed), len(fit_part)
    )
    model.init_visible_biases(fit_part)
    ckpt = checkpoint_dir(model_path)
    clear_stale_checkpoints(ckpt, resume)
    trainer = trainer_for(model, config, device, checkpoint_dir=ckpt, resume=resume)
    try:
        if isinstance(trainer, Trainer):  # one RBM: one checkpoint folder
            fit_resumable(
                trainer,
                ckpt,
                resume,
                "the model",
                train=fit_part,
                batches=batches,
                validation=validation,
                test=test,
            )
        else:  # hybrid / two-way: parts in turn, per-part checkpoints under ckpt
            trainer.fit(fit_part, batches, validation, test)
        refit = None
        if config.refit and validation is not None:
            every, every_batches = all_training_data(fit_part, batches, validation)
            refit = refit_on_all_ratings(
                trainer,
                every,
                every_batches,
                checkpoint_dir=refit_dir(ckpt),
                resume=resume,
                release_selected=True,
            )
    except FloatingPointError as exc:  # the message names the kept checkpoint
        raise FloatingPointError(f"{exc}; the model at {model_path} is unchanged") from exc
    meta = save_artifact(
        spark, trainer, vocab.movie_ids, model_path, trainer.history, n_users, n_ratings, refit
    )
    for folder in (ckpt, refit_dir(ckpt)):
        shutil.rmtree(folder, ignore_errors=True)
    return meta


def refit_dir(ckpt: str) -> str:
    """Where the refit on all ratings checkpoints (beside the selection's checkpoints)."""
    return ckpt.rstrip("/") + ".refit"


def clear_stale_checkpoints(ckpt: str, resume: bool) -> None:
    """Without ``--resume``, remove the checkpoints an earlier run left; with it, say when
    there are none."""
    folders = [f for f in (ckpt, refit_dir(ckpt)) if os.path.exists(f)]
    if resume and not folders:
        log.info("no checkpoint at %s; training from the start", ckpt)
    elif folders and not resume:
        log.warning("removing the checkpoints of an earlier run (no --resume): %s", folders)
        for folder in folders:
            shutil.rmtree(folder, ignore_errors=True)


def all_training_data(fit_part, batches, validation):
    """(ratings, batches) of every training rating, the validation holdout included, for the
    refit: in memory the merged CSR and the same batches; streamed, the same batches without
    their holdout (the CSR then is the validation sample, for the visible-bias start only)."""
    every = merge_rows(fit_part, validation[1])
    if isinstance(batches, StreamingBatches):
        return every, batches.without_holdout()
    return every, batches


def run_train_distributed(
    spark, conf: dict[str, Any], out: str, model_path: str | None = None, resume: bool = False
) -> dict[str, Any]:
    """Data-parallel training on the executors (``train.distributed`` = N processes).

    ``TorchDistributor(local_mode=False)`` runs N barrier tasks; each starts one torch process
    that trains on its share of every batch, gradients averaged by all-reduce (gloo on CPU,
    nccl on GPU; see ``rbmcore.distributed``). The data travel with the tasks as numpy arrays
    (read here on the driver with ``train.cache = "memory"``), so no shared file system is
    needed; that suits data up to a few tens of millions of ratings. Validation and early
    stopping run on rank 0; no per-epoch checkpoints. A hybrid trains its two parts one after
    the other in the same distributed run and chooses alpha on the driver; the refit on all
    ratings (``train.refit``) runs in that same run. The model is saved like ``run_train``'s.
    """
    if resume:
        raise UsageError("--resume is not supported with --distributed (no per-epoch checkpoints)")
    config = user_based_only(train_config_from(conf), "distributed training")
    model_path = model_path or layout.model_dir(out)
    vocab = load_vocabulary(spark, out)
    in_memory = {**conf, "train": {**conf.get("train", {}), "cache": "memory"}}
    fit_part, batches, validation, test, n_users, n_ratings = load_training_data(
        spark, in_memory, config, out, vocab.n_items
    )
    fit_part, validation, test = evaluation_sample(conf, fit_part, batches, validation, test)
    model = model_for_config(config, vocab.n_items, torch.Generator().manual_seed(config.seed))
    model.init_visible_biases(fit_part)
    every = None
    if config.refit and validation is not None:
        every, _ = all_training_data(fit_part, batches, validation)
    trainer, refit = train_with_distributor(
        spark, conf, model, config, fit_part, batches, validation, test, every
    )
    return save_artifact(
        spark, trainer, vocab.movie_ids, model_path, trainer.history, n_users, n_ratings, refit
    )


def distributed_parts(model: torch.nn.Module, config: TrainConfig) -> dict[str, tuple]:
    """{name: (module, config)} of what one distributed run trains, in order: a hybrid's
    ``rated`` and ``like`` parts (else the ``model`` itself), an ensemble (``EnsembleRBM``)
    as its members (``like.member1``, ..., each with its member config)."""
    hybrid = config.kind == "hybrid"
    named = [(n, getattr(model, n), config.part(n)) for n in HYBRID_PARTS] if hybrid else [
        ("model", model, config)
    ]
    parts: dict[str, tuple] = {}
    for name, module, part_config in named:
        if isinstance(module, EnsembleRBM):
            for m, member in enumerate(module.members):
                parts[f"{name}.{member_name(m)}"] = (member, member_config(part_config, m))
        else:
            parts[name] = (module, part_config)
    return parts


def module_at(model: torch.nn.Module, name: str) -> torch.nn.Module:
    """The module a ``distributed_parts`` name refers to in ``model`` (same architecture)."""
    path = name.split(".")
    module = model if path[0] == "model" else getattr(model, path[0])
    if len(path) > 1:
        module = module.members[member_number(name) - 1]
    return module


def record_selection(trainer, config: TrainConfig, best: dict[str, int]) -> None:
    """Set ``trainer``'s best epochs and refit settings from each distributed part's best
    epoch (``best``: {``distributed_parts`` name: epoch}), as its own ``fit`` would."""

    def settings(prefix: str) -> tuple[int, dict[str, Any]]:
        members = sorted((n for n in best if n.startswith(f"{prefix}.member")), key=member_number)
        if not members:
            return best[prefix], best_epoch_settings(best[prefix])
        return best[members[0]], {"members": [best_epoch_settings(best[n]) for n in members]}

    if config.kind == "hybrid":
        for part in HYBRID_PARTS:
            trainer.best_epochs[part], trainer.part_settings[part] = settings(part)
    elif isinstance(trainer, EnsembleTrainer):
        for n in sorted(best, key=member_number):
            member = n.split(".")[1]
            trainer.best_epochs[member] = best[n]
            trainer.part_settings[member] = best_epoch_settings(best[n])
    else:
        trainer.best_epoch = best["model"]


def member_number(name: str) -> int:
    """The member number (1, 2, ...) of a ``distributed_parts`` name; 0 for a whole part."""
    tail = name.rsplit(".", 1)[-1]
    return int(tail.removeprefix("member")) if tail.startswith("member") else 0


def train_with_distributor(
    spark, conf, model, config: TrainConfig, train, batches, validation, test, every=None
):
    """Train the initialised ``model`` with ``fit_distributed``: one distributed run, in which
    the ``distributed_parts`` (a hybrid's parts, an ensemble's members) train one after another
    (as ``HybridTrainer.fit`` / ``EnsembleTrainer.fit`` do) and, given ``every`` (all training
    ratings), each part is then refit on it (``rbmcore.refit``); a hybrid's alpha is chosen on
    the driver. Returns (a trainer holding the selected model, its history and best epochs;
    the refit's trainer, or None)."""
    cpu = torch.device("cpu")
    hybrid = config.kind == "hybrid"
    parts = distributed_parts(model, config)
    refit_model = None if every is None else fresh_refit_model(config, every)
    refit_start = None
    if refit_model is not None:
        refit_start = (every, {n: module_at(refit_model, n) for n in parts})
    results, device = fit_distributed(
        spark, conf, parts, train, batches, validation, test, refit_start
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
    conf: dict[str, Any],
    parts: dict[str, tuple[torch.nn.Module, TrainConfig]],
    fit_part,
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

    from rbmcore.distributed import DEFAULT_TIMEOUT_S, make_payload

    processes = int(conf["train"]["distributed"])
    if processes < 1:
        raise UsageError(f"train.distributed must be >= 1 processes, got {processes}")
    timeout_s = float(conf["train"].get("distributed_timeout_s", DEFAULT_TIMEOUT_S))
    if not timeout_s > 0:
        raise UsageError(f"train.distributed_timeout_s must be > 0 seconds, got {timeout_s}")
    use_gpu = executors_have_gpus(spark, conf["train"].get("distributed_gpu", "auto"))
    threads = int(spark.conf.get("spark.task.cpus", "1"))
    log.info(
        "distributed training of %s: %d processes on the executors (%s, %d threads "
        "each, collectives time out after %.0f s), %d users, %d ratings",
        " then ".join(f"{name} ({config.kind} RBM)" for name, (_, config) in parts.items()),
        processes,
        "GPU/nccl" if use_gpu else "CPU/gloo",
        threads,
        timeout_s,
        len(fit_part),
        fit_part.nnz,
    )
    payload = make_payload(
        parts, fit_part, batches, validation, test, threads, timeout_s, refit_start
    )
    distributor = TorchDistributor(num_processes=processes, local_mode=False, use_gpu=use_gpu)
    result = distributor.run(distributed_entry(), payload)
    if not result or set(result.get("parts", {})) != set(parts):
        raise JobError("distributed training returned no model from rank 0")
    if refit_start is not None and not all("refit" in r for r in result["parts"].values()):
        raise JobError("distributed training returned no refit model from rank 0")
    return result["parts"], torch.device(result["device"])


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
    """The function each torch process runs: ``rbmcore.distributed.train_worker``.

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
        from rbmcore.distributed import train_worker

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


def save_artifact(
    spark,
    trainer: Trainer,
    movie_ids: np.ndarray,
    model_path: str,
    history: list[dict[str, Any]],
    n_users: int,
    n_ratings: int,
    refit: Any = None,
) -> dict[str, Any]:
    """Save weights + model.json + the training plot, locally or to a URI: ``trainer``'s
    model, or ``refit``'s (a trainer of the refit on all ratings) when given; the metadata of
    the validation choices come from ``trainer``."""
    from rbmcore.artifact import save_model

    training = {
        "config": trainer.config.to_dict(),
        "history": history,
        "best_epoch": trainer.best_epoch,
        **{
            k: getattr(trainer, k) for k in ("alpha_search", "weight_search") if hasattr(trainer, k)
        },
        "users": n_users,
        "ratings": n_ratings,
        "device": str(trainer.device),
    }
    model = trainer.model
    if refit is not None:
        training["refit"] = {"settings": trainer.refit_settings(), "history": refit.history}
        model = refit.model
    local = fs.local_path(model_path) if fs.is_local(model_path) else tempfile.mkdtemp() + "/model"
    meta = save_model(local, model.cpu(), movie_ids, training)
    plot_training(history, Path(local) / LOSS_PLOT, f"{trainer.config.kind} RBM")
    fs.upload_dir(spark, local, model_path)
    log.info(
        "model %s saved to %s (best epoch %d%s)",
        meta["model_id"],
        model_path,
        trainer.best_epoch,
        ", retrained on all ratings" if refit is not None else "",
    )
    return meta


def add_training_arguments(parser: argparse.ArgumentParser) -> None:
    """The training flags ``rbm-reco train`` and ``rbm-reco run`` share (``train_overrides``
    turns them into [train] settings)."""
    parser.add_argument("--kind", choices=KINDS, help="model kind (default from config: hybrid)")
    parser.add_argument(
        "--epochs", type=int, help="maximum training epochs of every part (item-based ways too)"
    )
    parser.add_argument("--hidden", type=int, dest="n_hidden", help="hidden units")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--device", help="auto (cuda if available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last per-epoch checkpoint of an interrupted run",
    )


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run folder holding ingest/ (local or URI)")
    parser.add_argument("--model", help="model folder to write (default OUT/model)")
    add_training_arguments(parser)
    parser.add_argument(
        "--distributed",
        type=int,
        metavar="N",
        help="data-parallel training in N processes on the executors (TorchDistributor); "
        "default: the config's train.distributed, 0 = on the driver",
    )
    add_common_arguments(parser)


def train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    """The [train] settings the flags give; ``--epochs`` is every part's maximum, the
    item-based ways' too (their ``[train.item]`` epochs default to 150, not ``train.epochs``)."""
    names = ("kind", "epochs", "n_hidden", "lr", "seed", "device", "distributed")
    train: dict[str, Any] = {n: getattr(args, n, None) for n in names}
    if args.epochs is not None:
        train["item"] = {"epochs": args.epochs}
    return {"train": train}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco train", __doc__, add_arguments, argv)
    conf = resolve_conf(args, train_overrides(args))
    spark = get_spark(conf, args.master)
    meta = run_train(spark, conf, args.out, args.model, args.resume)
    where = args.model or layout.model_dir(args.out)
    print(f"model {meta['model_id']} ({meta['kind']}) written to {where}")
    return 0


if __name__ == "__main__":
    run_main(main, None)
