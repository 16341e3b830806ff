"""The training configuration (rbmcore/training/config.py) and the model it builds
(rbmcore/training/build.py): how a rated RBM is trained by size, and its item-based way."""

from __future__ import annotations

import pytest
import torch

from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.build import model_for_config
from rbmcore.training.config import (
    AUTO_DENSE_UNITS,
    HYBRID_PRESETS,
    KIND_DEFAULTS,
    LAYER_DEFAULTS,
    TrainConfig,
    rbm_machines_only,
)
from rbmcore.training.lazy_sgd import LazySGD
from rbmcore.training.trainer import Trainer


def test_rated_estimator_is_chosen_by_the_visible_units():
    """``estimator = "auto"`` (the rated kind's default): dense CD up to AUTO_DENSE_UNITS
    visible units, ratio matching above, for the item-based way (visible units = users) too;
    "cd" / "srm" force one; other kinds train by CD."""
    config = TrainConfig(kind="rated")
    assert config.estimator == "auto" and config.item_based == "auto"
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


def test_rated_item_way_is_skipped_only_where_dense_over_many_cells():
    """``item_based = "auto"`` (the default) skips the item-based way only where dense CD would
    train it (its visible units, the users, at most AUTO_DENSE_UNITS) over more than
    AUTO_ITEM_CELLS user x item cells: on at u1 and ml-25m sizes, off at ml-1m's; ``true``
    trains it at any size."""
    small, middle, large = (943, 1_682), (6_040, 3_706), (162_541, 59_047)  # users, items
    assert TrainConfig(kind="rated").item_based == "auto"
    config = TrainConfig(kind="rated", n_hidden=4, item_based=True, item={"n_hidden": 3})
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


def test_the_hybrid_kinds_are_presets_of_their_parts():
    """``dbn`` and ``autoencoder`` are hybrids of other machines; a user's part table goes
    over the preset's, and every part takes its own kind's defaults."""
    dbn = TrainConfig(kind="dbn", like={"layers": [20, 10]})
    rated, like = dbn.part("rated"), dbn.part("like")
    assert (rated.kind, rated.layers, rated.item_based) == ("rated", [100], False)
    assert (like.kind, like.layers) == ("binary", [20, 10])
    assert rated.lr == KIND_DEFAULTS["rated"]["lr"] and like.lr == KIND_DEFAULTS["binary"]["lr"]
    auto = TrainConfig(kind="autoencoder", n_hidden=7)
    assert (auto.part("rated").kind, auto.part("like").kind) == ("multvae", "autorec")
    assert auto.part("rated").n_hidden == 7  # a value set at the top applies to both parts
    assert auto.part("rated").patience == KIND_DEFAULTS["multvae"]["patience"]
    assert TrainConfig().like_kind == HYBRID_PRESETS["hybrid"]["like_kind"]
    assert HYBRID_PRESETS["dbn"]["rated"]["layers"] == [100]  # the preset is not changed


def test_a_blend_trains_each_machine_with_its_own_defaults():
    config = TrainConfig(kind="softmax+autorec", seed=3, members=[{}, {"n_hidden": 9}])
    first, second = config.blend_member(0), config.blend_member(1)
    assert (first.kind, first.n_hidden, first.seed) == ("softmax", 100, 3)
    assert (second.kind, second.n_hidden, second.like_slope) == ("autorec", 9, 2.0)
    with pytest.raises(ValueError, match="blend"):
        TrainConfig(kind="rated+binary")
    assert TrainConfig(kind="autorec").model_params() == {"like_slope": 2.0, "dropout": 0.0}
    assert TrainConfig(kind="binary", layers=[5]).model_params() == {"layers": [5]}


def test_layer_configs_of_a_deep_belief_net():
    config = TrainConfig(kind="rated", layers=[30, 20], layer={"epochs": [4, 6], "lr": 0.2})
    second = config.layer_config(2)
    assert (second.n_hidden, second.epochs, second.lr, second.seed) == (20, 6, 0.2, 44)
    assert config.layer_config(1).weight_decay == LAYER_DEFAULTS["weight_decay"]


@pytest.mark.parametrize(
    "settings, message",
    [
        ({"kind": "hybrid", "like_kind": "rated"}, "like_kind"),
        ({"kind": "hybrid", "rated_kind": "autorec"}, "rated_kind"),
        ({"kind": "autorec", "layers": [3]}, "layers"),
        ({"kind": "autoencoder", "like": {"layers": [3]}}, "layers"),
        ({"kind": "binary+autorec", "members": [{}]}, "2 machines"),
        ({"kind": "dbn", "rated": {"item_based": "often"}}, "item_based"),
    ],
)
def test_a_structure_that_cannot_be_built_is_refused_when_configured(settings, message):
    with pytest.raises(ValueError, match=message):
        TrainConfig(**settings)


def test_distributed_training_reduces_blends_to_their_rbms():
    config = rbm_machines_only(TrainConfig())
    assert (config.rated_kind, config.like_kind) == ("rated", "binary")
    assert rbm_machines_only(TrainConfig(kind="softmax+autorec")).kind == "softmax"
    for kind in ("autoencoder", "dbn", "multvae"):
        with pytest.raises(ValueError):
            rbm_machines_only(TrainConfig(kind=kind))
