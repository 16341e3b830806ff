"""Rating scales (rbmcore/data/scale.py): codes and values, the like threshold per scale, the
softmax kind's states, and the models and metrics that read them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from rbmcore.data.batch import to_batch
from rbmcore.data.csr import csr_from_pairs
from rbmcore.data.scale import (
    HALF_STARS,
    IMPLICIT,
    STARS,
    RatingScale,
    like_states,
    parse_scale,
    rating_states,
)
from rbmcore.metrics import like_and_rating_metrics
from rbmcore.models.factory import build_model, model_from_tensors


def test_codes_values_and_like_thresholds() -> None:
    assert (STARS.levels, HALF_STARS.levels, IMPLICIT.levels) == (5, 10, 1)
    assert HALF_STARS.values().tolist() == [0.5, 1, 1.5, 2, 2.5, 3, 3.5, 4, 4.5, 5]
    assert HALF_STARS.code_of([0.5, 3.0, 5.0]).tolist() == [1, 6, 10]
    # the midpoint rule: 3 on both star scales (the tutorial's "rating >= 3"), 6 on 1..10
    assert (STARS.like_value, STARS.like_code) == (3.0, 3)
    assert (HALF_STARS.like_value, HALF_STARS.like_code) == (3.0, 6)
    ten = parse_scale("1..10")
    assert (ten.levels, ten.like_value, ten.name) == (10, 6.0, "1..10")
    assert parse_scale("0..5").like_value == 3.0  # midpoint 2.5, rounded up to a rating
    assert STARS.with_like(4).like_code == 4
    assert parse_scale("half-stars") == HALF_STARS
    assert parse_scale("0.5..5/0.5").name == "half-stars"
    assert RatingScale.from_dict(HALF_STARS.with_like(3.5).to_dict()).like_code == 7
    assert RatingScale.from_dict(None) == STARS  # a model saved before scales
    assert RatingScale.from_dict(IMPLICIT.to_dict()).implicit


@pytest.mark.parametrize(
    ("text", "message"),
    [("1-5", "LOW..HIGH"), ("5..1", "low < high"), ("1..5/0.3", "does not divide"),
     ("1..500", "at most 100 levels")],
)  # fmt: skip
def test_bad_scales_are_refused(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_scale(text)
    with pytest.raises(ValueError, match="not a rating of the scale"):
        STARS.with_like(3.5)


def test_state_maps() -> None:
    binary = like_states(HALF_STARS)
    assert binary.state_of_code[1:].tolist() == [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    assert binary.first_like == 1
    ten = rating_states(HALF_STARS)
    assert ten.n_states == 10 and ten.first_like == 5
    assert ten.values.tolist() == HALF_STARS.values().tolist()
    five = rating_states(HALF_STARS, 5)  # {0.5,1,1.5} {2,2.5} {3,3.5} {4,4.5} {5}
    assert five.state_of_code[1:].tolist() == [0, 0, 0, 1, 1, 2, 2, 3, 3, 4]
    assert five.values.tolist() == [1.0, 2.25, 3.25, 4.25, 5.0]
    assert five.first_like == 2
    assert rating_states(STARS).state_of_code[1:].tolist() == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="implicit"):
        rating_states(IMPLICIT)


def test_softmax_on_half_stars_predicts_on_the_scale() -> None:
    csr = csr_from_pairs(
        np.array([1, 1, 2, 2, 3]), np.array([0, 1, 0, 2, 1]), np.array([1, 10, 6, 7, 4]), 3
    )
    for states, expected in ((0, 10), (5, 5)):
        model = build_model("softmax", 3, 4, torch.Generator().manual_seed(0),
                            scale=HALF_STARS, states=states)  # fmt: skip
        model.init_visible_biases(csr)
        assert model.n_states == expected
        with torch.no_grad():
            out = model.score_all(to_batch(csr))
        assert float(out["pred_rating"].min()) >= 0.5 and float(out["pred_rating"].max()) <= 5.0
        again = model_from_tensors(model.hyperparameters(), model.state_dict())
        assert again.scale == HALF_STARS and again.n_states == expected
        with torch.no_grad():
            assert torch.allclose(again.score_all(to_batch(csr))["pred_rating"],
                                  out["pred_rating"])  # fmt: skip
    binary = build_model("binary", 3, 4, scale=HALF_STARS)
    # codes 1..5 (0.5..2.5) are dislikes, 6..10 (3..5) likes
    assert binary.states_of(torch.arange(1, 11)).tolist() == [0] * 5 + [1] * 5
    with pytest.raises(ValueError, match="needs ratings"):
        build_model("binary", 3, 4, scale=IMPLICIT)
    rated = build_model("rated", 3, 4, scale=IMPLICIT, states=0)
    assert model_from_tensors(rated.hyperparameters(), rated.state_dict()).scale.implicit


def test_metrics_read_codes_on_their_scale() -> None:
    users = np.array([1, 1, 2])
    codes = np.array([6, 5, 10])  # 3.0 (like), 2.5 (dislike), 5.0 (like)
    p_like = np.array([0.9, 0.2, 0.6])
    out = like_and_rating_metrics(users, codes, p_like, np.array([3.0, 2.5, 4.0]), HALF_STARS)
    assert out["like_error"] == 0.0 and out["auc"] == 1.0
    assert out["rmse"] == pytest.approx(np.sqrt(1 / 3))
    stars = like_and_rating_metrics(users, codes, p_like, None)  # read as five stars: all likes
    assert np.isnan(stars["auc"])
    assert like_and_rating_metrics(users, np.ones(3, int), p_like, None, IMPLICIT) == {}
