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

import numpy as np

from jobs.report import LOSS_PLOT, plot_training
from jobs.storage import fs, layout
from rbmcore.io.artifact import save_model
from rbmcore.training.composite import CompositeTrainer
from rbmcore.training.trainer import Trainer

log = logging.getLogger("rbm-reco.train")


def checkpoint_dir(model_path: str) -> str:
    """Checkpoints live on the driver's local disk beside a local model folder, else in the
    temp folder under a name fixed by the model path (so a resumed run finds them)."""
    if fs.is_local(model_path):
        return layout.model_checkpoints(fs.local_path(model_path))
    name = hashlib.sha256(model_path.encode("utf-8")).hexdigest()[:16]
    return os.path.join(tempfile.gettempdir(), "rbm-reco-checkpoints", name)


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


def save_artifact(
    spark,
    trainer: Trainer | CompositeTrainer,
    movie_ids: np.ndarray,
    model_path: str,
    history: list[dict[str, Any]],
    n_users: int,
    n_ratings: int,
    refit: Trainer | CompositeTrainer | None = None,
) -> dict[str, Any]:
    """Save weights + model.json + the training plot, locally or to a URI: ``trainer``'s
    model, or ``refit``'s (a trainer of the refit on all ratings) when given; the metadata of
    the validation choices come from ``trainer``."""
    training = {
        "config": trainer.config.to_dict(),
        "history": history,
        "best_epoch": trainer.best_epoch,
        **trainer.validation_choices(),
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
    plot_training(history, Path(local) / LOSS_PLOT, f"{trainer.config.kind} model")
    fs.upload_dir(spark, local, model_path)
    log.info(
        "model %s saved to %s (best epoch %d%s)",
        meta["model_id"],
        model_path,
        trainer.best_epoch,
        ", retrained on all ratings" if refit is not None else "",
    )
    return meta
