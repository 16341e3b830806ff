"""The model artifact: a folder with the weights (safetensors, never pickle) and ``model.json``.

``model.json`` holds the format version, the rbm-reco version, kind, shapes, hyperparameters,
the item vocabulary's checksum, training metrics, the creation time and the SHA-256 of the
weights file. The vocabulary (item index -> movie id) is stored with the weights, and so is
a copy of ``model.json`` (less the weights checksum) in the safetensors header: the metadata
are under the weights' checksum, and an edited ``model.json`` no longer matches its copy.

Loading checks everything before it allocates a tensor (``load_model``): ``model.json``'s
keys and types, the checksum, the copy, the shapes in the safetensors header against
``model.json`` and against the model its hyperparameters describe (built on the ``meta``
device, which allocates nothing). Any failure is a ``ModelFileError`` naming it.
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
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from rbmcore import __version__
from rbmcore.errors import ModelFileError
from rbmcore.io.folders import new_stage, recover_folder, replace_folder, sha256_file
from rbmcore.models.contract import Recommender
from rbmcore.models.factory import build_model, is_known_kind, model_from_tensors

__all__ = ["ModelFileError", "load_model", "save_model"]

FORMAT_VERSION = 2  # 2: model.json copied into the weights file's header
READABLE_VERSIONS = (1, 2)
WEIGHTS_FILE = "weights.safetensors"
META_FILE = "model.json"
PLOT_FILE = "training.png"  # the training plot the train job adds
MODEL_FILES = (META_FILE, WEIGHTS_FILE, PLOT_FILE)  # what a model folder holds
VOCAB_TENSOR = "vocab.movie_ids"
HEADER_META = "rbm_reco.model_json"  # safetensors header key of the model.json copy
REQUIRED_KEYS = ("format_version", "model_id", "kind", "hyperparameters", "shapes",
                 "vocab_sha256", "n_items", "weights_sha256", "created_at", "training")  # fmt: skip
META_KEYS = (*REQUIRED_KEYS, "rbm_reco_version")
MAX_META_BYTES = 64 << 20
MAX_SIZE = 2**31 - 1  # the largest count (items, users, hidden units) a model may have
MAX_MODELS = 1_000  # the most RBMs a model may average


@dataclass
class LoadedModel:
    model: Recommender
    movie_ids: np.ndarray  # (n_items,) movie id of each dense item index
    meta: dict[str, Any]


def vocab_checksum(movie_ids: np.ndarray) -> str:
    """SHA-256 of the vocabulary (movie ids in item-index order, as int64 little-endian)."""
    return hashlib.sha256(np.asarray(movie_ids, dtype="<i8").tobytes()).hexdigest()


def write_model(
    stage: str | Path,
    model: Recommender,
    movie_ids: np.ndarray,
    training: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Write the artifact's files into the empty folder ``stage``; returns ``model.json``'s
    content."""
    stage = Path(stage)
    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors[VOCAB_TENSOR] = torch.as_tensor(np.asarray(movie_ids, dtype=np.int64))
    for name, tensor in (extra_tensors or {}).items():
        tensors[f"extra.{name}"] = tensor.detach().cpu().contiguous()
    meta = {
        "format_version": FORMAT_VERSION,
        "rbm_reco_version": __version__,
        "model_id": uuid.uuid4().hex[:12],
        "kind": model.kind,
        "hyperparameters": model.hyperparameters(),
        "shapes": {k: list(v.shape) for k, v in tensors.items()},
        "vocab_sha256": vocab_checksum(movie_ids),
        "n_items": int(len(movie_ids)),
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "training": training or {},
    }
    header = {HEADER_META: json.dumps(meta, sort_keys=True, default=str)}
    save_file(tensors, str(stage / WEIGHTS_FILE), metadata=header)
    meta["weights_sha256"] = sha256_file(stage / WEIGHTS_FILE)
    (stage / META_FILE).write_text(json.dumps(meta, indent=2, sort_keys=True, default=str))
    return meta


def save_model(
    folder: str | Path,
    model: Recommender,
    movie_ids: np.ndarray,
    training: dict[str, Any] | None = None,
    extra_tensors: dict[str, torch.Tensor] | None = None,
) -> dict[str, Any]:
    """Write the artifact to ``folder`` atomically (``rbmcore.io.folders.replace_folder``); an
    existing ``folder`` that is not a model folder is refused (``ForeignFolderError``)."""
    stage = new_stage(folder)
    meta = write_model(stage, model, movie_ids, training, extra_tensors)
    replace_folder(stage, folder, META_FILE, MODEL_FILES, "model folder")
    return meta


def read_meta(folder: str | Path) -> dict[str, Any]:
    """``model.json`` of the artifact in ``folder``, checked to be a model description of a
    format this code reads (``check_meta``)."""
    recover_folder(folder, META_FILE)
    meta_path = Path(folder) / META_FILE
    if not meta_path.is_file():
        raise ModelFileError(f"not a model folder (no {META_FILE}): {folder}")
    if meta_path.stat().st_size > MAX_META_BYTES:
        raise ModelFileError(f"{meta_path} is larger than {MAX_META_BYTES >> 20} MB")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ModelFileError(f"{meta_path} is not valid JSON: {exc}") from exc
    if not isinstance(meta, dict):
        raise ModelFileError(f"{meta_path} is not a model description (a JSON object expected)")
    if meta.get("format_version") not in READABLE_VERSIONS:
        raise ModelFileError(
            f"model format version {meta.get('format_version')!r} in {folder} is not supported "
            f"(this rbm-reco reads versions {', '.join(map(str, READABLE_VERSIONS))}); "
            "retrain the model"
        )
    check_meta(meta, meta_path)
    return meta


def check_meta(meta: dict[str, Any], where: Path) -> None:
    """``model.json``'s keys and the types of the values loading uses."""
    unknown = sorted(set(meta) - set(META_KEYS))
    missing = [k for k in REQUIRED_KEYS if k not in meta]
    if unknown or missing:
        problem = f"unknown keys {unknown}" if unknown else f"missing keys {missing}"
        raise ModelFileError(f"{where} is not a model description of this format ({problem})")
    hyper, shapes = meta["hyperparameters"], meta["shapes"]
    checks = {
        "kind": isinstance(meta["kind"], str) and is_known_kind(meta["kind"]),
        "n_items": _is_count(meta["n_items"]),
        "hyperparameters": isinstance(hyper, dict) and hyper.get("kind") == meta["kind"]
        and hyper.get("n_items") == meta["n_items"],
        "shapes": isinstance(shapes, dict) and all(
            isinstance(s, list) and all(_is_count(d, low=0) for d in s) for s in shapes.values()
        ),
        "weights_sha256": isinstance(meta["weights_sha256"], str),
        "vocab_sha256": isinstance(meta["vocab_sha256"], str),
        "model_id": isinstance(meta["model_id"], str),
        "training": isinstance(meta["training"], dict),
    }  # fmt: skip
    bad = [key for key, ok in checks.items() if not ok]
    if bad:
        raise ModelFileError(f"{where} has bad values for {', '.join(bad)}")


def _is_count(value: Any, low: int = 1) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= MAX_SIZE


def weights_header(weights: Path) -> tuple[dict[str, list[int]], dict[str, str]]:
    """(tensor name -> shape, header metadata) of a safetensors file, read from its header
    alone (nothing allocated)."""
    try:
        with safe_open(str(weights), framework="pt") as handle:
            shapes = {name: list(handle.get_slice(name).get_shape()) for name in handle.keys()}
            return shapes, dict(handle.metadata() or {})
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"model weights unreadable in {weights.parent}: {exc}") from exc


def expected_shapes(hyper: dict[str, Any], where: Path) -> dict[str, list[int]]:
    """The tensor shapes of the model ``hyper`` describes, from a model built on the ``meta``
    device (no memory), its sizes bounded first."""
    _check_sizes(hyper, where)
    params = {k: v for k, v in hyper.items() if k not in ("kind", "n_items", "n_hidden", "alpha")}
    try:
        with torch.device("meta"):
            model = build_model(hyper["kind"], int(hyper["n_items"]), int(hyper["n_hidden"]),
                                **params)  # fmt: skip
    except (TypeError, ValueError, KeyError, RuntimeError) as exc:
        raise ModelFileError(
            f"the hyperparameters in {where} do not describe a model: {exc}"
        ) from exc
    return {k: list(v.shape) for k, v in model.state_dict().items()}


# counts whose 0 is meaningful: softmax states per level, no extra encoder layer, no annealing
ZERO_MEANS_DEFAULT = ("states", "encoder_hidden", "anneal_epochs")


def _check_sizes(hyper: dict[str, Any], where: Path, prefix: str = "") -> None:
    """Every count in the hyperparameters (nested tables and lists too) within [1, MAX_SIZE]
    (``ZERO_MEANS_DEFAULT`` within [0, MAX_SIZE]), every ``*models`` count within
    [1, MAX_MODELS]."""
    for key, value in hyper.items():
        if isinstance(value, dict):
            _check_sizes(value, where, f"{prefix}{key}.")
        elif isinstance(value, list):
            for i, entry in enumerate(value):
                if isinstance(entry, dict):
                    _check_sizes(entry, where, f"{prefix}{key}[{i}].")
        elif isinstance(value, int) and not isinstance(value, bool):
            high = MAX_MODELS if key.endswith("models") else MAX_SIZE
            low = 0 if key in ZERO_MEANS_DEFAULT else 1
            if not low <= value <= high:
                raise ModelFileError(
                    f"{where}: hyperparameter {prefix}{key} = {value} is outside [{low}, {high}]"
                )


def check_weights(folder: Path, meta: dict[str, Any]) -> None:
    """The weights file against ``model.json`` without loading a tensor: its checksum, the
    metadata copy in its header, its shapes against ``model.json`` and the hyperparameters."""
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ModelFileError(f"model weights missing: {weights}")
    actual = sha256_file(weights)
    if actual != meta["weights_sha256"]:
        raise ModelFileError(
            f"model weights checksum mismatch in {folder} (file {actual[:12]}..., "
            f"model.json {str(meta['weights_sha256'])[:12]}...): truncated or tampered"
        )
    shapes, header = weights_header(weights)
    if meta["format_version"] >= 2:
        try:
            saved = json.loads(header.get(HEADER_META, "{}"))
        except json.JSONDecodeError:
            saved = {}
        saved = saved if isinstance(saved, dict) else {}
        current = {k: v for k, v in meta.items() if k != "weights_sha256"}
        changed = sorted(k for k in set(current) | set(saved)
                         if _canonical(saved.get(k)) != _canonical(current.get(k)))  # fmt: skip
        if changed:
            raise ModelFileError(
                f"{folder / META_FILE} differs from the copy saved with the weights "
                f"({', '.join(changed)}): edited after saving; retrain or restore it"
            )
    if shapes != meta["shapes"]:
        differ = sorted(set(shapes) ^ set(meta["shapes"])) or sorted(
            k for k in shapes if shapes[k] != meta["shapes"][k]
        )
        raise ModelFileError(
            f"model weights in {folder} do not match the shapes in {META_FILE} "
            f"({', '.join(differ)})"
        )
    model_shapes = {k: v for k, v in shapes.items()
                    if k != VOCAB_TENSOR and not k.startswith("extra.")}  # fmt: skip
    expected = expected_shapes(meta["hyperparameters"], folder / META_FILE)
    if model_shapes != expected:
        differ = sorted(set(model_shapes) ^ set(expected)) or sorted(
            k for k in expected if expected[k] != model_shapes[k]
        )
        raise ModelFileError(
            f"model weights in {folder} do not match the hyperparameters in {META_FILE} "
            f"({', '.join(differ[:5])})"
        )
    if shapes.get(VOCAB_TENSOR) != [meta["n_items"]]:
        raise ModelFileError(f"model in {folder} has no item vocabulary of n_items entries")


def _canonical(value: Any) -> str:
    """A JSON value as comparable text (NaN equals NaN here, unlike in Python)."""
    return json.dumps(value, sort_keys=True)


def load_model(
    folder: str | Path, expected_vocab_sha256: str | None = None, device: str | torch.device = "cpu"
) -> LoadedModel:
    """Load and verify an artifact; raise ``ModelFileError`` naming the problem when it is bad
    (every check but the vocabulary's comes before a tensor is allocated)."""
    folder = Path(folder)
    meta = read_meta(folder)
    check_weights(folder, meta)
    try:
        tensors = load_file(str(folder / WEIGHTS_FILE), device=str(device))
    except (SafetensorError, OSError, ValueError) as exc:
        raise ModelFileError(f"model weights unreadable in {folder}: {exc}") from exc
    movie_ids = tensors.pop(VOCAB_TENSOR).cpu().numpy()
    if vocab_checksum(movie_ids) != meta["vocab_sha256"]:
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
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        raise ModelFileError(f"model in {folder} does not match its metadata: {exc}") from exc
    return LoadedModel(model.to(device), movie_ids, meta)
