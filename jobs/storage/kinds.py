"""Proving that an existing output folder is of the kind a job is about to replace.

A job replaces a folder (a model folder, a dated export, evaluate's predictions) only when it
can prove the folder is of that kind: every file in it has a name that kind writes, and it
holds the kind's marker file (with the JSON keys the kind writes there). Anything else is
refused with ``ForeignFolderError`` (exit 2) and left as it is. An absent or empty folder is
replaced freely: nothing is lost. On any Hadoop file system, through ``jobs.storage.fs``; the
local-disk twin is ``rbmcore.io.folders.require_own_folder``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from jobs.storage import fs
from jobs.storage.layout import join_path
from rbmcore.errors import ForeignFolderError
from rbmcore.io.folders import foreign_files


@dataclass(frozen=True)
class FolderKind:
    name: str  # "model folder"
    files: tuple[str, ...]  # fnmatch patterns of the names of the files it holds (any depth)
    marker: str | None = None  # a file every non-empty folder of the kind holds
    marker_keys: tuple[str, ...] = ()  # keys of the JSON object in the marker


def kind_problem(spark, path: str, kind: FolderKind) -> str | None:
    """Why the folder ``path`` is not a ``kind`` (None when it is one, or absent, or empty)."""
    if fs.exists(spark, path) and not fs.is_dir(spark, path):
        return "it is a file"
    files = fs.file_paths(spark, path)
    if not files:
        return None
    foreign = foreign_files(files, kind.files)
    if foreign:
        more = f" and {len(foreign) - 3} more" if len(foreign) > 3 else ""
        return f"it holds {', '.join(foreign[:3])}{more}"
    if kind.marker is None:
        return None
    if kind.marker not in files:
        return f"it has no {kind.marker}"
    try:
        content = json.loads(fs.read_text(spark, join_path(path, kind.marker)))
    except (ValueError, UnicodeDecodeError):
        content = None
    if kind.marker_keys and not (
        isinstance(content, dict) and all(key in content for key in kind.marker_keys)
    ):
        return f"its {kind.marker} is not one rbm-reco writes"
    return None


def require_kind(spark, path: str, kind: FolderKind) -> None:
    """Raise ``ForeignFolderError`` unless ``path`` may be replaced by a ``kind``."""
    problem = kind_problem(spark, path, kind)
    if problem is not None:
        raise ForeignFolderError(
            f"refusing to replace {path}: it is not a {kind.name} ({problem}); it is left as "
            "it is: move it away or choose another path"
        )
