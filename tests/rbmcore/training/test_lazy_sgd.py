"""LazySGD (rbmcore/training/lazy_sgd.py): the same weights as torch.optim.SGD given the dense
gradients, with rows that no step touched brought up to date only when read or flushed."""

from __future__ import annotations

import torch

from rbmcore.training.lazy_sgd import LazySGD

SHAPE = (2, 9, 4)  # (members, rows, width): 18 rows of 4


def sparse_gradient(step: int) -> torch.Tensor:
    """A gradient over 3 random (member, row) rows of SHAPE, different at every step."""
    g = torch.Generator().manual_seed(step)
    member = torch.randint(0, SHAPE[0], (3,), generator=g)
    row = torch.randperm(SHAPE[1], generator=g)[:3]
    values = torch.randn(3, SHAPE[2], generator=g)
    return torch.sparse_coo_tensor(
        torch.stack([member, row]), values, SHAPE, check_invariants=False
    )


def test_lazy_steps_give_torch_sgd_weights_with_dense_gradients():
    start = torch.randn(SHAPE, generator=torch.Generator().manual_seed(0))
    bias_start = torch.randn(5, generator=torch.Generator().manual_seed(1))
    lazy_w, dense_w = torch.nn.Parameter(start.clone()), torch.nn.Parameter(start.clone())
    lazy_b, dense_b = torch.nn.Parameter(bias_start.clone()), torch.nn.Parameter(bias_start.clone())
    settings = {"lr": 0.3, "momentum": 0.9}
    lazy = LazySGD(
        [{"params": [lazy_w], "weight_decay": 0.05}, {"params": [lazy_b], "weight_decay": 0.0}],
        **settings,
    )
    reference = torch.optim.SGD(
        [{"params": [dense_w], "weight_decay": 0.05}, {"params": [dense_b], "weight_decay": 0.0}],
        **settings,
    )
    for step in range(40):
        if step == 25:  # a new learning rate (as lr_decay sets per epoch) flushes first
            for opt in (lazy, reference):
                for group in opt.param_groups:
                    group["lr"] = 0.1
        grad = sparse_gradient(step)
        lazy_w.grad, dense_w.grad = grad, grad.to_dense()
        lazy_b.grad = dense_b.grad = torch.full((5,), 0.1 * step)
        lazy.step()
        reference.step()
        if step % 7 == 3:  # a row read mid-way (as a step's forward pass does) is up to date
            rows = torch.tensor([0, 5, 17])
            lazy.catch_up(lazy_w, rows)
            torch.testing.assert_close(lazy_w.view(-1, 4)[rows], dense_w.view(-1, 4)[rows])
    assert not torch.allclose(lazy_w, dense_w, atol=1e-3)  # rows left behind until the flush
    lazy.flush()
    torch.testing.assert_close(lazy_w, dense_w, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(lazy_b, dense_b)
    for lazy_p, dense_p in ((lazy_w, dense_w), (lazy_b, dense_b)):
        torch.testing.assert_close(
            lazy.state[lazy_p]["momentum_buffer"],
            reference.state[dense_p]["momentum_buffer"],
            rtol=1e-5,
            atol=1e-6,
        )
