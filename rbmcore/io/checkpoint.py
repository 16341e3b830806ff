"""Per-epoch training checkpoints: everything needed to resume exactly, written atomically.

A checkpoint is a folder with ``state.safetensors`` (model weights, the optimiser's state:
SGD's momentum, Adam's moments and step; best-so-far weights) and ``state.json`` (epoch,
history, config, SHA-256 of the tensors).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rbmcore.errors import ModelFileError
from rbmcore.io.folders import new_stage, recover_folder, replace_folder, sha256_file

TENSORS = "state.safetensors"
META = "state.json"
META_KEYS = ("epochs_done", "best_epoch", "history", "config", "tensors_sha256")
OPTIMIZER = "optimizer."  # prefix of the optimiser state's tensors: optimizer.<param>.<name>
DONE_MARKER = "phase.done"  # written when a stage's training has finished
# settings a resumed run may change: they do not change the epochs already trained
RESUMABLE_CHANGES = ("epochs", "device", "refit")


def save_checkpoint(folder: str | Path, trainer: Any) -> None:
    """Write the trainer's state after its last finished epoch to ``folder`` atomically
    (``rbmcore.io.folders.replace_folder``)."""
    tensors = {
        f"model.{k}": v.detach().cpu().contiguous() for k, v in trainer.model.state_dict().items()
    }
    for i, state in trainer.optimizer.state_dict()["state"].items():
        for name, value in state.items():  # SGD's momentum_buffer; Adam's step, exp_avg, ...
            if isinstance(value, torch.Tensor):
                tensors[f"{OPTIMIZER}{i}.{name}"] = value.detach().cpu().contiguous()
    for k, v in (trainer.best_state or {}).items():
        tensors[f"best.{k}"] = v.detach().cpu().contiguous()
    stage = new_stage(folder)
    save_file(tensors, str(stage / TENSORS))
    meta = {
        "epochs_done": trainer.history[-1]["epoch"] if trainer.history else 0,
        "best_epoch": trainer.best_epoch,
        "history": trainer.history,
        "config": trainer.config.to_dict(),
        "tensors_sha256": sha256_file(stage / TENSORS),
    }
    (stage / META).write_text(json.dumps(meta, indent=2, default=str))
    replace_folder(stage, folder, META)


def has_checkpoint(folder: str | Path) -> bool:
    folder = Path(folder)
    recover_folder(folder, META)
    return (folder / META).is_file()


def checkpoint_epoch(folder: str | Path) -> int | None:
    """The epochs done by the checkpoint in ``folder``; None when there is none (or unreadable)."""
    if not has_checkpoint(folder):
        return None
    try:
        return int(json.loads((Path(folder) / META).read_text())["epochs_done"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def kept_checkpoint_note(folder: str | Path | None) -> str:
    """What a diverged run leaves for a look: the last good checkpoint in ``folder``, if any."""
    done = checkpoint_epoch(folder) if folder is not None else None
    if done is None:
        return "no checkpoint was written"
    return f"the last good checkpoint (epoch {done}) is kept in {folder}"


def load_checkpoint(folder: str | Path, trainer: Any) -> int:
    """Restore ``trainer`` from ``folder``; returns the number of epochs already done."""
    folder = Path(folder)
    recover_folder(folder, META)
    try:
        meta = json.loads((folder / META).read_text())
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"checkpoint {folder} is unreadable ({META}: {exc})") from exc
    missing = [k for k in META_KEYS if not isinstance(meta, dict) or k not in meta]
    if missing:
        raise ModelFileError(f"checkpoint {folder} is incomplete ({META} lacks {missing})")
    if not (folder / TENSORS).is_file():
        raise ModelFileError(f"checkpoint {folder} is incomplete (no {TENSORS})")
    if sha256_file(folder / TENSORS) != meta["tensors_sha256"]:
        raise ModelFileError(f"checkpoint {folder} is corrupt (checksum mismatch)")
    saved, current = meta["config"], trainer.config.to_dict()
    changed = sorted(
        k for k in current if k not in RESUMABLE_CHANGES and saved.get(k) != current[k]
    )
    if changed:
        raise ModelFileError(
            f"checkpoint {folder} was made with different settings ({', '.join(changed)}); "
            "resume with the same settings or start over without --resume"
        )
    try:
        tensors = load_file(str(folder / TENSORS), device=str(trainer.device))
    except (SafetensorError, OSError) as exc:
        raise ModelFileError(f"checkpoint {folder} is unreadable: {exc}") from exc
    trainer.model.load_state_dict(_strip(tensors, "model."))
    trainer.optimizer.load_state_dict(optimizer_state(trainer.optimizer, tensors))
    best = _strip(tensors, "best.")
    trainer.best_state = best or None
    trainer.best_epoch = meta["best_epoch"]
    trainer.history = meta["history"]
    return int(meta["epochs_done"])


def optimizer_state(optimizer: torch.optim.Optimizer, tensors: dict[str, torch.Tensor]):
    """``optimizer``'s state dict with the per-parameter state of a checkpoint's tensors
    (``optimizer.<param>.<name>``; ``momentum.<param>``, SGD's, in older checkpoints). The
    step counts go to the CPU, where ``load_state_dict`` expects them."""
    state: dict[int, dict[str, torch.Tensor]] = {}
    for key, value in _strip(tensors, OPTIMIZER).items():
        index, name = key.split(".", 1)
        state.setdefault(int(index), {})[name] = value.cpu() if name == "step" else value
    for key, value in _strip(tensors, "momentum.").items():
        state.setdefault(int(key), {})["momentum_buffer"] = value
    return {**optimizer.state_dict(), "state": state}


def _strip(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {k[len(prefix) :]: v for k, v in tensors.items() if k.startswith(prefix)}
