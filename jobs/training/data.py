"""The training data of the train job: ingest's rows read back, the validation holdout, the
bounded evaluation sample, and what the refit trains on."""

from __future__ import annotations

import logging

import numpy as np

from jobs.common.errors import JobError, UsageError
from jobs.ingestion.readback import (
    StreamingBatches,
    choose_cache,
    load_user_rows,
    load_user_rows_of,
    require,
)
from jobs.storage import fs, layout
from rbmcore.data.batch import batches_from_assignment
from rbmcore.data.csr import merge_rows
from rbmcore.data.splits import align_rows, bounded_evaluation, split_holdout
from rbmcore.training.config import (
    JobSettings,
    TrainConfig,
    rbm_machines_only,
    without_item_ways,
)

log = logging.getLogger("rbm-reco.train")


def user_based_only(config: TrainConfig, reason: str) -> TrainConfig:
    """``config`` without item-based ways (they need every rating in the driver's memory),
    logged when that changes the model."""
    plain = without_item_ways(config)
    if plain != config:
        log.warning("%s: training user-based RBMs only (no item-based ways)", reason)
    return plain


def rbm_only(config: TrainConfig, reason: str) -> TrainConfig:
    """``config`` with its blends reduced to their RBMs (``rbm_machines_only``), logged when
    that changes the model; a usage error when a part has no RBM to train."""
    try:
        plain = rbm_machines_only(config)
    except ValueError as exc:
        raise UsageError(f"{reason} trains RBMs only: {exc}; train it on the driver") from exc
    if plain != config:
        log.warning(
            "%s trains RBMs only: kind %s, ranking part %s, like part %s (the other machines "
            "of a blend are not trained)", reason, plain.kind, plain.rated_kind, plain.like_kind,
        )  # fmt: skip
    return plain


def load_training_data(
    spark, job: JobSettings, config: TrainConfig, out: str, n_items: int, cache: str | None = None
):
    """The training data, held in memory or streamed (``train.cache``, or ``cache`` when
    given; docs/scale.md).

    Returns (fit_rows, batches, validation, test, n_users, n_ratings). ``memory``: the whole
    CSR on the driver, ``batches`` its row positions per ingest batch, validation and test
    over every user (``evaluation_sample`` bounds what each epoch evaluates). ``stream``:
    ``batches`` is a ``StreamingBatches`` that reads a bounded group of batches from the
    Parquet at a time (the driver's memory does not grow with the number of users);
    validation, test and the visible-bias initialisation (``fit_rows``) use a bounded sample
    of users (the lowest batch ids, a quarter of the budget).
    ``auto`` (the default) streams when the in-memory data would exceed
    ``train.cache_budget_mb`` (default 2048).
    """
    budget_mb = float(job.cache_budget_mb)
    path = layout.train_ratings(out)
    require(spark, path, "ingested ratings")
    mode = choose_cache(path, cache or job.cache, budget_mb)
    if mode == "stream":
        budget = int(budget_mb * 2**20)
        stream = StreamingBatches(
            path, n_items, group_bytes=budget // 4, holdout=config.val_fraction, seed=config.seed
        )
        if len(stream) == 0:
            raise JobError("no training users in the ingested data")
        fit_rows, held, sample_users = stream.sample(budget // 4)
        validation = (fit_rows, held) if config.val_fraction > 0 else None
        test = None
        if fs.exists(spark, layout.test_ratings(out)):
            test_rows = load_user_rows_of(layout.test_ratings(out), n_items, sample_users)
            test = align_rows(fit_rows, test_rows)
        log.info(
            "streaming the training data in groups of about %d MB (%d batches); validation "
            "and test on a sample of %d users",
            budget // 4 // 2**20,
            len(stream),
            len(sample_users),
        )
        return fit_rows, stream, validation, test, stream.n_users, stream.nnz
    train, batch_ids = load_user_rows(spark, path, n_items, True)
    if len(train) == 0:
        raise JobError("no training users in the ingested data")
    test = None
    if fs.exists(spark, layout.test_ratings(out)):
        test_rows, _ = load_user_rows(spark, layout.test_ratings(out), n_items)
        test = align_rows(train, test_rows)
    fit_rows, validation = train, None
    if config.val_fraction > 0:
        fit_rows, held = split_holdout(
            train, config.val_fraction, np.random.default_rng(config.seed)
        )
        validation = (fit_rows, held)
    batches = batches_from_assignment(batch_ids)
    return fit_rows, batches, validation, test, len(train), train.nnz


def evaluation_sample(job: JobSettings, fit_rows, batches, validation, test):
    """``rbmcore.data.splits.bounded_evaluation`` with ``train.eval_users`` (0 = all):
    in memory, validation (early stopping, two-way weights, alpha) and the per-epoch test
    report on the users of the lowest batch ids up to that many (ingest assigns batches by a
    hash of the user id: a fixed pseudo-random sample), the other users' holdout trained on;
    each epoch's evaluation then costs the same at any data size and the refit still gets
    every rating. Streamed data are a bounded sample already. Returns (fit_rows, validation,
    test)."""
    limit = int(job.eval_users)
    if isinstance(batches, StreamingBatches):
        return fit_rows, validation, test
    if 0 < limit < len(fit_rows):
        log.info(
            "validation and the per-epoch test report on %d of %d training users "
            "(train.eval_users)",
            limit,
            len(fit_rows),
        )
    return bounded_evaluation(fit_rows, batches, validation, test, limit)


def all_training_data(fit_rows, batches, validation):
    """(ratings, batches) of every training rating, the validation holdout included, for the
    refit: in memory the merged CSR and the same batches; streamed, the same batches without
    their holdout (the CSR then is the validation sample, for the visible-bias start only)."""
    every = merge_rows(fit_rows, validation[1])
    if isinstance(batches, StreamingBatches):
        return every, batches.without_holdout()
    return every, batches
