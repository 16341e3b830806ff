"""Folder renames that fail, as on an object store where renaming a folder copies it file by
file (for the tests): ``jobs.storage.fs.rename`` of a folder raises instead. A commit that
relies on renaming folders cannot publish under it; one that does not, can.

    monkeypatch.setattr("jobs.storage.fs.rename", refusing_folder_renames(fs.rename))
"""

from __future__ import annotations

from collections.abc import Callable

from jobs.storage import fs

INJECTED = "injected: this file system cannot rename a folder in one step"


def refusing_folder_renames(rename: Callable[[object, str, str], None]) -> Callable:
    """``rename`` (``jobs.storage.fs.rename``) that raises for a folder, renames files."""

    def guarded(spark, src: str, dst: str) -> None:
        if fs.is_dir(spark, src):
            raise OSError(f"{INJECTED} ({src})")
        rename(spark, src, dst)

    return guarded
