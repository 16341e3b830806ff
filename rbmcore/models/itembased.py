"""Item-based RBMs: the user-based RBMs trained on the transposed ratings.

One training case per catalogue item, one visible unit per training user (the I-RBM of
Georgiev & Nakov, ICML 2013): a softmax item-based RBM learns how each user rates from the
hidden features of the item, a rated one which users watch it. ``p(h | item)`` sums the
weights of the users who rated the item (sparse), so training is the user-based code run on
``transpose_csr`` of the ratings.

Scoring user u needs u's visible weights and every item's hidden probabilities, computed once
from all training ratings (``set_item_states``) and saved with the model:
``logit[u, i, k] = item_hidden[i] . W[u, k] + b_v[u, k] + item_offset[i, k]``, one dense
(users, hidden) x (hidden, items) product per state. A user who was not in the training data
has no weights here: ``score_all_known`` says which rows the model could score.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from rbmcore.data.batch import UserBatch, to_batch
from rbmcore.data.csr import RatingsCSR, transpose_csr
from rbmcore.data.scale import RatingScale
from rbmcore.models.categorical import state_gap

ITEM_STATE_CHUNK = 4096  # items per pass when computing the item hidden states


class ItemWay(nn.Module):
    """What every item-based way shares: ``inner``, a user-based model whose visible units are
    the training users (its ``n_items`` = the number of users), and the training users' ids
    (buffers ``user_ids`` sorted, ``user_columns`` their visible unit), which map a batch's
    users to ``inner``'s units. Subclasses add the items' hidden states and the scoring;
    ``rbmcore.models.contract.ItemWay`` is the protocol they meet."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner
        n_users = inner.n_items
        self.register_buffer("user_ids", torch.zeros(n_users, dtype=torch.int64))
        self.register_buffer("user_columns", torch.arange(n_users, dtype=torch.int64))

    @property
    def kind(self) -> str:
        return self.inner.kind

    @property
    def scale(self) -> RatingScale:
        return self.inner.scale

    @property
    def n_users(self) -> int:
        return int(self.inner.n_items)

    @property
    def n_states(self) -> int:
        return self.inner.n_states

    @property
    def n_hidden(self) -> int:
        return self.inner.n_hidden

    @property
    def n_models(self) -> int:
        return self.inner.n_models

    @property
    def output_columns(self) -> tuple[str, ...]:
        return self.inner.output_columns

    def set_users(self, user_ids: np.ndarray) -> None:
        """The training users, in the order of their visible units (the CSR's rows)."""
        ids = torch.as_tensor(np.asarray(user_ids), dtype=torch.int64)
        if len(ids) != self.n_users:
            raise ValueError(f"{len(ids)} user ids for {self.n_users} visible units")
        order = torch.argsort(ids)
        self.user_ids.copy_(ids[order])
        self.user_columns.copy_(order)

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        """From the users' rows ``csr`` (its rows are the visible units, in order)."""
        self.set_users(csr.user_ids)
        self.inner.init_visible_biases(transpose_csr(csr))

    def _users_in_column_order(self) -> np.ndarray:
        ids = torch.empty_like(self.user_ids)
        ids[self.user_columns] = self.user_ids
        return ids.cpu().numpy()

    def check_rows(self, csr: RatingsCSR) -> None:
        """Raise unless ``csr``'s rows are the training users in visible-unit order."""
        if not np.array_equal(np.asarray(csr.user_ids), self._users_in_column_order()):
            raise ValueError("set_item_states needs the training users' rows in training order")

    def columns(self, user_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) visible-unit column of each user id and (n,) bool: known to the model."""
        pos = torch.searchsorted(self.user_ids, user_ids).clamp_(max=self.n_users - 1)
        known = self.user_ids[pos] == user_ids
        return self.user_columns[pos], known

    def batch_columns(self, batch: UserBatch) -> tuple[torch.Tensor, torch.Tensor]:
        """``columns`` of the batch's users."""
        if batch.user_ids is None:
            raise ValueError("item-based scoring needs the batch's user ids (to_batch sets them)")
        return self.columns(batch.user_ids)

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """``score_all_known``'s outputs alone (for the part's own validation)."""
        return self.score_all_known(batch)[0]

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """``predict_pairs_known``'s outputs alone (for the part's own validation)."""
        return self.predict_pairs_known(batch, items, rows)[0]

    def users_with_weights(self) -> torch.Tensor:
        """The training users, whose visible units these are."""
        return self.user_ids

    def hyperparameters(self) -> dict[str, Any]:
        """The item-based way's sizes and the inner model's other hyperparameters (what
        ``rbmcore.models.factory.build_two_way`` takes)."""
        sizes = ("kind", "n_items", "n_hidden", "n_models")
        own = {k: v for k, v in self.inner.hyperparameters().items() if k not in sizes}
        return {
            "n_users": self.n_users,
            "n_hidden": int(self.inner.n_hidden),
            "n_models": int(self.inner.n_models),
            **own,
        }


class ItemBasedRBM(ItemWay):
    """An RBM whose visible units are the training users (``inner``: a ``CategoricalRBM`` or
    ``RatedRBM`` with ``n_items`` = number of users) plus what scoring needs: the training
    users' ids (``ItemWay``) and every item's hidden probabilities ``item_hidden`` ((n_items,
    hidden), or (n_models, n_items, hidden) for a rated ensemble) and, for categorical RBMs,
    offsets ``item_offsets`` (n_items, K)."""

    def __init__(self, inner: nn.Module, n_items: int) -> None:
        super().__init__(inner)
        hidden = inner.n_hidden
        self.is_rated = inner.kind == "rated"
        shape = (inner.n_models, n_items, hidden) if self.is_rated else (n_items, hidden)
        self.register_buffer("item_hidden", torch.zeros(shape))
        self.register_buffer(
            "item_offsets", torch.zeros(n_items, 0 if self.is_rated else inner.n_states)
        )

    @property
    def n_items(self) -> int:
        return int(self.item_hidden.shape[-2])

    @torch.no_grad()
    def set_item_states(self, csr: RatingsCSR) -> None:
        """Every item's hidden probabilities (and offsets) from the users' rows ``csr``,
        whose rows must be the training users in visible-unit order."""
        self.check_rows(csr)
        items = transpose_csr(csr)
        device = self.item_hidden.device
        for lo in range(0, len(items), ITEM_STATE_CHUNK):
            hi = min(lo + ITEM_STATE_CHUNK, len(items))
            batch = to_batch(items.slice(lo, hi), device)
            if self.is_rated:
                self.item_hidden[:, lo:hi] = self.inner.hidden_probs(batch)
            else:
                self.item_hidden[lo:hi] = self.inner.hidden_probs(batch)
                self.item_offsets[lo:hi] = self.inner.batch_offsets(batch)

    def score_all_known(self, batch: UserBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The same (batch, n_items) outputs as the user-based kind's ``score_all``, and
        (batch,) bool: rows of users the model knows (other rows hold garbage)."""
        cols, known = self.batch_columns(batch)
        inner = self.inner
        if self.is_rated:  # (n_models, batch, hidden) @ (n_models, hidden, n_items)
            logits = torch.bmm(inner.W[:, cols], self.item_hidden.transpose(1, 2))
            p_rated = torch.sigmoid(logits + inner.b_v[:, cols].unsqueeze(2)).mean(0)
            return {"score": p_rated, "p_rated": p_rated}, known
        if inner.kind == "binary":  # a softmax over 2 states: the sigmoid of their difference
            p_like = self._binary_p_like(cols)
            return {"score": p_like, "p_like": p_like}, known
        size, states = batch.size, inner.n_states
        w = inner.W.view(self.n_users, states, inner.n_hidden)[cols]  # (batch, K, hidden)
        logits = (self.item_hidden @ w.reshape(size * states, -1).T).view(-1, size, states)
        logits = logits.transpose(0, 1) + inner.b_v[cols].unsqueeze(1) + self.item_offsets
        probs = torch.softmax(logits, dim=-1)  # (batch, n_items, K)
        p_like = inner.p_like(probs)
        out = {"score": p_like, "p_like": p_like}
        rating = inner.expected_rating(probs)
        if rating is not None:
            out["pred_rating"] = rating
        return out, known

    def _binary_p_like(self, cols: torch.Tensor) -> torch.Tensor:
        """(batch, n_items) P(like) of a binary inner RBM for the users at visible columns
        ``cols``: one (batch, hidden) @ (hidden, n_items) product of the users' weight
        differences (``CategoricalRBM.like_logit_weights``) and a sigmoid, written in place,
        instead of a (batch, n_items, 2) softmax (about 9x slower at the ml-25m catalogue)."""
        d, c = self.inner.like_logit_weights(cols)
        logits = torch.addmm(state_gap(self.item_offsets).unsqueeze(0), d, self.item_hidden.T)
        logits += c.unsqueeze(1)
        return logits.sigmoid_()

    def predict_pairs_known(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(n,) predictions of query pairs (rows[n] of batch, items[n]) and (n,) known."""
        cols, known = self.batch_columns(batch)
        cols, known = cols[rows], known[rows]
        inner = self.inner
        if self.is_rated:
            logits = (inner.W[:, cols] * self.item_hidden[:, items]).sum(-1) + inner.b_v[:, cols]
            return {"p_like": torch.sigmoid(logits).mean(0)}, known
        w = inner.W.view(self.n_users, inner.n_states, inner.n_hidden)[cols]  # (n, K, hidden)
        logits = torch.einsum("nkh,nh->nk", w, self.item_hidden[items])
        probs = torch.softmax(logits + inner.b_v[cols] + self.item_offsets[items], dim=-1)
        out = {"p_like": inner.p_like(probs)}
        rating = inner.expected_rating(probs)
        if rating is not None:
            out["pred_rating"] = rating
        return out, known
