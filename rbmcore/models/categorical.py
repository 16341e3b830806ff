"""RBMs whose visible units are the rated items only, each a K-way categorical unit.

- ``binary`` kind (K=2): the tutorial's like/dislike RBM done right. State 1 = like (a rating
  at or above the scale's like threshold: 3 on five stars), state 0 = dislike. Unrated items are
  *missing*: they are not units of the user's RBM, add nothing to p(h|v) and are not
  reconstructed. A 2-state unit with its own weights per state is the binary unit plus the
  "rated" indicator of the conditional RBM (Salakhutdinov et al. 2007), so a dislike moves the
  hidden units differently from a missing rating.
- ``softmax`` kind: the softmax RBM of Salakhutdinov, Mnih & Hinton (2007), one state per level
  of the rating scale (K=5 on five stars, 10 on half stars) or the levels merged into ``states``
  states (``rbmcore.data.scale.rating_states``); predicted rating = expected value on the
  scale; p(like) = P(state at or above the like threshold).

The ratings a model reads are codes 1..levels of its ``scale`` (``rbmcore.data.scale``).

Weights ``W[item * K + state, hidden]`` are shared by all users, so ``p(h | V)`` is an
``embedding_bag`` sum over the user's rated (item, state) units: O(ratings x hidden).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale, StateMap, like_states, rating_states
from rbmcore.ops.sampling import sample_of_logits, uniforms
from rbmcore.ops.sparse import (
    count_keys,
    entry_dots,
    entry_pattern,
    flat_nonzero,
    item_major_dots,
    item_major_pattern,
    stable_order,
)

CATEGORICAL_KINDS = ("binary", "softmax")


def state_map(kind: str, scale: RatingScale, states: int = 0) -> StateMap:
    """The visible states of a ``kind`` RBM over ``scale`` (``states``: the softmax kind's
    number of states, 0 = one per level)."""
    if kind not in CATEGORICAL_KINDS:
        raise ValueError(f"unknown kind {kind!r}; expected one of {CATEGORICAL_KINDS}")
    if scale.implicit:
        raise ValueError(
            f"the {kind} kind needs ratings; implicit data (no rating) train the rated kind"
        )
    return like_states(scale) if kind == "binary" else rating_states(scale, states)


def state_count_gap(
    base: torch.Tensor, data: torch.Tensor, model: torch.Tensor, n_units: int
) -> torch.Tensor:
    """(n_units,) float: per unit ``base + state`` (base: (nnz,) first unit of each entry), the
    number of entries whose data state is there minus those whose model state is."""
    counts = count_keys(torch.cat([base + data, base + model + n_units]), 2 * n_units)
    return counts[:n_units].sub(counts[n_units:]).float()


@dataclass(frozen=True)
class GibbsPlan:
    """What every Gibbs step and the CD gradient of one batch reuse, built once per update.

    With K = 2 the visible step needs only the logit difference of state 1 over state 0, so
    C = 1 column per item (``W[:, 1] - W[:, 0]``); otherwise C = K.

    units: (nnz,) ``items * K`` (state-0 unit of every rated item); weights: (n_items * C,
    hidden) detached hidden-to-visible weights; bias: (nnz, C) the visible logits' constant
    part (item biases + user offsets); pattern: ``entry_pattern`` (batch, n_items * C) whose
    values are ``bias`` (added by the sampled product itself), None where the item-major one
    is used. K = 2 on the CPU only (else None): reference, the data's majority state;
    reference_input: (batch, hidden) the hidden input if every entry were in that state;
    row_ids: 0..batch-1; item_pattern, to_rows: ``item_major_pattern`` with values ``bias``.
    """

    units: torch.Tensor
    weights: torch.Tensor
    bias: torch.Tensor
    pattern: torch.Tensor | None
    reference: int | None = None
    reference_input: torch.Tensor | None = None
    row_ids: torch.Tensor | None = None
    item_pattern: torch.Tensor | None = None
    to_rows: torch.Tensor | None = None


def state_gap(x: torch.Tensor) -> torch.Tensor:
    """(...,) ``x[..., 1] - x[..., 0]``: the logit gap of a 2-state unit from (..., 2) logits."""
    return x[..., 1] - x[..., 0]


class _HiddenFreeEnergyGap(torch.autograd.Function):
    """(sum softplus(x_model) - sum softplus(x_data)) / batch: the hidden-unit part of the CD
    loss ``mean F(data) - mean F(model)`` from the hidden inputs x, (batch, hidden), of both
    chains' ends. Its gradient is taken in closed form instead of through ``embedding_bag``:
    d/dW[unit] = (sum of p_model[row] over the model's units - the same for the data) / batch,
    d/db_h = sum over rows of (p_model - p_data) / batch, with p = sigmoid(x)."""

    @staticmethod
    def forward(ctx, W, b_h, x_data, x_model, scatter):  # noqa: ANN001 (autograd signature)
        ctx.scatter = scatter
        ctx.save_for_backward(x_data, x_model)
        return (F.softplus(x_model).sum() - F.softplus(x_data).sum()) / x_data.shape[0]

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        x_data, x_model = ctx.saved_tensors
        p_data, p_model = torch.sigmoid(x_data), torch.sigmoid(x_model)
        scale = grad / x_data.shape[0]
        grad_b_h = (p_model - p_data).sum(0) * scale
        return ctx.scatter(p_model, p_data, scale), grad_b_h, None, None, None


class CategoricalRBM(nn.Module):
    """RBM with K-way visible units over rated items, ``n_hidden`` Bernoulli hidden units.
    Satisfies ``rbmcore.models.contract.TrainableRBM``."""

    n_models = 1  # one RBM (ensembles of them: ``EnsembleRBM``)

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        kind: str,
        generator: torch.Generator | None = None,
        init_std: float = 0.01,
        scale: RatingScale | dict | None = None,
        states: int = 0,
    ) -> None:
        super().__init__()
        self.scale = scale if isinstance(scale, RatingScale) else RatingScale.from_dict(scale)
        states_map = state_map(kind, self.scale, states)
        self.kind = kind
        self.n_items = n_items
        self.n_states = states_map.n_states
        self.n_hidden = n_hidden
        self.first_like = states_map.first_like
        # code -> state and state -> rating value; derived from the scale, not saved
        self.register_buffer(
            "state_of_code", torch.as_tensor(states_map.state_of_code), persistent=False
        )
        self.register_buffer(
            "state_values",
            torch.as_tensor(states_map.values, dtype=torch.float32),
            persistent=False,
        )
        w = torch.randn(n_items * self.n_states, n_hidden, generator=generator) * init_std
        self.W = nn.Parameter(w)
        self.b_v = nn.Parameter(torch.zeros(n_items, self.n_states))
        self.b_h = nn.Parameter(torch.zeros(n_hidden))
        # weight of the user's own state frequencies in the visible biases (per state)
        self.u_scale = nn.Parameter(torch.ones(self.n_states))

    @property
    def output_columns(self) -> tuple[str, ...]:
        """``score_all``'s outputs besides ``score``: P(like), and the softmax kind's rating."""
        return ("p_like",) if self.kind == "binary" else ("p_like", "pred_rating")

    # -- encoding ------------------------------------------------------------------------
    def states_of(self, ratings: torch.Tensor) -> torch.Tensor:
        """(nnz,) rating codes 1..levels -> (nnz,) visible states 0..K-1."""
        return self.state_of_code.to(ratings.device)[ratings.long()]

    def like_states(self) -> torch.Tensor:
        """The states that count as "like" (at or above the scale's like threshold)."""
        return torch.arange(self.first_like, self.n_states)

    def init_visible_biases(self, csr: RatingsCSR, smoothing: float = 1.0) -> None:
        """b_v[i, k] = log of item i's smoothed state frequencies (Hinton's practical guide)."""
        ratings = torch.as_tensor(csr.ratings, dtype=torch.int64)
        items = torch.as_tensor(csr.items, dtype=torch.int64)
        counts = torch.full((self.n_items, self.n_states), smoothing)
        counts.index_put_((items, self.states_of(ratings)), torch.ones(len(items)), accumulate=True)
        with torch.no_grad():
            self.b_v.copy_(torch.log(counts / counts.sum(1, keepdim=True)).to(self.b_v.device))

    # -- the RBM ---------------------------------------------------------------------------
    def hidden_input(self, batch: UserBatch, states: torch.Tensor) -> torch.Tensor:
        """(batch, n_hidden) b_h + sum over the rated units of W[unit]."""
        units = batch.items * self.n_states + states
        summed = F.embedding_bag(units, self.W, batch.offsets, mode="sum")
        return summed + self.b_h

    def sample_h(
        self, batch: UserBatch, states: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(h=1 | V) and a Bernoulli sample of it, both (batch, n_hidden)."""
        p_h = torch.sigmoid(self.hidden_input(batch, states))
        return p_h, torch.bernoulli(p_h, generator=generator)

    def user_offsets(
        self, batch: UserBatch, states: torch.Tensor, prior: float = 5.0
    ) -> torch.Tensor:
        """(batch, K) log of each user's smoothed state frequencies relative to uniform.

        A per-user visible-bias baseline (how often this user likes / gives each rating),
        computed from the user's observed ratings, scaled by the learned ``u_scale``.
        """
        K = self.n_states
        counts = count_keys(batch.rows * K + states, batch.size * K)
        counts = counts.view(batch.size, K).float().add_(prior / K)
        freq = counts / counts.sum(1, keepdim=True)
        return torch.log(freq * self.n_states) * self.u_scale

    def visible_logits(
        self, h: torch.Tensor, batch: UserBatch, offsets: torch.Tensor | None = None
    ) -> torch.Tensor:
        """(nnz, K) logits of the rated items' units given hidden h: (batch, n_hidden)."""
        if torch.is_grad_enabled() and (self.W.requires_grad or h.requires_grad):
            w = self.W.view(self.n_items, self.n_states, self.n_hidden)[batch.items]
            dots = torch.einsum("nkh,nh->nk", w, h[batch.rows])
        else:  # the Gibbs chain and the losses' forward passes: no copy of the weights
            dots = entry_dots(h, self.W.detach(), batch, self.n_states)
        logits = self.b_v[batch.items] + dots
        if offsets is not None:
            logits = logits + offsets[batch.rows]
        return logits

    def sample_v(
        self,
        h: torch.Tensor,
        batch: UserBatch,
        generator: torch.Generator | None = None,
        offsets: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """p(v_i = k | h) for the rated items, (nnz, K), and sampled states, (nnz,)."""
        p_v = torch.softmax(self.visible_logits(h, batch, offsets), dim=-1)
        u = torch.rand(p_v.shape[0], 1, generator=generator, device=p_v.device)
        states = (u > p_v.cumsum(-1)).sum(-1).clamp_(max=self.n_states - 1)
        return p_v, states

    def free_energy(
        self, batch: UserBatch, states: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        """(batch,) F(V) = -sum_i (b_v[i, v_i] + offset[u, v_i]) - sum_j softplus(input_j)."""
        visible = torch.zeros(batch.size, device=states.device, dtype=self.b_v.dtype)
        bias = self.b_v[batch.items, states] + offsets[batch.rows, states]
        visible = visible.index_add(0, batch.rows, bias)
        return -visible - F.softplus(self.hidden_input(batch, states)).sum(-1)

    def gibbs_plan(
        self,
        batch: UserBatch,
        offsets: torch.Tensor,
        data: torch.Tensor,
        cpu_plan: bool | None = None,
    ) -> GibbsPlan:
        """The batch's ``GibbsPlan`` under the current weights; offsets: (batch, K); data:
        (nnz,) the ratings' states. ``cpu_plan``: with K = 2, the CPU's plan (reference state,
        item-major product); default: whether the batch is on the CPU (False builds the plan
        the GPU uses, on any device)."""
        K, items = self.n_states, batch.items
        w, b_v, offsets = (
            self.W.detach().view(-1, K, self.n_hidden),
            self.b_v.detach(),
            offsets.detach(),
        )
        if K == 2:
            w, b_v, offsets = (
                w[:, 1] - w[:, 0],
                b_v[:, 1:] - b_v[:, :1],
                offsets[:, 1:] - offsets[:, :1],
            )
        w = w.reshape(-1, self.n_hidden)
        bias = b_v.index_select(0, items) + offsets.index_select(0, batch.rows)
        if cpu_plan is None:
            cpu_plan = items.device.type == "cpu"
        if K != 2 or not cpu_plan:
            pattern = entry_pattern(batch, bias.shape[1], len(w), values=bias.view(-1))
            return GibbsPlan(items * K, w, bias, pattern)
        reference = int(2 * int(data.sum()) >= len(data))
        with torch.no_grad():
            reference_input = self.hidden_input(batch, torch.full_like(data, reference))
        item_pattern, to_rows = item_major_pattern(batch, self.n_items, bias.view(-1))
        row_ids = torch.arange(batch.size, device=items.device)
        return GibbsPlan(
            items * K, w, bias, None, reference, reference_input, row_ids,
            item_pattern, to_rows,
        )  # fmt: skip

    def plan_encode(self, plan: GibbsPlan, states: torch.Tensor) -> torch.Tensor:
        """(nnz,) states in the chain's encoding: with a reference state (K = 2, CPU), 1.0
        where the entry is not in it, else 0.0 (what ``plan_sample_v`` draws and
        ``plan_hidden_input`` reads, with no conversion per step); otherwise the states."""
        if plan.reference is None:
            return states
        return (states != plan.reference).to(plan.weights.dtype)

    def plan_states(self, plan: GibbsPlan, sample: torch.Tensor) -> torch.Tensor:
        """(nnz,) int64 states of a sample in the chain's encoding (``plan_encode``)."""
        if plan.reference is None:
            return sample
        return (sample != plan.reference).long()  # 1.0 = the other state, 1 - reference

    def plan_hidden_input(self, batch: UserBatch, plan: GibbsPlan, sample: torch.Tensor):
        """(batch, n_hidden) ``hidden_input`` of sample: (nnz,) states in the chain's encoding
        (``plan_encode``), an ``embedding_bag`` over the plan's units. With a reference state
        (K = 2, CPU): its hidden input plus +-(W1 - W0) summed over the entries in the other
        state only, fewer rows gathered (like/dislike data are skewed; the GPU has the
        bandwidth and no host sync for the selection)."""
        if plan.reference is None:
            summed = F.embedding_bag(
                plan.units + sample, self.W.detach(), batch.offsets, mode="sum"
            )
            return summed + self.b_h.detach()
        other = flat_nonzero(sample)
        starts = torch.searchsorted(batch.rows.index_select(0, other), plan.row_ids)
        summed = F.embedding_bag(
            batch.items.index_select(0, other), plan.weights, starts, mode="sum"
        )
        return torch.add(plan.reference_input, summed, alpha=1 - 2 * plan.reference)

    def plan_logits(self, h: torch.Tensor, batch: UserBatch, plan: GibbsPlan) -> torch.Tensor:
        """(nnz, C) the rated items' visible logits given h: (batch, n_hidden), one sampled
        product over the plan's pattern; with K = 2 the logit of state 1 minus state 0's."""
        if plan.item_pattern is not None:
            return item_major_dots(h, plan.weights, plan.item_pattern, plan.to_rows).unsqueeze(1)
        C = plan.bias.shape[1]
        return entry_dots(h, plan.weights, batch, C, plan.pattern, add_values=True)

    def plan_sample_v(
        self,
        h: torch.Tensor,
        batch: UserBatch,
        plan: GibbsPlan,
        generator: torch.Generator | None = None,
        u: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """(nnz,) states sampled from p(v | h), h: (batch, n_hidden), in the chain's encoding
        (``plan_encode``), from u: (nnz,) uniforms (drawn from ``generator`` if not given).
        With K = 2, state 1 with probability sigmoid(logit difference) (``sample_of_logits``),
        else the softmax's inverse CDF."""
        if u is None:
            u = uniforms(batch.nnz, generator, h.device)
        if plan.item_pattern is not None:  # K = 2 on the CPU: the logit as (nnz,) directly
            logit = item_major_dots(h, plan.weights, plan.item_pattern, plan.to_rows)
            return sample_of_logits(logit, outcome=1 - plan.reference, u=u)
        logits = self.plan_logits(h, batch, plan)
        if self.n_states == 2:
            return sample_of_logits(logits.squeeze(1), u=u).long()
        cdf = torch.softmax(logits, dim=-1).cumsum(-1)
        return (u.unsqueeze(1) > cdf).sum(-1).clamp_(max=self.n_states - 1)

    def plan_chain(
        self,
        batch: UserBatch,
        plan: GibbsPlan,
        x: torch.Tensor,
        k: int,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """k Gibbs steps from the hidden input x: (batch, n_hidden): (batch, n_hidden) the last
        visible sample's hidden input and (nnz,) that sample (chain encoding). The uniforms of
        all k steps come from one draw of ``generator`` (the k hidden samples', then the k
        visible ones')."""
        n_h = x.numel()
        u = uniforms(k * (n_h + batch.nnz), generator, x.device)
        u_hidden = u[: k * n_h].view(k, *x.shape).unbind(0)
        u_visible = u[k * n_h :].view(k, batch.nnz).unbind(0)
        sample = None
        for step in range(k):
            h = sample_of_logits(x, u=u_hidden[step])
            sample = self.plan_sample_v(h, batch, plan, u=u_visible[step])
            x = self.plan_hidden_input(batch, plan, sample)
        return x, sample

    def states_nll(self, logits: torch.Tensor, states: torch.Tensor) -> torch.Tensor:
        """(nnz,) -log p(v_i = states_i) from ``plan_logits``' (nnz, C) logits."""
        if self.n_states == 2:  # -log sigmoid(+-d) = softplus(-+d)
            return F.softplus(torch.where(states == 1, -logits[:, 0], logits[:, 0]))
        return -torch.log_softmax(logits, -1).gather(1, states.unsqueeze(1)).squeeze(1)

    def scatter_units(
        self,
        batch: UserBatch,
        model: torch.Tensor,
        data: torch.Tensor,
        p_model: torch.Tensor,
        p_data: torch.Tensor,
        scale: torch.Tensor,
        sync_free: bool | None = None,
    ) -> torch.Tensor:
        """(n_items * K, n_hidden) ``scale`` x (p_model[row] summed onto each entry's model unit
        minus p_data[row] onto its data unit); model, data: (nnz,) states; p_*: (batch,
        n_hidden); scale: 0-dim. One ``embedding_bag`` whose bags are the units (entries sorted
        by unit) over the table scale x [p_model - p_data; p_model; -p_data]: an entry whose
        chain ended in its data state adds one row (the difference) to its unit, the others
        p_model to the model's unit and -p_data to the data's. ``sync_free`` (default: off the
        CPU): every entry also adds a row to its model unit, a zero row where the chain ended in
        the data state, instead of selecting the moved entries (a ``nonzero``, which reads its
        count back to the host); the same sums."""
        K, B = self.n_states, batch.size
        if sync_free is None:
            sync_free = batch.items.device.type != "cpu"
        moved_mask = model != data
        first = torch.add(batch.rows, moved_mask, alpha=2 * B)  # the difference row, or -p_data
        if sync_free:
            second_units = batch.items * K + model
            second = torch.where(moved_mask, batch.rows + B, 3 * B)  # p_model, or the zero row
        else:
            moved = flat_nonzero(moved_mask)
            second_units = batch.items.index_select(0, moved) * K + model.index_select(0, moved)
            second = batch.rows.index_select(0, moved) + B
        units = torch.cat([batch.items * K + data, second_units])
        rows = torch.cat([first, second])
        order = stable_order(units, self.n_items * K)
        counts = count_keys(units, self.n_items * K)
        table = torch.cat([p_model - p_data, p_model, -p_data]).mul_(scale)
        if sync_free:
            table = torch.cat([table, table.new_zeros(1, table.shape[1])])
        starts = torch.cumsum(counts, 0) - counts
        return F.embedding_bag(rows.index_select(0, order), table, starts, mode="sum")

    def cd_loss(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Scalar whose gradient is the CD-k update: mean F(data) - mean F(model sample).

        The chain runs on a ``GibbsPlan`` of the batch; the hidden part of the loss gets its
        W / b_h gradient in closed form (``_HiddenFreeEnergyGap``), the visible biases and
        ``u_scale`` theirs by autograd."""
        return self.cd_loss_and_nll(batch, k, generator, with_nll=False)[0]

    def cd_loss_and_nll(
        self,
        batch: UserBatch,
        k: int,
        generator: torch.Generator | None = None,
        with_nll: bool = True,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """``cd_loss`` and, if ``with_nll``, (nnz,) the reconstruction NLL of the ratings'
        states under the mean-field p(h | the same ratings), before the update (the training
        loss report), sharing the chain's plan and first hidden pass."""
        data = self.states_of(batch.ratings)
        offsets = self.user_offsets(batch, data)
        # inference mode: no autograd bookkeeping at all on the chain's ~20 ops per step (about
        # 6% of the chain's time at ml-1m); the two hidden inputs the gradient keeps are cloned
        # out of it below (inference tensors cannot be saved for backward)
        with torch.inference_mode():
            plan = self.gibbs_plan(batch, offsets, data)
            sample = self.plan_encode(plan, data)
            x_data = self.plan_hidden_input(batch, plan, sample)
            nll = None
            if with_nll:
                nll = self.states_nll(self.plan_logits(torch.sigmoid(x_data), batch, plan), data)
            x, model = x_data, data
            if k > 0:
                x, sample = self.plan_chain(batch, plan, x_data, k, generator)
                model = self.plan_states(plan, sample)

        def scatter(p_model: torch.Tensor, p_data: torch.Tensor, scale: torch.Tensor):
            return self.scatter_units(batch, model, data, p_model, p_data, scale)

        x_data, x = x_data.clone(), x.clone()
        hidden = _HiddenFreeEnergyGap.apply(self.W, self.b_h, x_data, x, scatter)
        return hidden - self.visible_gap(batch, offsets, data, model) / batch.size, nll

    def visible_gap(
        self, batch: UserBatch, offsets: torch.Tensor, data: torch.Tensor, model: torch.Tensor
    ) -> torch.Tensor:
        """Scalar sum over the entries of the visible biases (b_v + user offsets) of the data
        states minus those of the model states; offsets: (batch, K); data, model: (nnz,). As
        (count of data minus model states per unit) . biases: its gradient is those counts,
        not an index_add per entry."""
        K = self.n_states
        item_gap = state_count_gap(batch.items * K, data, model, self.n_items * K)
        row_gap = state_count_gap(batch.rows * K, data, model, batch.size * K)
        return (item_gap * self.b_v.view(-1)).sum() + (row_gap * offsets.reshape(-1)).sum()

    # -- prediction --------------------------------------------------------------------------
    def hidden_probs(self, batch: UserBatch) -> torch.Tensor:
        """(batch, n_hidden) mean-field p(h | the user's ratings)."""
        return torch.sigmoid(self.hidden_input(batch, self.states_of(batch.ratings)))

    def batch_offsets(self, batch: UserBatch) -> torch.Tensor:
        """(batch, K) the users' own visible-bias offsets from their ratings."""
        return self.user_offsets(batch, self.states_of(batch.ratings))

    def state_probs(
        self, p_h: torch.Tensor, offsets: torch.Tensor, items: torch.Tensor, rows: torch.Tensor
    ) -> torch.Tensor:
        """(n, K) p(v_item = k | p_h[row]) for arbitrary (row, item) query pairs."""
        w = self.W.view(self.n_items, self.n_states, self.n_hidden)[items]
        logits = self.b_v[items] + offsets[rows] + torch.einsum("nkh,nh->nk", w, p_h[rows])
        return torch.softmax(logits, -1)

    def all_state_probs(self, p_h: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(batch, n_items, K) p(v_i = k | p_h) for the whole catalogue: one dense matmul."""
        logits = (p_h @ self.W.T).view(p_h.shape[0], self.n_items, self.n_states) + self.b_v
        return torch.softmax(logits + offsets.unsqueeze(1), dim=-1)

    def p_like(self, probs: torch.Tensor) -> torch.Tensor:
        """(..., K) state probabilities -> (...) P(like)."""
        return probs[..., self.first_like :].sum(-1)

    def expected_rating(self, probs: torch.Tensor) -> torch.Tensor | None:
        """(..., K) -> (...) expected rating on the scale; None for the binary kind (its two
        states do not say which rating)."""
        if self.kind != "softmax":
            return None
        return probs @ self.state_values.to(probs.dtype)

    def like_logit_weights(
        self, units: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """The binary kind's 2-state softmax as a sigmoid: (n, hidden) ``W[i, 1] - W[i, 0]``
        and (n,) ``b_v[i, 1] - b_v[i, 0]`` of every visible unit i (or of ``units``: (n,)), so
        that P(like) = sigmoid(p_h . d_i + c_i + the user's offset gap, ``state_gap``)."""
        w = self.W.view(self.n_items, 2, self.n_hidden)
        b_v = self.b_v
        if units is not None:
            w, b_v = w[units], b_v[units]
        return w[:, 1] - w[:, 0], state_gap(b_v)

    def all_p_like(self, p_h: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(batch, n_items) P(like) for the whole catalogue."""
        if self.kind == "binary":  # one product of the weight differences and a sigmoid
            d, c = self.like_logit_weights()
            return torch.sigmoid(p_h @ d.T + (c + state_gap(offsets).unsqueeze(1)))
        return self.p_like(self.all_state_probs(p_h, offsets))

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """Per user of ``batch`` and every catalogue item, (batch, n_items) each: the ranking
        ``score`` (= p_like), ``p_like`` and, for the softmax kind, ``pred_rating``."""
        return self.outputs_of_hidden(self.hidden_probs(batch), self.batch_offsets(batch))

    def outputs_of_hidden(self, p_h: torch.Tensor, offsets: torch.Tensor):
        """``score_all``'s outputs, (batch, n_items) each, from hidden probabilities p_h:
        (batch, n_hidden) and the users' offsets: (batch, K)."""
        if self.kind == "binary":
            p_like = self.all_p_like(p_h, offsets)
            return {"score": p_like, "p_like": p_like}
        probs = self.all_state_probs(p_h, offsets)
        p_like = self.p_like(probs)
        return {"score": p_like, "p_like": p_like, "pred_rating": self.expected_rating(probs)}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) p_like (and pred_rating for softmax) of query pairs (rows[n] of batch, items[n])."""
        return self.pair_outputs(self.hidden_probs(batch), self.batch_offsets(batch), items, rows)

    def pair_outputs(
        self, p_h: torch.Tensor, offsets: torch.Tensor, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``predict_pairs``' outputs, (n,) each, from hidden probabilities and offsets."""
        probs = self.state_probs(p_h, offsets, items, rows)
        out = {"p_like": self.p_like(probs)}
        rating = self.expected_rating(probs)
        if rating is not None:
            out["pred_rating"] = rating
        return out

    def users_with_weights(self) -> None:
        """No per-user weights: any user is scored from their ratings alone."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        hyper: dict[str, Any] = {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "scale": self.scale.to_dict(),
        }
        if self.kind == "softmax":
            hyper["states"] = self.n_states
        return hyper
