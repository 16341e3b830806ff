"""The train job's files: saving the model folder (locally or to any URI) and the per-epoch
checkpoint folders that ``--resume`` continues from."""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from jobs.ingestion.readback import Vocabulary
from jobs.report import plot_training
from jobs.storage import fs, layout, model_store
from rbmcore.io.artifact import PLOT_FILE, write_model
from rbmcore.io.checkpoint import CHECKPOINT_FILES
from rbmcore.io.folders import require_own_folder
from rbmcore.training.composite import CompositeTrainer
from rbmcore.training.trainer import Trainer

log = logging.getLogger("rbm-reco.train")

CHECKPOINTS_ROOT = "rbm-reco-checkpoints"  # under the temp folder, for a model not on local disk


def checkpoint_dir(model_path: str) -> str:
    """Where training checkpoints, always on the driver's local disk: beside a local model
    folder (``MODEL.checkpoint``), else ``<temp>/rbm-reco-checkpoints/<first 16 hex digits of
    the SHA-256 of the model's URI>``, the same folder for every run that writes that model
    on this machine (so ``--resume`` finds it)."""
    if fs.is_local(model_path):
        return layout.model_checkpoints(fs.local_path(model_path))
    name = hashlib.sha256(model_path.encode("utf-8")).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), CHECKPOINTS_ROOT, name)


def refit_dir(ckpt: str) -> str:
    """Where the refit on all ratings checkpoints (beside the selection's checkpoints)."""
    return ckpt.rstrip("/") + ".refit"


def check_training_outputs(spark, model_path: str) -> None:
    """Before training starts: the model folder and the checkpoint folders it would replace
    are of their kinds (or absent), else ``ForeignFolderError`` (exit 2) and nothing changes."""
    model_store.check_target(spark, model_path)
    ckpt = checkpoint_dir(model_path)
    for folder in (ckpt, refit_dir(ckpt)):
        require_own_folder(folder, CHECKPOINT_FILES, "training checkpoint")


def clear_stale_checkpoints(ckpt: str, resume: bool) -> None:
    """Without ``--resume``, remove the checkpoints an earlier run left (only checkpoint
    folders: ``require_own_folder``); with it, say when there are none."""
    folders = [f for f in (ckpt, refit_dir(ckpt)) if os.path.exists(f)]
    if resume and not folders:
        log.info("no checkpoint at %s; training from the start", ckpt)
    elif folders and not resume:
        log.warning("removing the checkpoints of an earlier run (no --resume): %s", folders)
        for folder in folders:
            require_own_folder(folder, CHECKPOINT_FILES, "training checkpoint")
            shutil.rmtree(folder)


def remove_checkpoints(ckpt: str) -> None:
    """After a successful run: its checkpoint folders are removed."""
    for folder in (ckpt, refit_dir(ckpt)):
        if os.path.exists(folder):
            require_own_folder(folder, CHECKPOINT_FILES, "training checkpoint")
            shutil.rmtree(folder)


def save_artifact(
    spark,
    trainer: Trainer | CompositeTrainer,
    vocab: Vocabulary,
    model_path: str,
    history: list[dict[str, Any]],
    n_users: int,
    n_ratings: int,
    refit: Trainer | CompositeTrainer | None = None,
) -> dict[str, Any]:
    """Save weights + model.json + the training plot, locally or to a URI
    (``jobs.storage.model_store.publish``): ``trainer``'s model, or ``refit``'s (a trainer of
    the refit on all ratings) when given; the metadata of the validation choices come from
    ``trainer``; the ingest the data came from (its id, its newest rating's timestamp) from
    ``vocab``."""
    training = {
        "config": trainer.config.to_dict(),
        "history": history,
        "best_epoch": trainer.best_epoch,
        **trainer.validation_choices(),
        "users": n_users,
        "ratings": n_ratings,
        "device": str(trainer.device),
        "ingest_id": vocab.ingest_id,
        "newest_timestamp": (vocab.manifest or {}).get("newest_timestamp"),
    }
    model = trainer.model
    if refit is not None:
        training["refit"] = {"settings": trainer.refit_settings(), "history": refit.history}
        model = refit.model

    def write(folder: Path) -> dict[str, Any]:
        meta = write_model(folder, model.cpu(), vocab.movie_ids, training)
        plot_training(history, folder / PLOT_FILE, f"{trainer.config.kind} model")
        return meta

    meta = model_store.publish(spark, write, model_path)
    log.info(
        "model %s saved to %s (best epoch %d%s)",
        meta["model_id"],
        fs.shown(model_path),
        trainer.best_epoch,
        ", retrained on all ratings" if refit is not None else "",
    )
    return meta
