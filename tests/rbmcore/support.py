"""Helpers the rbmcore tests share: small random users, a small hybrid model, an ensemble's
training config, and a free loopback port for torch.distributed."""

from __future__ import annotations

import socket

import numpy as np
import torch

from rbmcore.data.csr import RatingsCSR, csr_from_lists
from rbmcore.models.factory import build_hybrid
from rbmcore.models.hybrid import HybridRBM
from rbmcore.training.config import TrainConfig

N_ITEMS = 25


def random_users(
    n_users: int, seed: int, n_items: int = N_ITEMS, most: int = 11, first_id: int = 100
) -> RatingsCSR:
    """Users ``first_id``, ``first_id + 1``, ... each with 3 to ``most`` random items of
    ``n_items`` and random ratings 1..5."""
    rng = np.random.default_rng(seed)
    items = [
        np.sort(rng.choice(n_items, rng.integers(3, most + 1), replace=False))
        for _ in range(n_users)
    ]
    ratings = [rng.integers(1, 6, len(row)) for row in items]
    return csr_from_lists(np.arange(first_id, first_id + n_users), items, ratings, n_items)


def small_hybrid(seed: int = 0, like_kind: str = "softmax") -> HybridRBM:
    """A hybrid over ``N_ITEMS`` items with random non-trivial weights and alpha 2."""
    model = build_hybrid(
        N_ITEMS,
        6,
        torch.Generator().manual_seed(seed),
        like_kind=like_kind,
        rated_hidden=5,
        rated_models=2,
        like_models=1,
    )
    model.alpha.fill_(2.0)
    with torch.no_grad():  # non-trivial weights
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=torch.Generator().manual_seed(seed + 1)) * 0.3)
    return model


def ensemble_config(**kw) -> TrainConfig:
    """Three user-based binary RBMs, 6 epochs, patience 2; ``kw`` overrides."""
    settings = dict(kind="binary", n_hidden=6, epochs=6, patience=2, n_models=3, item_based=False)
    return TrainConfig(**{**settings, **kw})


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
