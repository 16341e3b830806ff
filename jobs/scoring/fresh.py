"""``score --ratings``: that night's ratings (FRESH) validated and quarantined exactly as ingest
does (``jobs.ingestion.validate``), on the model's rating scale, and mapped onto the model's item
vocabulary (the artifact stores it): one row per user, ready to score without training.

Ratings of movies the model does not know are counted and left out (never input, never
recommended); a user whose every rating is of such a movie has nothing to be scored from and is
counted apart. The summary of the night's ratings is ``OUT/fresh/dt=D/ingest_summary.json``,
its quarantine ``OUT/fresh/dt=D/quarantine/``, both replaced by a re-run of D.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.common.errors import BadInputError
from jobs.common.session import restoring_conf
from jobs.ingestion.settings import ingest_settings
from jobs.ingestion.transform import accepted_rows, user_rows
from jobs.ingestion.validate import (
    SHUFFLE_PARTITIONS,
    IngestRun,
    describe_inputs,
    parse_and_validate,
    shuffle_partitions,
    unreadable_file,
)
from jobs.storage import fs, layout
from rbmcore.io.artifact import LoadedModel

log = logging.getLogger("rbm-reco.score")


@dataclass
class FreshRatings:
    """The night's users with at least one rating of a known movie (``users``: ``user_id,
    items, ratings``, cached), the counts for the manifest, and the run that holds the cache
    and writes the summary."""

    users: DataFrame
    counts: dict[str, Any]
    run: IngestRun

    def finish(self, status: str = "ok") -> None:
        """Write the summary and release the cached frames."""
        self.run.write_summary(status)
        self.run.release()


def read_fresh(
    spark, conf: dict[str, Any], out: str, dt: str, loaded: LoadedModel,
    ratings: str | None, ratings_table: str | None,
) -> FreshRatings:  # fmt: skip
    """Validate FRESH, map it onto ``loaded``'s vocabulary, and count what the model cannot
    use; ``BadInputError`` (exit 3, the summary written, nothing published) for an empty or
    mostly bad FRESH (``ingest.max_bad_fraction``), one whose every movie is unknown to the
    model, or one with no user the model can score."""
    settings = ingest_settings(conf)
    scale = loaded.model.scale
    run = IngestRun(
        spark, out,
        {"status": "running", "ratings_path": ratings or ratings_table, "dt": dt,
         "model_id": loaded.meta["model_id"], "max_bad_fraction": settings.max_bad_fraction,
         "rating_scale": scale.to_dict()},
        summary_path=layout.fresh_summary(out, dt),
        quarantine_path=layout.fresh_quarantine(out, dt),
    )  # fmt: skip
    sources = describe_inputs(spark, settings, ratings, ratings_table, None, None)
    source = sources["ratings"]
    if not source.has_rating and not scale.implicit:
        raise BadInputError(
            f"ratings input {source.location} has no rating column, but model "
            f"{loaded.meta['model_id']} reads ratings on the scale {scale.spec}"
        )
    run.summary["inputs"] = {"ratings": source.describe()}
    try:
        with restoring_conf(spark, SHUFFLE_PARTITIONS):
            partitions = shuffle_partitions(spark, sources)
            spark.conf.set(SHUFFLE_PARTITIONS, str(partitions))
            parsed, _, movie_lines = parse_and_validate(
                spark, run, settings, sources, None, None, candidates=[scale]
            )
            vocab_ids = spark.createDataFrame(
                pd.DataFrame({"movie_id": loaded.movie_ids.astype(np.int32),
                              "item_idx": np.arange(len(loaded.movie_ids), dtype=np.int32)})
            )  # fmt: skip
            rows = run.cache(
                user_rows(accepted_rows(parsed["ratings"]), vocab_ids, partitions, True)
            )
            counts = fresh_counts(rows, movie_lines, loaded, run.summary)
        run.summary.update(counts)
        check_scorable(run, counts, len(loaded.movie_ids))
    except Exception as exc:
        message = unreadable_file(exc)
        run.release()
        if message is None:
            raise
        raise run.fail(message) from None
    finally:
        fs.delete(spark, run.staging)
    users = rows.where(F.size("items") > 0).select("user_id", "items", "ratings")
    return FreshRatings(users, counts, run)


def fresh_counts(
    rows: DataFrame, movie_lines: pd.DataFrame, loaded: LoadedModel, summary: dict[str, Any]
) -> dict[str, Any]:
    """What the manifest and the summary say of the night's ratings: ``users``, ``ratings``
    (of known movies, after dedup), ``duplicates_dropped``, ``unknown_movies`` and
    ``unknown_movie_ratings`` (distinct movies the model does not know and the users'
    ratings of them), ``users_without_known_movies``, ``scorable_users`` (with a known movie
    left unrated), ``users_item_based`` and ``users_user_based`` (how the scorable users are
    scored: blended with the item-based ways that hold their weights, or by the user-based
    RBMs alone)."""
    n_items = len(loaded.movie_ids)
    known = F.size("items")
    agg = rows.agg(
        F.count(F.lit(1)).alias("users"),
        F.coalesce(F.sum(known), F.lit(0)).alias("ratings"),
        F.coalesce(F.sum("unknown_item_pairs"), F.lit(0)).alias("unknown_movie_ratings"),
        F.coalesce(F.sum("lines"), F.lit(0)).alias("lines"),
        F.count_if(known == 0).alias("users_without_known_movies"),
        F.count_if((known > 0) & (known < n_items)).alias("scorable_users"),
    ).first()
    counts = {key: int(agg[key]) for key in agg.asDict() if key != "lines"}
    counts["duplicates_dropped"] = int(agg["lines"]) - counts["ratings"] - counts[
        "unknown_movie_ratings"
    ]
    unknown = ~movie_lines["movie_id"].isin(loaded.movie_ids)
    counts["unknown_movies"] = int(movie_lines.loc[unknown, "movie_id"].nunique())
    with_weights = loaded.model.users_with_weights()
    counts["users_item_based"] = 0
    if with_weights is not None:
        held = rows.sparkSession.createDataFrame(
            pd.DataFrame({"user_id": with_weights.cpu().numpy().astype(np.int32)})
        )
        counts["users_item_based"] = rows.where((known > 0) & (known < n_items)).join(
            F.broadcast(held), "user_id"
        ).count()
    counts["users_user_based"] = counts["scorable_users"] - counts["users_item_based"]
    log.info(
        "fresh ratings: %d users, %d ratings of known movies (%d duplicates dropped); %d "
        "ratings of %d movies the model does not know, left out; %d users without a known "
        "movie; %d users to score, %d with their item-based weights, %d by the user-based "
        "RBMs alone (folded in)",
        counts["users"], counts["ratings"], counts["duplicates_dropped"],
        counts["unknown_movie_ratings"], counts["unknown_movies"],
        counts["users_without_known_movies"], counts["scorable_users"],
        counts["users_item_based"], counts["users_user_based"],
    )  # fmt: skip
    return counts


def check_scorable(run: IngestRun, counts: dict[str, Any], n_items: int) -> None:
    """Fail (exit 3, summary written) when the model can score nobody in FRESH."""
    where = run.summary["ratings_path"]
    if counts["ratings"] == 0:
        raise run.fail(
            f"every movie in {where} is unknown to the model ({counts['unknown_movies']} "
            f"movies, {counts['unknown_movie_ratings']} ratings): a model trained on other "
            "movies, or ids of another catalogue"
        )
    if counts["scorable_users"] == 0:
        raise run.fail(
            f"no user in {where} can be scored: each has rated every one of the model's "
            f"{n_items} movies or none of them"
        )
