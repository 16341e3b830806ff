"""An ingest as one unit: written into a staging folder, then swapped into ``OUT/ingest``.

``OUT/ingest/`` holds ``items/``, ``train/``, ``test/`` (when a test input was given) and
``_ingest.json`` (the manifest: ``ingest_id``, ``created_at``, the rating scale, the counts).
Each of the three folders carries the same id in its ``_ingest_id`` file, so a folder copied
from another ingest is detected: train and score read the unit only through ``read_manifest``,
which refuses a mixture, a unit without a manifest and a missing folder (``BadInputError``,
exit 3).

Publishing: the unit is written to ``OUT/_staging/ingest.<id>/``; then the current
``OUT/ingest`` is moved to ``OUT/_trash/ingest.<id>``, the staging folder renamed into its
place, and the trash removed. Readers see the old unit or the new one, never a mixture; a kill
between the two renames leaves ``OUT/ingest`` missing and the old unit in ``_trash``, and the
next ingest puts it back first (``recover``). ``OUT/quarantine`` is replaced the same way, on
success and on failure alike. An existing ``OUT/ingest`` or ``OUT/quarantine`` is replaced only
when it is provably an ingest output (its id file or manifest, or only the folders an ingest
writes); anything else is refused with a ``UsageError`` (exit 2) and left untouched.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from typing import Any

from jobs.common.errors import BadInputError, UsageError
from jobs.ingestion.sources import error_line
from jobs.storage import fs, layout
from jobs.storage.layout import join_path

log = logging.getLogger("rbm-reco.ingest")

MANIFEST = "_ingest.json"
ID_FILE = "_ingest_id"
PARTS = ("items", "train", "test")
# What Spark leaves in a Parquet folder it wrote, besides the data files.
_SPARK_FILES = ("_SUCCESS", "._SUCCESS.crc")


def new_ingest_id() -> str:
    return uuid.uuid4().hex[:12]


def staging_dir(out: str, ingest_id: str) -> str:
    return join_path(out, "_staging", f"ingest.{ingest_id}")


def trash_dir(out: str, name: str) -> str:
    return join_path(out, "_trash", name)


def is_parquet_output(names: list[str]) -> bool:
    """Whether a folder's entries are what Spark writes for Parquet (part files, checksums,
    ``_SUCCESS``) and an ingest's id file."""
    allowed = (*_SPARK_FILES, ID_FILE)
    return all(
        n in allowed or n.startswith(("part-", ".part-")) for n in names
    )


def is_ingest_unit(spark, path: str) -> bool:
    """``path`` holds an ingest unit: its manifest, or (an ingest of an older version) only
    ingest folders that are Parquet outputs."""
    names = fs.list_names(spark, path)
    if MANIFEST in names:
        return True
    return bool(names) and all(
        n in PARTS and is_parquet_output(fs.list_names(spark, join_path(path, n))) for n in names
    )


def is_quarantine(spark, path: str) -> bool:
    return is_parquet_output(fs.list_names(spark, path))


def check_replaceable(spark, path: str, ours) -> None:
    """Refuse (``UsageError``) to replace ``path`` when it exists and ``ours(spark, path)``
    cannot prove it is an ingest output."""
    if fs.exists(spark, path) and not ours(spark, path):
        names = fs.list_names(spark, path)
        shown = ", ".join(names[:5]) + (", ..." if len(names) > 5 else "")
        raise UsageError(
            f"{path} exists and is not an rbm-reco ingest output (it holds: {shown or 'a file'});"
            " refusing to replace it: choose another --out, or move it away"
        )


def recover(spark, out: str) -> None:
    """Undo what a killed ingest left: put back a unit moved to ``_trash`` and never replaced
    (the kill fell between the two renames), remove staging folders and other trash."""
    unit = layout.ingest_dir(out)
    for kind, final in (("ingest", unit), ("quarantine", layout.quarantine(out))):
        for name in fs.list_names(spark, join_path(out, "_trash")):
            if not name.startswith(f"{kind}."):
                continue
            moved = trash_dir(out, name)
            if not fs.exists(spark, final):
                log.warning("putting back %s from %s (an earlier ingest was killed)", final, moved)
                fs.rename(spark, moved, final)
            else:
                fs.delete(spark, moved)
    for name in fs.list_names(spark, join_path(out, "_trash")):
        if name.startswith("other-quarantine."):
            fs.delete(spark, trash_dir(out, name))
    for name in fs.list_names(spark, join_path(out, "_staging")):
        if name.startswith("ingest."):
            log.warning("removing the unfinished staging folder %s of an earlier ingest", name)
            fs.delete(spark, join_path(out, "_staging", name))


def swap_into_place(spark, staged: str, final: str, trash: str) -> None:
    """Rename ``staged`` to ``final``, the current ``final`` moved to ``trash`` just before
    and removed just after."""
    replaced = fs.exists(spark, final)
    if replaced:
        fs.mkdirs(spark, trash.rsplit("/", 1)[0])
        fs.rename(spark, final, trash)
    fs.mkdirs(spark, final.rsplit("/", 1)[0])
    fs.rename(spark, staged, final)
    if replaced:
        fs.delete(spark, trash)


def write_ids(spark, unit: str, ingest_id: str) -> None:
    """The id file in every part folder of a unit."""
    for part in PARTS:
        folder = join_path(unit, part)
        if fs.exists(spark, folder):
            fs.write_text(spark, join_path(folder, ID_FILE), ingest_id + "\n")


def publish_unit(spark, out: str, ingest_id: str, manifest: dict[str, Any]) -> None:
    """Write the ids and the manifest into the staged unit and swap it into ``OUT/ingest``."""
    staged = staging_dir(out, ingest_id)
    write_ids(spark, staged, ingest_id)
    manifest = {
        **manifest,
        "ingest_id": ingest_id,
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    fs.write_json(spark, join_path(staged, MANIFEST), manifest)
    check_replaceable(spark, layout.ingest_dir(out), is_ingest_unit)
    swap_into_place(spark, staged, layout.ingest_dir(out), trash_dir(out, f"ingest.{ingest_id}"))
    log.info("ingest %s published to %s", ingest_id, layout.ingest_dir(out))


def publish_quarantine(spark, out: str, ingest_id: str, staged: str, final: str) -> None:
    """Swap the staged quarantine (with the ingest's id) into ``final`` (``OUT/quarantine``,
    or a nightly score's own; its trash is named apart, so ``recover`` puts only
    ``OUT/quarantine`` back and removes the others)."""
    fs.write_text(spark, join_path(staged, ID_FILE), ingest_id + "\n")
    check_replaceable(spark, final, is_quarantine)
    kind = "quarantine" if final == layout.quarantine(out) else "other-quarantine"
    swap_into_place(spark, staged, final, trash_dir(out, f"{kind}.{ingest_id}"))


def read_manifest(spark, out: str) -> dict[str, Any]:
    """The manifest of ``OUT/ingest``, once every part folder is checked to carry its id;
    ``BadInputError`` (exit 3) naming the problem otherwise."""
    unit = layout.ingest_dir(out)
    path = join_path(unit, MANIFEST)
    if not fs.exists(spark, path):
        if fs.exists(spark, unit):
            raise BadInputError(
                f"{unit} has no {MANIFEST} (written by an older rbm-reco, or not an ingest); "
                "re-run `rbm-reco ingest`"
            )
        raise BadInputError(f"no ingested data at {unit}; run `rbm-reco ingest` first")
    manifest = _read(spark, path, json_file=True)
    expected = manifest.get("ingest_id")
    for part in manifest.get("parts", PARTS[:2]):
        folder = join_path(unit, part)
        id_path = join_path(folder, ID_FILE)
        if not fs.exists(spark, id_path):
            raise BadInputError(f"ingested {part} missing at {folder} (no {ID_FILE}); "
                                "re-run `rbm-reco ingest`")  # fmt: skip
        found = _read(spark, id_path).strip()
        if found != expected:
            raise BadInputError(
                f"{unit} mixes ingests: {part}/ is from ingest {found}, the manifest from "
                f"{expected}; re-run `rbm-reco ingest`"
            )
    return manifest


def _read(spark, path: str, json_file: bool = False):
    """A file of the unit, read (and parsed); ``BadInputError`` when it cannot be (a checksum
    mismatch of a file edited by hand, bad JSON)."""
    try:
        return fs.read_json(spark, path) if json_file else fs.read_text(spark, path)
    except Exception as exc:  # py4j wraps ChecksumException, IOException; JSONDecodeError
        raise BadInputError(
            f"cannot read {path} ({error_line(exc)}); re-run `rbm-reco ingest`"
        ) from exc
