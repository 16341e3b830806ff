"""What a cluster gets: ``rbm-reco --version``; a wheel that leaves Spark to the cluster (pyspark
is an extra) and carries the configs; a --py-files zip whose configs are found from the zip;
and the YARN and Kubernetes recipes (deploy/) build what they submit. Docker does not run
here: the Kubernetes recipe's build context is checked against its Dockerfile."""

from __future__ import annotations

import fnmatch
import os
import re
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from jobs import cli
from rbmcore import __version__
from tests.conftest import REPO


def test_version_flag_prints_the_version(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out == f"rbm-reco {__version__}\n"
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "rbmcore.__version__"}


def run_recipe(*args: str, dist: Path, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "DIST": str(dist), "PYTHON": sys.executable, **env}
    return subprocess.run(["bash", *args], cwd=REPO, env=environment, capture_output=True,
                          text=True, timeout=300)  # fmt: skip


@pytest.fixture(scope="module")
def k8s(tmp_path_factory) -> tuple[Path, str]:
    """deploy/k8s-submit.sh --dry-run: (DIST, the commands it prints)."""
    dist = tmp_path_factory.mktemp("dist")
    done = run_recipe("deploy/k8s-submit.sh", "--dry-run", "registry/rbm-reco:test",
                      "https://k8s-api:6443", "run", "--out", "s3a://bucket/reco",
                      "--set", "score.commit=manifest", dist=dist)  # fmt: skip
    assert done.returncode == 0, done.stderr
    return dist, done.stdout


def test_wheel_leaves_spark_to_the_cluster_and_carries_the_configs(k8s):
    dist, _ = k8s
    (wheel,) = dist.glob("rbm_reco-*-py3-none-any.whl")
    assert wheel.name == f"rbm_reco-{__version__}-py3-none-any.whl"
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        metadata = archive.read(f"rbm_reco-{__version__}.dist-info/METADATA").decode()
    assert {"jobs/run.py", "jobs/conf/local.toml", "jobs/conf/cluster.toml"} <= names
    spark = [line for line in metadata.splitlines() if line.startswith("Requires-Dist: pyspark")]
    assert spark == ['Requires-Dist: pyspark<5,>=4.0; extra == "spark"']


def test_pyfiles_zip_finds_its_configs_without_the_repository(k8s, tmp_path):
    dist, _ = k8s
    zipped = dist / "rbm_reco_pyfiles.zip"
    code = (
        "import jobs; from jobs.common.config import load_conf; print(jobs.__file__); "
        "print(load_conf('cluster')['spark']['conf']['spark.task.cpus'])"
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, env={**env, "PYTHONPATH": str(zipped)})  # fmt: skip
    assert done.returncode == 0, done.stderr
    where, cpus = done.stdout.split()
    assert where.startswith(str(zipped)) and cpus == "1"


def test_kubernetes_recipe_builds_the_image_it_submits(k8s):
    """The build context holds every file the Dockerfile copies; the image puts the installed
    package's jobs/ where the submitted local:// path points."""
    dist, printed = k8s
    context = dist / "image"
    dockerfile = (context / "Dockerfile").read_text()
    assert dockerfile == (REPO / "deploy" / "Dockerfile").read_text()
    for line in re.findall(r"^COPY (.+)$", dockerfile, re.M):
        *sources, _ = line.split()
        for source in sources:
            assert fnmatch.filter(os.listdir(context), source), (source, os.listdir(context))
    build, push, submit = printed.strip().splitlines()[-3:]
    assert build.split()[:4] == ["docker", "build", "-t", "registry/rbm-reco:test"]
    assert Path(build.split()[4]) == context and push == "docker push registry/rbm-reco:test "
    assert "local:///opt/rbm-reco/jobs/run.py --conf cluster" in submit
    assert "spark.kubernetes.container.image=registry/rbm-reco:test" in submit
    assert "ln -s" in dockerfile and "/opt/rbm-reco/jobs;" in dockerfile


def test_yarn_recipe_builds_and_ships_the_code(k8s):
    dist, _ = k8s
    done = run_recipe("deploy/yarn-submit.sh", "--dry-run", "run", "--out", "hdfs:///reco/x",
                      dist=dist, ENV_ARCHIVE="hdfs:///apps/rbm_reco_env.tar.gz")  # fmt: skip
    assert done.returncode == 0, done.stderr
    words = done.stdout.split()
    assert words[words.index("--py-files") + 1] == str(dist / "rbm_reco_pyfiles.zip")
    assert (dist / "rbm_reco_pyfiles.zip").is_file() and (REPO / "jobs" / "run.py").is_file()
    assert "hdfs:///apps/rbm_reco_env.tar.gz#environment" in words
    assert words[-5:] == ["jobs/run.py", "--conf", "cluster", "--out", "hdfs:///reco/x"]
    cluster_mode = run_recipe(
        "deploy/yarn-submit.sh", "--dry-run", "score", dist=dist, DEPLOY_MODE="cluster",
        ENV_ARCHIVE="hdfs:///apps/env.tar.gz",
    )  # fmt: skip
    assert "spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python" in cluster_mode.stdout
    missing = run_recipe("deploy/yarn-submit.sh", "--dry-run", "run", dist=dist)
    assert missing.returncode == 2 and "no environment archive" in missing.stderr
