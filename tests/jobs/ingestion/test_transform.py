"""Ingest's step from accepted ratings to its tables (jobs/ingestion/transform.py): users are
assigned to training batches of the configured size, shuffled, deterministically by seed."""

from __future__ import annotations

import pandas as pd

from jobs.ingestion.transform import assign_batches


def test_batch_assignment_sizes_and_determinism(spark):
    users = spark.range(1, 1001).selectExpr("cast(id as int) as user_id")

    def batches(seed: int) -> dict[int, int]:
        return {r["user_id"]: r["batch"] for r in assign_batches(users, 64, seed).collect()}

    first, again, other = batches(42), batches(42), batches(7)
    assert first == again
    assert first != other
    sizes = pd.Series(first).value_counts().sort_index()
    assert list(sizes.index) == list(range(16))  # ceil(1000 / 64)
    assert list(sizes) == [64] * 15 + [1000 - 15 * 64]
    # shuffled, not cut by user id: batch 0 is not users 1..64
    assert sorted(u for u, b in first.items() if b == 0) != list(range(1, 65))
