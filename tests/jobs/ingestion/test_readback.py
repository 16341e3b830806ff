"""Reading the ingested Parquet back (jobs/ingestion/readback.py): streamed training batches
(``StreamingBatches``) == the in-memory CSR cache, their holdout and sample, the choice of cache,
and rows of given users and of Arrow record batches."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from jobs.ingestion.readback import (
    StreamingBatches,
    choose_cache,
    csr_from_arrow,
    estimated_ratings,
    load_user_rows_of,
)
from rbmcore.data.batch import batches_from_assignment
from rbmcore.data.csr import csr_from_pairs
from rbmcore.models.factory import build_model
from rbmcore.training.config import JobSettings, TrainConfig
from rbmcore.training.trainer import Trainer, epoch_batch_order

N_ITEMS = 40
BUDGET_MB = JobSettings().cache_budget_mb  # the train job's default budget
GROUP_BYTES = int(BUDGET_MB * 2**20) // 4  # the train job's groups: a quarter of it


def ingested(tmp_path, n_users=230, batch_size=7, files=3, seed=0):
    """An ingest-like train folder (user_id, items, ratings, batch), several files + _SUCCESS;
    and the same rows as an in-memory CSR with the batch ids."""
    rng = np.random.default_rng(seed)
    users = np.repeat(np.arange(1, n_users + 1) * 3, rng.integers(1, 12, n_users))
    items = rng.integers(0, N_ITEMS, len(users))
    keep = np.unique(users * N_ITEMS + items, return_index=True)[1]
    csr = csr_from_pairs(users[keep], items[keep], rng.integers(1, 6, len(keep)), N_ITEMS)
    batch = rng.permutation(len(csr)) // batch_size
    folder = tmp_path / "train"
    folder.mkdir()
    for f, rows in enumerate(np.array_split(np.arange(len(csr)), files)):
        lists = [csr.items[csr.indptr[r] : csr.indptr[r + 1]] for r in rows]
        rates = [csr.ratings[csr.indptr[r] : csr.indptr[r + 1]] for r in rows]
        table = pa.table(
            {
                "user_id": pa.array(csr.user_ids[rows], pa.int32()),
                "items": pa.array(lists, pa.list_(pa.int32())),
                "ratings": pa.array(rates, pa.list_(pa.int8())),
                "batch": pa.array(batch[rows], pa.int32()),
            }
        )
        pq.write_table(table, folder / f"part-{f:05d}.parquet")
    (folder / "_SUCCESS").write_text("")
    return str(folder), csr, batch


def same_csr(a, b):
    assert a.user_ids.tolist() == b.user_ids.tolist()
    assert a.indptr.tolist() == b.indptr.tolist()
    assert a.items.tolist() == b.items.tolist()
    assert a.ratings.tolist() == b.ratings.tolist()


@pytest.mark.parametrize("group_bytes", [1, 500, 10**9])
def test_streamed_batches_equal_in_memory_batches_in_epoch_order(tmp_path, group_bytes):
    path, csr, batch = ingested(tmp_path)
    memory = batches_from_assignment(batch)
    stream = StreamingBatches(path, N_ITEMS, group_bytes=group_bytes)
    assert len(stream) == len(memory)
    assert stream.n_users == len(csr) and stream.nnz == csr.nnz
    order = epoch_batch_order(42, 3, len(memory))
    streamed = list(stream.epoch(order))
    assert len(streamed) == len(order)
    for part, b in zip(streamed, order, strict=True):
        same_csr(part, csr.take(memory[b]))


def test_groups_respect_the_budget_and_keep_the_order(tmp_path):
    path, _, _ = ingested(tmp_path)
    stream = StreamingBatches(path, N_ITEMS, group_bytes=2000)
    order = np.random.default_rng(1).permutation(len(stream))
    groups = stream.groups(order)
    assert np.concatenate(groups).tolist() == order.tolist()
    assert len(groups) > 1
    assert all(len(g) == 1 or stream.batch_bytes(g) <= 2000 for g in groups)


def test_stream_training_gives_the_same_weights_as_memory(tmp_path):
    path, csr, batch = ingested(tmp_path)
    config = TrainConfig(kind="binary", n_hidden=8, epochs=2, val_fraction=0.0, seed=5)

    def train(batches):
        model = build_model("binary", N_ITEMS, 8, torch.Generator().manual_seed(0))
        trainer = Trainer(model, config, torch.device("cpu"))
        trainer.fit(csr, batches)
        return model.state_dict()

    memory = train(batches_from_assignment(batch))
    streamed = train(StreamingBatches(path, N_ITEMS, group_bytes=700))
    for name, value in memory.items():
        torch.testing.assert_close(streamed[name], value, rtol=0, atol=0)


def test_holdout_is_per_batch_and_sample_matches_it(tmp_path):
    path, csr, _ = ingested(tmp_path)
    stream = StreamingBatches(path, N_ITEMS, group_bytes=1000, holdout=0.3, seed=2)
    kept_rows = sum(len(p) for p in stream.epoch(np.arange(len(stream))))
    kept_nnz = sum(p.nnz for p in stream.epoch(np.arange(len(stream))))
    assert kept_rows == len(csr)
    assert 0.6 * csr.nnz < kept_nnz < 0.85 * csr.nnz
    kept, held, users = stream.sample(max_bytes=3000)
    assert 0 < len(users) < len(csr)
    assert np.all(np.diff(users) > 0) and kept.user_ids.tolist() == users.tolist()
    assert held.user_ids.tolist() == users.tolist()
    # the sample's kept part is exactly what training sees for those users
    seen = {}
    for part in stream.epoch(np.arange(len(stream))):
        for r, u in enumerate(part.user_ids):
            seen[int(u)] = part.items[part.indptr[r] : part.indptr[r + 1]].tolist()
    for r, u in enumerate(kept.user_ids):
        assert kept.items[kept.indptr[r] : kept.indptr[r + 1]].tolist() == seen[int(u)]
    # kept + held = the user's ratings
    full = {int(u): set(csr.items[csr.indptr[r] : csr.indptr[r + 1]].tolist())
            for r, u in enumerate(csr.user_ids)}  # fmt: skip
    for r, u in enumerate(users):
        both = kept.items[kept.indptr[r] : kept.indptr[r + 1]].tolist()
        both += held.items[held.indptr[r] : held.indptr[r + 1]].tolist()
        assert sorted(both) == sorted(full[int(u)])


def test_streamed_holdout_is_deterministic(tmp_path):
    path, _, _ = ingested(tmp_path)
    a = StreamingBatches(path, N_ITEMS, GROUP_BYTES, holdout=0.2, seed=9)
    b = StreamingBatches(path, N_ITEMS, GROUP_BYTES, holdout=0.2, seed=9)
    for x, y in zip(a.epoch(np.arange(len(a))), b.epoch(np.arange(len(b))), strict=True):
        same_csr(x, y)


def test_choose_cache_and_estimate(tmp_path):
    path, csr, _ = ingested(tmp_path)
    assert estimated_ratings(path) == csr.nnz
    assert choose_cache(path, "auto", budget_mb=1024) == "memory"
    assert choose_cache(path, "auto", budget_mb=csr.nnz * 10 / 2**20) == "stream"
    assert choose_cache(path, "memory", budget_mb=0) == "memory"
    assert choose_cache("hdfs://nn/x", "stream", BUDGET_MB) == "memory"
    with pytest.raises(Exception, match="train.cache"):
        choose_cache(path, "disk", BUDGET_MB)


def test_rows_of_users_and_arrow_record_batches(tmp_path):
    path, csr, _ = ingested(tmp_path)
    wanted = csr.user_ids[[3, 50, 51, 200]]
    same_csr(load_user_rows_of(path, N_ITEMS, wanted), csr.take(np.array([3, 50, 51, 200])))
    table = pq.read_table(path + "/part-00001.parquet")
    batch = table.to_batches()[0].slice(2, 5)  # a sliced batch: list offsets do not start at 0
    sub = csr_from_arrow(batch, N_ITEMS)
    rows = np.searchsorted(csr.user_ids, sub.user_ids)
    same_csr(sub, csr.take(rows))
