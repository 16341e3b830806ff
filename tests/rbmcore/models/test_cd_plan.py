"""The CD-k step of the categorical RBMs on a ``GibbsPlan`` (rbmcore/models/categorical.py): the
same learning rule as autograd through free energies, the same visible distribution, and the
GPU's plan of the binary kind run on the CPU."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import csr_from_lists
from rbmcore.models.factory import build_model

N_ITEMS = 30


def batch_with_empty_rows(high: int = 6):
    """Five users (two with no ratings), ratings drawn from 1..high-1."""
    rng = np.random.default_rng(0)
    lists = [np.sort(rng.choice(N_ITEMS, size, replace=False)) for size in (5, 0, 12, 1, 7)]
    ratings = [rng.integers(1, high, len(x)) for x in lists]
    return to_batch(csr_from_lists(np.arange(5), lists, ratings, N_ITEMS))


def model_of(kind: str):
    model = build_model(kind, N_ITEMS, 8, torch.Generator().manual_seed(1), init_std=0.5)
    with torch.no_grad():
        model.b_v.normal_(generator=torch.Generator().manual_seed(2))
        model.u_scale.mul_(1.3)
    return model


def replay_chain(model, batch, offsets, k: int, seed: int) -> torch.Tensor:
    """The model states ``cd_loss`` reaches with a generator seeded ``seed``."""
    generator = torch.Generator().manual_seed(seed)
    data = model.states_of(batch.ratings)
    with torch.no_grad():
        plan = model.gibbs_plan(batch, offsets, data)
        x = model.plan_hidden_input(batch, plan, model.plan_encode(plan, data))
        _, sample = model.plan_chain(batch, plan, x, k, generator)
    return model.plan_states(plan, sample)


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_cd_gradient_equals_autograd_through_free_energies(kind):
    batch, model = batch_with_empty_rows(), model_of(kind)
    loss = model.cd_loss(batch, 3, torch.Generator().manual_seed(5))
    loss.backward()
    closed_form = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    data = model.states_of(batch.ratings)
    offsets = model.user_offsets(batch, data)
    states = replay_chain(model, batch, offsets, 3, seed=5)
    assert not torch.equal(states, data)
    reference = (
        model.free_energy(batch, data, offsets).mean()
        - model.free_energy(batch, states, offsets).mean()
    )
    reference.backward()
    torch.testing.assert_close(loss.detach(), reference.detach())
    for name, p in model.named_parameters():
        torch.testing.assert_close(closed_form[name], p.grad, msg=name)


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_plan_logits_give_the_visible_distribution(kind):
    """K = 2: the plan's logit is state 1's minus state 0's, so sigmoid(it) = softmax[1]."""
    batch, model = batch_with_empty_rows(), model_of(kind)
    h = torch.rand(batch.size, 8, generator=torch.Generator().manual_seed(3))
    offsets = model.batch_offsets(batch).detach()
    with torch.no_grad():
        expected = model.visible_logits(h, batch, offsets)
        plan = model.gibbs_plan(batch, offsets, model.states_of(batch.ratings))
        got = model.plan_logits(h, batch, plan)
    if kind == "binary":
        expected = (expected[:, 1] - expected[:, 0]).unsqueeze(1)
    torch.testing.assert_close(got, expected)


def test_binary_states_are_sampled_with_the_softmax_probabilities():
    batch, model = batch_with_empty_rows(), model_of("binary")
    h = torch.rand(batch.size, 8, generator=torch.Generator().manual_seed(3))
    offsets = model.batch_offsets(batch).detach()
    with torch.no_grad():
        p_like = torch.softmax(model.visible_logits(h, batch, offsets), -1)[:, 1]
        plan = model.gibbs_plan(batch, offsets, model.states_of(batch.ratings))
        generator = torch.Generator().manual_seed(4)
        draws = torch.stack(
            [
                model.plan_states(plan, model.plan_sample_v(h, batch, plan, generator))
                for _ in range(4000)
            ]
        )
    assert (draws.float().mean(0) - p_like).abs().max() < 0.03


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_nll_of_the_cd_pass_is_the_mean_field_reconstruction_nll(kind):
    batch, model = batch_with_empty_rows(), model_of(kind)
    _, nll = model.cd_loss_and_nll(batch, 1, torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = model.visible_logits(model.hidden_probs(batch), batch, model.batch_offsets(batch))
    states = model.states_of(batch.ratings)
    expected = -torch.log_softmax(logits, -1).gather(1, states.unsqueeze(1)).squeeze(1)
    assert not nll.requires_grad
    torch.testing.assert_close(nll, expected)


@pytest.mark.parametrize("high,reference", [(6, 1), (4, 0)])
def test_binary_hidden_input_from_the_reference_state_equals_the_full_sum(high, reference):
    """K = 2 on the CPU: the majority state's hidden input +- W1 - W0 over the other entries."""
    batch, model = batch_with_empty_rows(high), model_of("binary")
    data = model.states_of(batch.ratings)
    with torch.no_grad():
        plan = model.gibbs_plan(batch, model.batch_offsets(batch), data)
        assert plan.reference == reference
        for seed in range(3):
            states = torch.randint(0, 2, data.shape, generator=torch.Generator().manual_seed(seed))
            expected = model.hidden_input(batch, states)
            sample = model.plan_encode(plan, states)
            assert torch.equal(model.plan_states(plan, sample), states)
            torch.testing.assert_close(model.plan_hidden_input(batch, plan, sample), expected)


def test_the_gpu_plan_of_the_binary_kind_runs_the_same_chain_on_the_cpu():
    """K = 2 without the CPU's reference state and item-major product (what CUDA runs): the
    same logits and hidden inputs, states as the chain's encoding, and a chain of valid
    states; so the GPU path is exercised where CI has no GPU."""
    batch, model = batch_with_empty_rows(), model_of("binary")
    data = model.states_of(batch.ratings)
    offsets = model.batch_offsets(batch).detach()
    h = torch.rand(batch.size, 8, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        cpu = model.gibbs_plan(batch, offsets, data)
        gpu = model.gibbs_plan(batch, offsets, data, cpu_plan=False)
        assert cpu.reference is not None and gpu.reference is None and gpu.item_pattern is None
        logits = model.plan_logits(h, batch, gpu)
        torch.testing.assert_close(logits, model.plan_logits(h, batch, cpu))
        assert torch.equal(model.plan_encode(gpu, data), data)
        expected = model.hidden_input(batch, data)
        for plan in (cpu, gpu):
            x = model.plan_hidden_input(batch, plan, model.plan_encode(plan, data))
            torch.testing.assert_close(x, expected)
        x, sample = model.plan_chain(batch, gpu, expected, 3, torch.Generator().manual_seed(4))
        states = model.plan_states(gpu, sample)
        assert states.dtype == torch.int64 and set(states.unique().tolist()) <= {0, 1}
        torch.testing.assert_close(x, model.hidden_input(batch, states))


@pytest.mark.parametrize("kind", ["binary", "softmax"])
def test_the_gpu_gradient_scatter_gives_the_cpu_sums_on_the_cpu(kind):
    """``scatter_units(sync_free=True)`` (CUDA's: no ``nonzero``, counts by a scatter-add, a
    zero row for the entries whose chain stayed) gives the same sums as the CPU's selection."""
    batch, model = batch_with_empty_rows(), model_of(kind)
    data = model.states_of(batch.ratings)
    states = replay_chain(model, batch, model.batch_offsets(batch).detach(), 3, seed=5)
    assert bool((states != data).any()) and bool((states == data).any())
    g = torch.Generator().manual_seed(6)
    p_model, p_data = torch.rand(batch.size, 8, generator=g), torch.rand(batch.size, 8, generator=g)
    scale = torch.tensor(0.25)
    cpu = model.scatter_units(batch, states, data, p_model, p_data, scale, sync_free=False)
    gpu = model.scatter_units(batch, states, data, p_model, p_data, scale, sync_free=True)
    assert torch.equal(cpu, gpu)
