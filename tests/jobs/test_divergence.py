"""Training that diverges (NaN/Inf weights) exits 6, keeps the last good checkpoint (of the
diverging way, for a two-way model) and writes no model."""

from __future__ import annotations

import shutil
from pathlib import Path

from jobs.common.config import deep_merge
from jobs.train import run_train
from jobs.training.model_files import checkpoint_dir
from rbmcore.io.checkpoint import load_checkpoint
from tests.jobs.support import exit_of, make_trainer, one_error_line


def test_divergence_exits_6_and_keeps_the_last_good_checkpoint(spark, run, capsys):
    # lr * lr_decay ** epoch: a sane first epoch, then an absurd learning rate -> Inf/NaN.
    conf = deep_merge(run.conf, {"train": {"epochs": 3, "lr_decay": 1e37}})
    model = run.out / "model_nan"
    ckpt = Path(checkpoint_dir(str(model)))
    code, err = exit_of(lambda: run_train(spark, conf, str(run.out), str(model)), capsys)
    assert code == 6
    line = one_error_line(err)
    assert "training diverged at epoch 2" in line
    assert f"the last good checkpoint (epoch 1) is kept in {ckpt}" in line
    assert not model.exists()
    trainer = make_trainer(run.ingest["items"], conf)
    assert load_checkpoint(ckpt, trainer) == 1
    assert trainer.weights_finite() and trainer.history[-1]["epoch"] == 1
    shutil.rmtree(ckpt)


def test_divergence_in_a_way_of_a_two_way_model_names_its_checkpoint(spark, run, capsys):
    """A two-way model diverging in its user-based way: exit 6, and the message names the way
    and that way's last good checkpoint; no model is written."""
    conf = deep_merge(run.conf, {"train": {"epochs": 3, "lr_decay": 1e37, "item_based": True}})
    model = run.out / "model_nan_two_way"
    part = Path(checkpoint_dir(str(model))) / "user"
    code, err = exit_of(lambda: run_train(spark, conf, str(run.out), str(model)), capsys)
    assert code == 6
    line = one_error_line(err)
    assert "the user-based way: training diverged at epoch 2" in line
    assert f"the last good checkpoint (epoch 1) is kept in {part}" in line
    assert f"the model at {model} is unchanged" in line
    assert not model.exists()
    shutil.rmtree(checkpoint_dir(str(model)))
