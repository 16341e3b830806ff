"""Scoring users: top-N unseen items per user, and predictions for (user, item) pairs.

The Spark scoring UDF and the in-process scorer both call ``recommend_csr`` / ``predict_csr``,
so their outputs can be compared exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from rbmcore.data import RatingsCSR, iter_row_chunks, to_batch

DEFAULT_CHUNK_BYTES = 256 * 2**20


@dataclass(frozen=True)
class Recommendations:
    """Flat top-N rows: user_ids, ranks (1..N), items (dense indices), scores, extra columns."""

    user_ids: np.ndarray
    ranks: np.ndarray
    items: np.ndarray
    scores: np.ndarray
    extras: dict[str, np.ndarray]


def users_per_chunk(n_items: int, n_states: int = 2, chunk_bytes: int = DEFAULT_CHUNK_BYTES) -> int:
    """How many users to score at once so the dense (users, items, states) block fits the budget."""
    return max(1, chunk_bytes // max(1, 4 * n_items * (n_states + 2)))


@torch.no_grad()
def recommend_batch(model, csr: RatingsCSR, top_k: int, device: torch.device | str = "cpu"):
    """Top-``top_k`` unseen items of every user in ``csr`` (one dense block), as numpy arrays.

    Returns (rows (m,), ranks (m,), items (m,), columns {name: (m,)}) where ``columns`` holds
    ``score`` and the model's other per-item outputs; users with fewer unseen items than
    ``top_k`` get all of them.
    """
    batch = to_batch(csr, device)
    outputs = model.score_all(batch)
    score = outputs["score"]
    score[batch.rows, batch.items] = float("-inf")
    k = min(top_k, csr.n_items)
    top = torch.topk(score, k, dim=1, sorted=True)
    keep = torch.isfinite(top.values)
    rows = torch.arange(batch.size, device=score.device).unsqueeze(1).expand(-1, k)[keep]
    ranks = torch.arange(1, k + 1, device=score.device).unsqueeze(0).expand(batch.size, -1)[keep]
    items = top.indices[keep]
    columns = {"score": top.values[keep]}
    for name, values in outputs.items():
        if name != "score":
            columns[name] = values.gather(1, top.indices)[keep]
    return (
        rows.cpu().numpy(),
        ranks.cpu().numpy(),
        items.cpu().numpy(),
        {name: v.float().cpu().numpy() for name, v in columns.items()},
    )


def recommend_csr(
    model,
    csr: RatingsCSR,
    top_k: int,
    device: torch.device | str = "cpu",
    chunk_users: int | None = None,
) -> Recommendations:
    """Top-``top_k`` unseen items for every user of ``csr``, scored in dense chunks of users."""
    chunk = chunk_users or users_per_chunk(csr.n_items, getattr(model, "n_states", 2))
    parts = []
    for rows in iter_row_chunks(len(csr), chunk):
        sub = csr.take(rows)
        r, ranks, items, cols = recommend_batch(model, sub, top_k, device)
        parts.append((sub.user_ids[r], ranks, items, cols))
    if not parts:
        empty = np.zeros(0, np.int64)
        return Recommendations(empty, empty, empty, np.zeros(0, np.float32), {})
    extras = {k: np.concatenate([p[3][k] for p in parts]) for k in parts[0][3] if k != "score"}
    return Recommendations(
        user_ids=np.concatenate([p[0] for p in parts]),
        ranks=np.concatenate([p[1] for p in parts]).astype(np.int32),
        items=np.concatenate([p[2] for p in parts]),
        scores=np.concatenate([p[3]["score"] for p in parts]),
        extras=extras,
    )


@torch.no_grad()
def predict_csr(
    model,
    context: RatingsCSR,
    queries: RatingsCSR,
    device: torch.device | str = "cpu",
    chunk_users: int = 1024,
) -> dict[str, np.ndarray]:
    """Predictions for every stored (user, item) of ``queries`` from the same rows of ``context``.

    ``context`` (the users' training ratings) and ``queries`` (e.g. their test items) have the
    same users in the same order. Returns flat arrays aligned with ``queries``' entries:
    ``p_like`` and, when the model predicts ratings, ``pred_rating``.
    """
    if not np.array_equal(context.user_ids, queries.user_ids):
        raise ValueError("context and queries must hold the same users in the same order")
    parts: list[dict[str, np.ndarray]] = []
    for rows in iter_row_chunks(len(context), chunk_users):
        batch = to_batch(context.take(rows), device)
        q = queries.take(rows)
        q_items = torch.as_tensor(q.items, dtype=torch.int64, device=device)
        q_rows = torch.as_tensor(q.row_of_entries(), dtype=torch.int64, device=device)
        out = model.predict_pairs(batch, q_items, q_rows)
        parts.append({k: v.float().cpu().numpy() for k, v in out.items()})
    if not parts:
        return {"p_like": np.zeros(0, np.float32)}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
