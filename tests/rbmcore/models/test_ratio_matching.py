"""Stochastic ratio matching of the rated RBM (rbmcore/models/rated.py, ``ratio_matching``): the
closed-form gradient is the gradient of the sampled loss, the sampled loss and gradient are
unbiased estimates of ratio matching over the whole catalogue (written out densely here), and
an RBM trained by it learns co-occurrence like one trained by dense CD."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from rbmcore.data.batch import UserBatch, iter_row_chunks, to_batch
from rbmcore.data.csr import csr_from_lists
from rbmcore.models.rated import RatedRBM
from rbmcore.ops.sampling import UnitProposal, UnratedSample, draw_unrated
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer
from tests.rbmcore.models.test_rated import N_ITEMS, two_taste_users


def small_model(seed: int = 0, n_models: int = 2) -> RatedRBM:
    model = RatedRBM(N_ITEMS, 5, torch.Generator().manual_seed(seed), init_std=0.4,
                     n_models=n_models)  # fmt: skip
    with torch.no_grad():
        model.b_v.normal_(-1.0, 0.5, generator=torch.Generator().manual_seed(seed + 1))
        model.b_h.normal_(0.0, 0.5, generator=torch.Generator().manual_seed(seed + 2))
    return model


def dense_ratio_matching(model: RatedRBM, batch: UserBatch) -> torch.Tensor:
    """sum over members, rows and every catalogue unit of (v_i - P(v_i = 1 | v_-i))^2, divided
    by the rows: ratio matching written out over dense (members, rows, units, hidden) blocks."""
    v = batch.dense_mask().float()  # (B, N)
    a = model.hidden_input(batch)  # (M, B, H)
    sign = 1.0 - 2.0 * v  # -1 rated, +1 unrated
    flipped = a.unsqueeze(2) + sign[None, :, :, None] * model.W.unsqueeze(1)  # (M, B, N, H)
    gap = F.softplus(flipped).sum(-1) - F.softplus(a).sum(-1, keepdim=True)
    logit = model.b_v.unsqueeze(1) + sign * gap
    return ((v - torch.sigmoid(logit)) ** 2).sum() / batch.size


def sampled_ratio_matching(model: RatedRBM, batch: UserBatch, unrated: UnratedSample):
    """The sampled loss written with autograd: rated terms plus weighted drawn terms."""
    a = model.hidden_input(batch)
    total = 0.0
    for sign, rows, units, weights in (
        (-1.0, batch.rows, batch.items, torch.ones(batch.nnz)),
        (1.0, unrated.rows, unrated.units, unrated.weights),
    ):
        f = a[:, rows] + sign * model.W[:, units]
        gap = F.softplus(f).sum(-1) - F.softplus(a).sum(-1)[:, rows]
        p = torch.sigmoid(model.b_v[:, units] + sign * gap)
        target = 1.0 if sign < 0 else 0.0
        total = total + (weights * (target - p) ** 2).sum()
    return total / batch.size


def gradients(model: RatedRBM) -> list[torch.Tensor]:
    return [p.grad.to_dense().clone() for p in (model.W, model.b_v, model.b_h)]


def closed_form(model: RatedRBM, batch: UserBatch, unrated: UnratedSample):
    model.zero_grad()
    loss, _ = model.ratio_matching_loss_and_nll(batch, unrated, model.units_of(batch, unrated))
    loss.backward()
    return loss.detach(), gradients(model)


def proposal_of(csr) -> UnitProposal:
    return UnitProposal(torch.as_tensor(np.bincount(csr.items, minlength=N_ITEMS)))


def test_closed_form_gradient_is_the_gradient_of_the_sampled_loss():
    csr = two_taste_users(6, 0)
    batch, model = to_batch(csr), small_model()
    unrated = draw_unrated(batch, proposal_of(csr), 1.5, torch.Generator().manual_seed(3))
    assert bool((unrated.weights == 0).any())  # some draws hit a rated unit: no term
    loss, ours = closed_form(model, batch, unrated)
    assert model.W.grad.is_sparse
    model.zero_grad()
    reference = sampled_ratio_matching(model, batch, unrated)
    reference.backward()
    torch.testing.assert_close(loss, reference.detach())
    for got, expected in zip(ours, gradients(model), strict=True):
        torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-6)


def test_sampled_loss_and_gradient_are_unbiased_for_the_whole_catalogue():
    """The mean over many draws of the sampled loss and gradient is ratio matching over every
    unit, within 5 standard errors element by element (a proposal without its weights, or
    draws that kept rated units, would be biased far beyond that). Each call averages the
    draws of 50 copies of the same 6 users; 40 calls give the standard error."""
    csr = two_taste_users(6, 1)
    model, proposal = small_model(1), proposal_of(csr)
    model.zero_grad()
    full = dense_ratio_matching(model, to_batch(csr))
    full.backward()
    expected = [full.detach(), *gradients(model)]
    copies = to_batch(csr.take(np.tile(np.arange(len(csr)), 50)))
    generator = torch.Generator().manual_seed(5)
    calls = 40
    samples = [[] for _ in expected]
    for _ in range(calls):
        loss, grads = closed_form(model, copies, draw_unrated(copies, proposal, 1.0, generator))
        for store, value in zip(samples, [loss, *grads], strict=True):
            store.append(value)
    for store, target in zip(samples, expected, strict=True):
        stacked = torch.stack(store).double()
        error = stacked.mean(0) - target.double()
        bound = 5 * stacked.std(0) / calls**0.5 + 1e-6
        assert bool((error.abs() <= bound).all()), float((error.abs() / bound).max())


def test_draws_follow_the_proposal_and_skip_rated_units():
    csr = csr_from_lists([0, 1], [np.array([1, 2, 3]), np.array([0, 29])], [np.ones(3)] * 2,
                         N_ITEMS)  # fmt: skip
    batch = to_batch(csr)
    counts = torch.arange(N_ITEMS) % 4  # some units never rated: uniform part only
    proposal = UnitProposal(counts)
    unrated = draw_unrated(batch, proposal, 4000.0, torch.Generator().manual_seed(0))
    assert unrated.rows.tolist() == [0] * 12_000 + [1] * 8_000  # 4000 per rated unit
    rated = {(0, 1), (0, 2), (0, 3), (1, 0), (1, 29)}
    for r, u, w in zip(unrated.rows.tolist(), unrated.units.tolist(), unrated.weights.tolist(),
                       strict=True):  # fmt: skip
        assert (w == 0.0) == ((r, u) in rated)
    q = proposal.weights.double() / proposal.total
    share = 0.9 * counts.double() / counts.sum() + 0.1 / N_ITEMS
    torch.testing.assert_close(q, share, rtol=1e-9, atol=1e-12)
    seen = torch.bincount(unrated.units, minlength=N_ITEMS).double()
    expected = q * len(unrated.units)
    chi2 = float(((seen - expected) ** 2 / expected).sum())
    assert chi2 < 70  # 29 degrees of freedom: p < 1e-4 beyond this


def test_ratio_matching_learns_the_planted_co_occurrence():
    train = two_taste_users(200, 2)
    config = TrainConfig(kind="rated", n_hidden=10, epochs=30, lr=0.1, val_fraction=0, seed=3,
                         estimator="srm")  # fmt: skip
    model = RatedRBM(N_ITEMS, 10, torch.Generator().manual_seed(3))
    model.init_visible_biases(train)
    trainer = Trainer(model, config, torch.device("cpu"))
    assert trainer.estimator == "srm"
    trainer.fit(train, iter_row_chunks(len(train), 20))
    probe = csr_from_lists(
        [0, 1], [np.array([0, 2, 4, 6]), np.array([11, 13, 15, 17])], [np.ones(4)] * 2, N_ITEMS
    )
    score = model.score_all(to_batch(probe))["score"]
    score[to_batch(probe).dense_mask()] = -float("inf")
    top = torch.topk(score, 5, dim=1).indices
    assert set(top[0].tolist()) <= set(range(10))
    assert set(top[1].tolist()) <= set(range(10, 20))
