"""Publishing a dated export on a real local SparkSession: a re-run replaces only its own date,
with byte-identical rows, and readers never see staging, locks or trash; the next run restores
an export a killed swap moved aside."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from jobs.score import run_score
from jobs.storage.export import MANIFEST
from tests.jobs.support import DT, leftovers, snapshot


def part_bytes(folder: Path) -> list[bytes]:
    """The Parquet part files' bytes in part order (file names carry a per-run UUID)."""
    return [p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))]


def test_rerun_replaces_only_that_date_with_byte_identical_rows(spark, run):
    other = "2024-02-29"
    run_score(spark, run.conf, str(run.out), other)
    other_before = snapshot(run.dt_dir(other))
    again = run_score(spark, run.conf, str(run.out), DT)
    assert again["run_id"] != run.manifest["run_id"]
    after = snapshot(run.dt_dir())
    assert json.loads(after[MANIFEST])["run_id"] == again["run_id"]
    # Spark's Parquet files hold no write time: the same model and data give the same bytes.
    assert part_bytes(run.dt_dir()) == part_bytes(run.dt_dir(other))
    assert part_bytes(run.dt_dir()) == [run.snapshot[n] for n in sorted(run.snapshot)
                                        if n.startswith("part-") and n.endswith(".parquet")]
    assert snapshot(run.dt_dir(other)) == other_before
    # Readers of the whole export see the published dates only, never _staging/_locks/_trash.
    assert spark.read.parquet(str(run.root)).count() == 2 * run.manifest["rows"]
    assert leftovers(run) == [] and leftovers(run, other) == []
    shutil.rmtree(run.dt_dir(other))


def test_publish_restores_an_export_moved_aside_by_a_killed_swap(spark, run):
    """A kill between the swap's two renames leaves dt=DT in _trash: the next run restores it
    before writing and then replaces it; a reader never sees a half-written date."""
    from jobs.storage.export import clean_leftovers

    trash = run.root / "_trash" / f"dt={DT}.deadbeef0001"
    trash.parent.mkdir(exist_ok=True)
    before = snapshot(run.dt_dir())
    os.replace(run.dt_dir(), trash)
    (run.root / "_staging" / f"dt={DT}.deadbeef0002").mkdir(parents=True)
    clean_leftovers(spark, str(run.root), DT)
    assert snapshot(run.dt_dir()) == before and leftovers(run) == []
