"""The choices made on the validation split (rbmcore/training/selection.py): the alpha search
scores each chunk once and finds, alpha by alpha, what ranking with that alpha gives."""

from __future__ import annotations

import numpy as np
import torch

from rbmcore.data.csr import csr_from_lists
from rbmcore.data.splits import split_holdout
from rbmcore.evaluation import ranking_quality
from rbmcore.training.selection import alpha_grid_quality, choose_alpha
from tests.rbmcore.support import N_ITEMS, small_hybrid

CPU = torch.device("cpu")


def test_the_alpha_search_scores_once_and_finds_what_each_alpha_would():
    """``alpha_grid_quality`` (sub-models score a chunk once) gives, alpha by alpha, exactly the
    validation nDCG@10 of ranking the users with ``model.alpha`` set to it; over several
    chunks, and with a user who has fewer than 10 unseen items."""
    model = small_hybrid(seed=7)
    rng = np.random.default_rng(8)
    items = [np.sort(rng.choice(N_ITEMS, rng.integers(3, 12), replace=False)) for _ in range(30)]
    items.append(np.arange(22))  # 3 unseen items left
    ratings = [rng.integers(1, 6, len(row)) for row in items]
    csr = csr_from_lists(np.arange(len(items)), items, ratings, N_ITEMS)
    context, target = split_holdout(csr, 0.2, np.random.default_rng(1))
    assert N_ITEMS - context.row_lengths().max() < 10
    grid = (0.0, 0.5, 2.0, 5.0)
    found = alpha_grid_quality(model, context, target, CPU, grid, chunk_users=7)
    expected = {}
    for alpha in grid:
        model.alpha.fill_(alpha)
        expected[alpha] = ranking_quality(model, context, target, CPU)["ndcg"]
    assert found == expected
    assert len(set(found.values())) > 1  # the grid does change the ranking here
    best, _ = choose_alpha(model, context, target, CPU, grid)
    assert best == max(grid, key=lambda a: (expected[a], -a)) and float(model.alpha) == best
