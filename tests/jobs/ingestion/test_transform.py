"""Ingest's step from accepted ratings to its tables (jobs/ingestion/transform.py): users are
assigned to training batches of the configured size, shuffled, deterministically by seed."""

from __future__ import annotations

import numpy as np
import pandas as pd

from jobs.ingestion.transform import batch_assignment, user_hash


def test_batch_assignment_sizes_and_determinism(spark):
    users = spark.range(1, 1001).selectExpr("cast(id as int) as user_id")

    def batches(seed: int) -> dict[int, int]:
        hashed = users.select("user_id", user_hash(seed).alias("h")).toPandas()
        ids = hashed["user_id"].to_numpy(np.int64)
        return dict(zip(ids.tolist(), batch_assignment(ids, hashed["h"].to_numpy(), 64).tolist(),
                        strict=True))  # fmt: skip

    first, again, other = batches(42), batches(42), batches(7)
    assert first == again
    assert first != other
    sizes = pd.Series(first).value_counts().sort_index()
    assert list(sizes.index) == list(range(16))  # ceil(1000 / 64)
    assert list(sizes) == [64] * 15 + [1000 - 15 * 64]
    # shuffled, not cut by user id: batch 0 is not users 1..64
    assert sorted(u for u, b in first.items() if b == 0) != list(range(1, 65))


def test_batch_assignment_breaks_hash_ties_by_user_id():
    ids = np.array([5, 3, 9, 1])
    hashes = np.array([7, 7, 2, 7])  # 9 first, then the ties 1, 3, 5
    assert batch_assignment(ids, hashes, 2).tolist() == [1, 1, 0, 0]
