"""Resumable training (jobs/train.py with rbmcore/io/checkpoint.py): a run killed after a
checkpoint, in selection or in the refit, resumes to the uninterrupted run's model; the refit on
all ratings (on or off); corrupt or mismatched checkpoints are refused with exit 5; a checkpoint
survives a kill between its renames."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from jobs.common.config import deep_merge, load_conf
from jobs.train import run_train
from jobs.training.model_files import checkpoint_dir, refit_dir
from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import WEIGHTS_FILE
from rbmcore.io.checkpoint import META as CKPT_META
from rbmcore.io.checkpoint import TENSORS as CKPT_TENSORS
from rbmcore.io.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from tests.jobs.support import (
    CONF_TOML,
    Killed,
    exit_of,
    killed_after_epoch,
    make_trainer,
    one_error_line,
)


def tensors_of(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / WEIGHTS_FILE))


def test_resume_after_kill_matches_uninterrupted_run(spark, run, monkeypatch):
    conf = deep_merge(run.conf, {"train": {"epochs": 3}})
    full, resumed = run.out / "model_full", run.out / "model_resumed"
    ckpt = Path(checkpoint_dir(str(resumed)))
    full_meta = run_train(spark, conf, str(run.out), str(full))
    assert not Path(checkpoint_dir(str(full))).exists()  # removed after success
    assert not Path(refit_dir(checkpoint_dir(str(full)))).exists()

    monkeypatch.setattr("rbmcore.training.trainer.save_checkpoint", killed_after_epoch(2))
    with pytest.raises(Killed):
        run_train(spark, conf, str(run.out), str(resumed))
    monkeypatch.undo()
    assert not resumed.exists()
    assert json.loads((ckpt / CKPT_META).read_text())["epochs_done"] == 2
    assert sorted(p.name for p in ckpt.parent.glob(f"*{ckpt.name}*")) == [ckpt.name]

    meta = run_train(spark, conf, str(run.out), str(resumed), resume=True)
    assert not ckpt.exists()
    history = meta["training"]["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in history]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in full_meta["training"]["history"]]  # fmt: skip
    a, b = tensors_of(full), tensors_of(resumed)
    assert sorted(a) == sorted(b)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name


def test_refit_retrains_on_all_ratings_for_the_best_epochs(spark, run):
    """``train.refit`` (default on): after early stopping on validation, a fresh model trains on
    every rating for the best epoch count; ``train.refit = false`` keeps the selected model."""
    conf = deep_merge(run.conf, {"train": {"epochs": 4, "patience": 1}})
    meta = run_train(spark, conf, str(run.out), str(run.out / "model_refit"))
    training = meta["training"]
    best = training["best_epoch"]
    assert best == min(training["history"], key=lambda r: r["val"]["like_nll"])["epoch"]
    assert training["refit"]["settings"] == {"epochs": best}
    assert [r["epoch"] for r in training["refit"]["history"]] == list(range(1, best + 1))
    assert all("val" not in r for r in training["refit"]["history"])

    off = deep_merge(conf, {"train": {"refit": False}})
    kept = run_train(spark, off, str(run.out), str(run.out / "model_selected"))
    assert "refit" not in kept["training"] and kept["training"]["best_epoch"] == best
    a, b = tensors_of(run.out / "model_refit"), tensors_of(run.out / "model_selected")
    assert sorted(a) == sorted(b) and not torch.equal(a["W"], b["W"])


def test_resume_of_a_killed_refit_matches_uninterrupted_run(spark, run, monkeypatch):
    conf = deep_merge(run.conf, {"train": {"epochs": 3, "patience": 3, "lr": 0.01}})
    full, resumed = run.out / "model_refit_full", run.out / "model_refit_resumed"
    full_meta = run_train(spark, conf, str(run.out), str(full))
    assert full_meta["training"]["refit"]["settings"]["epochs"] >= 2
    ckpt = Path(checkpoint_dir(str(resumed)))
    monkeypatch.setattr(
        "rbmcore.training.trainer.save_checkpoint", killed_after_epoch(1, refit_dir(str(ckpt)))
    )
    with pytest.raises(Killed):
        run_train(spark, conf, str(run.out), str(resumed))
    monkeypatch.undo()
    assert not resumed.exists() and (ckpt / "phase.done").exists()

    meta = run_train(spark, conf, str(run.out), str(resumed), resume=True)
    assert not ckpt.exists() and not Path(refit_dir(str(ckpt))).exists()
    strip = [{k: v for k, v in r.items() if k != "seconds"} for r in meta["training"]["history"]]
    assert strip == [{k: v for k, v in r.items() if k != "seconds"}
                     for r in full_meta["training"]["history"]]  # fmt: skip
    a, b = tensors_of(full), tensors_of(resumed)
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name


def test_resume_refuses_a_corrupt_or_mismatched_checkpoint(spark, run, capsys):
    conf = deep_merge(run.conf, {"train": {"epochs": 1}})
    model = run.out / "model_ckpt"
    ckpt = Path(checkpoint_dir(str(model)))
    trainer = make_trainer(run.ingest["items"], conf)
    save_checkpoint(ckpt, trainer)  # a checkpoint after "epoch 0" of these settings
    blob = bytearray((ckpt / CKPT_TENSORS).read_bytes())
    blob[len(blob) // 2] ^= 0x01
    (ckpt / CKPT_TENSORS).write_bytes(bytes(blob))
    code, err = exit_of(lambda: run_train(spark, conf, str(run.out), str(model), True), capsys)
    assert code == 5 and "corrupt (checksum mismatch)" in one_error_line(err)

    save_checkpoint(ckpt, trainer)
    other = deep_merge(conf, {"train": {"lr": 0.5}})
    code, err = exit_of(lambda: run_train(spark, other, str(run.out), str(model), True), capsys)
    assert code == 5 and "different settings (lr)" in one_error_line(err)
    assert not model.exists()
    shutil.rmtree(ckpt)


def test_resume_may_turn_the_refit_on_or_off(tmp_path):
    """``refit`` only decides what happens after the selection run: a checkpoint of that run
    resumes with it changed (like ``epochs``), other settings are refused."""
    conf_path = tmp_path / "conf.toml"
    conf_path.write_text(CONF_TOML)
    conf = load_conf(str(conf_path))
    folder = tmp_path / "model.checkpoint"
    save_checkpoint(folder, make_trainer(30, conf))
    no_refit = deep_merge(conf, {"train": {"refit": False}})
    assert load_checkpoint(folder, make_trainer(30, no_refit)) == 0
    with pytest.raises(ModelFileError, match="different settings"):
        load_checkpoint(folder, make_trainer(30, deep_merge(conf, {"train": {"seed": 7}})))


def test_checkpoint_survives_a_kill_between_its_renames(tmp_path):
    conf_path = tmp_path / "conf.toml"
    conf_path.write_text(CONF_TOML)
    conf = load_conf(str(conf_path))
    trainer = make_trainer(30, conf)
    folder = tmp_path / "model.checkpoint"
    save_checkpoint(folder, trainer)
    # Killed after the old checkpoint was moved aside and before the new one moved in, with a
    # half-written stage beside it.
    os.replace(folder, tmp_path / ".model.checkpoint.old")
    (tmp_path / ".model.checkpoint.x1y2z3").mkdir()
    assert has_checkpoint(folder)
    assert load_checkpoint(folder, make_trainer(30, conf)) == 0
    save_checkpoint(folder, trainer)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["conf.toml", "model.checkpoint"]
