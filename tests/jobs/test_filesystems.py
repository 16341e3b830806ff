"""One meaning for a path, resume and publishing on file systems other than the local disk, in
the session's local SparkSession: Hadoop's local file system under another scheme and root
(``objstore://bucket/``, Hadoop's ViewFileSystemOverloadScheme falling back to a temporary
folder) stands in for HDFS or an object store.

- With ``fs.defaultFS = objstore://bucket/``, scheme-less paths (``/reco/...``) are read and
  written there by every step (ingest, the pyarrow reads, the model, checkpoints, locks, the
  export, evaluate), never on the local disk.
- Training resumes with its OUT on that scheme (the checkpoints kept on the local disk at a
  location fixed by the model's URI), and leaves no temporary folder behind.
- Publishing a date: ``auto`` refuses a file system whose folder rename is not atomic; the
  manifest commit publishes with folder renames failing (tests/faults/no_folder_rename.py), and
  a kill before its manifest leaves readers on the previous run.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import tomllib
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from jobs.common.config import deep_merge, load_conf
from jobs.evaluate import run_evaluate
from jobs.ingest import run_ingest
from jobs.score import run_score
from jobs.storage import fs
from jobs.storage.export import MANIFEST, MARKER, data_path
from jobs.train import run_train
from jobs.training.model_files import checkpoint_dir
from rbmcore.data.synthetic import GeneratorSpec, write_dataset
from rbmcore.io.checkpoint import META as CKPT_META
from tests.faults.no_folder_rename import INJECTED, refusing_folder_renames
from tests.jobs.support import (
    CONF_TOML,
    DT,
    Killed,
    exit_of,
    killed_after_epoch,
    one_error_line,
)

SCHEME, BUCKET = "objstore", "bucket"
MOUNT_KEYS = {
    f"fs.{SCHEME}.impl": "org.apache.hadoop.fs.viewfs.ViewFileSystemOverloadScheme",
    f"fs.viewfs.overload.scheme.target.{SCHEME}.impl": "org.apache.hadoop.fs.LocalFileSystem",
}


@contextmanager
def hadoop_settings(spark, settings: dict[str, str]) -> Iterator[None]:
    """``settings`` in the session's Hadoop configuration while the block runs."""
    conf = spark._jsc.hadoopConfiguration()
    before = {key: conf.get(key) for key in settings}
    for key, value in settings.items():
        conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                conf.unset(key)
            else:
                conf.set(key, value)


@pytest.fixture(scope="module")
def objstore(spark, tmp_path_factory) -> Iterator[Path]:
    """``objstore://bucket/`` registered, backed by a local folder (returned)."""
    root = tmp_path_factory.mktemp("objstore")
    fallback = {f"fs.viewfs.mounttable.{BUCKET}.linkFallback": root.as_uri()}
    with hadoop_settings(spark, {**MOUNT_KEYS, **fallback}):
        yield root


@contextmanager
def default_fs(spark) -> Iterator[None]:
    with hadoop_settings(spark, {"fs.defaultFS": f"{SCHEME}://{BUCKET}/"}):
        yield


@pytest.fixture(scope="module")
def remote(spark, objstore) -> tuple[str, dict]:
    """A small generated data set ingested with scheme-less paths while the default file
    system is objstore://bucket/: (OUT, conf). The ratings are read from there too."""
    local = objstore / "data"
    write_dataset(GeneratorSpec(n_users=120, n_movies=60, n_ratings=3600, seed=3,
                                test_fraction=0.2), str(local))  # fmt: skip
    out = f"/reco-{uuid.uuid4().hex[:8]}"
    conf = deep_merge(load_conf(None), tomllib.loads(CONF_TOML))
    conf["train"].update(epochs=3, n_hidden=8)
    with default_fs(spark):
        run_ingest(spark, conf, "/data/train.dat", out, test="/data/test.dat")
    assert (objstore / out.lstrip("/") / "ingest" / "items").is_dir()
    assert not Path(out).exists()
    return out, conf


def temp_leftovers() -> set[str]:
    """rbm-reco's temporary folders in the temp folder (model copies, checkpoints)."""
    temp = Path(tempfile.gettempdir())
    found = {p.name for p in temp.glob("rbm-reco-model-*")}
    return found | {f"checkpoints/{p.name}" for p in temp.glob("rbm-reco-checkpoints/*")}


def test_scheme_less_paths_resolve_on_the_default_file_system(spark, objstore, remote):
    out, conf = remote
    conf = deep_merge(conf, {"score": {"commit": "manifest"}})
    before = temp_leftovers()
    with default_fs(spark):
        meta = run_train(spark, conf, out)
        info = run_score(spark, conf, out, DT)
        metrics = run_evaluate(spark, conf, out, DT)
    mounted = objstore / out.lstrip("/")
    saved = json.loads((mounted / "model" / "model.json").read_text())
    assert saved["model_id"] == meta["model_id"]
    published = mounted / "recommendations" / f"dt={DT}"
    assert json.loads((published / MANIFEST).read_text())["run_id"] == info["run_id"]
    assert (published / MARKER).read_text().strip() == info["run_id"]
    assert list((published / info["data"]).glob("part-*.parquet"))
    assert metrics["test_users"] > 50 and (mounted / "metrics.json").is_file()
    assert not Path(out).exists()  # nothing on the local disk's /reco-...
    qualified = f"{SCHEME}://{BUCKET}{out}/model"
    assert not Path(checkpoint_dir(qualified)).exists()  # used, then removed
    assert temp_leftovers() == before


def test_training_resumes_with_out_on_another_scheme(spark, objstore, remote, monkeypatch):
    """A run killed after epoch 2 leaves its checkpoint at the local folder named by the
    model's URI; the resumed run (a fresh trainer, same URI) loads epochs 1-2 instead of
    training them again, trains epoch 3, writes the model there and removes the checkpoint."""
    out, conf = remote
    out_uri = f"{SCHEME}://{BUCKET}{out}"
    model = f"{out_uri}/model_resumed"
    ckpt = Path(checkpoint_dir(model))
    assert ckpt.parent.name == "rbm-reco-checkpoints"
    before = temp_leftovers()

    monkeypatch.setattr("rbmcore.training.trainer.save_checkpoint", killed_after_epoch(2))
    with pytest.raises(Killed):
        run_train(spark, conf, out_uri, model)
    monkeypatch.undo()
    saved = json.loads((ckpt / CKPT_META).read_text())
    assert saved["epochs_done"] == 2 and not (objstore / out.lstrip("/") / "model_resumed").exists()

    meta = run_train(spark, conf, out_uri, model, resume=True)
    history = meta["training"]["history"]
    assert [r["epoch"] for r in history] == [1, 2, 3]
    assert history[:2] == saved["history"]  # restored (their timings too), not retrained
    assert (objstore / out.lstrip("/") / "model_resumed" / "model.json").is_file()
    assert not ckpt.exists() and temp_leftovers() == before - {f"checkpoints/{ckpt.name}"}


def test_auto_commit_is_refused_where_a_folder_rename_copies(spark, objstore, remote, capsys):
    out, conf = remote
    out_uri = f"{SCHEME}://{BUCKET}{out}"
    code, err = exit_of(lambda: run_score(spark, conf, out_uri, "2024-05-01"), capsys)
    assert code == 2
    line = one_error_line(err)
    assert "objstore:// file system" in line and 'score.commit = "manifest"' in line
    assert not (objstore / out.lstrip("/") / "recommendations" / "dt=2024-05-01").exists()


def test_conf_is_read_from_a_hadoop_uri(spark, objstore):
    (objstore / "job.toml").write_text("[score]\ntop_k = 3\n")
    assert load_conf(f"{SCHEME}://{BUCKET}/job.toml")["score"]["top_k"] == 3


def rows_via_manifest(spark, root: Path, dt: str) -> tuple[str, int]:
    """What a reader following the manifest sees: (run id, rows)."""
    manifest = json.loads((root / f"dt={dt}" / MANIFEST).read_text())
    rows = spark.read.parquet(data_path(spark, str(root), dt)).count()
    return manifest["run_id"], rows


def test_manifest_commit_publishes_without_renaming_a_folder(spark, run, monkeypatch):
    """Folder renames fail (an object store's rename copies): the manifest commit still
    publishes; a run killed before its manifest leaves readers on the previous run, and the
    next run cleans up after it; only the published run's folder stays."""
    dt = "2024-04-01"
    conf = deep_merge(run.conf, {"score": {"commit": "manifest"}})
    monkeypatch.setattr("jobs.storage.fs.rename", refusing_folder_renames(fs.rename))
    with pytest.raises(OSError, match=INJECTED):  # the rename commit cannot publish here
        run_score(spark, deep_merge(conf, {"score": {"commit": "rename"}}), str(run.out), dt)
    first = run_score(spark, conf, str(run.out), dt)
    folder = run.dt_dir(dt)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [first["data"]]
    assert rows_via_manifest(spark, run.root, dt) == (first["run_id"], run.manifest["rows"])

    real_write = fs.write_text_atomic

    def killed_before_the_manifest(spark_, path, text):
        if path.endswith(MANIFEST):
            raise Killed
        real_write(spark_, path, text)

    monkeypatch.setattr("jobs.storage.fs.write_text_atomic", killed_before_the_manifest)
    with pytest.raises(Killed):
        run_score(spark, conf, str(run.out), dt)
    monkeypatch.setattr("jobs.storage.fs.write_text_atomic", real_write)
    assert len([p for p in folder.iterdir() if p.is_dir()]) == 2  # the killed run's rows
    assert rows_via_manifest(spark, run.root, dt) == (first["run_id"], run.manifest["rows"])

    again = run_score(spark, conf, str(run.out), dt)
    assert sorted(p.name for p in folder.iterdir() if p.is_dir()) == [again["data"]]
    assert rows_via_manifest(spark, run.root, dt) == (again["run_id"], run.manifest["rows"])
    assert (folder / MARKER).read_text().strip() == again["run_id"]
    shutil.rmtree(folder)
