"""What the score and evaluate jobs check and report, on a real local SparkSession: the manifest
and marker show the ingest counts; the check before publishing refuses an export with a part lost,
duplicated or swapped; a user who rated every movie gets no rows and does not block the export;
test pairs of unknown users and movies are reported and excluded."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest

from jobs.evaluate import run_evaluate
from jobs.ingest import run_ingest
from jobs.score import run_score
from jobs.storage.export import MANIFEST, MARKER
from tests.jobs.support import DT, TOP_K, UNKNOWN_ID, leftovers


def test_manifest_and_marker_show_the_ingest_counts(spark, run):
    """DT scored here (other tests publish it again): its marker holds the run id and its
    manifest the ingest summary's counts."""
    scored = run_score(spark, run.conf, str(run.out), DT)
    published = run.dt_dir()
    assert (published / MARKER).read_text().strip() == scored["run_id"]
    manifest = json.loads((published / MANIFEST).read_text())
    summary = json.loads((run.out / "ingest_summary.json").read_text())
    assert manifest["users"] == summary["users"] == 300
    assert manifest["rows"] == 300 * TOP_K == spark.read.parquet(str(published)).count()
    counts = manifest["ingest"]
    assert counts["quarantined"] == 1 and summary["reasons"] == {"non-numeric movie id": 1}
    for key in ("lines_read", "accepted", "quarantined", "duplicates_dropped", "bad_fraction"):
        assert counts[key] == summary[key]
    assert counts["accepted"] + counts["quarantined"] == counts["lines_read"]
    (bad,) = spark.read.parquet(counts["quarantine"]).collect()
    assert (bad["line"], bad["reason"]) == ("17::not-a-movie::4::978300000", "non-numeric movie id")
    assert leftovers(run) == []


def test_export_check_refuses_a_lost_duplicated_or_swapped_part(spark, run, tmp_path):
    """The check before publishing reads the written export back: with one of its Parquet
    files gone (users lost) or copied (users twice) it raises, naming the counts; with one
    user's rows turned into another's (as many users, not the same ones: what a lost part
    offset by a duplicated one of the same size leaves) it raises too."""
    import pyarrow as pa

    from jobs.common.errors import JobError
    from jobs.score import read_users
    from jobs.scoring.checks import check_export, user_set

    expected = user_set(read_users(spark, str(run.out / "ingest" / "train")))
    assert expected[0] == 300
    parts = sorted(run.dt_dir().glob("part-*.parquet"))
    assert len(parts) > 1
    for case in ("complete", "lost", "duplicated", "swapped"):
        folder = tmp_path / case
        folder.mkdir()
        for part in parts[1:] if case == "lost" else parts:
            shutil.copy(part, folder / part.name)
        if case == "duplicated":
            shutil.copy(parts[0], folder / ("part-99999" + parts[0].name[len("part-00000"):]))
        if case == "swapped":  # the first user's rows become the second user's
            table = pq.read_table(parts[0])
            ids = table.column("user_id").to_numpy()
            first, second = np.unique(ids)[:2]
            ids = np.where(ids == first, second, ids).astype(np.int32)
            table = table.set_column(0, "user_id", pa.array(ids))
            pq.write_table(table, folder / parts[0].name)
        if case == "complete":
            assert check_export(spark, str(folder), expected, TOP_K) == {
                "rows": 300 * TOP_K, "users": 300, "users_rated_everything": 0}  # fmt: skip
            continue
        if case == "swapped":
            with pytest.raises(JobError, match="as many as were ingested, but not the same ones"):
                check_export(spark, str(folder), expected, TOP_K)
            continue
        what = "an incomplete" if case == "lost" else "a duplicated"
        with pytest.raises(JobError, match=f"but 300 were ingested .*; not publishing {what}"):
            check_export(spark, str(folder), expected, TOP_K)


def test_a_user_who_rated_every_movie_does_not_block_the_export(spark, run, tmp_path):
    """A user with no unrated movie left gets no rows; the export of everyone else is
    published and the manifest counts that user apart (scored with the run's model: the new
    user rates only known movies, so the vocabulary is unchanged)."""
    movie_ids = sorted(pq.read_table(run.out / "ingest" / "items").column("movie_id").to_pylist())
    train = tmp_path / "train.dat"
    text = (run.out.parent / "data" / "train.dat").read_text()
    train.write_text(text + "".join(f"{UNKNOWN_ID}::{m}::4::978300000\n" for m in movie_ids))
    out = tmp_path / "out"
    run_ingest(spark, run.conf, str(train), str(out))
    shutil.copytree(run.out / "model", out / "model")
    manifest = run_score(spark, run.conf, str(out), DT)
    assert (manifest["users"], manifest["users_rated_everything"]) == (300, 1)
    export = spark.read.parquet(str(out / "recommendations" / f"dt={DT}"))
    assert export.filter(f"user_id = {UNKNOWN_ID}").count() == 0
    assert export.select("user_id").distinct().count() == 300


def test_unknown_test_users_and_movies_are_reported_and_excluded(spark, run):
    test = run.ingest["test"]
    assert (test["unknown_user_pairs"], test["unknown_item_pairs"]) == (1, 1)
    result = run_evaluate(spark, run.conf, str(run.out), DT)
    assert result["test_excluded"] == {"unknown_user_pairs": 1, "unknown_item_pairs": 1}
    assert result["test_pairs"] == test["pairs"] and result["test_users"] == test["users"]
    predictions = spark.read.parquet(str(run.out / "predictions"))
    assert predictions.count() == test["pairs"]
    assert predictions.filter(f"user_id = {UNKNOWN_ID} or movie_id = {UNKNOWN_ID}").count() == 0
    assert np.isfinite(result["rating"]["auc"])
