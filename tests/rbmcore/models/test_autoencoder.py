"""The autoencoders (rbmcore/models/autoencoder.py): AutoRec's code hears the rated items only,
its item-based way scores what its pairs predict, Mult-VAE/DAE's P(rated) is a probability
that grows with the softmax share, and training through AutoencoderTrainer lowers the loss
and resumes exactly from a checkpoint (Adam's state included)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import csr_from_lists, transpose_csr
from rbmcore.io.checkpoint import DONE_MARKER
from rbmcore.models.autoencoder import AutoRec, ItemBasedAutoRec, MultVAE
from rbmcore.training.autoencoder import AutoencoderTrainer
from rbmcore.training.config import TrainConfig
from tests.rbmcore.support import N_ITEMS, random_users

CPU = torch.device("cpu")


def test_autorec_code_is_the_rated_items_weighted_by_their_ratings():
    """Missing, not zero: a user's code is sigmoid(b_h + sum of rating x V[item]) over the
    rated items; an unrated item changes nothing, a rated one does."""
    model = AutoRec(N_ITEMS, 6, torch.Generator().manual_seed(0))
    users = random_users(3, seed=1)
    batch = to_batch(users)
    code = model.code(batch)
    row = users.take([0])
    by_hand = torch.sigmoid(
        model.b_h + (torch.as_tensor(row.ratings, dtype=torch.float32)[:, None]
                     * model.V[torch.as_tensor(row.items)]).sum(0)
    )  # fmt: skip
    assert torch.allclose(code[0], by_hand, atol=1e-6)
    unrated = int(np.setdiff1d(np.arange(N_ITEMS), row.items)[0])
    assert torch.allclose(model.code(to_batch(row)), code[:1])  # the other rows do not matter
    model.V.data[unrated] += 5.0  # an unrated item's weights do not reach the code
    assert torch.equal(model.code(batch)[0], code[0])


def test_autorec_outputs_are_clipped_ratings_and_like_probabilities():
    model = AutoRec(N_ITEMS, 6, torch.Generator().manual_seed(0), like_slope=2.0)
    with torch.no_grad():
        model.b_v.copy_(torch.linspace(-3, 9, N_ITEMS))  # reconstructions far outside 1..5
    out = model.score_all(to_batch(random_users(4, seed=2)))
    assert out["pred_rating"].min() >= 1 and out["pred_rating"].max() <= 5
    assert torch.equal(out["score"], out["p_like"])
    at_cut = model.outputs(torch.tensor([2.5]))["p_like"]
    assert torch.allclose(at_cut, torch.tensor([0.5]))  # like = rating >= 3: 2.5 is the cut


def test_item_based_autorec_pairs_match_its_catalogue_scores_and_flag_unknown_users():
    users = random_users(12, seed=3)
    inner = AutoRec(len(users), 5, torch.Generator().manual_seed(1))
    item_way = ItemBasedAutoRec(inner, N_ITEMS)
    item_way.init_visible_biases(users)
    item_way.set_item_states(users)
    assert torch.allclose(item_way.item_code, inner.code(to_batch(transpose_csr(users))))
    strangers = random_users(2, seed=4, first_id=900)
    batch = to_batch(users.take([0, 5]))
    scores, known = item_way.score_all_known(batch)
    assert known.all()
    items = torch.tensor([0, 7, 3])
    rows = torch.tensor([0, 1, 1])
    pairs, pair_known = item_way.predict_pairs_known(batch, items, rows)
    assert pair_known.all()
    for name in ("p_like", "pred_rating"):
        assert torch.allclose(pairs[name], scores[name][rows, items], atol=1e-6)
    _, unknown = item_way.score_all_known(to_batch(strangers))
    assert not unknown.any()
    with pytest.raises(ValueError, match="training order"):
        item_way.set_item_states(users.take(np.arange(len(users))[::-1]))


@pytest.mark.parametrize("variational", [False, True])
def test_multvae_rated_probability_is_a_probability_ordered_like_the_share(variational):
    model = MultVAE(N_ITEMS, 4, torch.Generator().manual_seed(0), encoder_hidden=3,
                    variational=variational)  # fmt: skip
    batch = to_batch(random_users(5, seed=6))
    p_rated = model.score_all(batch)["p_rated"]
    shares = model.log_shares(batch).exp()
    assert torch.allclose(shares.sum(1), torch.ones(5), atol=1e-5)
    assert ((p_rated > 0) & (p_rated < 1)).all()
    order = torch.argsort(shares, dim=1)
    assert (torch.diff(torch.gather(p_rated, 1, order), dim=1) >= -1e-7).all()
    n = torch.bincount(batch.rows, minlength=5).float()
    assert torch.allclose(p_rated[:, 0], 1 - (1 - shares[:, 0]) ** n, atol=1e-5)


def test_multvae_kl_weight_is_annealed_and_absent_without_a_gaussian_code():
    vae = MultVAE(N_ITEMS, 4, variational=True, beta=0.2, anneal_epochs=10)
    assert [vae.kl_weight(e) for e in (0, 5, 10, 50)] == pytest.approx([0, 0.1, 0.2, 0.2])
    assert MultVAE(N_ITEMS, 4, variational=False).kl_weight(50) == 0.0


def two_tastes(n_users: int, seed: int):
    """Users who rate 6 of the first half of the catalogue (high) or of the second (low):
    structure an autoencoder can learn."""
    rng = np.random.default_rng(seed)
    half = N_ITEMS // 2
    items = [np.sort(rng.choice(half, 6, replace=False) + half * (u % 2)) for u in range(n_users)]
    ratings = [np.full(6, 5 - 3 * (u % 2)) for u in range(n_users)]
    return csr_from_lists(np.arange(n_users), items, ratings, N_ITEMS)


def autoencoder_fit(kind: str, epochs: int, folder=None, resume=False, **settings):
    users = two_tastes(60, seed=7)
    config = TrainConfig(kind=kind, n_hidden=8, epochs=epochs, item_based=False, seed=3,
                         lr=0.01, **settings)  # fmt: skip
    machine = AutoRec if kind == "autorec" else MultVAE
    model = machine(N_ITEMS, 8, torch.Generator().manual_seed(3))
    model.init_visible_biases(users)
    trainer = AutoencoderTrainer(model, config, CPU)
    batches = np.array_split(np.arange(len(users)), 4)
    trainer.fit_checkpointed(folder, resume, "test", train=users, batches=batches)
    return trainer


@pytest.mark.parametrize("kind", ["autorec", "multvae"])
def test_training_lowers_the_loss(kind):
    history = autoencoder_fit(kind, 12).history
    assert history[-1]["train_loss"] < 0.85 * history[0]["train_loss"]
    assert "cd_k" not in history[0]


def test_a_resumed_autoencoder_continues_exactly(tmp_path):
    """Adam's moments and step count are in the checkpoint: 2 epochs, then resumed to 4, give
    the weights of 4 epochs straight (the denoising corruption is drawn per epoch)."""
    straight = autoencoder_fit("multvae", 4, dropout=0.5)
    autoencoder_fit("multvae", 2, tmp_path / "ckpt", dropout=0.5)
    (tmp_path / "ckpt" / DONE_MARKER).unlink()  # as if killed after its second epoch
    resumed = autoencoder_fit("multvae", 4, tmp_path / "ckpt", resume=True, dropout=0.5)
    assert [r["epoch"] for r in resumed.history] == [1, 2, 3, 4]
    for name, value in straight.model.state_dict().items():
        assert torch.equal(resumed.model.state_dict()[name], value), name
