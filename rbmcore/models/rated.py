"""A binary rated/unrated RBM over the whole catalogue: the ranking model.

Every catalogue item is a binary visible unit, ``v_i = 1`` if the user rated item i (whatever
the rating). The signal it learns is *which* movies go together, so ``P(v_i = 1 | h)`` for an
unseen item answers "will this user watch it" -- the ranking question (docs/design.md).

- ``p(h | v)`` sums the weights of the rated items only: ``F.embedding_bag`` (sparse).
- ``p(v | h)`` over the whole catalogue is one dense ``(batch, hidden) @ (hidden, n_items)``
  matmul per batch; a negative (model) sample is therefore dense too, one batch at a time.
- CD-k is the gradient of ``mean F(v_data) - mean F(v_model)`` like ``CategoricalRBM``: dense,
  users x items x hidden per epoch (``cd_loss``).
- Stochastic ratio matching (Dauphin & Bengio, NIPS 2013; ``ratio_matching``) trains the same
  RBM at a cost that grows with the ratings: the squared error of every unit's exact conditional
  ``P(v_i = 1 | v_-i)``, summed over the rated units and over unrated units sampled with
  importance weights (an unbiased estimate of the sum over the whole catalogue), its gradient in
  closed form over the units it touches (docs/design.md, "The rated RBM").

``n_models`` independent RBMs (different initialisations, trained side by side on the same
batches) can be held in one module; scoring averages their ``P(rated)`` -- an ensemble of
RBMs, still an RBM model family. Weights are stacked: ``W`` is (n_models, n_items, n_hidden).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data.batch import UserBatch
from rbmcore.data.csr import RatingsCSR
from rbmcore.data.scale import RatingScale
from rbmcore.ops.sampling import UnratedSample, sample_of_logits, skip_sample
from rbmcore.ops.sparse import flat_nonzero

RATIO_MATCHING_BLOCK = 2**22  # floats per (n_models, entries, hidden) block of ratio matching


class _GivenGradient(torch.autograd.Function):
    """A scalar ``value`` whose gradient with respect to ``params`` is ``grads`` (computed
    beforehand in closed form): backward hands them out, scaled by the incoming gradient."""

    @staticmethod
    def forward(ctx, value, grads, *params):  # noqa: ANN001 (autograd signature)
        ctx.grads = grads
        return value.clone()

    @staticmethod
    def backward(ctx, grad):  # noqa: ANN001
        return (None, None, *(g * grad for g in ctx.grads))


class RatedRBM(nn.Module):
    """Binary RBM over rated/unrated indicators of all ``n_items`` items. Satisfies
    ``rbmcore.models.contract.TrainableRBM``."""

    kind = "rated"
    n_states = 1  # one dense (users, items) block per scoring chunk
    output_columns = ("p_rated",)

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        generator: torch.Generator | None = None,
        init_std: float = 0.01,
        n_models: int = 1,
        scale: RatingScale | dict | None = None,
    ) -> None:
        super().__init__()
        # the ratings' scale, recorded (and used for the like metrics): this kind reads only
        # which items were rated, so it serves implicit data too
        self.scale = scale if isinstance(scale, RatingScale) else RatingScale.from_dict(scale)
        self.n_items = n_items
        self.n_hidden = n_hidden
        self.n_models = n_models
        w = torch.randn(n_models, n_items, n_hidden, generator=generator) * init_std
        self.W = nn.Parameter(w)
        self.b_v = nn.Parameter(torch.zeros(n_models, n_items))
        self.b_h = nn.Parameter(torch.zeros(n_models, n_hidden))

    def init_visible_biases(self, csr: RatingsCSR, smoothing: float = 1.0) -> None:
        """b_v[i] = logit of item i's smoothed popularity (fraction of users who rated it)."""
        counts = torch.bincount(torch.as_tensor(csr.items), minlength=self.n_items).float()
        p = (counts + smoothing) / (len(csr) + 2 * smoothing)
        with torch.no_grad():
            self.b_v.copy_(torch.logit(p).expand_as(self.b_v).to(self.b_v.device))

    # -- the RBM -------------------------------------------------------------------------
    def hidden_input(self, batch: UserBatch) -> torch.Tensor:
        """(n_models, batch, n_hidden) b_h + sum of W over each user's rated items (sparse).

        One ``embedding_bag`` over the members' stacked rows (member m's item i is row
        m * n_items + i): its gradient lands in ``W`` directly, where one bag per member
        (``W[m]``) would fill a zero copy of the whole ``W`` per member in backward."""
        M, n = self.n_models, batch.nnz
        shift = torch.arange(M, device=batch.items.device).repeat_interleave(n) * self.n_items
        units = batch.items.repeat(M) + shift
        offsets = (batch.offsets.unsqueeze(0) + n * torch.arange(M, device=units.device)[:, None])
        summed = F.embedding_bag(
            units, self.W.view(M * self.n_items, self.n_hidden), offsets.flatten(), mode="sum"
        )
        return summed.view(M, batch.size, self.n_hidden) + self.b_h.unsqueeze(1)

    def dense_hidden_input(self, v: torch.Tensor) -> torch.Tensor:
        """(n_models, batch, n_hidden) from dense visible states v: (n_models, batch, n_items)."""
        return torch.bmm(v, self.W) + self.b_h.unsqueeze(1)

    def visible_logits(self, h: torch.Tensor) -> torch.Tensor:
        """(n_models, batch, n_items) logits of P(v_i = 1 | h), h: (n_models, batch, hidden)."""
        return torch.bmm(h, self.W.transpose(1, 2)) + self.b_v.unsqueeze(1)

    def data_free_energy(self, batch: UserBatch) -> torch.Tensor:
        """(n_models, batch) F(v) of the users' own rated sets."""
        bias = torch.zeros(self.n_models, batch.size, device=self.W.device, dtype=self.W.dtype)
        bias = bias.index_add(1, batch.rows, self.b_v[:, batch.items])
        return -bias - F.softplus(self.hidden_input(batch)).sum(-1)

    def dense_free_energy(self, v: torch.Tensor) -> torch.Tensor:
        """(n_models, batch) F(v) of dense visible states v: (n_models, batch, n_items)."""
        visible = (v * self.b_v.unsqueeze(1)).sum(-1)
        return -visible - F.softplus(self.dense_hidden_input(v)).sum(-1)

    def cd_loss(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Scalar whose gradient is the CD-k update (summed over the ensemble's members)."""
        with torch.no_grad():
            h = sample_of_logits(self.hidden_input(batch), generator)
            for step in range(k):
                v = sample_of_logits(self.visible_logits(h), generator)
                if step < k - 1:
                    h = sample_of_logits(self.dense_hidden_input(v), generator)
            # The chain's last hidden sample does not enter the gradient (F(v) sums it out),
            # so its catalogue-wide product is skipped; its uniforms are still drawn, so the
            # random stream -- and every trained model -- is the same as with the full chain.
            skip_sample(h.shape, generator, h.device)
        return (self.data_free_energy(batch).mean(1) - self.dense_free_energy(v).mean(1)).sum()

    def cd_loss_and_nll(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``cd_loss`` and (batch * n_items,) ``reconstruction_nll`` before the update (the
        training loss report)."""
        with torch.no_grad():
            nll = self.reconstruction_nll(batch)
        return self.cd_loss(batch, k, generator), nll

    def reconstruction_nll(self, batch: UserBatch) -> torch.Tensor:
        """(batch * n_items,) binary cross-entropy of the mean-field reconstruction of the
        rated/unrated indicators (first ensemble member)."""
        logits = torch.addmm(self.b_v[0], self.hidden_probs(batch)[0], self.W[0].T)
        return F.binary_cross_entropy_with_logits(
            logits, batch.dense_mask().to(logits.dtype), reduction="none"
        ).flatten()

    def units_of(self, batch: UserBatch, unrated: UnratedSample) -> torch.Tensor:
        """(k,) ascending: the visible units a ``ratio_matching`` step of ``batch`` with these
        ``unrated`` draws reads and updates (the rated ones and the drawn ones)."""
        touched = torch.zeros(self.n_items, dtype=torch.bool, device=batch.items.device)
        touched[batch.items] = True
        touched[unrated.units] = True
        return flat_nonzero(touched)

    def ratio_matching_loss_and_nll(
        self, batch: UserBatch, unrated: UnratedSample, units: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A scalar whose gradient is the sampled ratio-matching gradient of ``batch`` (summed
        over the ensemble's members; ``W``'s gradient sparse, over the rows of ``units``
        only: ``units_of(batch, unrated)``) and (batch,) each row's sampled loss (first
        member), the training loss report."""
        loss, per_row, grads = self.ratio_matching(batch, unrated, units)
        return _GivenGradient.apply(loss, grads, self.W, self.b_v, self.b_h), per_row

    @torch.no_grad()
    def ratio_matching(
        self, batch: UserBatch, unrated: UnratedSample, units: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, tuple[torch.Tensor, ...]]:
        """The sampled ratio-matching loss of ``batch``, summed over the members and averaged
        over the rows, with its gradient, in one pass over the rated and the drawn entries.

        Ratio matching for binary units is ``sum_i (v_i - P(v_i = 1 | v_-i))^2``; with
        ``a = b_h + sum of W over the rated units`` and ``s_i = -1`` for a rated unit, ``+1``
        for an unrated one, the flipped input ``f_i = a + s_i W_i`` gives the conditional's
        log-odds ``l_i = b_v[i] + s_i sum_j (softplus(f_ij) - softplus(a_j))``. The unrated
        units' terms are estimated from ``unrated`` (weights). With ``e_i`` = d loss / d l_i:
        d/d b_v[i] = e_i, d/d W_i = e_i sigmoid(f_i) (+ g over the rows that rated i),
        d/d b_h = sum of g over rows, g = sum_i e_i s_i (sigmoid(f_i) - sigmoid(a)) per row.

        Returns (loss, (batch,) first member's loss per row, (sparse (n_models, n_items,
        hidden) gradient of W over ``units``, (n_models, n_items) of b_v, (n_models, hidden) of
        b_h)). Memory: blocks of ``RATIO_MATCHING_BLOCK`` floats, whatever the batch."""
        M, N, H, B = self.n_models, self.n_items, self.n_hidden, batch.size
        device = self.W.device
        a = self.hidden_input(batch)  # (M, B, H)
        free = F.softplus(a).sum(-1)  # (M, B)
        member = torch.arange(M, device=device).unsqueeze(1)
        k = len(units)
        grad_w = torch.zeros(M * k, H, device=device)
        grad_b_v = torch.zeros(M, N, device=device)
        grad_a = torch.zeros(M * B, H, device=device)  # g of every row, member-major
        error_sum = torch.zeros(M, B, device=device)  # sum of s_i e_i per row
        loss_rows = torch.zeros(M, B, device=device)
        weights = self.W.detach().view(M * N, H)
        step = max(1, RATIO_MATCHING_BLOCK // (M * H))
        groups = (
            (-1.0, batch.rows, batch.items, None),
            (1.0, unrated.rows, unrated.units, unrated.weights),
        )
        inputs = a.view(M * B, H)
        for sign, rows, items, importance in groups:
            for lo in range(0, len(rows), step):
                r, i = rows[lo : lo + step], items[lo : lo + step]
                w = None if importance is None else importance[lo : lo + step]
                member_rows = (member * B + r).view(-1)  # (M * block,) rows of ``inputs``
                f = F.embedding(member_rows, inputs).view(M, -1, H)
                f.add_(F.embedding((member * N + i).view(-1), weights).view(M, -1, H), alpha=sign)
                gap = F.softplus(f).sum(-1).sub_(free.index_select(1, r))
                logit = self.b_v.detach().index_select(1, i).add_(gap, alpha=sign)
                p = torch.sigmoid(logit)
                err = p - 1.0 if sign < 0 else p
                e = 2.0 / B * err * p * (1.0 - p)
                term = err * err
                if w is not None:
                    e, term = e * w, term * w
                loss_rows.index_add_(1, r, term)
                error_sum.index_add_(1, r, e, alpha=sign)
                grad_b_v.index_add_(1, i, e)
                part = torch.sigmoid_(f).mul_(e.unsqueeze(-1)).view(-1, H)  # e_i sigmoid(f_i)
                slots = (member * k + torch.searchsorted(units, i)).view(-1)
                grad_w.index_add_(0, slots, part)
                grad_a.index_add_(0, member_rows, part, alpha=sign)
        grad_a = grad_a.view(M, B, H).sub_(torch.sigmoid(a).mul_(error_sum.unsqueeze(-1)))
        rated = (member * k + torch.searchsorted(units, batch.items)).view(-1)
        rated_rows = F.embedding((member * B + batch.rows).view(-1), grad_a.view(-1, H))
        grad_w.index_add_(0, rated, rated_rows)
        indices = torch.stack([member.expand(M, k).reshape(-1), units.repeat(M)])
        grad_W = torch.sparse_coo_tensor(
            indices, grad_w.view(M * k, H), (M, N, H), is_coalesced=True, check_invariants=False
        )
        loss = loss_rows.sum() / B
        return loss, loss_rows[0], (grad_W, grad_b_v, grad_a.sum(1))

    # -- prediction ----------------------------------------------------------------------
    def hidden_probs(self, batch: UserBatch) -> torch.Tensor:
        """(n_models, batch, n_hidden) mean-field p(h | the user's rated set)."""
        return torch.sigmoid(self.hidden_input(batch))

    def p_rated_all(self, batch: UserBatch) -> torch.Tensor:
        """(batch, n_items) P(v_i = 1 | mean-field h), averaged over the ensemble: the ranking
        score, one dense matmul per member. (``conditional_logits`` is exact but costs a
        softplus per (user, item, hidden) -- about 50x the matmul -- for +0.002 validation
        nDCG@10 on u1, so scoring at catalogue scale uses the mean field.)"""
        return torch.sigmoid(self.visible_logits(self.hidden_probs(batch))).mean(0)

    def conditional_logits(self, batch: UserBatch, block: int = 2**23) -> torch.Tensor:
        """(batch, n_items) exact log-odds of P(v_i = 1 | the rest of v) for unrated items,
        hidden units marginalised: ``F(v) - F(v + e_i) = b_i + sum_j softplus(x_j + W_ij) -
        softplus(x_j)``, averaged over the ensemble. Computed in dense
        (n_models, batch, chunk, hidden) blocks of about ``block`` elements."""
        x = self.hidden_input(batch)  # (n_models, batch, hidden)
        base = F.softplus(x).sum(-1, keepdim=True)  # (n_models, batch, 1)
        chunk = max(1, block // max(1, self.n_models * batch.size * self.n_hidden))
        out = []
        for lo in range(0, self.n_items, chunk):
            w = self.W[:, lo : lo + chunk]  # (n_models, c, hidden)
            gain = F.softplus(x.unsqueeze(2) + w.unsqueeze(1)).sum(-1) - base
            out.append(gain + self.b_v[:, lo : lo + chunk].unsqueeze(1))
        return torch.cat(out, dim=2).mean(0)

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score`` = ``p_rated`` = P(the user rates item i)."""
        p_rated = self.p_rated_all(batch)
        return {"score": p_rated, "p_rated": p_rated}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) P(rated) of query pairs, reported as ``p_like``: this kind has no like model,
        so its like error / AUC only say how well "watched" predicts "liked"."""
        h = self.hidden_probs(batch)[:, rows]  # (n_models, n, hidden)
        logits = (h * self.W[:, items]).sum(-1) + self.b_v[:, items]
        return {"p_like": torch.sigmoid(logits).mean(0)}

    def users_with_weights(self) -> None:
        """No per-user weights: any user is scored from their ratings alone."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "n_models": self.n_models,
            "scale": self.scale.to_dict(),
        }
