"""One run per (OUT, date): the lock a run holds while it writes that date's export.

``OUT/recommendations/_locks/dt=YYYY-MM-DD.lock`` is created atomically (``O_CREAT | O_EXCL``
on a local disk, Hadoop's ``create(overwrite=false)`` elsewhere) and names its owner: a random
``token``, the ``host``, ``pid`` and ``process`` (boot id / pid namespace / pid / start time),
``since``, and a lease: ``renewed`` (the owner's clock at its last renewal) and ``lease_s``.

The owner renews the lease every ``lease_s / 3`` seconds from a thread. A run that finds the
lock held takes it over only when its holder is provably gone (``is_stale``):

- the holder ran on this machine in this pid namespace (same boot id and namespace) and its
  process is gone (no such pid, or the pid now belongs to a process started later); or
- its lease expired: ``renewed`` is more than ``lease_s`` seconds old by this machine's clock
  (clocks must agree to well within the lease).

A host name and a pid prove nothing on their own: containers may share a host name while each
has its own pids. Otherwise the run fails with ``LockHeldError`` (exit 4) and leaves the lock
alone. The owner renews and releases the lock only while the file still holds its token, and
checks that it does right before it publishes (``DateLock.ensure_held``): a run stalled past
its lease whose lock was taken over stops with exit 4 without publishing.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from jobs.common.errors import LockHeldError
from jobs.storage import fs
from jobs.storage.layout import join_path

log = logging.getLogger("rbm-reco.export")

DEFAULT_LEASE_S = 120.0  # score.lock_lease_s


def lock_path(root: str, dt: str) -> str:
    return join_path(root, "_locks", f"dt={dt}.lock")


# -- who holds the lock ------------------------------------------------------------------


def _read_proc(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def process_identity(pid: int | None = None) -> str | None:
    """``boot id/pid namespace/pid/start time`` of a process of this machine and pid namespace
    (this process by default); None where /proc cannot tell (not Linux, or no such pid)."""
    pid = os.getpid() if pid is None else pid
    boot = _read_proc("/proc/sys/kernel/random/boot_id")
    stat = _read_proc(f"/proc/{pid}/stat")
    try:
        namespace = os.readlink("/proc/self/ns/pid")
    except OSError:
        return None
    if boot is None or stat is None:
        return None
    start = stat.rsplit(")", 1)[1].split()[19]  # field 22 of proc(5): start time in ticks
    return f"{boot}/{namespace}/{pid}/{start}"


def holder_gone(holder: dict[str, Any]) -> bool:
    """The holder ran in this machine's pid namespace and its process no longer exists."""
    theirs, mine = holder.get("process"), process_identity()
    if not (isinstance(theirs, str) and mine and theirs.count("/") == 3):
        return False
    boot, namespace, pid, _ = theirs.split("/")
    if [boot, namespace] != mine.split("/")[:2] or not pid.isdigit():
        return False
    return process_identity(int(pid)) != theirs


def lease_expired(holder: dict[str, Any], now: datetime | None = None) -> bool:
    """The holder's lease was last renewed more than its ``lease_s`` ago (this clock)."""
    try:
        renewed = datetime.fromisoformat(str(holder["renewed"]))
        lease = float(holder["lease_s"])
    except (KeyError, TypeError, ValueError):
        return False
    if renewed.tzinfo is None:
        return False
    return (now or datetime.now(UTC)) - renewed > timedelta(seconds=lease)


def is_stale(holder: dict[str, Any] | None) -> bool:
    """A lock that may be taken over: its holder is gone, or its lease expired. An unreadable
    lock file is never stale: a person should look."""
    return holder is not None and (holder_gone(holder) or lease_expired(holder))


def describe(holder: dict[str, Any] | None) -> str:
    """The lock holder on one line."""
    if holder is None:
        return "holder unknown (lock file unreadable)"
    return (
        f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} since "
        f"{holder.get('since', '?')}, lease renewed {holder.get('renewed', '?')} for "
        f"{holder.get('lease_s', '?')} s"
    )


# -- the lock file -----------------------------------------------------------------------


def _read_holder(spark, path: str) -> dict[str, Any] | None:
    """The lock file's content, or None when it is gone or unreadable."""
    try:
        holder = fs.read_json(spark, path)
    except Exception:  # vanished in between, or garbage
        return None
    return holder if isinstance(holder, dict) else None


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


def _grab(spark, path: str) -> str | None:
    """Rename the lock file to a private name (one run wins that rename); the new name, or
    None when it was gone."""
    grabbed = f"{path}.grab-{uuid.uuid4().hex[:12]}"
    local, local_grabbed = _local_file(spark, path), _local_file(spark, grabbed)
    try:
        if local is not None and local_grabbed is not None:
            os.rename(local, local_grabbed)
        else:
            fs.rename(spark, path, grabbed)
    except Exception:  # gone already
        return None
    return grabbed


def _put_back(spark, grabbed: str, path: str) -> None:
    """Return a grabbed lock file to its place, never over a newer lock."""
    local, local_grabbed = _local_file(spark, path), _local_file(spark, grabbed)
    try:
        if local is not None and local_grabbed is not None:
            os.link(local_grabbed, local)  # fails rather than replace a newer lock
            os.unlink(local_grabbed)
        else:
            fs.rename(spark, grabbed, path)
    except Exception:
        log.error("could not put back the lock %s (kept as %s)", path, grabbed)


def _take_over(spark, path: str, stale: dict[str, Any], text: str) -> bool:
    """Replace the stale lock (content ``stale``) with ours; False when another run got there
    first. The grabbed file is checked: a lock renewed or created by another run meanwhile is
    put back, not deleted."""
    grabbed = _grab(spark, path)
    if grabbed is None:  # another run removed it (and may hold the lock now)
        return _create_lock(spark, path, text)
    if _read_holder(spark, grabbed) != stale:
        _put_back(spark, grabbed, path)
        return False
    fs.delete(spark, grabbed)
    return _create_lock(spark, path, text)


class DateLock:
    """The lock of one (OUT, date) held by this run: ``acquire``, a heartbeat that renews the
    lease, ``ensure_held`` before publishing, ``release`` (only while it is still ours)."""

    def __init__(self, spark, path: str, dt: str, lease_s: float) -> None:
        self.spark = spark
        self.path = path
        self.dt = dt
        self.lease_s = float(lease_s)
        self.token = uuid.uuid4().hex
        self.since = datetime.now(UTC)
        self.renewed = self.since
        self.lost = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def document(self) -> str:
        holder = {
            "token": self.token,
            "host": socket.gethostname(),
            "pid": os.getpid(),
            "process": process_identity(),
            "since": self.since.isoformat(timespec="seconds"),
            "renewed": self.renewed.isoformat(timespec="milliseconds"),
            "lease_s": self.lease_s,
        }
        return json.dumps(holder, sort_keys=True) + "\n"

    def acquire(self) -> None:
        if _create_lock(self.spark, self.path, self.document()):
            return
        holder = _read_holder(self.spark, self.path)
        if not is_stale(holder):
            raise LockHeldError(
                f"another run is writing the export for dt={self.dt} ({describe(holder)}; "
                f"lock {self.path}); wait for it to finish: a lock whose lease is not renewed "
                "is taken over when it expires. Delete the lock file only if it is unreadable "
                "and that run is dead"
            )
        log.warning("taking over the stale lock %s (%s): %s", self.path, describe(holder),
                    "its process is gone" if holder_gone(holder) else "its lease expired")
        if not _take_over(self.spark, self.path, holder, self.document()):
            raise LockHeldError(
                f"another run took over the stale lock {self.path} first "
                f"({describe(_read_holder(self.spark, self.path))})"
            )

    def still_held(self) -> bool:
        """The lock file still holds this run's token (and the lease was kept)."""
        if self.lost.is_set():
            return False
        holder = _read_holder(self.spark, self.path)
        return holder is not None and holder.get("token") == self.token

    def ensure_held(self) -> None:
        if not self.still_held():
            self.lost.set()
            raise LockHeldError(
                f"this run lost the lock {self.path} of dt={self.dt}: it was not renewed "
                f"within its {self.lease_s:g} s lease and another run took it over "
                f"({describe(_read_holder(self.spark, self.path))}); this run published nothing"
            )

    def renew(self) -> bool:
        """Extend the lease if the lock is still ours and its lease has not run out (a run
        that stalled past it may have been taken over already); False when the lock is lost."""
        now = datetime.now(UTC)
        if now - self.renewed > timedelta(seconds=self.lease_s) or not self.still_held():
            self.lost.set()
            return False
        self.renewed = now
        fs.write_text_atomic(self.spark, self.path, self.document())
        return True

    def start_heartbeat(self, on_lost: Callable[[], None]) -> None:
        def beat() -> None:
            while not self._stop.wait(self.lease_s / 3):
                try:
                    renewed = self.renew()
                except Exception as exc:  # a file system error: try again at the next beat
                    log.warning("could not renew the lock %s: %s", self.path, exc)
                    continue
                if not renewed:
                    log.error("lost the lock %s: its lease expired", self.path)
                    on_lost()
                    return

        self._thread = threading.Thread(target=beat, name="rbm-reco-lock", daemon=True)
        self._thread.start()

    def release(self) -> None:
        """Stop renewing; remove the lock file only if it still holds this run's token."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        holder = _read_holder(self.spark, self.path)
        if holder is None or holder.get("token") != self.token:
            log.warning("the lock %s is not this run's any more; left to its holder", self.path)
            return
        grabbed = _grab(self.spark, self.path)
        if grabbed is None:
            return
        holder = _read_holder(self.spark, grabbed)
        if holder is not None and holder.get("token") == self.token:
            fs.delete(self.spark, grabbed)
        else:
            log.warning("the lock %s is not this run's any more; left to its holder", self.path)
            _put_back(self.spark, grabbed, self.path)


@contextmanager
def date_lock(
    spark, root: str, dt: str, lease_s: float = DEFAULT_LEASE_S,
    on_lost: Callable[[], None] | None = None,
) -> Iterator[DateLock]:  # fmt: skip
    """Hold the lock for (OUT, dt) while the block runs; a second run for the same date fails
    with ``LockHeldError``. ``on_lost``: called from the heartbeat if the lock is lost."""
    lock = DateLock(spark, lock_path(root, dt), dt, lease_s)
    lock.acquire()
    lock.start_heartbeat(on_lost or (lambda: None))
    try:
        yield lock
    finally:
        lock.release()
