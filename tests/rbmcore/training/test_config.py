"""The training configuration (rbmcore/training/config.py) and the model it builds
(rbmcore/training/build.py): the rated kind's item-based way is on or off by data size."""

from __future__ import annotations

import pytest
import torch

from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.build import model_for_config
from rbmcore.training.config import (
    HYBRID_PRESETS,
    KIND_DEFAULTS,
    LAYER_DEFAULTS,
    TrainConfig,
    rbm_machines_only,
)


def test_rated_item_part_is_automatic_by_size():
    """``item_based = "auto"`` (the rated kind's default) trains the dense-over-users item
    part on MovieLens-100k-sized data, not on ml-1m-sized data; true/false force it."""
    config = TrainConfig(kind="rated", n_hidden=4, item={"n_hidden": 3})
    assert config.item_based == "auto"
    assert config.wants_item_way(943, 1_682) and not config.wants_item_way(6_040, 3_706)
    small = model_for_config(config, 1_682, torch.Generator().manual_seed(0), 943)
    large = model_for_config(config, 3_706, torch.Generator().manual_seed(0), 6_040)
    assert isinstance(small, TwoWayRBM) and not isinstance(large, TwoWayRBM)
    forced = TrainConfig(kind="rated", n_hidden=4, item_based=True, item={"n_hidden": 3})
    assert isinstance(model_for_config(forced, 3_706, None, 6_040), TwoWayRBM)
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
