"""Checking a written export before it is published: every ingested user exactly once, ranks
1..top_k, in one scan of the written files (no shuffle)."""

from __future__ import annotations

import logging
from collections.abc import Callable

from jobs.common.errors import JobError

log = logging.getLogger("rbm-reco.score")

FINGERPRINT_MOD = 2**31 - 1


def user_fingerprint(column: str = "user_id"):
    """A per-user number whose sum over a set of users identifies the set: equal sets give
    equal sums, and a set with one user lost and another counted twice gives another sum
    (xxhash64 of the id, mod 2**31 - 1; exact in a long up to ~4 billion users)."""
    from pyspark.sql import functions as F

    return F.pmod(F.xxhash64(column), F.lit(FINGERPRINT_MOD))


def user_set(users) -> tuple[int, int]:
    """(number of rows, sum of ``user_fingerprint``) of a frame of users, in one scan."""
    from pyspark.sql import functions as F

    row = users.agg(F.count("*"), F.sum(user_fingerprint())).first()
    return int(row[0]), int(row[1] or 0)


def users_rated_everything(users, n_items: int) -> tuple[int, int]:
    """``user_set`` of the users who have rated the whole catalogue (no candidate left, so no
    export rows)."""
    from pyspark.sql import functions as F

    return user_set(users.where(F.size("items") >= n_items))


def check_export(
    spark,
    path: str,
    expected: tuple[int, int],
    top_k: int,
    rated_everything: Callable[[], tuple[int, int]] = lambda: (0, 0),
) -> dict[str, int]:
    """{"rows", "users", "users_rated_everything"} of the written export at ``path``, read back
    in one scan (no shuffle). ``expected``: ``user_set`` of the ingested users. Raises
    ``JobError`` unless every ingested user is there exactly once (one rank-1 row each, and
    the rank-1 rows' ``user_fingerprint`` sum is the ingested users') with ranks 1..top_k, so
    a lost, a duplicated or a swapped part of the export is never published. Users who rated
    every movie have no rows: ``rated_everything()`` gives their ``user_set``, asked only when
    users are missing."""
    from pyspark.sql import functions as F

    first = F.col("rank") == 1
    row = (
        spark.read.parquet(path)
        .agg(
            F.count("*").alias("rows"),
            F.count(F.when(first, True)).alias("users"),
            F.sum(F.when(first, user_fingerprint())).alias("fingerprint"),
            F.min("rank").alias("min_rank"),
            F.max("rank").alias("max_rank"),
        )
        .first()
    )
    users, rows = int(row["users"]), int(row["rows"])
    expected_users, expected_print = expected
    full, full_print = rated_everything() if users < expected_users else (0, 0)
    if full:
        log.info(
            "%d of %d users have rated every movie: nothing to recommend, not in the export",
            full,
            expected_users,
        )
    if users != expected_users - full:
        what = "an incomplete" if users < expected_users - full else "a duplicated"
        raise JobError(
            f"export has {users} users but {expected_users - full} were ingested with a movie "
            f"left to recommend; not publishing {what} export"
        )
    if int(row["fingerprint"] or 0) != expected_print - full_print:
        raise JobError(
            f"export has {users} users, as many as were ingested, but not the same ones (some "
            "lost, others twice); not publishing it"
        )
    if rows and (row["min_rank"] < 1 or row["max_rank"] > top_k or rows > users * top_k):
        raise JobError(
            f"export has ranks {row['min_rank']}..{row['max_rank']} and {rows} rows for {users} "
            f"users (top_k {top_k}); not publishing it"
        )
    return {"rows": rows, "users": users, "users_rated_everything": full}
