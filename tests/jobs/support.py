"""Helpers the tests of the jobs' reliability share: the configuration of their runs, the
``Run`` the ``run`` fixture (tests/jobs/conftest.py) builds, and ways to look at exports and at
a failed run's exit code and error line."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from jobs.common.errors import run_main
from jobs.storage.locks import lock_path
from jobs.train import train_settings
from rbmcore.io.checkpoint import save_checkpoint
from rbmcore.models.factory import build_model
from rbmcore.training.trainer import Trainer

DT = "2024-03-01"
TOP_K = 5
UNKNOWN_ID = 999_999

# The configuration of every run here, in-process and in subprocesses alike (same Spark
# partitioning as the session fixture, so exports of different processes can be compared).
CONF_TOML = """
[spark]
app_name = "rbm-reco-test"
[spark.conf]
"spark.sql.shuffle.partitions" = "4"
"spark.default.parallelism" = "4"
"spark.driver.memory" = "1g"
"spark.ui.enabled" = "false"
"spark.ui.showConsoleProgress" = "false"
"spark.sql.session.timeZone" = "UTC"
[ingest]
max_bad_fraction = 0.01
batch_size = 50
[train]
kind = "binary"
item_based = false  # one RBM, one checkpoint folder: the job's own checkpoint/resume path
n_models = 1
epochs = 2
n_hidden = 16
device = "cpu"
seed = 42
[score]
top_k = 5
"""


@dataclass
class Run:
    out: Path
    conf: dict[str, Any]
    conf_path: Path
    ingest: dict[str, Any]
    manifest: dict[str, Any]
    snapshot: dict[str, bytes]  # every file of the first published dt=DT

    @property
    def root(self) -> Path:
        return self.out / "recommendations"

    def dt_dir(self, dt: str = DT) -> Path:
        return self.root / f"dt={dt}"


def snapshot(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def leftovers(run: Run, dt: str = DT) -> list[str]:
    """What a run of ``dt`` may leave behind: staging folders, trash, its lock."""
    found = [str(p) for p in (run.root / "_staging").glob(f"dt={dt}.*")]
    found += [str(p) for p in (run.root / "_trash").glob(f"dt={dt}.*")]
    return found + [p for p in [lock_path(str(run.root), dt)] if Path(p).exists()]


def exit_of(job: Callable[[], Any], capsys) -> tuple[int, str]:
    """Run ``job`` through ``run_main`` (what every CLI entry does): (exit code, stderr)."""
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        run_main(lambda _argv: job(), None)
    return info.value.code, capsys.readouterr().err


def one_error_line(stderr: str) -> str:
    """The single ``rbm-reco: error:`` line of a failed run (it must be the only one)."""
    lines = [line for line in stderr.splitlines() if line.startswith("rbm-reco:")]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr, stderr
    return lines[0]


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "jobs.cli", *args]


def cli_env() -> dict[str, str]:
    return dict(os.environ, PYSPARK_PYTHON=sys.executable, PYSPARK_DRIVER_PYTHON=sys.executable)


def make_trainer(n_items: int, conf: dict[str, Any]) -> Trainer:
    config, _ = train_settings(conf)
    model = build_model(config.kind, n_items, config.n_hidden,
                        torch.Generator().manual_seed(config.seed))  # fmt: skip
    return Trainer(model, config, torch.device("cpu"))


class Killed(BaseException):
    """Stands in for SIGKILL right after a checkpoint was written (nothing catches it)."""


def killed_after_epoch(epoch: int, folder: str | None = None) -> Callable[[Any, Any], None]:
    """``save_checkpoint`` that raises ``Killed`` once it has written epoch ``epoch`` (into
    ``folder`` when given); patch it into ``rbmcore.training.trainer``."""

    def save_then_die(into, trainer) -> None:
        save_checkpoint(into, trainer)
        if trainer.history[-1]["epoch"] == epoch and (folder is None or str(into) == folder):
            raise Killed

    return save_then_die
