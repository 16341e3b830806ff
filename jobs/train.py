"""Train the model on the driver from ingest's per-user batches and save the model artifact.

    rbm-reco train --out OUT [--kind binary] [--epochs N] [--resume]
    spark-submit jobs/train.py --out OUT ...

Reads OUT/ingest/{train,items}/ (and OUT/ingest/test/ when present, reported per epoch, never
used for choices); writes OUT/model/ (weights, model.json, training.png) and checkpoints each
epoch to OUT/model.checkpoint/ (local disk) so ``--resume`` continues after a kill. After the
choices made on the validation holdout, the model is retrained on all training ratings
(``train.refit``, rbmcore.training.refit), checkpointed to OUT/model.checkpoint.refit/.
Helpers: ``jobs.training`` (data, model files, training on the executors).
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from typing import Any

import torch

from jobs.common.args import add_common_arguments, output_path, parse_job_args
from jobs.common.config import resolve_conf, train_settings
from jobs.common.errors import UsageError, run_main
from jobs.common.session import get_spark
from jobs.ingestion.readback import StreamingBatches, Vocabulary, load_vocabulary
from jobs.storage import fs, layout
from jobs.training.data import (
    all_training_data,
    evaluation_sample,
    load_training_data,
    rbm_only,
    user_based_only,
)
from jobs.training.distributor import train_with_distributor
from jobs.training.model_files import (
    check_training_outputs,
    checkpoint_dir,
    clear_stale_checkpoints,
    refit_dir,
    remove_checkpoints,
    save_artifact,
)
from rbmcore.device import choose_device
from rbmcore.models.factory import HYBRID_KINDS, KINDS, RANKING_MACHINES, is_ranking_kind
from rbmcore.training.build import model_for_config
from rbmcore.training.composite import trainer_for
from rbmcore.training.config import JobSettings, TrainConfig
from rbmcore.training.refit import refit_on_all_ratings

__all__ = ["run_train", "train_settings"]

log = logging.getLogger("rbm-reco.train")


def training_paths(spark, out: str, model_path: str | None) -> tuple[str, str]:
    """(OUT, the model folder) resolved on their file systems (``fs.output_dir``), the model
    folder and its checkpoint folders checked to be of their kinds before any work."""
    out = fs.output_dir(spark, out, "--out")
    model_path = fs.output_dir(spark, model_path or layout.model_dir(out), "--model")
    check_training_outputs(spark, model_path)
    return out, model_path


def run_train(
    spark, conf: dict[str, Any], out: str, model_path: str | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train on OUT's ingested data; returns the saved model's metadata."""
    config, job = train_settings(conf)
    out, model_path = training_paths(spark, out, model_path)
    if job.distributed > 0:
        return run_train_distributed(spark, config, job, out, model_path, resume)
    device = choose_device(config.device)
    vocab = load_vocabulary(spark, out)
    fit_rows, batches, validation, test, n_users, n_ratings = load_training_data(
        spark, job, config, out, vocab.n_items
    )
    fit_rows, validation, test = evaluation_sample(job, fit_rows, batches, validation, test)
    if isinstance(batches, StreamingBatches):
        config = user_based_only(config, "streamed training data (train.cache = stream)")
    log.info(
        "training %s model: %d users, %d items, %d ratings, %s hidden, device %s",
        config.kind,
        n_users,
        vocab.n_items,
        n_ratings,
        config.n_hidden or "per-part",
        device,
    )
    model = model_for_data(config, vocab, len(fit_rows))
    model.init_visible_biases(fit_rows)
    ckpt = checkpoint_dir(model_path)
    clear_stale_checkpoints(ckpt, resume)
    trainer = trainer_for(model, config, device, checkpoint_dir=ckpt, resume=resume)
    try:  # one RBM: one checkpoint folder; a composite: one per stage under ckpt
        trainer.fit_checkpointed(
            ckpt, resume, "the model", train=fit_rows, batches=batches, validation=validation,
            test=test,
        )  # fmt: skip
        refit = None
        if config.refit and validation is not None:
            every, every_batches = all_training_data(fit_rows, batches, validation)
            refit = refit_on_all_ratings(
                trainer,
                every,
                every_batches,
                checkpoint_dir=refit_dir(ckpt),
                resume=resume,
                release_selected=True,
            )
    except FloatingPointError as exc:  # the message names the kept checkpoint
        unchanged = f"the model at {fs.shown(model_path)} is unchanged"
        raise FloatingPointError(f"{exc}; {unchanged}") from exc
    meta = save_artifact(
        spark, trainer, vocab, model_path, trainer.history, n_users, n_ratings, refit
    )
    remove_checkpoints(ckpt)
    return meta


def run_train_distributed(
    spark,
    config: TrainConfig,
    job: JobSettings,
    out: str,
    model_path: str,
    resume: bool = False,
) -> dict[str, Any]:
    """Data-parallel training on the executors (``train.distributed`` = N processes; see
    ``jobs.training.distributor``) of every part of the model, the item-based ways too. The
    data are read on the driver in memory and travel with the tasks, which suits data up to a
    few tens of millions of ratings. Validation and early stopping run on rank 0; no per-epoch
    checkpoints. The model is saved like ``run_train``'s."""
    if resume:
        raise UsageError("--resume is not supported with --distributed (no per-epoch checkpoints)")
    config = rbm_only(config, "distributed training")
    vocab = load_vocabulary(spark, out)
    fit_rows, batches, validation, test, n_users, n_ratings = load_training_data(
        spark, job, config, out, vocab.n_items, cache="memory"
    )
    fit_rows, validation, test = evaluation_sample(job, fit_rows, batches, validation, test)
    model = model_for_data(config, vocab, len(fit_rows))
    model.init_visible_biases(fit_rows)
    every = None
    if config.refit and validation is not None:
        every, _ = all_training_data(fit_rows, batches, validation)
    trainer, refit = train_with_distributor(
        spark, job, model, config, fit_rows, batches, validation, test, every
    )
    return save_artifact(
        spark, trainer, vocab, model_path, trainer.history, n_users, n_ratings, refit
    )


def model_for_data(config: TrainConfig, vocab: Vocabulary, n_users: int | None = None):
    """A fresh model of ``config`` over the ingested vocabulary and rating scale; a kind that
    cannot model the data (a like model on implicit data, more softmax states than the scale
    has levels) is a usage error."""
    if vocab.scale.implicit and (config.kind in HYBRID_KINDS or not is_ranking_kind(config.kind)):
        raise UsageError(
            f"the {config.kind} kind needs ratings, and the ingested data are implicit (no "
            f"rating column); train a kind that ranks: --kind {' or '.join(RANKING_MACHINES)}"
        )
    try:
        return model_for_config(
            config, vocab.n_items, torch.Generator().manual_seed(config.seed), n_users,
            vocab.scale,
        )  # fmt: skip
    except ValueError as exc:
        raise UsageError(f"bad [train] setting for the {vocab.scale.name} data: {exc}") from exc


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
    parser.add_argument(
        "--out", required=True, type=output_path, help="run folder holding ingest/ (local or URI)"
    )
    parser.add_argument(
        "--model", type=output_path,
        help="model folder to write (default OUT/model); an existing folder must be a model "
        "folder",
    )  # fmt: skip
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
    item-based ways' and a deep belief net's upper layers' too (their ``[train.item]`` and
    ``[train.layer]`` epochs have defaults of their own, not ``train.epochs``)."""
    names = ("kind", "epochs", "n_hidden", "lr", "seed", "device", "distributed")
    train: dict[str, Any] = {n: getattr(args, n, None) for n in names}
    if args.epochs is not None:
        train["item"] = {"epochs": args.epochs}
        train["layer"] = {"epochs": args.epochs}
    return {"train": train}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco train", __doc__, add_arguments, argv)
    conf = resolve_conf(args, train_overrides(args))
    spark = get_spark(conf, args.master, args.log_level)
    meta = run_train(spark, conf, args.out, args.model, args.resume)
    where = args.model or layout.model_dir(args.out)
    print(f"model {meta['model_id']} ({meta['kind']}) written to {where}")
    return 0


if __name__ == "__main__":
    run_main(main, None)
