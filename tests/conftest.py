"""Shared fixtures: one local SparkSession for the whole test session, data paths."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"
ML100K = SHARED_DATA / "ml-100k"
ML100K_DAT = SHARED_DATA / "ml-100k-dat"


@pytest.fixture(scope="session")
def spark():
    """A real local-mode SparkSession (2 cores), shared by every test that needs Spark."""
    from jobs.common.config import load_conf
    from jobs.common.session import get_spark

    os.environ["PYSPARK_PYTHON"] = sys.executable
    conf = load_conf("local")
    conf["spark"]["conf"].update(
        {
            "spark.sql.shuffle.partitions": "4",
            "spark.default.parallelism": "4",
            "spark.driver.memory": "3g",
            "spark.ui.enabled": "false",
        }
    )
    session = get_spark(conf, master="local[2]")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def ml100k_dat() -> Path:
    if not (ML100K_DAT / "u1.base.dat").exists():
        pytest.fail(f"MovieLens 100k is expected at {ML100K_DAT} (../shared/data beside the repo)")
    return ML100K_DAT
