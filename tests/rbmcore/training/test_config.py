"""The training configuration (rbmcore/training/config.py) and the model it builds
(rbmcore/training/build.py): how a rated RBM is trained by size, and its item-based way."""

from __future__ import annotations

import pytest
import torch

from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.build import model_for_config
from rbmcore.training.config import AUTO_DENSE_UNITS, TrainConfig
from rbmcore.training.lazy_sgd import LazySGD
from rbmcore.training.trainer import Trainer


def test_rated_estimator_is_chosen_by_the_visible_units():
    """``estimator = "auto"`` (the rated kind's default): dense CD up to AUTO_DENSE_UNITS
    visible units, ratio matching above, for the item-based way (visible units = users) too;
    "cd" / "srm" force one; other kinds train by CD."""
    config = TrainConfig(kind="rated")
    assert config.estimator == "auto" and config.item_based is True
    assert config.estimator_for(1_682) == "cd" and config.estimator_for(59_047) == "srm"
    assert config.item_way().estimator_for(162_541) == "srm"
    assert TrainConfig(kind="rated", estimator="cd").item_way().estimator_for(162_541) == "cd"
    forced = TrainConfig(kind="rated", estimator="srm", item={"estimator": "cd"})
    assert forced.estimator_for(10) == "srm" and forced.item_way().estimator_for(10**6) == "cd"
    assert TrainConfig(kind="binary").estimator_for(10**6) == "cd"
    hybrid = TrainConfig(kind="hybrid", estimator="srm", unrated_per_rating=2.0)
    assert hybrid.part("rated").estimator == "srm"
    assert hybrid.part("rated").unrated_per_rating == 2.0
    assert hybrid.part("like").estimator is None  # the like part trains by CD
    with pytest.raises(ValueError, match="rated RBMs only"):
        TrainConfig(kind="binary", estimator="srm")
    with pytest.raises(ValueError, match="estimator"):
        TrainConfig(kind="rated", estimator="sometimes")
    with pytest.raises(ValueError, match="unrated_per_rating"):
        TrainConfig(kind="rated", unrated_per_rating=0)


def test_trainer_takes_the_estimator_and_its_optimizer_from_the_size():
    wide, narrow = AUTO_DENSE_UNITS + 1, AUTO_DENSE_UNITS
    config = TrainConfig(kind="rated", n_hidden=3, n_models=1, item_based=False)
    for units, estimator in ((wide, "srm"), (narrow, "cd")):
        trainer = Trainer(model_for_config(config, units), config, torch.device("cpu"))
        assert trainer.estimator == estimator
        assert isinstance(trainer.optimizer, LazySGD) == (estimator == "srm")


def test_rated_item_way_is_on_at_every_size_unless_auto_and_dense_over_many_cells():
    """``item_based = true`` (the default) trains the item-based way at any size; "auto" skips
    it where dense CD would train it (its visible units, the users, at most AUTO_DENSE_UNITS)
    over more than AUTO_ITEM_CELLS user x item cells."""
    small, middle, large = (943, 1_682), (6_040, 3_706), (162_541, 59_047)  # users, items
    config = TrainConfig(kind="rated", n_hidden=4, item={"n_hidden": 3})
    assert all(config.wants_item_way(*size) for size in (small, middle, large))
    model = model_for_config(config, middle[1], torch.Generator().manual_seed(0), middle[0])
    assert isinstance(model, TwoWayRBM)
    auto = TrainConfig(kind="rated", n_hidden=4, item_based="auto", item={"n_hidden": 3})
    assert auto.wants_item_way(*small) and auto.wants_item_way(*large)  # dense; ratio matching
    assert not auto.wants_item_way(*middle)  # dense over 22M cells
    assert not isinstance(model_for_config(auto, 3_706, None, 6_040), TwoWayRBM)
    dense = TrainConfig(kind="rated", item_based="auto", estimator="cd")
    assert not dense.wants_item_way(*large)
    assert not TrainConfig(kind="rated", item_based=False).wants_item_way(*small)
    with pytest.raises(ValueError, match="item_based"):
        TrainConfig(kind="rated", item_based="sometimes")
