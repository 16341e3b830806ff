"""Per-epoch training checkpoints: everything needed to resume exactly, written atomically.

A checkpoint is a folder with ``state.safetensors`` (model weights, the optimiser's state:
SGD's momentum, Adam's moments and step; best-so-far weights) and ``state.json`` (epoch,
history, config, SHA-256 of the tensors). Loading checks ``state.json``'s keys and types, the
checksum and the settings; tensors that do not fit the trainer's model are a
``ModelFileError`` too.
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
# optimiser states shaped like their parameter (SGD's, Adam's), checked before loading
SHAPED = ("momentum_buffer", "exp_avg", "exp_avg_sq", "max_exp_avg_sq")
DONE_MARKER = "phase.done"  # written when a stage's training has finished
CHECKPOINT_FILES = (TENSORS, META, DONE_MARKER)  # the files of a checkpoint folder (any depth)
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
    replace_folder(stage, folder, META, CHECKPOINT_FILES, "training checkpoint")


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
    check_state(meta, folder)
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
    params = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    try:
        optim = optimizer_state(trainer.optimizer, tensors)
    except ValueError as exc:
        raise ModelFileError(f"checkpoint {folder} has a bad optimiser entry: {exc}") from exc
    best = _strip(tensors, "best.")
    state = {k: v.shape for k, v in trainer.model.state_dict().items()}
    fits = all(
        0 <= index < len(params)
        and all(v.shape == params[index].shape for name, v in entry.items() if name in SHAPED)
        for index, entry in optim["state"].items()
    ) and all(state.get(k) == v.shape for k, v in best.items())
    try:
        trainer.model.load_state_dict(_strip(tensors, "model."))
    except RuntimeError as exc:
        raise ModelFileError(f"checkpoint {folder} does not fit the model: {exc}") from exc
    if not fits:
        raise ModelFileError(f"checkpoint {folder} does not fit the model's parameters")
    trainer.optimizer.load_state_dict(optim)
    trainer.best_state = best or None
    trainer.best_epoch = meta["best_epoch"]
    trainer.history = meta["history"]
    return int(meta["epochs_done"])


def check_state(meta: Any, folder: Path) -> None:
    """``state.json``'s keys (those of ``META_KEYS`` exactly) and the types loading uses."""
    if not isinstance(meta, dict):
        raise ModelFileError(f"checkpoint {folder} is unreadable ({META} is not an object)")
    missing = [k for k in META_KEYS if k not in meta]
    if missing:
        raise ModelFileError(f"checkpoint {folder} is incomplete ({META} lacks {missing})")
    unknown = sorted(set(meta) - set(META_KEYS))
    if unknown:
        raise ModelFileError(f"checkpoint {folder} has unknown keys in {META}: {unknown}")
    done, best = meta["epochs_done"], meta["best_epoch"]
    if not (_is_int(done) and done >= 0 and (best is None or _is_int(best) and best >= -1)):
        raise ModelFileError(f"checkpoint {folder}: epochs_done and best_epoch must be epochs")
    if not isinstance(meta["history"], list) or not isinstance(meta["config"], dict):
        raise ModelFileError(f"checkpoint {folder}: history must be a list, config an object")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


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
