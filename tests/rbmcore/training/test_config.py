"""The training configuration (rbmcore/training/config.py) and the model it builds
(rbmcore/training/build.py): the rated kind's item-based way is on or off by data size."""

from __future__ import annotations

import pytest
import torch

from rbmcore.models.twoway import TwoWayRBM
from rbmcore.training.build import model_for_config
from rbmcore.training.config import TrainConfig


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
