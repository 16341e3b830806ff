"""Ingest's settings: the [ingest] table checked, and the input flags the jobs that read ratings
share (``rbm-reco ingest``, ``run``, and ``score --ratings``)."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

from jobs.common.config import DEFAULT_CONF, check_ingest
from jobs.common.errors import UsageError
from jobs.ingestion.sources import FORMATS, parse_columns
from rbmcore.data.scale import RatingScale, parse_scale
from rbmcore.training.config import TrainConfig


def add_input_arguments(parser: argparse.ArgumentParser, scoring: bool = False) -> None:
    """How to read the ratings: the flags ``ingest``, ``run`` and ``score --ratings`` share
    (``input_overrides`` turns them into [ingest] settings). ``scoring``: without the scale
    flags (fresh ratings are read on the model's scale)."""
    parser.add_argument(
        "--ratings",
        help="fresh ratings to score with a saved model, any format ingest reads"
        if scoring
        else "ratings file, directory or glob (local path or Hadoop URI; .gz/.bz2 ok)",
    )
    parser.add_argument("--ratings-table", help="the ratings as a Spark table (db.name)")
    parser.add_argument(
        "--format", choices=FORMATS, help="input format (default auto: from the name, header)"
    )
    parser.add_argument(
        "--columns",
        help="column of each role in a CSV header, Parquet or table: "
        "user=userId,item=movieId,rating=rating,time=timestamp (rating= : none, implicit)",
    )
    if scoring:
        return
    parser.add_argument(
        "--rating-scale",
        help="auto (default), stars, half-stars, implicit, or LOW..HIGH[/STEP]",
    )
    parser.add_argument(
        "--like-threshold", type=float, help="ratings at or above this are likes (default: "
        "the scale's midpoint, 3 on five stars and on half stars)",
    )  # fmt: skip


def input_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The [ingest] settings of ``add_input_arguments``' flags."""
    return {
        "format": args.format,
        "columns": args.columns,
        "rating_scale": vars(args).get("rating_scale"),
        "like_threshold": vars(args).get("like_threshold"),
    }


@dataclass(frozen=True)
class IngestSettings:
    """The [ingest] table (and ``train.seed``, which orders the batches), checked."""

    max_bad_fraction: float
    batch_size: int
    seed: int
    format: str
    columns: dict[str, str | None]
    explicit_columns: bool
    rating_scale: str
    like_threshold: float | None
    max_line_bytes: int

    def declared_scale(self) -> RatingScale | None:
        """The declared scale with the like threshold, None for ``auto``."""
        if self.rating_scale == "auto":
            return None
        scale = parse_scale(self.rating_scale)
        return scale if scale.implicit else scale.with_like(self.like_threshold)


def ingest_settings(conf: dict[str, Any]) -> IngestSettings:
    """The ``IngestSettings`` of a config; an unknown key or a bad value is a ``UsageError``."""
    table = conf.get("ingest", {})
    unknown = sorted(set(table) - set(DEFAULT_CONF["ingest"]))
    if unknown:
        raise UsageError(
            f"unknown [ingest] settings: {', '.join(unknown)}; known: "
            f"{', '.join(sorted(DEFAULT_CONF['ingest']))}"
        )
    ingest = {**DEFAULT_CONF["ingest"], **table}
    check_ingest(ingest)  # max_bad_fraction, batch_size: as every job checks them
    like = ingest["like_threshold"]
    try:
        settings = IngestSettings(
            max_bad_fraction=float(ingest["max_bad_fraction"]),
            batch_size=int(ingest["batch_size"]),
            seed=int(conf.get("train", {}).get("seed", TrainConfig.seed)),
            format=str(ingest["format"]),
            columns=parse_columns(ingest["columns"]),
            explicit_columns=ingest["columns"] not in (None, "", {}),
            rating_scale=str(ingest["rating_scale"]),
            like_threshold=None if like in (None, "auto") else float(like),
            max_line_bytes=int(ingest["max_line_bytes"]),
        )
        settings.declared_scale()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad [ingest] setting: {exc}") from exc
    if settings.format not in FORMATS:
        raise UsageError(f"ingest.format must be one of {', '.join(FORMATS)}, "
                         f"got {settings.format!r}")  # fmt: skip
    if not 1024 <= settings.max_line_bytes <= 2**30:
        raise UsageError(
            f"ingest.max_line_bytes must be within [1024, 2**30], got {settings.max_line_bytes}"
        )
    return settings
