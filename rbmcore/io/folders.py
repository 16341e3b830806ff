"""Writing a folder so that readers see the old one or the new one, never a mixture.

``replace_folder`` publishes a fully written staging folder: its files are flushed to disk
(fsync), the current folder is moved aside to ``.NAME.old``, the stage renamed into place, the
parent directory flushed, and the old copy removed. A kill between the two renames leaves only
``.NAME.old``; ``recover_folder`` (called before every read) puts it back. Used by the model
artifact and the training checkpoints alike. It replaces only a folder of its own kind: one
whose files all have the names that kind writes (``foreign_files``); anything else is refused
with ``ForeignFolderError`` and left untouched.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import posixpath
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

from rbmcore.errors import ForeignFolderError


def sha256_file(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fsync_path(path: str | Path) -> None:
    """Flush a file (or a directory's entries) to disk."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def new_stage(folder: str | Path) -> Path:
    """An empty staging folder beside ``folder`` (``.NAME.<random>``), parents created."""
    folder = Path(folder)
    folder.parent.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=f".{folder.name}.", dir=folder.parent))


def old_copy(folder: Path) -> Path:
    return folder.with_name(f".{folder.name}.old")


def foreign_files(paths: Iterable[str], own: Sequence[str]) -> list[str]:
    """The paths among ``paths`` whose file name matches none of the patterns ``own``
    (``fnmatch``: ``part-*``, ``state.json``)."""
    return [p for p in paths if not any(fnmatch.fnmatchcase(posixpath.basename(p), o) for o in own)]


def local_files(folder: Path) -> list[str]:
    """Every file under ``folder``, relative to it, sorted (empty when it does not exist)."""
    if not folder.is_dir():
        return [folder.name] if folder.exists() else []
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*") if not p.is_dir())


def require_own_folder(folder: str | Path, own: Sequence[str], kind: str) -> None:
    """Raise ``ForeignFolderError`` unless ``folder`` is absent or holds only files named as
    ``own`` allows (a ``kind``, e.g. "model folder"); nothing is changed either way."""
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise ForeignFolderError(f"refusing to replace {folder}: it is a file, not a {kind}")
    foreign = foreign_files(local_files(folder), own)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        raise ForeignFolderError(
            f"refusing to replace {folder}: it is not a {kind} (it holds "
            f"{', '.join(foreign[:3])}{more}); it is left as it is: move it away or choose "
            "another path"
        )


def replace_folder(
    stage: Path, folder: str | Path, marker: str, own: Sequence[str], kind: str
) -> None:
    """Put the written ``stage`` (from ``new_stage``) in the place of ``folder`` atomically;
    ``marker``: the file every complete folder of this kind holds; ``own``: the names of the
    files such a folder holds (a ``folder`` with others is refused: ``require_own_folder``)."""
    folder = Path(folder)
    for file in stage.iterdir():
        fsync_path(file)
    fsync_path(stage)
    old = old_copy(folder)
    recover_folder(folder, marker)
    require_own_folder(folder, own, kind)
    if folder.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(folder, old)
    # A kill right here leaves only ``old``: ``recover_folder`` puts it back on the next use.
    os.replace(stage, folder)
    fsync_path(folder.parent)
    shutil.rmtree(old, ignore_errors=True)
    for leftover in folder.parent.glob(f".{folder.name}.*"):  # stages of killed writes
        shutil.rmtree(leftover, ignore_errors=True)


def recover_folder(folder: str | Path, marker: str) -> None:
    """Put back the previous ``folder`` when a ``replace_folder`` was killed between its two
    renames: ``folder`` lacks its ``marker`` file and ``.NAME.old`` has one."""
    folder = Path(folder)
    old = old_copy(folder)
    if not (folder / marker).is_file() and (old / marker).is_file():
        shutil.rmtree(folder, ignore_errors=True)
        os.replace(old, folder)
