"""RBMs whose visible units are the rated items only, each a K-way categorical unit.

- ``binary`` kind (K=2): the seed's like/dislike RBM done right. State 1 = like (rating >= 3),
  state 0 = dislike. Unrated items are *missing*: they are not units of the user's RBM, add
  nothing to p(h|v) and are not reconstructed. A 2-state unit with its own weights per state is
  the binary unit plus the "rated" indicator of the conditional RBM (Salakhutdinov et al. 2007),
  so a dislike moves the hidden units differently from a missing rating.
- ``softmax`` kind (K=5): the softmax RBM of Salakhutdinov, Mnih & Hinton (2007); state k-1 is
  rating k; predicted rating = expected value; p(like) = P(rating >= 3).

Weights ``W[item * K + state, hidden]`` are shared by all users, so ``p(h | V)`` is an
``embedding_bag`` sum over the user's rated (item, state) units: O(ratings x hidden).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data import LIKE_THRESHOLD, RatingsCSR, UserBatch, rated_dots

STATES_BY_KIND = {"binary": 2, "softmax": 5}


class CategoricalRBM(nn.Module):
    """RBM with K-way visible units over rated items, ``n_hidden`` Bernoulli hidden units."""

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        kind: str = "binary",
        generator: torch.Generator | None = None,
        init_std: float = 0.01,
    ) -> None:
        super().__init__()
        if kind not in STATES_BY_KIND:
            raise ValueError(f"unknown kind {kind!r}; expected one of {sorted(STATES_BY_KIND)}")
        self.kind = kind
        self.n_items = n_items
        self.n_states = STATES_BY_KIND[kind]
        self.n_hidden = n_hidden
        w = torch.randn(n_items * self.n_states, n_hidden, generator=generator) * init_std
        self.W = nn.Parameter(w)
        self.b_v = nn.Parameter(torch.zeros(n_items, self.n_states))
        self.b_h = nn.Parameter(torch.zeros(n_hidden))
        # weight of the user's own state frequencies in the visible biases (per state)
        self.u_scale = nn.Parameter(torch.ones(self.n_states))

    # -- encoding ------------------------------------------------------------------------
    def states_of(self, ratings: torch.Tensor) -> torch.Tensor:
        """(nnz,) ratings 1..5 -> (nnz,) visible states 0..K-1."""
        if self.kind == "binary":
            return (ratings >= LIKE_THRESHOLD).long()
        return ratings.long() - 1

    def like_states(self) -> torch.Tensor:
        """The states that count as "like" (rating >= 3)."""
        first = 1 if self.kind == "binary" else LIKE_THRESHOLD - 1
        return torch.arange(first, self.n_states)

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
        counts = torch.full(
            (batch.size, self.n_states), prior / self.n_states, device=states.device
        )
        counts.index_put_(
            (batch.rows, states), torch.ones_like(states, dtype=counts.dtype), accumulate=True
        )
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
            dots = rated_dots(h, self.W.detach(), batch, self.n_states)
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

    def cd_loss(
        self, batch: UserBatch, k: int, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Scalar whose gradient is the CD-k update: mean F(data) - mean F(model sample)."""
        data = self.states_of(batch.ratings)
        offsets = self.user_offsets(batch, data)
        with torch.no_grad():
            _, h = self.sample_h(batch, data, generator)
            for _ in range(k):
                _, model = self.sample_v(h, batch, generator, offsets.detach())
                _, h = self.sample_h(batch, model, generator)
        return (
            self.free_energy(batch, data, offsets).mean()
            - self.free_energy(batch, model, offsets).mean()
        )

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
        """(..., K) state probabilities -> (...) P(rating >= 3)."""
        return probs[..., self.like_states().to(probs.device)].sum(-1)

    def expected_rating(self, probs: torch.Tensor) -> torch.Tensor | None:
        """(..., K) -> (...) expected rating; None for the binary kind (no rating scale)."""
        if self.kind != "softmax":
            return None
        scale = torch.arange(1, self.n_states + 1, dtype=probs.dtype, device=probs.device)
        return probs @ scale

    def all_p_like(self, p_h: torch.Tensor, offsets: torch.Tensor) -> torch.Tensor:
        """(batch, n_items) P(like) for the whole catalogue."""
        if self.kind == "binary":  # softmax over 2 states is a sigmoid of the logit difference
            w = self.W.view(self.n_items, 2, self.n_hidden)
            bias = (self.b_v[:, 1] - self.b_v[:, 0]) + (offsets[:, 1] - offsets[:, 0]).unsqueeze(1)
            return torch.sigmoid(p_h @ (w[:, 1] - w[:, 0]).T + bias)
        return self.p_like(self.all_state_probs(p_h, offsets))

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """Per user of ``batch`` and every catalogue item, (batch, n_items) each: the ranking
        ``score`` (= p_like), ``p_like`` and, for the softmax kind, ``pred_rating``."""
        p_h, offsets = self.hidden_probs(batch), self.batch_offsets(batch)
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
        probs = self.state_probs(self.hidden_probs(batch), self.batch_offsets(batch), items, rows)
        out = {"p_like": self.p_like(probs)}
        rating = self.expected_rating(probs)
        if rating is not None:
            out["pred_rating"] = rating
        return out

    def hyperparameters(self) -> dict[str, int | str]:
        return {"kind": self.kind, "n_items": self.n_items, "n_hidden": self.n_hidden}
