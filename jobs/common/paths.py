"""What makes a path usable as a job's output folder, decided from the text alone (no Spark):
not empty and not a file system's root. ``jobs.storage.fs.output_dir`` applies the same rule
to the path Hadoop resolves."""

from __future__ import annotations

import os
import posixpath
from urllib.parse import urlparse


def output_problem(path: str) -> str | None:
    """Why ``path`` cannot be an output folder ("is empty", "is the root ..."), or None.

    A path without a scheme counts from the current directory (``..`` from ``/`` is the
    root); a URI whose path is empty or ``/`` (``hdfs://nn``, ``s3a://bucket/``) is the root
    of its file system."""
    if not path.strip():
        return "is empty"
    parsed = urlparse(path)
    if parsed.scheme:
        where = parsed.path or "/"
    else:
        where = os.path.abspath(path)
    if posixpath.normpath(where).strip("/") == "":
        return "is the root of a file system"
    return None
