"""jobs/train.py pieces that need no Spark: the training flags of ``rbm-reco run`` and
``rbm-reco train`` and how they override the ``[train]`` settings."""

from __future__ import annotations

from jobs import run as run_job
from jobs import train as train_job
from jobs.common.args import parse_job_args
from jobs.common.config import resolve_conf
from jobs.train import train_overrides, train_settings
from rbmcore.training.composite import member_config
from rbmcore.training.config import TrainConfig


def test_the_epochs_flag_caps_every_part_the_item_based_ways_too():
    argv = ["--out", "/tmp/unused", "--epochs", "1", "--set", "train.item.lr=0.02"]
    args = parse_job_args("rbm-reco run", None, run_job.add_arguments, argv)
    config, _ = train_settings(resolve_conf(args, train_overrides(args)))
    rated = config.part("rated")
    like = member_config(config.part("like"), 2)
    blend = TrainConfig(**{**config.to_dict(), "like_kind": "binary+autorec"})
    autorec = blend.part("like").blend_member(1)
    assert [rated.epochs, rated.item_way().epochs, like.epochs, like.item_way().epochs] == [1] * 4
    assert [autorec.epochs, autorec.item_way().epochs] == [1, 1]
    assert like.item_way().lr == 0.02  # the rest of [train.item] is kept
    dbn = TrainConfig(**{**config.to_dict(), "kind": "dbn", "rated_kind": None, "like_kind": None})
    assert dbn.part("rated").layer_config(1).epochs == 1  # a deep belief net's layers too
    defaults = parse_job_args("rbm-reco run", None, run_job.add_arguments, ["--out", "/x"])
    config, _ = train_settings(resolve_conf(defaults, train_overrides(defaults)))
    assert config.part("rated").item_way().epochs == 150  # without the flag: the item default


def test_run_and_train_take_the_same_training_flags():
    flags = ["--kind", "binary", "--epochs", "2", "--hidden", "7", "--lr", "0.1", "--seed", "3"]
    flags += ["--device", "cpu", "--resume"]
    run_args = parse_job_args("rbm-reco run", None, run_job.add_arguments, ["--out", "/x", *flags])
    train_args = parse_job_args("rbm-reco train", None, train_job.add_arguments,
                                ["--out", "/x", *flags])  # fmt: skip
    overrides = train_overrides(run_args)
    assert overrides == train_overrides(train_args)
    assert overrides["train"]["n_hidden"] == 7 and run_args.resume and train_args.resume
