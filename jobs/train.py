"""Train the RBM on the driver from ingest's per-user batches and save the model artifact.

    rbm-reco train --out OUT [--kind binary] [--epochs N] [--resume]
    spark-submit jobs/train.py --out OUT ...

Reads OUT/ingest/{train,items}/ (and OUT/ingest/test/ when present, reported per epoch, never
used for choices); writes OUT/model/ (weights, model.json, training.png) and checkpoints each
epoch to OUT/model.checkpoint/ (local disk) so ``--resume`` continues after a kill.
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
    resolve_conf,
    run_main,
    setup_logging,
)
from jobs.ingested import align_rows, load_user_rows, load_vocabulary  # noqa: E402
from jobs.report import LOSS_PLOT, plot_training  # noqa: E402
from rbmcore.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint  # noqa: E402
from rbmcore.data import batches_from_assignment, split_holdout  # noqa: E402
from rbmcore.device import choose_device  # noqa: E402
from rbmcore.models import KINDS, build_model  # noqa: E402
from rbmcore.training import TrainConfig, Trainer  # noqa: E402

log = logging.getLogger("rbm-reco.train")


def train_config_from(conf: dict[str, Any]) -> TrainConfig:
    """The [train] table as a TrainConfig; unknown keys are an error, not silently ignored."""
    fields = {f.name for f in dataclasses.fields(TrainConfig)}
    unknown = sorted(set(conf.get("train", {})) - fields)
    if unknown:
        raise UsageError(f"unknown [train] settings: {', '.join(unknown)}; known: {sorted(fields)}")
    config = TrainConfig(**conf.get("train", {}))
    if config.kind not in KINDS:
        raise UsageError(f"unknown model kind {config.kind!r}; choose one of {', '.join(KINDS)}")
    return config


def checkpoint_dir(model_path: str) -> str:
    """Checkpoints live on the driver's local disk beside a local model folder, else in /tmp."""
    if fs.is_local(model_path):
        return fs.local_path(model_path).rstrip("/") + ".checkpoint"
    return os.path.join(tempfile.gettempdir(), "rbm-reco-checkpoints", str(abs(hash(model_path))))


def run_train(
    spark, conf: dict[str, Any], out: str, model_path: str | None = None, resume: bool = False
) -> dict[str, Any]:
    """Train on OUT's ingested data; returns the saved model's metadata."""
    config = train_config_from(conf)
    device = choose_device(config.device)
    model_path = model_path or layout.model_dir(out)
    vocab = load_vocabulary(spark, out)
    train, batch_ids = load_user_rows(spark, layout.train_ratings(out), vocab.n_items, True)
    if len(train) == 0:
        raise JobError("no training users in the ingested data")
    test = None
    if fs.exists(spark, layout.test_ratings(out)):
        test_rows, _ = load_user_rows(spark, layout.test_ratings(out), vocab.n_items)
        test = align_rows(train, test_rows)
    log.info(
        "training %s RBM: %d users, %d items, %d ratings, %d hidden, device %s",
        config.kind,
        len(train),
        vocab.n_items,
        train.nnz,
        config.n_hidden,
        device,
    )
    fit_part, validation = train, None
    if config.val_fraction > 0:
        fit_part, held = split_holdout(
            train, config.val_fraction, np.random.default_rng(config.seed)
        )
        validation = (fit_part, held)
    batches = batches_from_assignment(batch_ids)
    model = build_model(
        config.kind, vocab.n_items, config.n_hidden, torch.Generator().manual_seed(config.seed)
    )
    model.init_visible_biases(fit_part)
    trainer = Trainer(model, config, device)
    ckpt = checkpoint_dir(model_path)
    start = 0
    if resume and has_checkpoint(ckpt):
        start = load_checkpoint(ckpt, trainer)
        log.info("resuming from checkpoint %s after epoch %d", ckpt, start)
    elif resume:
        log.info("no checkpoint at %s; training from the start", ckpt)
    history = trainer.fit(
        fit_part,
        batches,
        validation,
        test,
        start_epoch=start,
        on_epoch=lambda t, _record: save_checkpoint(ckpt, t),
    )
    meta = save_artifact(
        spark, trainer, vocab.movie_ids, model_path, history, len(train), train.nnz
    )
    shutil.rmtree(ckpt, ignore_errors=True)
    return meta


def save_artifact(
    spark,
    trainer: Trainer,
    movie_ids: np.ndarray,
    model_path: str,
    history: list[dict[str, Any]],
    n_users: int,
    n_ratings: int,
) -> dict[str, Any]:
    """Save weights + model.json + the training plot, locally or to a URI."""
    from rbmcore.artifact import save_model

    training = {
        "config": trainer.config.to_dict(),
        "history": history,
        "best_epoch": trainer.best_epoch,
        "users": n_users,
        "ratings": n_ratings,
        "device": str(trainer.device),
    }
    local = fs.local_path(model_path) if fs.is_local(model_path) else tempfile.mkdtemp() + "/model"
    meta = save_model(local, trainer.model.cpu(), movie_ids, training)
    plot_training(history, Path(local) / LOSS_PLOT, f"{trainer.config.kind} RBM")
    fs.upload_dir(spark, local, model_path)
    log.info(
        "model %s saved to %s (best epoch %d)", meta["model_id"], model_path, trainer.best_epoch
    )
    return meta


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="run folder holding ingest/ (local or URI)")
    parser.add_argument("--model", help="model folder to write (default OUT/model)")
    parser.add_argument("--kind", choices=KINDS, help="model kind (default from config: binary)")
    parser.add_argument("--epochs", type=int, help="maximum training epochs")
    parser.add_argument("--hidden", type=int, dest="n_hidden", help="hidden units")
    parser.add_argument("--lr", type=float, help="learning rate")
    parser.add_argument("--seed", type=int, help="random seed")
    parser.add_argument("--device", help="auto (cuda if available), cpu, cuda, cuda:N")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue from the last per-epoch checkpoint of an interrupted run",
    )
    add_common_arguments(parser)


def train_overrides(args: argparse.Namespace) -> dict[str, dict[str, Any]]:
    names = ("kind", "epochs", "n_hidden", "lr", "seed", "device")
    return {"train": {n: getattr(args, n, None) for n in names}}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rbm-reco train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser)
    args = parser.parse_args(argv)
    setup_logging(args.log_level)
    conf = resolve_conf(args, train_overrides(args))
    spark = get_spark(conf, args.master)
    meta = run_train(spark, conf, args.out, args.model, args.resume)
    where = args.model or layout.model_dir(args.out)
    print(f"model {meta['model_id']} ({meta['kind']}) written to {where}")
    return 0


if __name__ == "__main__":
    run_main(main, None)
