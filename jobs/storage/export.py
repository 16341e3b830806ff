"""Publishing a dated export: lock, write, check, manifest + marker, commit.

Layout under OUT/recommendations/:
    dt=YYYY-MM-DD/part-*.parquet, _manifest.json, _COMPLETE   (published; readers use these)
    _staging/dt=YYYY-MM-DD.<run>/                             (being written; never read)
    _trash/dt=YYYY-MM-DD.<run>/                               (the previous export, during a swap)
    _locks/dt=YYYY-MM-DD.lock                                 (held while a run writes that date)

Two ways to commit (``score.commit``; docs/operations.md, "Object stores"):

- ``rename`` (``auto`` picks it where a folder rename is atomic: local disks, HDFS): data,
  manifest and marker are written into the staging folder, which is then renamed into place.
  A reader of ``dt=D/`` sees the old date or the new one, never a part.
- ``manifest`` (for object stores, where a rename copies file by file): the data are written
  under ``dt=D/run=<run>/`` and ``dt=D/_manifest.json`` is written last, in one step, naming
  that run folder (``data``); then older run folders are removed. No folder is renamed. A
  reader that follows the manifest (``data_path``) sees the old date or the new one; a reader
  listing ``dt=D/`` may see two runs' folders during a re-run.

``auto`` on any other file system is refused (exit 2) until the operator chooses one. Only
the date being written is touched, and only when its folder is a date export (``EXPORT_DATE``).
Spark ignores names that start with ``_``, so ``spark.read.parquet(OUT/recommendations)`` sees
the published dates only.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobs.common.args import export_date
from jobs.common.config import DEFAULT_CONF
from jobs.common.errors import UsageError
from jobs.storage import fs
from jobs.storage.kinds import FolderKind, kind_problem, require_kind
from jobs.storage.layout import join_path
from jobs.storage.locks import date_lock
from rbmcore import __version__

log = logging.getLogger("rbm-reco.export")

MARKER = "_COMPLETE"
MANIFEST = "_manifest.json"
RUN_FOLDER = "run="  # manifest commits: dt=D/run=<run>/ holds one run's rows
PARQUET_OUTPUT = ("part-*", "_SUCCESS", ".*.crc")  # what Spark's Parquet writer leaves
EXPORT_DATE = FolderKind(
    "date export", (*PARQUET_OUTPUT, MANIFEST, MARKER), MANIFEST, ("run_id", "dt")
)
RUN_DATA = FolderKind("export run folder", PARQUET_OUTPUT)


def commit_mode(spark, root: str, setting: str) -> str:
    """``rename`` or ``manifest`` for ``score.commit`` = ``setting`` on ``root``'s file system;
    ``auto`` is ``rename`` where a folder rename is atomic and a usage error elsewhere."""
    if setting == "auto":
        if fs.renames_atomically(spark, root):
            return "rename"
        raise UsageError(
            f"{root} is on a {fs.scheme_of(spark, root)}:// file system, where renaming a "
            "folder copies it file by file, so a re-run could show readers a partial date: "
            'set score.commit = "manifest" (readers follow dt=.../_manifest.json) or '
            'score.commit = "rename" (accepting that risk); see docs/operations.md'
        )
    if setting == "rename" and not fs.renames_atomically(spark, root):
        log.warning("score.commit = rename on %s: readers may see a partial date during the "
                    "swap", fs.scheme_of(spark, root))  # fmt: skip
    return setting


def publish_date(
    spark,
    root: str,
    dt: str,
    write_data: Callable[[str], None],
    manifest: Callable[[str], dict[str, Any]],
    settings: dict[str, Any],
) -> dict[str, Any]:
    """Write one date's export: ``write_data(path)`` writes the Parquet files, then
    ``manifest(path)`` checks them and returns the manifest; ``settings``: the [score] table
    (``commit``, ``lock_lease_s``). Returns the manifest as written."""
    dt = export_date(dt)
    settings = {**DEFAULT_CONF["score"], **settings}
    commit = commit_mode(spark, root, settings["commit"])
    run_id = uuid.uuid4().hex[:12]
    final = join_path(root, f"dt={dt}")
    lease = float(settings["lock_lease_s"])
    with date_lock(spark, root, dt, lease, on_lost=spark.sparkContext.cancelAllJobs) as lock:
        clean_leftovers(spark, root, dt)
        require_kind(spark, final, EXPORT_DATE)
        require_same_commit(spark, final, commit)
        publish = publish_by_rename if commit == "rename" else publish_by_manifest
        try:
            info = publish(spark, root, dt, run_id, write_data, manifest, lock)
        except Exception:
            if not lock.still_held():  # the cause: this run lost its lock (and was cancelled)
                for own in (join_path(root, "_staging", f"dt={dt}.{run_id}"),
                            join_path(final, f"{RUN_FOLDER}{run_id}")):  # fmt: skip
                    fs.delete(spark, own)
                lock.ensure_held()  # raises LockHeldError
            raise
    log.info("published %s (commit by %s)", final, commit)
    return info


def manifest_fields(dt: str, run_id: str, commit: str) -> dict[str, Any]:
    return {
        "dt": dt,
        "run_id": run_id,
        "commit": commit,
        "rbm_reco_version": __version__,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def publish_by_rename(spark, root, dt, run_id, write_data, manifest, lock) -> dict[str, Any]:
    """Staging folder, then one rename into place (the previous date moved to ``_trash``
    just before and deleted just after)."""
    staging = join_path(root, "_staging", f"dt={dt}.{run_id}")
    write_data(staging)
    info = {**manifest(staging), **manifest_fields(dt, run_id, "rename")}
    fs.write_json(spark, join_path(staging, MANIFEST), info)
    fs.write_text(spark, join_path(staging, MARKER), f"{run_id}\n")
    lock.ensure_held()
    final = join_path(root, f"dt={dt}")
    fs.swap_in(spark, staging, final, join_path(root, "_trash", f"dt={dt}.{run_id}"))
    return info


def publish_by_manifest(spark, root, dt, run_id, write_data, manifest, lock) -> dict[str, Any]:
    """The rows under ``dt=D/run=<run>/``; the manifest, written last in one step, names them;
    then the marker, then older runs' folders are removed. No folder is renamed."""
    final = join_path(root, f"dt={dt}")
    data = f"{RUN_FOLDER}{run_id}"
    write_data(join_path(final, data))
    info = {**manifest(join_path(final, data)), **manifest_fields(dt, run_id, "manifest")}
    info["data"] = data
    lock.ensure_held()
    fs.write_text_atomic(spark, join_path(final, MANIFEST), fs.dumps_json(info))
    fs.write_text_atomic(spark, join_path(final, MARKER), f"{run_id}\n")
    remove_unpublished_runs(spark, final, data)
    return info


def require_same_commit(spark, final: str, commit: str) -> None:
    """A date is replaced the way it was published: a manifest-committed date keeps its rows in
    run folders, a renamed one at its top; mixing them would show readers both."""
    if not fs.exists(spark, join_path(final, MANIFEST)):
        return
    before = fs.read_json(spark, join_path(final, MANIFEST)).get("commit", "rename")
    if before != commit:
        raise UsageError(
            f"{final} was published with score.commit = {before!r}; it cannot be replaced "
            f"with {commit!r}: keep one commit mode per export folder"
        )


def remove_unpublished_runs(spark, final: str, keep: str | None) -> None:
    """Run folders of ``final`` other than ``keep`` (killed runs', the replaced run's): those
    holding Spark's Parquet output alone."""
    for name in fs.list_names(spark, final):
        folder = join_path(final, name)
        if name.startswith(RUN_FOLDER) and name != keep:
            if kind_problem(spark, folder, RUN_DATA) is None:
                fs.delete(spark, folder)


def clean_leftovers(spark, root: str, dt: str) -> None:
    """Remove what a killed run of this date left: staging folders and run folders no
    manifest names; restore a date whose previous export was moved aside but never replaced."""
    for name in fs.list_names(spark, join_path(root, "_staging")):
        if name.startswith(f"dt={dt}."):
            log.warning("removing the unfinished staging folder %s of an earlier run", name)
            fs.delete(spark, join_path(root, "_staging", name))
    final = join_path(root, f"dt={dt}")
    trash_root = join_path(root, "_trash")
    trash = [join_path(trash_root, name) for name in fs.list_names(spark, trash_root)
             if name.startswith(f"dt={dt}.")]  # fmt: skip
    if trash and not fs.exists(spark, final):
        log.warning("restoring the previous export of dt=%s from %s", dt, trash[0])
    fs.restore_aside(spark, final, trash)
    if fs.exists(spark, join_path(final, MANIFEST)):
        published = fs.read_json(spark, join_path(final, MANIFEST)).get("data")
        if published is not None:
            remove_unpublished_runs(spark, final, published)
    elif fs.exists(spark, final):  # a killed first manifest commit of this date
        remove_unpublished_runs(spark, final, None)


def is_complete(spark, root: str, dt: str) -> bool:
    return fs.exists(spark, join_path(root, f"dt={dt}", MARKER))


def data_path(spark, root: str, dt: str) -> str:
    """Where the published rows of ``dt`` are: ``dt=D/`` itself, or the run folder its
    manifest names (``score.commit = manifest``)."""
    final = join_path(root, f"dt={dt}")
    data = fs.read_json(spark, join_path(final, MANIFEST)).get("data")
    return join_path(final, data) if data else final
