"""Autoencoders, the extension of the RBM recommender the tutorial names, for the two questions.

- ``autorec`` (``AutoRec``): AutoRec (Sedhain, Menon, Sanner & Xie, WWW 2015) for ratings and
  likes. A case's observed ratings are the input (unobserved ones are missing: they add
  nothing to the code), one sigmoid hidden layer is the code, and the output reconstructs a
  rating for every item; the loss is the squared error over the observed ratings only, with
  an L2 penalty on the weights (the optimiser's weight decay). Used user-based (a case is a
  user, the outputs are the catalogue) or item-based (``ItemBasedAutoRec``: a case is an item,
  the outputs are the training users; the paper's I-AutoRec), and both blended in a two-way
  model (``rbmcore.models.twoway``). It reads and reconstructs rating codes (1..levels of its
  ``scale``); ``pred_rating`` is the reconstruction clipped to the scale, on its values;
  ``p_like`` = sigmoid(``like_slope`` x (rating - cut)), cut half a step below the like
  threshold (2.5 on five stars: like = rating >= 3).
- ``multvae`` (``MultVAE``): the autoencoder of which movies a user rates, for ranking (Liang,
  Krishnan, Hoffman & Jebara, WWW 2018): the user's rated set, L2-normalised, with a random
  half of it dropped while training, is encoded into a code of ``n_hidden`` units
  (``encoder_hidden`` > 0 adds a tanh layer of that width on each side), decoded into a softmax
  over the catalogue, and trained on the multinomial log-likelihood of the rated set. With
  ``variational`` the code is a Gaussian (Mult-VAE, KL term weighted by ``beta``), else it is
  deterministic (Mult-DAE, the denoising autoencoder). ``p_rated`` = 1 - (1 - pi_i) ^ n, the
  probability that item i is among n draws from the softmax pi, n the user's rated count.

Both take sparse input: the first layer is an ``embedding_bag`` over the rated items
(O(ratings x hidden)); the output layer is dense over the catalogue for one batch of users at
a time (``multvae``, and ``score_all`` of both), never for all users at once. Both meet
``rbmcore.models.contract.TrainableAutoencoder``: ``training_loss`` is what
``rbmcore.training.autoencoder.AutoencoderTrainer`` minimises with Adam.
"""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from rbmcore.data.batch import UserBatch, to_batch
from rbmcore.data.csr import RatingsCSR, transpose_csr
from rbmcore.data.scale import STARS, RatingScale
from rbmcore.models.itembased import ITEM_STATE_CHUNK, ItemWay

MEAN_PRIOR = 2.0  # pseudo-ratings at the global mean in an item's initial output bias


def glorot(rows: int, cols: int, generator: torch.Generator | None) -> torch.Tensor:
    """(rows, cols) Glorot-normal initial weights."""
    return torch.randn(rows, cols, generator=generator) * math.sqrt(2.0 / (rows + cols))


def kept_entries(batch: UserBatch, dropout: float, generator: torch.Generator | None):
    """(items, rows, ratings, offsets) of ``batch`` after dropping each entry with probability
    ``dropout`` (the denoising corruption); the batch itself when ``dropout`` is 0."""
    if dropout <= 0:
        return batch.items, batch.rows, batch.ratings, batch.offsets
    u = torch.rand(batch.nnz, generator=generator, device=batch.items.device)
    keep = torch.nonzero(u >= dropout).squeeze(1)
    rows = batch.rows.index_select(0, keep)
    offsets = torch.searchsorted(rows, torch.arange(batch.size, device=rows.device))
    return batch.items.index_select(0, keep), rows, batch.ratings.index_select(0, keep), offsets


def like_probability(rating: torch.Tensor, slope: float, scale: RatingScale) -> torch.Tensor:
    """P(like) of a continuous predicted rating (on ``scale``'s values): sigmoid(slope x
    (rating - cut)), cut half a step below the like threshold (2.5 on five stars)."""
    return torch.sigmoid((rating - (scale.like_value - scale.step / 2)) * slope)


def as_scale(scale: RatingScale | dict | None) -> RatingScale:
    """A ``RatingScale`` from itself, its dict (saved hyperparameters) or None (five stars)."""
    if scale is None:
        return STARS
    return scale if isinstance(scale, RatingScale) else RatingScale.from_dict(scale)


class AutoRec(nn.Module):
    """AutoRec over ``n_items`` input / output units (items for the user-based way, users for
    the inner model of ``ItemBasedAutoRec``); ``n_hidden`` sigmoid code units.

    V: (n_items, hidden) encoder weights (a rating r of item i adds r x V[i]); b_h: (hidden,);
    W: (n_items, hidden) decoder weights; b_v: (n_items,) output biases."""

    kind = "autorec"
    n_models = 1
    n_states = 2  # dense floats per (user, item) while scoring: p_like and pred_rating
    output_columns = ("p_like", "pred_rating")

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        generator: torch.Generator | None = None,
        like_slope: float = 2.0,
        dropout: float = 0.0,
        scale: RatingScale | dict | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.n_hidden = n_hidden
        self.scale = as_scale(scale)
        self.like_slope = float(like_slope)
        self.dropout = float(dropout)
        self.V = nn.Parameter(glorot(n_items, n_hidden, generator))
        self.b_h = nn.Parameter(torch.zeros(n_hidden))
        self.W = nn.Parameter(glorot(n_items, n_hidden, generator))
        self.b_v = nn.Parameter(torch.zeros(n_items))

    def init_visible_biases(self, csr: RatingsCSR) -> None:
        """b_v[i] = item i's mean rating, shrunk to the global mean by ``MEAN_PRIOR`` ratings."""
        items = torch.as_tensor(csr.items, dtype=torch.int64)
        ratings = torch.as_tensor(csr.ratings, dtype=torch.float32)
        mean = float(ratings.mean()) if len(ratings) else 3.0
        sums = torch.zeros(self.n_items).index_add_(0, items, ratings) + MEAN_PRIOR * mean
        counts = torch.bincount(items, minlength=self.n_items).float() + MEAN_PRIOR
        with torch.no_grad():
            self.b_v.copy_((sums / counts).to(self.b_v.device))

    # -- the autoencoder --------------------------------------------------------------------
    def code_of(
        self, items: torch.Tensor, ratings: torch.Tensor, offsets: torch.Tensor
    ) -> torch.Tensor:
        """(cases, hidden) sigmoid(b_h + sum over the observed entries of rating x V[item])."""
        summed = F.embedding_bag(
            items, self.V, offsets, mode="sum", per_sample_weights=ratings.to(self.V.dtype)
        )
        return torch.sigmoid(summed + self.b_h)

    def code(self, batch: UserBatch) -> torch.Tensor:
        """(batch, hidden) the code of the batch's cases from all their ratings."""
        return self.code_of(batch.items, batch.ratings, batch.offsets)

    def reconstruct_pairs(
        self, h: torch.Tensor, rows: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """(n,) unclipped reconstructed ratings of the pairs (rows[n] of h, items[n])."""
        return (self.W.index_select(0, items) * h.index_select(0, rows)).sum(-1) + self.b_v[items]

    def training_loss(
        self, batch: UserBatch, epoch: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss, (nnz,) squared errors): the squared reconstruction error of the
        observed ratings summed per case, averaged over the batch's cases; the input is
        corrupted by ``dropout`` (0: the paper's AutoRec)."""
        items, rows, ratings, offsets = kept_entries(batch, self.dropout, generator)
        h = self.code_of(items, ratings, offsets)
        error = self.reconstruct_pairs(h, batch.rows, batch.items) - batch.ratings.to(h.dtype)
        squared = error.square()
        return squared.sum() / batch.size, squared.detach()

    # -- prediction -------------------------------------------------------------------------
    def outputs(self, rating: torch.Tensor) -> dict[str, torch.Tensor]:
        """``p_like`` and ``pred_rating`` (on the scale's values) of unclipped reconstructed
        codes, clipped to the scale."""
        code = rating.clamp(1.0, float(self.scale.levels))
        value = (code - 1.0) * self.scale.step + self.scale.low
        p_like = like_probability(value, self.like_slope, self.scale)
        return {"p_like": p_like, "pred_rating": value}

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score`` = ``p_like``, and ``pred_rating``."""
        out = self.outputs(torch.addmm(self.b_v, self.code(batch), self.W.T))
        return {"score": out["p_like"], **out}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) ``p_like`` and ``pred_rating`` of query pairs (rows[n] of batch, items[n])."""
        return self.outputs(self.reconstruct_pairs(self.code(batch), rows, items))

    def users_with_weights(self) -> None:
        """None: no per-user weights (any user is scored from their ratings)."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "like_slope": self.like_slope,
            "dropout": self.dropout,
            "scale": self.scale.to_dict(),
        }


class ItemBasedAutoRec(ItemWay):
    """I-AutoRec: ``inner`` is an ``AutoRec`` whose units are the training users, trained on
    the transposed ratings (a case per item). Scoring user u needs u's decoder row and every
    item's code, computed once from all training ratings (``set_item_states``) and saved with
    the model (buffer ``item_code``: (n_items, hidden)): rating(u, i) = W[u] . code[i] +
    b_v[u]. A user who was not in the training data has no decoder row here."""

    def __init__(self, inner: AutoRec, n_items: int) -> None:
        super().__init__(inner)
        self.register_buffer("item_code", torch.zeros(n_items, inner.n_hidden))

    @property
    def n_items(self) -> int:
        return int(self.item_code.shape[0])

    @torch.no_grad()
    def set_item_states(self, csr: RatingsCSR) -> None:
        """Every item's code from the users' rows ``csr``, whose rows must be the training
        users in visible-unit order."""
        self.check_rows(csr)
        items = transpose_csr(csr)
        for lo in range(0, len(items), ITEM_STATE_CHUNK):
            hi = min(lo + ITEM_STATE_CHUNK, len(items))
            batch = to_batch(items.slice(lo, hi), self.item_code.device)
            self.item_code[lo:hi] = self.inner.code(batch)

    def score_all_known(self, batch: UserBatch) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """The user-based outputs, (batch, n_items) each, and (batch,) bool: known users."""
        cols, known = self.batch_columns(batch)
        inner = self.inner
        rating = torch.addmm(inner.b_v[cols].unsqueeze(1), inner.W[cols], self.item_code.T)
        out = inner.outputs(rating)
        return {"score": out["p_like"], **out}, known

    def predict_pairs_known(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        """(n,) predictions of query pairs (rows[n] of batch, items[n]) and (n,) known."""
        cols, known = self.batch_columns(batch)
        cols = cols[rows]
        rating = self.inner.reconstruct_pairs(self.item_code, items, cols)
        return self.inner.outputs(rating), known[rows]


class MultVAE(nn.Module):
    """The which-movies autoencoder over ``n_items``: a code of ``n_hidden`` units
    (Gaussian with ``variational``), ``encoder_hidden`` tanh units between the input and the
    code and between the code and the output (0: none).

    W: (n_items, first) the sparse input layer (first = encoder_hidden or the code's width,
    x2 for a Gaussian code without a hidden layer); the other layers are ``nn.Linear``."""

    kind = "multvae"
    n_models = 1
    n_states = 1  # one dense (users, items) block per scoring chunk
    output_columns = ("p_rated",)

    def __init__(
        self,
        n_items: int,
        n_hidden: int,
        generator: torch.Generator | None = None,
        encoder_hidden: int = 0,
        variational: bool = False,
        dropout: float = 0.5,
        beta: float = 0.2,
        anneal_epochs: int = 50,
        scale: RatingScale | dict | None = None,
    ) -> None:
        super().__init__()
        self.n_items = n_items
        self.n_hidden = n_hidden
        self.scale = as_scale(scale)  # carried for the contract; it ranks, not rates
        self.encoder_hidden = int(encoder_hidden)
        self.variational = bool(variational)
        self.dropout = float(dropout)
        self.beta = float(beta)
        self.anneal_epochs = int(anneal_epochs)
        code = n_hidden * (2 if self.variational else 1)  # mean and log-variance
        first = self.encoder_hidden or code
        self.W = nn.Parameter(glorot(n_items, first, generator))
        self.b_h = nn.Parameter(torch.zeros(first))
        self.encoder = self._linear(first, code, generator) if self.encoder_hidden else None
        last = self.encoder_hidden or n_hidden
        self.decoder = self._linear(n_hidden, last, generator) if self.encoder_hidden else None
        self.out = nn.Parameter(glorot(last, n_items, generator))
        self.b_v = nn.Parameter(torch.zeros(n_items))

    @staticmethod
    def _linear(n_in: int, n_out: int, generator: torch.Generator | None) -> nn.Linear:
        layer = nn.Linear(n_in, n_out)
        with torch.no_grad():
            layer.weight.copy_(glorot(n_out, n_in, generator))
            layer.bias.zero_()
        return layer

    def init_visible_biases(self, csr: RatingsCSR, smoothing: float = 1.0) -> None:
        """b_v[i] = log of item i's smoothed share of all ratings (the softmax's popularity
        prior before training)."""
        counts = torch.bincount(torch.as_tensor(csr.items), minlength=self.n_items).float()
        with torch.no_grad():
            self.b_v.copy_(torch.log((counts + smoothing) / (counts + smoothing).sum()))

    # -- the autoencoder --------------------------------------------------------------------
    def encode(
        self, items: torch.Tensor, rows: torch.Tensor, offsets: torch.Tensor, size: int
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(code, None) of a denoising code (tanh) or (mean, log-variance) of a Gaussian one,
        (size, n_hidden) each, of the rated sets given as entries (items, rows, offsets), each
        set L2-normalised (every entry 1 / sqrt(n))."""
        counts = torch.bincount(rows, minlength=size).clamp_min_(1).to(self.W.dtype)
        weights = counts.rsqrt().index_select(0, rows)
        h = F.embedding_bag(items, self.W, offsets, mode="sum", per_sample_weights=weights)
        h = h + self.b_h
        if self.encoder is not None:  # a tanh layer, then the code's linear layer
            h = self.encoder(torch.tanh(h))
        if not self.variational:  # the denoising code is a tanh layer
            return torch.tanh(h), None
        return h[:, : self.n_hidden], h[:, self.n_hidden :]

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """(batch, n_items) logits of the softmax over the catalogue; z: (batch, n_hidden)."""
        if self.decoder is not None:
            z = torch.tanh(self.decoder(z))
        return torch.addmm(self.b_v, z, self.out)

    def kl_weight(self, epoch: int) -> float:
        """beta, annealed linearly from 0 over ``anneal_epochs`` epochs (0-based ``epoch``)."""
        if not self.variational:
            return 0.0
        return self.beta * min(1.0, epoch / max(self.anneal_epochs, 1))

    def training_loss(
        self, batch: UserBatch, epoch: int, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """(scalar loss, (nnz,) per-entry negative log-likelihoods): the multinomial NLL of
        each user's rated set from its corrupted copy (``dropout``), summed per user and
        averaged over the batch, plus ``kl_weight`` x the KL divergence of a Gaussian code."""
        items, rows, _, offsets = kept_entries(batch, self.dropout, generator)
        mean, log_var = self.encode(items, rows, offsets, batch.size)
        z, kl = mean, mean.new_zeros(())
        if log_var is not None:
            noise = torch.randn(mean.shape, generator=generator, device=mean.device)
            z = mean + noise * torch.exp(0.5 * log_var)
            kl = 0.5 * (log_var.exp() + mean.square() - 1 - log_var).sum(1).mean()
        log_p = torch.log_softmax(self.decode(z), dim=1)
        nll = -log_p[batch.rows, batch.items]
        return nll.sum() / batch.size + self.kl_weight(epoch) * kl, nll.detach()

    # -- prediction -------------------------------------------------------------------------
    def log_shares(self, batch: UserBatch) -> torch.Tensor:
        """(batch, n_items) log of the softmax over the catalogue from the mean code."""
        mean, _ = self.encode(batch.items, batch.rows, batch.offsets, batch.size)
        return torch.log_softmax(self.decode(mean), dim=1)

    @staticmethod
    def rated_probability(log_share: torch.Tensor, n_rated: torch.Tensor) -> torch.Tensor:
        """1 - (1 - share) ^ n: item drawn at least once in n draws; n broadcasts."""
        return -torch.expm1(n_rated * torch.log1p(-log_share.exp().clamp(max=1 - 1e-7)))

    def rated_counts(self, batch: UserBatch) -> torch.Tensor:
        """(batch, 1) each user's number of rated items (at least 1)."""
        counts = torch.bincount(batch.rows, minlength=batch.size).clamp_min_(1)
        return counts.to(self.W.dtype).unsqueeze(1)

    def score_all(self, batch: UserBatch) -> dict[str, torch.Tensor]:
        """(batch, n_items) each: ``score`` = ``p_rated``."""
        p_rated = self.rated_probability(self.log_shares(batch), self.rated_counts(batch))
        return {"score": p_rated, "p_rated": p_rated}

    def predict_pairs(
        self, batch: UserBatch, items: torch.Tensor, rows: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """(n,) P(rated) of query pairs, reported as ``p_like``: this kind has no like model
        (as the ``rated`` kind)."""
        log_share = self.log_shares(batch)[rows, items]
        return {"p_like": self.rated_probability(log_share, self.rated_counts(batch)[rows, 0])}

    def users_with_weights(self) -> None:
        """None: no per-user weights (any user is scored from their ratings)."""
        return None

    def hyperparameters(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "n_items": self.n_items,
            "n_hidden": self.n_hidden,
            "encoder_hidden": self.encoder_hidden,
            "variational": self.variational,
            "dropout": self.dropout,
            "beta": self.beta,
            "anneal_epochs": self.anneal_epochs,
            "scale": self.scale.to_dict(),
        }
