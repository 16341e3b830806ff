"""SGD with momentum and weight decay whose cost per step grows with the rows a step touches.

``torch.optim.SGD`` updates every weight at every step: with momentum and weight decay a row
whose gradient is zero still moves. For a wide weight matrix updated by sparse gradients (a
ratio-matching step of the rated RBM touches the rated and the sampled units only) that
update, not the gradient, would cost rows x hidden per step. ``LazySGD`` applies the same rule
lazily: a row that no gradient touched for n steps follows ``(p, buf) <- A^n (p, buf)``,

    A = [[1 - lr wd, -lr mu], [wd, mu]]    (p' = p - lr (mu buf + wd p), buf' = mu buf + wd p)

so a row is brought up to date, in closed form, only when it is read (``catch_up``, before a
step reads its weights) or updated, and every row at ``flush`` (the end of an epoch, before
validation or a checkpoint). Up to float rounding it is ``torch.optim.SGD(momentum, weight_decay,
dampening=0, nesterov=False)`` given the dense gradients (zero outside the touched rows);
``tests/rbmcore/training/test_lazy_sgd.py`` checks that. Parameters with dense gradients are
updated by the same rule at every step. The state (``momentum_buffer`` per parameter) has
torch's layout, so checkpoints save and restore it the same way.
"""

from __future__ import annotations

import torch


class LazySGD(torch.optim.Optimizer):
    """``torch.optim.SGD`` with momentum and weight decay, lazy over the rows of parameters
    whose gradients are sparse COO tensors (see the module docstring). A parameter's rows are
    its leading ``sparse_dim`` dimensions flattened (W: (n_models, n_items, hidden) -> its
    n_models x n_items rows of hidden)."""

    def __init__(  # noqa: ANN001 (params: torch's parameter groups)
        self, params, lr: float, momentum: float = 0.0, weight_decay: float = 0.0
    ) -> None:
        super().__init__(params, {"lr": lr, "momentum": momentum, "weight_decay": weight_decay})
        self.steps = 0  # steps since every row was last brought up to date
        # per group: (lr, momentum, weight_decay) of the steps not yet applied to every row,
        # and the powers of their A (``_powers``)
        self.pending: list[tuple[float, float, float] | None] = [None] * len(self.param_groups)
        self.powers: list[torch.Tensor | None] = [None] * len(self.param_groups)
        for group in self.param_groups:
            for p in group["params"]:
                self.state[p]["momentum_buffer"] = torch.zeros_like(p)
                self.state[p]["current"] = torch.zeros(
                    p.numel() // p.shape[-1], dtype=torch.int64, device=p.device
                )  # the step each row is up to date at

    def catch_up(self, param: torch.Tensor, rows: torch.Tensor) -> None:
        """Bring ``rows`` (flat row indices) of ``param`` up to date, so a step can read them."""
        index = next(i for i, g in enumerate(self.param_groups)
                     if any(p is param for p in g["params"]))  # fmt: skip
        self._catch_up(index, param, rows)

    @torch.no_grad()
    def _catch_up(self, index: int, param: torch.Tensor, rows: torch.Tensor) -> None:
        """``catch_up`` of a parameter of group ``index``."""
        state = self.state[param]
        if self.pending[index] is None or self.steps == 0:
            return
        lag = self.steps - state["current"].index_select(0, rows)
        power = self._powers(index, param.device).index_select(0, lag).to(param.dtype)
        p, buf = param.view(-1, param.shape[-1]), state["momentum_buffer"].view(-1, param.shape[-1])
        old_p, old_buf = p.index_select(0, rows), buf.index_select(0, rows)
        p.index_copy_(0, rows, old_p * power[:, 0, :1] + old_buf * power[:, 0, 1:])
        buf.index_copy_(0, rows, old_p * power[:, 1, :1] + old_buf * power[:, 1, 1:])
        state["current"].index_fill_(0, rows, self.steps)

    def _powers(self, index: int, device: torch.device) -> torch.Tensor:
        """(at least steps + 1, 2, 2) float64: A^0, A^1, ... of group ``index``'s pending
        steps."""
        table = self.powers[index]
        if table is None or table.device != device or len(table) <= self.steps:
            lr, mu, wd = self.pending[index]
            a = torch.tensor([[1.0 - lr * wd, -lr * mu], [wd, mu]], dtype=torch.float64,
                             device=device)  # fmt: skip
            table = torch.eye(2, dtype=torch.float64, device=device).unsqueeze(0)
            while len(table) <= self.steps:  # doubling: A^n for n < 2m from n < m and A^m
                table = torch.cat([table, table @ torch.linalg.matrix_power(a, len(table))])
            self.powers[index] = table
        return table

    @torch.no_grad()
    def flush(self) -> None:
        """Bring every row of every parameter up to date (then ``steps`` restarts at 0)."""
        for index, group in enumerate(self.param_groups):
            for p in group["params"]:
                rows = torch.arange(p.numel() // p.shape[-1], device=p.device)
                self._catch_up(index, p, rows)
                self.state[p]["current"].zero_()
            self.pending[index] = self.powers[index] = None
        self.steps = 0

    @torch.no_grad()
    def step(self, closure=None):  # noqa: ANN001 (torch's signature)
        """One SGD step: dense gradients update their whole parameter, sparse ones their rows
        (brought up to date first), the other rows wait; a parameter without a gradient is
        skipped (as by torch). A change of lr, momentum or weight decay since the last
        ``flush`` flushes first."""
        hyper = [(g["lr"], g["momentum"], g["weight_decay"]) for g in self.param_groups]
        if any(p not in (None, h) for p, h in zip(self.pending, hyper, strict=True)):
            self.flush()
        for index, group in enumerate(self.param_groups):
            self.pending[index] = hyper[index]
            for p in group["params"]:
                if p.grad is not None and p.grad.is_sparse:
                    self._sparse_step(index, p)
                    continue
                if p.grad is not None:  # a dense gradient updates every row
                    self._update(p, self.state[p]["momentum_buffer"], p.grad, *hyper[index])
                self.state[p]["current"].fill_(self.steps + 1)  # no gradient: skipped, as torch
        self.steps += 1

    def _sparse_step(self, index: int, p: torch.Tensor) -> None:
        """The step of a parameter with a sparse gradient: its gradient's rows only."""
        grad = p.grad.coalesce()
        width = p.shape[-1]
        indices = grad.indices()
        rows = indices[0]
        for dim in range(1, grad.sparse_dim()):
            rows = rows * p.shape[dim] + indices[dim]
        self._catch_up(index, p, rows)
        flat, buf = p.view(-1, width), self.state[p]["momentum_buffer"].view(-1, width)
        sub_p, sub_buf = flat.index_select(0, rows), buf.index_select(0, rows)
        self._update(sub_p, sub_buf, grad.values().view(-1, width), *self.pending[index])
        flat.index_copy_(0, rows, sub_p)
        buf.index_copy_(0, rows, sub_buf)
        self.state[p]["current"].index_fill_(0, rows, self.steps + 1)

    @staticmethod
    def _update(p, buf, grad, lr: float, mu: float, wd: float) -> None:  # noqa: ANN001
        """In place: buf = mu buf + grad + wd p; p -= lr buf."""
        buf.mul_(mu).add_(grad)
        if wd:
            buf.add_(p, alpha=wd)
        p.add_(buf, alpha=-lr)
