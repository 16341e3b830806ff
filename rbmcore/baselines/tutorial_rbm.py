"""The tutorial's binary RBM (the one rbm-reco grew from), reimplemented faithfully as a
benchmark reference.

This is *our* code with the tutorial's maths and settings (docs/design.md, "The tutorial"),
fixing only what stops the tutorial from running:

- ``convert`` never appended rows (``new_data.append(list(ratings))`` restored);
- ``torch.mm`` calls were garbled; the weight update is
  ``W += (v0.T @ ph0 - vk.T @ phk).T`` so the shapes match ``W`` (nh, nv);
- ``nb_users`` is the ``no_users`` defined earlier.

Kept as in the tutorial, on purpose (docs/design.md lists why they are mistakes):
dense users x movies matrix with -1 for unrated; ``W``, ``a``, ``b`` all ``N(0, 1)``
(``torch.randn``); the -1s are clamped during the chain and multiplied into ``W``;
learning rate 1 with no averaging over the batch; CD-10; batches
``range(0, n_users - batch_size, batch_size)`` (so the last partial batch -- and a
full one when ``batch_size`` divides ``n_users`` -- is never trained on); prediction by a
Bernoulli sample after one Gibbs step from the user's training vector.

Randomness comes only from an explicit ``torch.Generator`` (no global seed), and the
device is a parameter.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

__all__ = [
    "TutorialRBM",
    "TutorialConfig",
    "predict_like_mean_field",
    "predict_like_sampled",
    "recommend_top_k",
    "tutorial_test_loss",
    "to_dense_binary",
    "train_tutorial_rbm",
]

log = logging.getLogger(__name__)

_SCORE_BATCH = 2048


@dataclass
class TutorialConfig:
    """The tutorial's training settings."""

    n_hidden: int = 200
    batch_size: int = 100
    epochs: int = 10
    cd_k: int = 10
    seed: int = 0


class TutorialRBM:
    """The tutorial's dense binary RBM: visible 1 (like) / 0 (dislike) / -1 (unrated).

    Parameters
    ----------
    n_visible : int
        Number of movies (columns of the dense matrix).
    n_hidden : int
        Number of hidden units.
    generator : torch.Generator
        Source of all randomness (initialisation and sampling); must live on ``device``.
    device : str or torch.device
        Where the parameters live.

    Attributes
    ----------
    W : Tensor of shape (n_hidden, n_visible)
    a : Tensor of shape (1, n_hidden)
        Hidden biases.
    b : Tensor of shape (1, n_visible)
        Visible biases.
    """

    def __init__(
        self,
        n_visible: int,
        n_hidden: int,
        generator: torch.Generator,
        device: str | torch.device = "cpu",
    ) -> None:
        self.device = torch.device(device)
        self.generator = generator
        kw = {"generator": generator, "device": self.device, "dtype": torch.float32}
        # Same order and distribution as the tutorial: W, a, b ~ N(0, 1).
        self.W = torch.randn(n_hidden, n_visible, **kw)
        self.a = torch.randn(1, n_hidden, **kw)
        self.b = torch.randn(1, n_visible, **kw)
        self.train_losses: list[float] = []

    def _gen(self, generator: torch.Generator | None) -> torch.Generator:
        return generator if generator is not None else self.generator

    @property
    def n_visible(self) -> int:
        return self.W.shape[1]

    @property
    def n_hidden(self) -> int:
        return self.W.shape[0]

    def sample_h(
        self, x: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(h=1|v) = sigmoid(x W^T + a)`` and a Bernoulli sample.

        Parameters
        ----------
        x : Tensor of shape (batch, n_visible)
            Visible values in {1, 0, -1} (the -1s count, as in the tutorial).
        generator : torch.Generator, optional
            Overrides the model's generator for this draw.

        Returns
        -------
        p_h, h : Tensor of shape (batch, n_hidden)
        """
        p_h = torch.sigmoid(x @ self.W.t() + self.a)
        return p_h, torch.bernoulli(p_h, generator=self._gen(generator))

    def sample_v(
        self, y: torch.Tensor, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``p(v=1|h) = sigmoid(y W + b)`` and a Bernoulli sample.

        Parameters
        ----------
        y : Tensor of shape (batch, n_hidden)
        generator : torch.Generator, optional
            Overrides the model's generator for this draw.

        Returns
        -------
        p_v, v : Tensor of shape (batch, n_visible)
        """
        p_v = torch.sigmoid(y @ self.W + self.b)
        return p_v, torch.bernoulli(p_v, generator=self._gen(generator))

    def gibbs_chain(self, v0: torch.Tensor, k: int) -> torch.Tensor:
        """The tutorial's k-step chain from ``v0``, re-clamping unrated (-1) entries each step.

        Parameters
        ----------
        v0 : Tensor of shape (batch, n_visible)
        k : int

        Returns
        -------
        vk : Tensor of shape (batch, n_visible)
            Sampled visibles; entries where ``v0 < 0`` equal ``v0`` (-1).
        """
        unrated = v0 < 0
        vk = v0
        for _ in range(k):
            _, hk = self.sample_h(vk)
            _, vk = self.sample_v(hk)
            vk[unrated] = v0[unrated]
        return vk

    def train_step(self, v0: torch.Tensor, k: int = 10) -> float:
        """One CD-k update on a dense batch, exactly as the tutorial does it.

        Parameters
        ----------
        v0 : Tensor of shape (batch, n_visible)
            Values in {1, 0, -1}.
        k : int
            Gibbs steps.

        Returns
        -------
        float
            Batch loss ``mean |v0 - vk|`` over rated entries (``v0 >= 0``).
        """
        v0 = v0.to(self.device, torch.float32)
        ph0, _ = self.sample_h(v0)
        vk = self.gibbs_chain(v0, k)
        phk, _ = self.sample_h(vk)
        # Learning rate 1, summed (not averaged) over the batch, -1s included.
        self.W += (v0.t() @ ph0 - vk.t() @ phk).t()
        self.b += torch.sum(v0 - vk, 0)
        self.a += torch.sum(ph0 - phk, 0)
        rated = v0 >= 0
        return float(torch.mean(torch.abs(v0[rated] - vk[rated])))

    def mean_field_v(self, v: torch.Tensor) -> torch.Tensor:
        """Deterministic reconstruction ``p(v=1 | p(h|v))``.

        Parameters
        ----------
        v : Tensor of shape (batch, n_visible)

        Returns
        -------
        Tensor of shape (batch, n_visible)
        """
        p_h = torch.sigmoid(v @ self.W.t() + self.a)
        return torch.sigmoid(p_h @ self.W + self.b)


def to_dense_binary(
    users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
) -> torch.Tensor:
    """The tutorial's conversion: dense matrix with 1 (rating >= 3), 0 (1-2), -1 (unrated).

    Parameters
    ----------
    users, items : ndarray of shape (n_ratings,)
        0-based dense row / column indices.
    ratings : ndarray of shape (n_ratings,)
        Ratings 1..5.
    n_users, n_items : int
        Matrix shape.

    Returns
    -------
    Tensor of shape (n_users, n_items), float32
    """
    u = torch.as_tensor(np.asarray(users), dtype=torch.long)
    i = torch.as_tensor(np.asarray(items), dtype=torch.long)
    r = torch.as_tensor(np.asarray(ratings), dtype=torch.float32)
    dense = torch.full((n_users, n_items), -1.0, dtype=torch.float32)
    dense[u, i] = (r >= 3).to(torch.float32)
    return dense


def train_tutorial_rbm(
    train_dense: torch.Tensor,
    config: TutorialConfig | None = None,
    device: str | torch.device = "cpu",
    log_every: int = 1,
) -> TutorialRBM:
    """Train the tutorial's RBM; per-epoch losses go to the log and ``model.train_losses``.

    Parameters
    ----------
    train_dense : Tensor of shape (n_users, n_items)
        From :func:`to_dense_binary`.
    config : TutorialConfig, optional
        Defaults to the tutorial's settings.
    device : str or torch.device
    log_every : int
        Log every this many epochs (0 = never).

    Returns
    -------
    TutorialRBM
    """
    config = config or TutorialConfig()
    device = torch.device(device)
    generator = torch.Generator(device=device).manual_seed(config.seed)
    n_users, n_items = train_dense.shape
    model = TutorialRBM(n_items, config.n_hidden, generator, device)
    data = train_dense.to(device, torch.float32)
    bs = config.batch_size
    for epoch in range(1, config.epochs + 1):
        total, s = 0.0, 0
        # The tutorial's batching, kept as is (drops the tail).
        for start in range(0, n_users - bs, bs):
            total += model.train_step(data[start : start + bs], k=config.cd_k)
            s += 1
        loss = total / s if s else float("nan")
        model.train_losses.append(loss)
        if log_every and epoch % log_every == 0:
            log.info("tutorial RBM epoch %d loss %.4f", epoch, loss)
    return model


def _score_pairs(
    fn: Callable[[torch.Tensor], torch.Tensor],
    model: TutorialRBM,
    train_dense: torch.Tensor,
    users: np.ndarray,
    items: np.ndarray,
) -> np.ndarray:
    """Apply ``fn`` to the training rows of the distinct ``users`` in batches; gather pairs."""
    users = np.asarray(users, dtype=np.int64).ravel()
    items = np.asarray(items, dtype=np.int64).ravel()
    out = np.empty(len(users), dtype=np.float32)
    uniq, inv = np.unique(users, return_inverse=True)
    for lo in range(0, len(uniq), _SCORE_BATCH):
        hi = min(lo + _SCORE_BATCH, len(uniq))
        rows = torch.as_tensor(uniq[lo:hi])
        scores = fn(train_dense[rows].to(model.device, torch.float32)).cpu().numpy()
        sel = (inv >= lo) & (inv < hi)
        out[sel] = scores[inv[sel] - lo, items[sel]]
    return out


@torch.no_grad()
def predict_like_sampled(
    model: TutorialRBM,
    train_dense: torch.Tensor,
    users: np.ndarray,
    items: np.ndarray,
    generator: torch.Generator,
) -> np.ndarray:
    """The tutorial's prediction: one Gibbs step from the user's training vector, sampled.

    Parameters
    ----------
    model : TutorialRBM
    train_dense : Tensor of shape (n_users, n_items)
    users, items : ndarray of shape (n_pairs,)
        0-based row / column indices of the pairs to predict.
    generator : torch.Generator
        On the model's device.

    Returns
    -------
    ndarray of shape (n_pairs,), int8
        Sampled 0/1 like predictions (one chain per distinct user).
    """

    def step(v: torch.Tensor) -> torch.Tensor:
        _, h = model.sample_h(v, generator)
        _, vs = model.sample_v(h, generator)
        return vs

    return _score_pairs(step, model, train_dense, users, items).astype(np.int8)


@torch.no_grad()
def predict_like_mean_field(
    model: TutorialRBM, train_dense: torch.Tensor, users: np.ndarray, items: np.ndarray
) -> np.ndarray:
    """Mean-field ``p(v=1)`` after one deterministic up-down pass from the training vector.

    Returns
    -------
    ndarray of shape (n_pairs,), float32
    """
    return _score_pairs(model.mean_field_v, model, train_dense, users, items)


@torch.no_grad()
def recommend_top_k(model: TutorialRBM, train_dense: torch.Tensor, k: int) -> np.ndarray:
    """Top-k unseen items per user by mean-field ``p(v=1)``.

    Parameters
    ----------
    model : TutorialRBM
    train_dense : Tensor of shape (n_users, n_items)
        Seen items are those with ``train_dense >= 0``; they are never recommended.
    k : int

    Returns
    -------
    ndarray of shape (n_users, k), int64
        Item indices, best first; -1 pads users with fewer than k unseen items.
    """
    n_users, n_items = train_dense.shape
    kk = min(k, n_items)
    out = np.full((n_users, k), -1, dtype=np.int64)
    for lo in range(0, n_users, _SCORE_BATCH):
        v = train_dense[lo : lo + _SCORE_BATCH].to(model.device, torch.float32)
        scores = model.mean_field_v(v).masked_fill(v >= 0, float("-inf"))
        top_s, top_i = torch.topk(scores, kk, dim=1)
        top_i = top_i.masked_fill(torch.isinf(top_s), -1)
        out[lo : lo + len(v), :kk] = top_i.cpu().numpy()
    return out


@torch.no_grad()
def tutorial_test_loss(
    model: TutorialRBM,
    train_dense: torch.Tensor,
    test_dense: torch.Tensor,
    generator: torch.Generator,
) -> float:
    """The tutorial's test loop verbatim: per user with test ratings, one sampled Gibbs
    step from the training row, ``mean |vt - v|`` over rated test entries, averaged over
    users.

    Parameters
    ----------
    train_dense, test_dense : Tensor of shape (n_users, n_items)
        Both from :func:`to_dense_binary` with the same index spaces.
    generator : torch.Generator

    Returns
    -------
    float
    """
    test_loss, s = 0.0, 0
    for u in range(train_dense.shape[0]):
        vt = test_dense[u : u + 1].to(model.device)
        if (vt >= 0).any():
            v = train_dense[u : u + 1].to(model.device)
            _, h = model.sample_h(v, generator)
            _, v = model.sample_v(h, generator)
            rated = vt >= 0
            test_loss += float(torch.mean(torch.abs(vt[rated] - v[rated])))
            s += 1
    return test_loss / s if s else float("nan")
