"""A model folder on any file system (``OUT/model``, ``--model``): replaced only when it is a
model folder, written whole before it is swapped in, and read through a local copy that is
removed after use.

On the local disk the model is written beside its place and swapped in by
``rbmcore.io.folders.replace_folder`` (fsync, atomic renames). Elsewhere it is written into a
local temporary folder, copied beside its place (``.NAME.<run>``) and swapped in with
``jobs.storage.fs.swap_in``; a reader that meets a half-copied folder on a file system without
atomic renames is stopped by the weights' checksum (exit 5), never served a mixture.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

from jobs.storage import fs
from jobs.storage.kinds import FolderKind, require_kind
from jobs.storage.layout import join_path
from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import META_FILE, MODEL_FILES, LoadedModel, load_model
from rbmcore.io.folders import new_stage, replace_folder

log = logging.getLogger("rbm-reco.train")

MODEL_FOLDER = FolderKind(
    "model folder", MODEL_FILES, META_FILE, ("format_version", "weights_sha256")
)
Written = TypeVar("Written")


def _aside_prefix(path: str) -> str:
    return f".{path.rstrip('/').rsplit('/', 1)[-1]}.old-"


def restore(spark, path: str) -> None:
    """Put back a model folder a killed ``publish`` moved aside (on a non-local file system)."""
    parent, prefix = fs.parent_of(path), _aside_prefix(path)
    asides = [join_path(parent, n) for n in fs.list_names(spark, parent) if n.startswith(prefix)]
    fs.restore_aside(spark, path, asides)


def check_target(spark, path: str) -> None:
    """Fail (``ForeignFolderError``, exit 2) unless ``path`` is absent, empty or a model
    folder: what a training run is going to replace, checked before it starts."""
    if not fs.is_local(path):
        restore(spark, path)
    require_kind(spark, path, MODEL_FOLDER)


def publish(spark, write: Callable[[Path], Written], path: str) -> Written:
    """``write(folder)`` fills an empty local folder with a model's files; they then replace
    the model folder at ``path`` (a qualified URI) as one unit. Returns what ``write``
    returned."""
    if fs.is_local(path):
        target = Path(fs.local_path(path))
        stage = new_stage(target)
        written = write(stage)
        replace_folder(stage, target, META_FILE, MODEL_FILES, MODEL_FOLDER.name)
        return written
    check_target(spark, path)
    run = uuid.uuid4().hex[:12]
    name = path.rstrip("/").rsplit("/", 1)[-1]
    staged = join_path(fs.parent_of(path), f".{name}.{run}")
    with fs.scratch_dir("model") as tmp:
        local = Path(tmp) / name
        local.mkdir()
        written = write(local)
        fs.copy_from_local(spark, local, staged)
    fs.swap_in(spark, staged, path, join_path(fs.parent_of(path), f"{_aside_prefix(path)}{run}"))
    return written


@contextmanager
def local_copy(spark, path: str) -> Iterator[Path]:
    """The model folder at ``path`` as a local folder: the folder itself on the local disk,
    else a temporary copy removed when the block ends."""
    if fs.is_local(path):
        yield Path(fs.local_path(path))
        return
    restore(spark, path)
    if not fs.is_dir(spark, path):
        raise ModelFileError(f"not a model folder (missing): {path}")
    with fs.scratch_dir("model") as tmp:
        yield fs.copy_to_local(spark, path, tmp)


def load(spark, path: str, vocab_sha256: str | None) -> LoadedModel:
    """The model folder at ``path`` (any file system), loaded and verified
    (``rbmcore.io.artifact.load_model``) against the ingested vocabulary's checksum."""
    with local_copy(spark, fs.qualify(spark, path)) as folder:
        return load_model(folder, vocab_sha256)
