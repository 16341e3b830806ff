"""Publishing a dated export atomically: lock, stage, marker + manifest, swap into place.

Layout under OUT/recommendations/:
    dt=YYYY-MM-DD/part-*.parquet, _manifest.json, _COMPLETE   (published; readers use these)
    _staging/dt=YYYY-MM-DD.<run>/                             (being written; never read)
    _locks/dt=YYYY-MM-DD.lock                                 (held while a run writes that date)

A reader never sees a partial date: the data, the manifest and the completion marker are all
written into the staging folder, which is then renamed into place (atomic on HDFS and local
disks). Only the date being written is touched; other dates stay as they are. Spark ignores
folders and files whose names start with ``_``, so ``spark.read.parquet(OUT/recommendations)``
sees exactly the published dates.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from jobs.storage import fs
from jobs.storage.layout import join_path
from jobs.storage.locks import date_lock

log = logging.getLogger("rbm-reco.export")

MARKER = "_COMPLETE"
MANIFEST = "_manifest.json"


def publish_date(
    spark,
    root: str,
    dt: str,
    write_data: Callable[[str], None],
    manifest: Callable[[str], dict[str, Any]],
) -> dict[str, Any]:
    """Write one date's export: ``write_data(staging_path)`` writes the Parquet files, then
    ``manifest(staging_path)`` returns the manifest; the marker goes last, then the swap."""
    run_id = uuid.uuid4().hex[:12]
    staging = join_path(root, "_staging", f"dt={dt}.{run_id}")
    final = join_path(root, f"dt={dt}")
    trash = join_path(root, "_trash", f"dt={dt}.{run_id}")
    with date_lock(spark, root, dt):
        clean_leftovers(spark, root, dt)
        write_data(staging)
        info = manifest(staging)
        info.update(
            {
                "dt": dt,
                "run_id": run_id,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            }
        )
        fs.write_json(spark, join_path(staging, MANIFEST), info)
        fs.write_text(spark, join_path(staging, MARKER), f"{run_id}\n")
        replaced = fs.exists(spark, final)
        if replaced:
            fs.mkdirs(spark, join_path(root, "_trash"))
            fs.rename(spark, final, trash)
        fs.rename(spark, staging, final)
        if replaced:
            fs.delete(spark, trash)
    log.info("published %s (%s)", final, "replaced the previous export" if replaced else "new")
    return info


def clean_leftovers(spark, root: str, dt: str) -> None:
    """Remove what a killed run of this date left: staging folders, and restore a date whose
    previous export was moved aside but never replaced."""
    for name in fs.list_names(spark, join_path(root, "_staging")):
        if name.startswith(f"dt={dt}."):
            log.warning("removing the unfinished staging folder %s of an earlier run", name)
            fs.delete(spark, join_path(root, "_staging", name))
    final = join_path(root, f"dt={dt}")
    for name in fs.list_names(spark, join_path(root, "_trash")):
        if name.startswith(f"dt={dt}."):
            if not fs.exists(spark, final):
                log.warning("restoring the previous export of dt=%s from %s", dt, name)
                fs.rename(spark, join_path(root, "_trash", name), final)
            else:
                fs.delete(spark, join_path(root, "_trash", name))


def is_complete(spark, root: str, dt: str) -> bool:
    return fs.exists(spark, join_path(root, f"dt={dt}", MARKER))
