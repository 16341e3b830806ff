"""Sparse products over a batch's stored entries (rbmcore/ops/sparse.py): the hidden-to-visible
product over rated items == the dense gather + einsum, in row-major and item-major order; and
the stable radix order of the index helpers == torch's stable argsort."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import csr_from_lists
from rbmcore.models.factory import build_model
from rbmcore.ops.sparse import entry_dots, stable_order


def batch_with_empty_rows(n_items=30):
    rng = np.random.default_rng(0)
    lists = [np.sort(rng.choice(n_items, size, replace=False)) for size in (5, 0, 12, 1, 0, 7)]
    ratings = [rng.integers(1, 6, len(x)) for x in lists]
    return to_batch(csr_from_lists(np.arange(6), lists, ratings, n_items))


def test_rated_dots_equals_gather_einsum():
    batch = batch_with_empty_rows()
    g = torch.Generator().manual_seed(0)
    for K in (2, 5):
        W = torch.randn(30 * K, 8, generator=g)
        h = torch.rand(batch.size, 8, generator=g)
        expected = torch.einsum("nkh,nh->nk", W.view(30, K, 8)[batch.items], h[batch.rows])
        torch.testing.assert_close(entry_dots(h, W, batch, K), expected)


def test_visible_logits_same_with_and_without_autograd():
    batch = batch_with_empty_rows()
    for kind in ("binary", "softmax"):
        model = build_model(kind, 30, 8, torch.Generator().manual_seed(1), init_std=0.5)
        h = torch.rand(batch.size, 8, generator=torch.Generator().manual_seed(2))
        offsets = model.batch_offsets(batch).detach()
        with torch.no_grad():
            fast = model.visible_logits(h, batch, offsets)
        slow = model.visible_logits(h, batch, offsets)  # W requires grad: the einsum path
        assert slow.requires_grad
        torch.testing.assert_close(fast, slow.detach())


def test_item_major_dots_equal_the_row_major_product_plus_the_values():
    """Entries grouped by item (users who rated no item, items nobody rated) give the same
    numbers, back in the batch's row order."""
    from rbmcore.ops.sparse import item_major_dots, item_major_pattern

    batch = batch_with_empty_rows()
    g = torch.Generator().manual_seed(3)
    W = torch.randn(30, 8, generator=g)
    h = (torch.rand(batch.size, 8, generator=g) < 0.5).float()
    values = torch.randn(batch.nnz, generator=g)
    pattern, to_rows = item_major_pattern(batch, 30, values)
    assert pattern.shape == (30, batch.size)
    expected = entry_dots(h, W, batch, 1).squeeze(1) + values
    torch.testing.assert_close(item_major_dots(h, W, pattern, to_rows), expected)


@pytest.mark.parametrize("n_keys", [7_412, 2**16, 118_094])
def test_stable_order_is_torchs_stable_argsort(n_keys):
    """The radix path (one 16-bit pass, and two above 2**16 keys) gives torch's permutation:
    keys ascending, equal keys in their original order."""
    keys = torch.randint(0, n_keys, (26_000,), generator=torch.Generator().manual_seed(n_keys))
    keys[:50] = n_keys - 1  # many ties, at the top digit too
    order = stable_order(keys, n_keys)
    assert order.dtype == torch.int64
    assert torch.equal(order, torch.argsort(keys, stable=True))
