"""The run the tests of the jobs' reliability share (test_export_checks, test_publish, test_locks,
test_resume, test_divergence, test_model_files): a small generated data set ingested, trained
and scored for DT once per test session. Tests may publish DT again (the same rows) and write
models beside the run's own, but none relies on what another left."""

from __future__ import annotations

import pytest

from jobs.common.config import load_conf
from jobs.ingest import run_ingest
from jobs.score import run_score
from jobs.train import run_train
from rbmcore.data.synthetic import GeneratorSpec, write_dataset
from tests.jobs.support import CONF_TOML, DT, UNKNOWN_ID, Run, snapshot


@pytest.fixture(scope="session")
def run(spark, tmp_path_factory) -> Run:
    """Generated data with one bad training line and test pairs of an unknown user and an
    unknown movie, ingested, trained for 2 epochs and scored once for DT."""
    root = tmp_path_factory.mktemp("reliability")
    data = root / "data"
    write_dataset(
        GeneratorSpec(n_users=300, n_movies=120, n_ratings=9_000, seed=5, test_fraction=0.2),
        str(data),
    )
    with (data / "train.dat").open("a") as fh:
        fh.write("17::not-a-movie::4::978300000\n")  # quarantined
    with (data / "test.dat").open("a") as fh:
        fh.write(f"{UNKNOWN_ID}::1::4::978300000\n")  # user unknown to training
        fh.write(f"1::{UNKNOWN_ID}::5::978300000\n")  # movie unknown to training
    conf_path = root / "conf.toml"
    conf_path.write_text(CONF_TOML)
    conf = load_conf(str(conf_path))
    out = root / "out"
    ingest = run_ingest(spark, conf, str(data / "train.dat"), str(out), test=str(data / "test.dat"))
    run_train(spark, conf, str(out))
    manifest = run_score(spark, conf, str(out), DT)
    published = snapshot(out / "recommendations" / f"dt={DT}")
    return Run(out, conf, conf_path, ingest, manifest, published)
