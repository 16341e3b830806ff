"""The model artifact: a folder with the weights (safetensors, never pickle) and ``model.json``.

``model.json`` holds the format version, kind, shapes, hyperparameters, the item vocabulary's
checksum, training metrics, the creation time and the SHA-256 of the weights file, which
loading verifies. The vocabulary (item index -> movie id) is stored with the weights.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from rbmcore.errors import ModelFileError
from rbmcore.io.folders import new_stage, recover_folder, replace_folder, sha256_file
from rbmcore.models.contract import Recommender
from rbmcore.models.factory import model_from_tensors

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"
VOCAB_TENSOR = "vocab.movie_ids"


@dataclass
class LoadedModel:
    model: Recommender
    movie_ids: np.ndarray  # (n_items,) movie id of each dense item index
    meta: dict[str, Any]


def vocab_checksum(movie_ids: np.ndarray) -> str:
    """SHA-256 of the vocabulary (movie ids in item-index order, as int64 little-endian)."""
    return hashlib.sha256(np.asarray(movie_ids, dtype="<i8").tobytes()).hexdigest()


def save_model(
    folder: str | Path,
    model: Recommender,
    movie_ids: np.ndarray,
    training: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Write the artifact to ``folder`` atomically (``rbmcore.io.folders.replace_folder``)."""
    stage = new_stage(folder)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors[VOCAB_TENSOR] = torch.as_tensor(np.asarray(movie_ids, dtype=np.int64))
    for name, tensor in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = tensor.detach().cpu().contiguous()
    save_file(tensors, str(stage / WEIGHTS_FILE))
    meta = {
        "format_version": FORMAT_VERSION,
        "model_id": uuid.uuid4().hex[:12],
        "kind": model.kind,
        "hyperparameters": model.hyperparameters(),
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "vocab_sha256": vocab_checksum(movie_ids),
        "n_items": int(len(movie_ids)),
        "weights_sha256": sha256_file(stage / WEIGHTS_FILE),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": training or {},
    }
    (stage / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    replace_folder(stage, folder, META_FILE)
    return meta


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of the artifact in ``folder``, checked to be a model description of the
    format this code reads."""
    recover_folder(folder, META_FILE)
    meta_path = Path(folder) / META_FILE
    if not meta_path.is_file():
        raise ModelFileError(f"not a model folder (no {META_FILE}): {folder}")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path} is not a model description (a JSON object expected)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ModelFileError(
            f"model format version {meta.get('format_version')!r} in {folder} is not supported "
            f"(this rbm-reco reads version {FORMAT_VERSION}); retrain the model"
        )
    return meta


def load_model(
    folder: str | Path, expected_vocab_sha256: str | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Load and verify an artifact; raise ``ModelFileError`` naming the problem when it is bad."""
    folder = Path(folder)
    meta = read_meta(folder)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"model weights missing: {weights}")
    actual = sha256_file(weights)
    if actual != meta.get("weights_sha256"):
        raise ModelFileError(
            f"model weights checksum mismatch in {folder} (file {actual[:12]}..., "
            f"model.json {str(meta.get('weights_sha256'))[:12]}...): truncated or tampered"
        )
    try:
        tensors = load_file(str(weights), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"model weights unreadable in {folder}: {exc}") from exc
    shapes = {k: list(v.shape) for k, v in tensors.items()}
    if "shapes" in meta and shapes != meta["shapes"]:
        differ = sorted(set(shapes) ^ set(meta["shapes"])) or sorted(
            k for k in shapes if shapes[k] != meta["shapes"][k]
        )
        raise ModelFileError(
            f"model weights in {folder} do not match the shapes in {META_FILE} "
            f"({', '.join(differ)})"
        )
    movie_ids = tensors.pop(VOCAB_TENSOR, None)
    if movie_ids is None:
        raise ModelFileError(f"model in {folder} has no item vocabulary")
    movie_ids = movie_ids.cpu().numpy()
    if vocab_checksum(movie_ids) != meta.get("vocab_sha256"):
        raise ModelFileError(f"item vocabulary checksum mismatch in {folder}")
    if expected_vocab_sha256 is not None and expected_vocab_sha256 != meta["vocab_sha256"]:
        raise ModelFileError(
            f"model in {folder} was trained on a different item vocabulary than the data "
            f"being scored ({meta['vocab_sha256'][:12]}... vs {expected_vocab_sha256[:12]}...); "
            "re-ingest with the same data or retrain"
        )
    model_tensors = {k: v for k, v in tensors.items() if not k.startswith("extra.")}
    try:
        model = model_from_tensors(meta["hyperparameters"], model_tensors, share=True)
    except (RuntimeError, KeyError, ValueError) as exc:
        raise ModelFileError(f"model in {folder} does not match its metadata: {exc}") from exc
    return LoadedModel(model.to(device), movie_ids, meta)
