"""Random numbers for Gibbs chains (rbmcore/ops/sampling.py) on the CPU: 16-bit uniforms, four
from each 64-bit draw, and Bernoulli samples of logits."""

from __future__ import annotations

import torch

from rbmcore.ops.sampling import sample_of_logits, skip_sample, uniform16


def test_uniform16_lanes_are_uniform_over_16_bits():
    """Every one of the four 16-bit lanes of a draw is uniform on 0..65535 (its top bit set
    half the time: a draw from [0, 2**63) would leave the last lane's always clear)."""
    u = uniform16((400_000,), torch.Generator().manual_seed(0), torch.device("cpu"))
    assert u.dtype == torch.uint16 and u.shape == (400_000,)
    lanes = u.to(torch.int64).view(-1, 4)
    for lane in lanes.T:
        assert abs(lane.double().mean().item() - 32767.5) < 400  # ~7 standard errors
        top_bit = (lane >= 32768).double().mean().item()
        assert abs(top_bit - 0.5) < 0.01
    counts = torch.bincount(lanes.reshape(-1) >> 8, minlength=256).double()
    expected = len(lanes.reshape(-1)) / 256
    chi2 = ((counts - expected) ** 2 / expected).sum().item()
    assert chi2 < 350  # 255 degrees of freedom: p < 1e-4 beyond this


def test_uniform16_is_a_function_of_the_generator():
    a = uniform16((5, 7), torch.Generator().manual_seed(3), torch.device("cpu"))
    b = uniform16((5, 7), torch.Generator().manual_seed(3), torch.device("cpu"))
    c = uniform16((5, 7), torch.Generator().manual_seed(4), torch.device("cpu"))
    assert a.shape == (5, 7)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_sample_of_logits_has_the_sigmoid_probabilities():
    x = torch.tensor([-40.0, -3.0, -0.5, 0.0, 0.7, 2.5, 40.0]).repeat(50_000, 1)
    sample = sample_of_logits(x, torch.Generator().manual_seed(1))
    assert sample.dtype == x.dtype and set(sample.unique().tolist()) <= {0.0, 1.0}
    freq = sample.mean(0)
    p = torch.sigmoid(x[0])
    se = (p * (1 - p) / len(x)).sqrt()
    assert (freq - p).abs().max().item() < (5 * se + 2**-16).max().item()
    assert freq[0].item() == 0.0 and freq[-1].item() == 1.0


def test_skip_sample_advances_the_generator_like_a_sample():
    x = torch.randn(10, 13, generator=torch.Generator().manual_seed(2))
    drawn, skipped = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    sample_of_logits(x, drawn)
    skip_sample(x.shape, skipped, x.device)
    assert torch.equal(torch.rand(4, generator=drawn), torch.rand(4, generator=skipped))


def test_outcome_zero_is_the_same_sample_flipped():
    x = torch.randn(300, 40, generator=torch.Generator().manual_seed(6))
    ones = sample_of_logits(x, torch.Generator().manual_seed(7))
    zeros = sample_of_logits(x, torch.Generator().manual_seed(7), outcome=0)
    assert 0 < ones.mean().item() < 1
    assert torch.equal(zeros, 1 - ones)
