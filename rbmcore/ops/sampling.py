"""Random numbers for Gibbs chains: fast uniforms and Bernoulli samples of logits."""

from __future__ import annotations

import math

import torch


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
