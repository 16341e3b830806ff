"""Random numbers for Gibbs chains: fast uniforms and Bernoulli samples of logits."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from rbmcore.data.batch import UserBatch


def uniform16(
    shape: torch.Size | tuple[int, ...], generator: torch.Generator | None, device: torch.device
) -> torch.Tensor:
    """(shape) uint16 integers uniform on 0..65535, four from each 64-bit draw of ``generator``:
    on the CPU a third of the time of ``torch.rand`` for as many numbers (whose generator is
    serial: one 32-bit draw per float), the largest serial cost of a CD chain."""
    n = math.prod(shape)
    draws = torch.empty((n + 3) // 4, dtype=torch.int64, device=device)
    draws.random_(-(2**63), None, generator=generator)  # the full 64-bit range
    return draws.view(torch.uint16)[:n].view(shape)


def uniforms(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """(n,) float32 uniforms on [0, 1): on the CPU ``uniform16 / 65536`` (four per 64-bit draw),
    elsewhere ``torch.rand``."""
    if torch.device(device).type != "cpu":
        return torch.rand(n, generator=generator, device=device)
    # converted first, then scaled: torch.mul(uint16, float) takes a slow casting loop (10x)
    return uniform16((n,), generator, device).to(torch.float32).mul_(2.0**-16)


def sample_of_logits(
    x: torch.Tensor,
    generator: torch.Generator | None = None,
    outcome: int = 1,
    u: torch.Tensor | None = None,
) -> torch.Tensor:
    """A Bernoulli sample (1.0 / 0.0, x's shape) with P(1) = sigmoid(x): one uniform per unit
    compared with the probability (about 3x faster than ``torch.bernoulli`` on the CPU). The
    uniforms are ``u`` (x's shape) if given, else ``uniforms`` drawn from ``generator``; on the
    CPU, P(1) = ceil(65536 sigmoid(x)) / 65536, within 2**-16 of sigmoid(x). ``outcome=0``:
    the same sample's indicator of 0 instead (1 - it, without the extra pass)."""
    if u is None:
        u = uniforms(x.numel(), generator, x.device).view(x.shape)
    p = torch.sigmoid(x)
    return p.gt_(u) if outcome else p.le_(u)


def skip_sample(
    shape: torch.Size, generator: torch.Generator | None, device: torch.device
) -> None:
    """Advance ``generator`` past the uniforms ``sample_of_logits`` would draw for a sample of
    ``shape`` without computing the sample."""
    uniforms(math.prod(shape), generator, device)


class UnitProposal:
    """A proposal distribution over the ``n`` visible units, to sample unrated units from: each
    unit's share of the ratings mixed with the uniform distribution (``uniform`` of the mass),
    held as integer weights ``c_i >= 1`` so that a unit is drawn with probability exactly
    ``c_i / total`` (an integer draw and a ``searchsorted``, the same on every device), the
    probability its importance weight divides by."""

    def __init__(self, counts: torch.Tensor, uniform: float = 0.1, grid: int = 2**40) -> None:
        """counts: (n,) how often each unit was rated (any numeric dtype, on the device the
        draws are made on)."""
        share = counts.double() / max(float(counts.sum()), 1.0)
        q = (1.0 - uniform) * share + uniform / len(counts)
        self.weights = torch.floor(q * grid).clamp_(min=1).to(torch.int64)
        self.cumulative = torch.cumsum(self.weights, 0)
        self.total = int(self.cumulative[-1])

    def draw(self, n: int, generator: torch.Generator | None) -> tuple[torch.Tensor, torch.Tensor]:
        """(n,) int64 units drawn with replacement and (n,) float32 their probabilities."""
        device = self.cumulative.device
        ticket = torch.randint(0, self.total, (n,), generator=generator, device=device)
        units = torch.searchsorted(self.cumulative, ticket, right=True)
        return units, (self.weights.index_select(0, units).double() / self.total).float()


@dataclass(frozen=True)
class UnratedSample:
    """Unrated units sampled for each row of a batch, to estimate a sum over all of a row's
    unrated units: rows: (n,) the row of each draw; units: (n,) the unit drawn; weights: (n,)
    ``1 / (draws of the row x the unit's probability)``, 0 where the unit is rated by the row
    (a term the sum over unrated units does not have). ``sum(weights * f(rows, units))`` is
    then an unbiased estimate of the sum of ``f`` over every unrated (row, unit)."""

    rows: torch.Tensor
    units: torch.Tensor
    weights: torch.Tensor


def draw_unrated(
    batch: UserBatch, proposal: UnitProposal, per_rating: float, generator: torch.Generator | None
) -> UnratedSample:
    """``round(per_rating x batch.nnz)`` draws from ``proposal``, shared out among the batch's
    rows in proportion to their ratings (draw j goes to the row of rated entry
    ``floor(j / per_rating)``). No host synchronisation: every size comes from ``batch.nnz``.
    Needs ``batch``'s units ascending within a row and rows in order (as ``to_batch`` makes
    them), to find the drawn units a row rated."""
    nnz, device = batch.nnz, batch.items.device
    if nnz == 0:
        empty = torch.zeros(0, dtype=torch.int64, device=device)
        return UnratedSample(empty, empty, torch.zeros(0, device=device))
    n = max(1, round(per_rating * nnz))
    owner = torch.arange(n, device=device, dtype=torch.float64).div_(per_rating).floor_()
    rows = batch.rows.index_select(0, owner.long().clamp_(max=nnz - 1))
    units, probability = proposal.draw(n, generator)
    draws = torch.zeros(batch.size, device=device).index_add_(0, rows, torch.ones(n, device=device))
    keys = batch.rows * batch.n_items + batch.items  # ascending
    drawn = rows * batch.n_items + units
    rated = keys.index_select(0, torch.searchsorted(keys, drawn).clamp_(max=nnz - 1)) == drawn
    weights = (draws.index_select(0, rows) * probability).reciprocal_().masked_fill_(rated, 0.0)
    return UnratedSample(rows, units, weights)
