"""The jobs on a real Spark standalone cluster (one master, one 2-core worker on 127.0.0.1).

Every job is submitted with ``spark-submit --master spark://... --py-files <zip>`` (client
mode, the training step on the driver), and the export must equal a local-mode run of the same
data, config and seed. Distributed training (``--distributed 2``, TorchDistributor barrier
tasks on the executor) must reach the single-process model's held-out like error within 0.01.

The master and worker are started by the ``cluster`` fixture with free ports and stopped by
their PIDs (their process groups: the worker's executors too) when the module ends, pass or
fail. ``pytest -m cluster`` selects these tests; ``StandaloneCluster`` and ``spark_submit``
are also used by ``bench/cluster_vs_local.py``. ``rbmcore.training.distributed`` in one process,
without Spark, is tested in tests/rbmcore/training/test_distributed.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.rbmcore.support import free_port

REPO = Path(__file__).resolve().parents[2]
SPARK_HOME = Path(importlib.util.find_spec("pyspark").origin).parent
DT = "2026-02-01"
EPOCHS = 3


def spark_env() -> dict[str, str]:
    """The environment for Spark daemons and spark-submit: this interpreter, loopback only."""
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("PYSPARK_GATEWAY", "SPARK_CONNECT"))
    }
    env.update(
        SPARK_HOME=str(SPARK_HOME),
        SPARK_LOCAL_IP="127.0.0.1",
        PYSPARK_PYTHON=sys.executable,
        PYSPARK_DRIVER_PYTHON=sys.executable,
        SPARK_DAEMON_MEMORY="512m",
    )
    return env


class StandaloneCluster:
    """A Spark standalone master + one worker on 127.0.0.1, on free ports, for tests/benchmarks.

    ``with StandaloneCluster(workdir) as cluster: ... cluster.url`` (spark://127.0.0.1:PORT).
    Both daemons run in their own process groups and are stopped by PID on exit (SIGTERM, then
    SIGKILL after a grace period), including the executors the worker launched.
    """

    def __init__(self, workdir: Path, cores: int = 2, memory: str = "3g") -> None:
        self.workdir = Path(workdir)
        self.cores = cores
        self.memory = memory
        self.port = free_port()
        self.ui_port = free_port()
        self.worker_ui_port = free_port()
        self.url = f"spark://127.0.0.1:{self.port}"
        self.procs: list[subprocess.Popen] = []

    def _spawn(self, name: str, args: Sequence[str], extra_env: dict[str, str]) -> None:
        log = (self.workdir / f"{name}.log").open("wb")
        env = {**spark_env(), **extra_env}
        cmd = [str(SPARK_HOME / "bin" / "spark-class"), *args]
        self.procs.append(
            subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
            )
        )
        log.close()

    def start(self, timeout: float = 90.0) -> StandaloneCluster:
        self.workdir.mkdir(parents=True, exist_ok=True)
        quiet = {"SPARK_LOG_DIR": str(self.workdir), "SPARK_PID_DIR": str(self.workdir)}
        self._spawn(
            "master",
            ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
             "--port", str(self.port), "--webui-port", str(self.ui_port)],
            {**quiet, "SPARK_MASTER_OPTS": "-Dspark.master.rest.enabled=false"},
        )  # fmt: skip
        self._spawn(
            "worker",
            ["org.apache.spark.deploy.worker.Worker", "--cores", str(self.cores),
             "--memory", self.memory, "--host", "127.0.0.1",
             "--webui-port", str(self.worker_ui_port),
             "--work-dir", str(self.workdir / "work"), self.url],
            quiet,
        )  # fmt: skip
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for proc, name in zip(self.procs, ("master", "worker"), strict=True):
                if proc.poll() is not None:
                    raise RuntimeError(f"spark {name} exited early; see {self.workdir}/{name}.log")
            state = self.state()
            alive = [w for w in state.get("workers", []) if w.get("state") == "ALIVE"]
            if alive and alive[0].get("cores") == self.cores:
                return self
            time.sleep(1.0)
        raise RuntimeError(f"no worker registered with {self.url} within {timeout:.0f} s")

    def state(self) -> dict:
        """The master's JSON status (workers, active and completed apps); {} while it starts."""
        try:
            url = f"http://127.0.0.1:{self.ui_port}/json/"
            with urllib.request.urlopen(url, timeout=5) as resp:
                return json.loads(resp.read())
        except OSError:
            return {}

    def stop(self) -> None:
        """SIGTERM each daemon's process group (worker first), SIGKILL what is left after 20 s."""
        for proc in reversed(self.procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                except ProcessLookupError:
                    pass
        deadline = time.monotonic() + 20
        for proc in reversed(self.procs):
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                pass
            try:  # the group: executors and Python workers the daemon started
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            if proc.poll() is None:
                proc.wait(timeout=10)
        self.procs.clear()

    def __enter__(self) -> StandaloneCluster:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc) -> None:
        self.stop()


def spark_submit(
    master: str,
    job: str | Path,
    args: Sequence[str],
    pyfiles: Path,
    log_path: Path,
    extra_conf: dict[str, str] | None = None,
    timeout: float = 300,
    memory: str = "1g",
    env: dict[str, str] | None = None,
) -> float:
    """``spark-submit`` jobs/JOB.py (or the script ``job``) in client mode, with ``env`` added
    to its environment; returns the wall seconds, raises on failure with the end of the job's
    log."""
    confs = {
        "spark.pyspark.python": sys.executable,
        "spark.pyspark.driver.python": sys.executable,
        "spark.ui.enabled": "false",
        "spark.sql.shuffle.partitions": "4",
        "spark.default.parallelism": "4",
        **(extra_conf or {}),
    }
    cmd = [
        str(SPARK_HOME / "bin" / "spark-submit"),
        "--master", master,
        "--deploy-mode", "client",
        "--driver-memory", memory,
        "--executor-memory", memory,
        "--py-files", str(pyfiles),
        *[x for key, value in confs.items() for x in ("--conf", f"{key}={value}")],
        str(job if isinstance(job, Path) else REPO / "jobs" / f"{job}.py"),
        *args,
    ]  # fmt: skip
    start = time.perf_counter()
    with log_path.open("wb") as log:
        try:
            done = subprocess.run(
                cmd, stdout=log, stderr=subprocess.STDOUT, env={**spark_env(), **(env or {})},
                cwd=REPO,
                timeout=timeout,
            )  # fmt: skip
        except subprocess.TimeoutExpired:
            tail = log_path.read_text(errors="replace")[-6000:]
            raise AssertionError(f"spark-submit {job} ran over {timeout:.0f} s:\n{tail}") from None
    seconds = time.perf_counter() - start
    if done.returncode != 0:
        tail = log_path.read_text(errors="replace")[-4000:]
        raise AssertionError(f"spark-submit {job} exited {done.returncode}:\n{tail}")
    return seconds


def build_pyfiles(dist: Path) -> Path:
    spec = importlib.util.spec_from_file_location("rbm_package", REPO / "scripts" / "package.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.build_pyfiles_zip(dist)


def submit_pipeline(
    master: str,
    data: Path,
    out: Path,
    pyfiles: Path,
    logs: Path,
    conf: str | Path = "cluster",
    train_args: Sequence[str] = (),
    extra_conf: dict[str, str] | None = None,
    timeout: float = 300,
    memory: str = "1g",
) -> dict[str, float]:
    """ingest, train, score, evaluate: one spark-submit each; wall seconds per step."""
    common = ["--conf", str(conf), "--out", str(out)]
    steps = {
        "ingest": ["--ratings", str(data / "train.dat"), "--test", str(data / "test.dat"),
                   "--movies", str(data / "movies.dat")],
        "train": list(train_args),
        "score": ["--dt", DT],
        "evaluate": ["--dt", DT],
    }  # fmt: skip
    logs.mkdir(parents=True, exist_ok=True)
    return {
        step: spark_submit(master, step, [*common, *args], pyfiles, logs / f"{step}.log",
                           extra_conf, timeout, memory)
        for step, args in steps.items()
    }  # fmt: skip


# ------------------------------------------------------------------------------ fixtures


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    from rbmcore.data.synthetic import GeneratorSpec, write_dataset

    folder = tmp_path_factory.mktemp("cluster-data")
    spec = GeneratorSpec(n_users=300, n_movies=200, n_ratings=15_000, seed=0, test_fraction=0.2)
    write_dataset(spec, str(folder))
    return folder


@pytest.fixture(scope="module")
def test_conf(tmp_path_factory) -> Path:
    """The packaged cluster config (no master) with 4 shuffle partitions and no UI, for both
    runs."""
    from jobs.common.config import packaged_conf

    text = packaged_conf("cluster")
    text = text.replace(
        '"spark.sql.shuffle.partitions" = "200"', '"spark.sql.shuffle.partitions" = "4"'
    ).replace("[spark.conf]\n", '[spark.conf]\n"spark.ui.enabled" = "false"\n', 1)
    path = tmp_path_factory.mktemp("conf") / "cluster-test.toml"
    path.write_text(text)
    return path


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    with StandaloneCluster(tmp_path_factory.mktemp("spark-standalone")) as running:
        yield running


@pytest.fixture(scope="module")
def pyfiles(tmp_path_factory) -> Path:
    return build_pyfiles(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="module")
def cluster_run(cluster, dataset, pyfiles, test_conf, tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("on-cluster") / "run"
    submit_pipeline(
        cluster.url, dataset, out, pyfiles, out.parent / "logs", test_conf,
        ["--epochs", str(EPOCHS)],
    )  # fmt: skip
    return out


@pytest.fixture(scope="module")
def local_run(spark, dataset, test_conf, tmp_path_factory) -> Path:
    """The same pipeline in local mode: ``jobs/run.py``'s main with ``--master local[2]``, in the
    test session's local SparkSession (one JVM fewer than a subprocess on this small machine)."""
    from jobs import run as run_job

    out = tmp_path_factory.mktemp("local-mode") / "run"
    argv = [
        "--conf", str(test_conf), "--master", "local[2]",
        "--ratings", str(dataset / "train.dat"), "--test", str(dataset / "test.dat"),
        "--movies", str(dataset / "movies.dat"), "--out", str(out), "--dt", DT,
        "--epochs", str(EPOCHS),
    ]  # fmt: skip
    assert run_job.main(argv) == 0
    return out


def read_export(out: Path) -> pd.DataFrame:
    recs = pd.read_parquet(out / "recommendations" / f"dt={DT}")
    return recs.sort_values(["user_id", "rank"]).reset_index(drop=True)


@pytest.mark.cluster
def test_every_job_ran_on_the_cluster(cluster, cluster_run):
    """spark-submit's --master reached each job: four applications completed on the master,
    none failed, and the pipeline's outputs exist."""
    apps = cluster.state().get("completedapps", [])
    assert len(apps) >= 4, apps
    assert all(app.get("state") == "FINISHED" for app in apps), apps
    assert all(app.get("cores", 0) >= 1 for app in apps)  # executors were granted
    assert (cluster_run / "recommendations" / f"dt={DT}" / "_SUCCESS").exists()
    metrics = json.loads((cluster_run / "metrics.json").read_text())
    assert metrics["test_users"] > 250


@pytest.mark.cluster
def test_outputs_record_the_rbm_reco_version(cluster_run, local_run):
    """model.json and the manifest (both runs), run_summary.json (``rbm-reco run``)."""
    from rbmcore import __version__

    for out in (cluster_run, local_run):
        published = out / "recommendations" / f"dt={DT}"
        for record in (out / "model" / "model.json", published / "_manifest.json"):
            assert json.loads(record.read_text())["rbm_reco_version"] == __version__, record
    summary = json.loads((local_run / "run_summary.json").read_text())
    assert summary["rbm_reco_version"] == __version__


@pytest.mark.cluster
def test_spark_submit_settings_win_over_the_toml(cluster, pyfiles, test_conf, tmp_path):
    """The TOML (the cluster config: spark.task.cpus = 1, 4 shuffle partitions, UTC, dynamic
    partition overwrite) only fills what the launch left unset: spark-submit's --conf
    spark.task.cpus=2 gives every task 2 cores and --conf's 3 shuffle partitions stay;
    spark-defaults.conf's time zone stays; the TOML's partitionOverwriteMode fills the gap."""
    conf_dir = tmp_path / "spark-conf"
    conf_dir.mkdir()
    (conf_dir / "spark-defaults.conf").write_text(
        "spark.sql.session.timeZone  America/New_York\n"
    )
    out = tmp_path / "settings.json"
    spark_submit(
        cluster.url, REPO / "tests" / "jobs" / "spark_settings_probe.py",
        [str(test_conf), str(out)], pyfiles, tmp_path / "probe.log",
        extra_conf={"spark.task.cpus": "2", "spark.sql.shuffle.partitions": "3"},
        env={"SPARK_CONF_DIR": str(conf_dir)},
    )  # fmt: skip
    assert json.loads(out.read_text()) == {
        "spark.task.cpus": "2",
        "cpus of a task": 2,
        "spark.sql.shuffle.partitions": "3",
        "spark.sql.session.timeZone": "America/New_York",
        "spark.sql.sources.partitionOverwriteMode": "dynamic",
    }


@pytest.mark.cluster
def test_cluster_export_equals_local_mode(cluster_run, local_run):
    on_cluster, local = read_export(cluster_run), read_export(local_run)
    assert len(on_cluster) == len(local) > 0
    key = ["user_id", "rank", "movie_id"]
    pd.testing.assert_frame_equal(on_cluster[key], local[key])
    np.testing.assert_allclose(on_cluster["score"], local["score"], rtol=0, atol=1e-5)
    from safetensors.torch import load_file

    # the same tensors (the files differ: their headers hold each run's model.json)
    cluster_model = load_file(str(cluster_run / "model" / "weights.safetensors"))
    local_model = load_file(str(local_run / "model" / "weights.safetensors"))
    assert sorted(cluster_model) == sorted(local_model)
    assert all(cluster_model[k].equal(local_model[k]) for k in cluster_model)


@pytest.mark.cluster
def test_distributed_training_matches_single_process(
    spark, cluster, cluster_run, pyfiles, test_conf
):
    """--distributed 2 on the cluster, the default kind (hybrid): both parts train in one
    TorchDistributor run, and the saved model's test nDCG@10 and like error (its like part) are
    within 0.02 / 0.01 of single-process training (on the driver, here in local mode) of the
    same ingest, config, seed and epochs (user-based parts in both: distributed training has no
    item-based part). The saved model is the refit on all ratings, trained in the same
    distributed run."""
    import pyarrow.parquet as pq
    import torch

    from jobs.common.config import load_conf
    from jobs.ingestion.readback import csr_from_arrow
    from jobs.train import run_train
    from rbmcore.data.splits import align_rows
    from rbmcore.evaluation import heldout_metrics
    from rbmcore.io.artifact import load_model

    out = cluster_run
    log_path = out.parent / "logs" / "train_distributed.log"
    spark_submit(
        cluster.url,
        "train",
        ["--conf", str(test_conf), "--out", str(out), "--model", str(out / "model_distributed"),
         "--epochs", str(EPOCHS), "--distributed", "2", "--set", "train.item_based=false",
         "--set", 'train.like_kind="binary"', "--set", "train.distributed_timeout_s=60"],
        pyfiles,
        log_path,
    )  # fmt: skip
    conf = load_conf(str(test_conf))
    conf["train"].update(epochs=EPOCHS, item_based=False, like_kind="binary")
    run_train(spark, conf, str(out), str(out / "model_single"))

    n_items = pq.read_table(out / "ingest" / "items").num_rows

    def rows(split: str):
        table = pq.read_table(out / "ingest" / split, columns=["user_id", "items", "ratings"])
        return csr_from_arrow(table.sort_by("user_id"), n_items)

    context, target = align_rows(rows("train"), rows("test"))
    single = load_model(out / "model_single")
    dist = load_model(out / "model_distributed")
    assert dist.meta["kind"] == single.meta["kind"] == "hybrid"
    history = dist.meta["training"]["history"]
    assert {r["part"] for r in history} == {"rated", "like"}
    assert {r["processes"] for r in history} == {2}
    refit = dist.meta["training"]["refit"]
    assert {r["part"] for r in refit["history"]} == {"rated", "like"}
    assert {r["processes"] for r in refit["history"]} == {2}
    runs = log_path.read_text().count("distributed training of rated (rated RBM) then like")
    assert runs == 1, f"{runs} distributed runs; the hybrid's parts should share one"
    cpu = torch.device("cpu")
    m_single, m_dist = (
        {**heldout_metrics(m.model, context, target, cpu),
         **heldout_metrics(m.model.like, context, target, cpu)}
        for m in (single, dist)
    )  # fmt: skip
    print(f"\nsingle process: {m_single}\n2 processes:    {m_dist}")
    assert abs(m_dist["ndcg"] - m_single["ndcg"]) <= 0.02, (m_single, m_dist)
    assert abs(m_dist["like_error"] - m_single["like_error"]) <= 0.01, (m_single, m_dist)
    assert m_dist["auc"] > 0.6, m_dist
