"""One run per (OUT, date): the lock file a run holds while it writes that date's export.

``OUT/recommendations/_locks/dt=YYYY-MM-DD.lock`` is created atomically (``O_CREAT | O_EXCL``
on a local disk, Hadoop's ``create(overwrite=false)`` elsewhere) and holds its owner; a second
run for the same date fails with ``LockHeldError`` (exit 4). A lock left by a killed process
on this host (its pid is gone) is taken over.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

from jobs.common.errors import LockHeldError
from jobs.storage import fs
from jobs.storage.layout import join_path

log = logging.getLogger("rbm-reco.export")


def lock_path(root: str, dt: str) -> str:
    return join_path(root, "_locks", f"dt={dt}.lock")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _read_holder(spark, path: str) -> dict[str, Any] | None:
    """The lock file's content, or None when it is gone or unreadable."""
    try:
        holder = fs.read_json(spark, path)
    except Exception:  # vanished in between, or garbage
        return None
    return holder if isinstance(holder, dict) else None


def _lock_is_stale(spark, path: str) -> bool:
    """A lock left by a killed process on this host (its pid is gone) may be taken over."""
    return _is_stale(_read_holder(spark, path))


def _is_stale(holder: dict[str, Any] | None) -> bool:
    if holder is None:  # an unreadable lock file: treat as held, a person should look
        return False
    try:
        pid = int(holder.get("pid", -1))
    except (TypeError, ValueError):
        return False
    return holder.get("host") == socket.gethostname() and pid > 0 and not _pid_alive(pid)


def _describe_holder(spark, path: str) -> str:
    """The lock holder on one line: ``pid 123 on host h since 2024-01-01T00:00:00+00:00``."""
    holder = _read_holder(spark, path)
    if holder is None:
        return "holder unknown (lock file unreadable)"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
        f"since {holder.get('since', '?')}"
    )


def _local_file(spark, path: str) -> str | None:
    """``path`` as a local file path when it resolves to the local file system, else None."""
    hfs, hpath = fs._fs_path(spark, path)
    if str(hfs.getUri().getScheme()) != "file":
        return None
    return str(hfs.makeQualified(hpath).toUri().getPath())


def _create_lock(spark, path: str, text: str) -> bool:
    """Create the lock file only if it does not exist (atomically); False when it exists.

    On a local disk Hadoop's ``create(overwrite=false)`` checks and then creates (two racing
    processes can both win), so local locks use ``O_CREAT | O_EXCL``, which the kernel makes
    atomic. HDFS and object stores go through Hadoop (atomic on HDFS's NameNode).
    """
    local = _local_file(spark, path)
    if local is None:
        return fs.create_exclusive(spark, path, text)
    os.makedirs(os.path.dirname(local), exist_ok=True)
    try:
        fd = os.open(local, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    except FileExistsError:
        return False
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
    return True


def _take_over(spark, path: str, stale: dict[str, Any], text: str) -> bool:
    """Replace the stale lock (content ``stale``) with ours; False when another run got there
    first. The stale file is first renamed to a private name (one run wins that rename), and
    checked: a fresh lock that another run created meanwhile is put back, not deleted."""
    grabbed = f"{path}.stale-{uuid.uuid4().hex[:12]}"
    local, local_grabbed = _local_file(spark, path), _local_file(spark, grabbed)
    try:
        if local is not None and local_grabbed is not None:
            os.rename(local, local_grabbed)
        else:
            fs.rename(spark, path, grabbed)
    except Exception:  # gone already: another run removed it (and may hold the lock now)
        return _create_lock(spark, path, text)
    if _read_holder(spark, grabbed) != stale:  # a live run's lock, created after our check
        try:
            if local is not None and local_grabbed is not None:
                os.link(local_grabbed, local)  # fails rather than replace a newer lock
                os.unlink(local_grabbed)
            else:
                fs.rename(spark, grabbed, path)
        except Exception:
            log.error("could not put back the lock %s (kept as %s)", path, grabbed)
        return False
    fs.delete(spark, grabbed)
    return _create_lock(spark, path, text)


@contextmanager
def date_lock(spark, root: str, dt: str) -> Iterator[None]:
    """Hold the lock for (OUT, dt); a second run for the same date fails with LockHeldError."""
    path = lock_path(root, dt)
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    text = json.dumps(holder, sort_keys=True) + "\n"
    if not _create_lock(spark, path, text):
        stale = _read_holder(spark, path)
        if stale is not None and _is_stale(stale):
            log.warning(
                "taking over the stale lock %s (pid %s on host %s since %s, that process is "
                "gone)",
                path,
                stale.get("pid"),
                stale.get("host"),
                stale.get("since"),
            )
            if not _take_over(spark, path, stale, text):
                raise LockHeldError(
                    f"another run took over the stale lock {path} first "
                    f"({_describe_holder(spark, path)})"
                )
        else:
            raise LockHeldError(
                f"another run is writing the export for dt={dt} "
                f"({_describe_holder(spark, path)}; lock {path}); wait for it to finish, or "
                "delete the lock file if that run is dead"
            )
    try:
        yield
    finally:
        fs.delete(spark, path)
