"""Reliability (issue 6) on a real local SparkSession: crash-safe dated exports (SIGKILL mid-write,
locks, re-runs, task retries), resumable training, divergence, safe model files, and the parts of
hostile-input handling that reach beyond ingest (CLI exit code, manifest counts, unknown test
users and movies). Small synthetic data (``rbmcore.generate``), two training epochs."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from jobs.common.config import deep_merge, load_conf
from jobs.common.errors import LockHeldError, run_main
from jobs.evaluate import run_evaluate
from jobs.ingest import run_ingest
from jobs.score import run_score
from jobs.storage.export import MANIFEST, MARKER
from jobs.storage.locks import date_lock, lock_path
from jobs.train import run_train, train_settings
from jobs.training.model_files import checkpoint_dir, refit_dir
from rbmcore.data.synthetic import GeneratorSpec, write_dataset
from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import META_FILE, WEIGHTS_FILE, save_model
from rbmcore.io.checkpoint import META as CKPT_META
from rbmcore.io.checkpoint import TENSORS as CKPT_TENSORS
from rbmcore.io.checkpoint import has_checkpoint, load_checkpoint, save_checkpoint
from rbmcore.models.factory import build_model
from rbmcore.training.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
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


def part_bytes(folder: Path) -> list[bytes]:
    """The Parquet part files' bytes in part order (file names carry a per-run UUID)."""
    return [p.read_bytes() for p in sorted(folder.glob("part-*.parquet"))]


def parquet_data(blob: bytes) -> bytes:
    """A Parquet file's bytes before its footer: every column chunk (the rows themselves).

    Within one JVM Spark writes the same file bytes for the same rows. Across JVMs the footer
    may differ: parquet-mr keeps each column chunk's encodings in a HashSet of enum values,
    listed in an order that follows the JVM's identity hash codes."""
    assert blob[:4] == blob[-4:] == b"PAR1"
    return blob[: len(blob) - 8 - int.from_bytes(blob[-8:-4], "little")]


def same_rows_in_file_order(a: Path, b: Path) -> None:
    """The two exports hold the same part files, byte for byte up to the footers, and the same
    rows in the same order, schema included."""
    files_a, files_b = sorted(a.glob("part-*.parquet")), sorted(b.glob("part-*.parquet"))
    assert len(files_a) == len(files_b) > 0
    for fa, fb in zip(files_a, files_b, strict=True):
        assert parquet_data(fa.read_bytes()) == parquet_data(fb.read_bytes()), (fa, fb)
        assert pq.read_table(fa).equals(pq.read_table(fb)), (fa, fb)


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


@pytest.fixture(scope="module")
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


# ------------------------------------------------------------------ item 1: input, counts, metrics


def test_manifest_and_marker_show_the_ingest_counts(spark, run):
    published = run.dt_dir()
    assert (published / MARKER).read_text().strip() == run.manifest["run_id"]
    manifest = json.loads((published / MANIFEST).read_text())
    summary = json.loads((run.out / "ingest_summary.json").read_text())
    assert manifest["users"] == summary["users"] == 300
    assert manifest["rows"] == 300 * TOP_K == spark.read.parquet(str(published)).count()
    counts = manifest["ingest"]
    assert counts["quarantined"] == 1 and summary["reasons"] == {"non-numeric movie id": 1}
    for key in ("lines_read", "accepted", "quarantined", "duplicates_dropped", "bad_fraction"):
        assert counts[key] == summary[key]
    assert counts["accepted"] + counts["quarantined"] == counts["lines_read"]
    (bad,) = spark.read.parquet(counts["quarantine"]).collect()
    assert (bad["line"], bad["reason"]) == ("17::not-a-movie::4::978300000", "non-numeric movie id")
    assert leftovers(run) == []


def test_export_check_refuses_a_lost_duplicated_or_swapped_part(spark, run, tmp_path):
    """The check before publishing reads the written export back: with one of its Parquet
    files gone (users lost) or copied (users twice) it raises, naming the counts; with one
    user's rows turned into another's (as many users, not the same ones: what a lost part
    offset by a duplicated one of the same size leaves) it raises too."""
    import pyarrow as pa

    from jobs.common.errors import JobError
    from jobs.score import read_users
    from jobs.scoring.checks import check_export, user_set

    expected = user_set(read_users(spark, str(run.out / "ingest" / "train")))
    assert expected[0] == 300
    parts = sorted(run.dt_dir().glob("part-*.parquet"))
    assert len(parts) > 1
    for case in ("complete", "lost", "duplicated", "swapped"):
        folder = tmp_path / case
        folder.mkdir()
        for part in parts[1:] if case == "lost" else parts:
            shutil.copy(part, folder / part.name)
        if case == "duplicated":
            shutil.copy(parts[0], folder / ("part-99999" + parts[0].name[len("part-00000"):]))
        if case == "swapped":  # the first user's rows become the second user's
            table = pq.read_table(parts[0])
            ids = table.column("user_id").to_numpy()
            first, second = np.unique(ids)[:2]
            ids = np.where(ids == first, second, ids).astype(np.int32)
            table = table.set_column(0, "user_id", pa.array(ids))
            pq.write_table(table, folder / parts[0].name)
        if case == "complete":
            assert check_export(spark, str(folder), expected, TOP_K) == {
                "rows": 300 * TOP_K, "users": 300, "users_rated_everything": 0}  # fmt: skip
            continue
        if case == "swapped":
            with pytest.raises(JobError, match="as many as were ingested, but not the same ones"):
                check_export(spark, str(folder), expected, TOP_K)
            continue
        what = "an incomplete" if case == "lost" else "a duplicated"
        with pytest.raises(JobError, match=f"but 300 were ingested .*; not publishing {what}"):
            check_export(spark, str(folder), expected, TOP_K)


def test_a_user_who_rated_every_movie_does_not_block_the_export(spark, run, tmp_path):
    """A user with no unrated movie left gets no rows; the export of everyone else is
    published and the manifest counts that user apart (scored with the run's model: the new
    user rates only known movies, so the vocabulary is unchanged)."""
    movie_ids = sorted(pq.read_table(run.out / "ingest" / "items").column("movie_id").to_pylist())
    train = tmp_path / "train.dat"
    text = (run.out.parent / "data" / "train.dat").read_text()
    train.write_text(text + "".join(f"{UNKNOWN_ID}::{m}::4::978300000\n" for m in movie_ids))
    out = tmp_path / "out"
    run_ingest(spark, run.conf, str(train), str(out))
    shutil.copytree(run.out / "model", out / "model")
    manifest = run_score(spark, run.conf, str(out), DT)
    assert (manifest["users"], manifest["users_rated_everything"]) == (300, 1)
    export = spark.read.parquet(str(out / "recommendations" / f"dt={DT}"))
    assert export.filter(f"user_id = {UNKNOWN_ID}").count() == 0
    assert export.select("user_id").distinct().count() == 300


def test_unknown_test_users_and_movies_are_reported_and_excluded(spark, run):
    test = run.ingest["test"]
    assert (test["unknown_user_pairs"], test["unknown_item_pairs"]) == (1, 1)
    result = run_evaluate(spark, run.conf, str(run.out), DT)
    assert result["test_excluded"] == {"unknown_user_pairs": 1, "unknown_item_pairs": 1}
    assert result["test_pairs"] == test["pairs"] and result["test_users"] == test["users"]
    predictions = spark.read.parquet(str(run.out / "predictions"))
    assert predictions.count() == test["pairs"]
    assert predictions.filter(f"user_id = {UNKNOWN_ID} or movie_id = {UNKNOWN_ID}").count() == 0
    assert np.isfinite(result["rating"]["auc"])


def test_ingest_cli_above_bad_fraction_exits_3_with_one_line(tmp_path, run):
    lines = [f"{u}::{u}::4::1" for u in range(1, 9)] + ["1::2::9::1", "x::1::3::1"]
    ratings = tmp_path / "ratings.dat"
    ratings.write_text("\n".join(lines) + "\n")
    out = tmp_path / "out"
    proc = subprocess.run(
        cli("ingest", "--ratings", str(ratings), "--out", str(out), "--master", "local[1]",
            "--conf", str(run.conf_path), "--max-bad-fraction", "0.1"),
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=240,
    )  # fmt: skip
    assert proc.returncode == 3, proc.stderr
    line = one_error_line(proc.stderr)
    assert line == proc.stderr.strip().splitlines()[-1]
    assert "2 of 10 lines bad" in line and "max_bad_fraction 0.1" in line
    assert str(out / "quarantine") in line
    summary = json.loads((out / "ingest_summary.json").read_text())
    assert (summary["status"], summary["quarantined"]) == ("failed", 2)
    assert not (out / "ingest" / "train").exists()


# ------------------------------------------------------------------ item 2: atomic exports


def test_rerun_replaces_only_that_date_with_byte_identical_rows(spark, run):
    other = "2024-02-29"
    run_score(spark, run.conf, str(run.out), other)
    other_before = snapshot(run.dt_dir(other))
    again = run_score(spark, run.conf, str(run.out), DT)
    assert again["run_id"] != run.manifest["run_id"]
    after = snapshot(run.dt_dir())
    assert json.loads(after[MANIFEST])["run_id"] == again["run_id"]
    # Spark's Parquet files hold no write time: the same model and data give the same bytes.
    assert part_bytes(run.dt_dir()) == part_bytes(run.dt_dir(other))
    assert part_bytes(run.dt_dir()) == [run.snapshot[n] for n in sorted(run.snapshot)
                                        if n.startswith("part-") and n.endswith(".parquet")]
    assert snapshot(run.dt_dir(other)) == other_before
    # Readers of the whole export see the published dates only, never _staging/_locks/_trash.
    assert spark.read.parquet(str(run.root)).count() == 2 * run.manifest["rows"]
    assert leftovers(run) == [] and leftovers(run, other) == []
    shutil.rmtree(run.dt_dir(other))


def test_lock_held_by_a_live_run_refuses_with_exit_4(spark, run, capsys):
    lock = Path(lock_path(str(run.root), DT))
    lock.parent.mkdir(parents=True, exist_ok=True)
    holder = {"host": socket.gethostname(), "pid": os.getpid(), "since": "2024-03-01T00:00:00"}
    lock.write_text(json.dumps(holder))
    before = snapshot(run.dt_dir())
    try:
        code, err = exit_of(lambda: run_score(spark, run.conf, str(run.out), DT), capsys)
        assert code == 4
        line = one_error_line(err)
        assert f"another run is writing the export for dt={DT}" in line
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in line and str(lock) in line
        assert json.loads(lock.read_text()) == holder  # the refused run leaves the lock alone
        assert snapshot(run.dt_dir()) == before
        # Unreadable lock, or a dead pid on another host: held, a person must look.
        for text in ("garbage", json.dumps(dict(holder, host="elsewhere", pid=dead_pid()))):
            lock.write_text(text)
            with pytest.raises(LockHeldError, match="delete the lock file if that run is dead"):
                with date_lock(spark, str(run.root), DT):
                    pass
        # A dead pid on this host: stale, taken over, and released after the run.
        lock.write_text(json.dumps(dict(holder, pid=dead_pid())))
        with date_lock(spark, str(run.root), DT):
            assert json.loads(lock.read_text())["pid"] == os.getpid()
        assert not lock.exists()
    finally:
        lock.unlink(missing_ok=True)


def race_for_the_lock(spark, root: str, runs: int) -> list[str]:
    """``runs`` threads enter ``date_lock`` at the same instant; what each got."""
    barrier = threading.Barrier(runs)
    outcomes: list[str] = []

    def attempt() -> None:
        barrier.wait()
        try:
            with date_lock(spark, root, DT):
                time.sleep(0.3)
            outcomes.append("held")
        except LockHeldError:
            outcomes.append("refused")

    threads = [threading.Thread(target=attempt) for _ in range(runs)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(outcomes)


def test_lock_is_taken_by_exactly_one_of_simultaneous_runs(spark, tmp_path):
    """Hadoop's local create(overwrite=false) checks, then creates: racing runs could all
    "win". The lock must be exclusive under a real race: 8 runs on a free lock, and 2 runs
    both taking over the same stale lock (its holder is dead)."""
    for round_ in range(8):
        root = str(tmp_path / f"free{round_}")
        assert race_for_the_lock(spark, root, 8) == ["held"] + ["refused"] * 7
        assert not Path(lock_path(root, DT)).exists()
    stale = {"host": socket.gethostname(), "pid": dead_pid(), "since": "2024-03-01T00:00:00"}
    for round_ in range(8):
        root = str(tmp_path / f"stale{round_}")
        Path(lock_path(root, DT)).parent.mkdir(parents=True)
        Path(lock_path(root, DT)).write_text(json.dumps(stale))
        assert race_for_the_lock(spark, root, 2) == ["held", "refused"]
        assert os.listdir(Path(lock_path(root, DT)).parent) == []


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def test_sigkill_mid_write_keeps_previous_export_and_next_run_completes_with_a_retry(
    spark, run, tmp_path
):
    """Items 2 and 5: a score run SIGKILLed while it writes leaves the published date intact;
    the next run (a new process, whose first scoring task fails once and is retried by Spark)
    takes over the dead run's lock, removes its leftovers and publishes the same rows."""
    before = snapshot(run.dt_dir())
    published_rows = json.loads(before[MANIFEST])["rows"]
    shutil.copytree(run.dt_dir(), tmp_path / "before")
    staging = run.root / "_staging"
    log = (tmp_path / "score.log").open("w")
    proc = subprocess.Popen(
        cli("score", "--out", str(run.out), "--dt", DT, "--master", "local[2]",
            "--conf", str(run.conf_path)),
        cwd=REPO, env=cli_env(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 240
        while not list(staging.glob(f"dt={DT}.*")):
            assert proc.poll() is None, (tmp_path / "score.log").read_text()
            assert time.monotonic() < deadline, "the score run never started writing"
            time.sleep(0.02)
        assert proc.poll() is None, "the run finished before it could be killed"
        # A second run for the same date while this one writes: refused, nothing interleaves.
        with pytest.raises(LockHeldError, match=f"pid {proc.pid} on host"):
            with date_lock(spark, str(run.root), DT):
                pass
        os.killpg(proc.pid, signal.SIGKILL)  # the driver, its JVM and the Python workers
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode == -signal.SIGKILL
    wait_group_gone(proc.pid)

    # Killed mid-write: the staging folder and the lock of the dead run are left, the published
    # export of that date is exactly as before and readers still see all of it.
    assert list(staging.glob(f"dt={DT}.*")) and Path(lock_path(str(run.root), DT)).exists()
    assert snapshot(run.dt_dir()) == before
    assert spark.read.parquet(str(run.dt_dir())).count() == published_rows

    # The next run: local[2,4] lets Spark retry the task that fails on its first attempt.
    rerun = subprocess.run(
        [sys.executable, "-m", "tests.faults.score_task_fails_once", "score", "--out",
         str(run.out), "--dt", DT, "--master", "local[2,4]", "--conf", str(run.conf_path)],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert rerun.returncode == 0, rerun.stderr[-5000:]
    assert "taking over the stale lock" in rerun.stderr
    assert "removing the unfinished staging folder" in rerun.stderr
    assert "injected failure" in rerun.stderr  # the first attempt did fail; Spark retried it
    after = snapshot(run.dt_dir())
    manifest = json.loads(after[MANIFEST])
    assert manifest["run_id"] != run.manifest["run_id"]
    assert after[MARKER].decode().strip() == manifest["run_id"]
    assert (manifest["rows"], manifest["users"]) == (run.manifest["rows"], run.manifest["users"])
    same_rows_in_file_order(run.dt_dir(), tmp_path / "before")  # written by another JVM
    assert leftovers(run) == []


def live_group_members(pgid: int) -> list[int]:
    """Pids in process group ``pgid`` that are not zombies (Linux /proc)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            members.append(int(stat.parent.name))
    return members


def wait_group_gone(pgid: int, seconds: float = 30) -> None:
    """The killed run's whole process group (driver, JVM, Python workers) is gone."""
    if not Path("/proc/self/stat").exists():
        return
    deadline = time.monotonic() + seconds
    while live_group_members(pgid):
        if time.monotonic() > deadline:
            pytest.fail(f"processes {live_group_members(pgid)} of the killed run are alive")
        time.sleep(0.1)


def test_publish_restores_an_export_moved_aside_by_a_killed_swap(spark, run):
    """A kill between the swap's two renames leaves dt=DT in _trash: the next run restores it
    before writing and then replaces it; a reader never sees a half-written date."""
    from jobs.storage.export import clean_leftovers

    trash = run.root / "_trash" / f"dt={DT}.deadbeef0001"
    trash.parent.mkdir(exist_ok=True)
    before = snapshot(run.dt_dir())
    os.replace(run.dt_dir(), trash)
    (run.root / "_staging" / f"dt={DT}.deadbeef0002").mkdir(parents=True)
    clean_leftovers(spark, str(run.root), DT)
    assert snapshot(run.dt_dir()) == before and leftovers(run) == []


# ------------------------------------------------------------------ item 3: resumable training


class Killed(BaseException):
    """Stands in for SIGKILL right after a checkpoint was written (nothing catches it)."""


def tensors_of(model_dir: Path) -> dict[str, torch.Tensor]:
    return load_file(str(model_dir / WEIGHTS_FILE))


def test_resume_after_kill_matches_uninterrupted_run(spark, run, monkeypatch):
    conf = deep_merge(run.conf, {"train": {"epochs": 3}})
    full, resumed = run.out / "model_full", run.out / "model_resumed"
    ckpt = Path(checkpoint_dir(str(resumed)))
    full_meta = run_train(spark, conf, str(run.out), str(full))
    assert not Path(checkpoint_dir(str(full))).exists()  # removed after success
    assert not Path(refit_dir(checkpoint_dir(str(full)))).exists()

    real_save = save_checkpoint

    def save_then_die(folder, trainer):
        real_save(folder, trainer)
        if trainer.history[-1]["epoch"] == 2:
            raise Killed

    monkeypatch.setattr("rbmcore.checkpoint.save_checkpoint", save_then_die)
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
    real_save = save_checkpoint

    def die_in_refit(folder, trainer):
        real_save(folder, trainer)
        if str(folder) == refit_dir(str(ckpt)) and trainer.history[-1]["epoch"] == 1:
            raise Killed

    monkeypatch.setattr("rbmcore.checkpoint.save_checkpoint", die_in_refit)
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


def make_trainer(n_items: int, conf: dict[str, Any]) -> Trainer:
    config, _ = train_settings(conf)
    model = build_model(config.kind, n_items, config.n_hidden,
                        torch.Generator().manual_seed(config.seed))  # fmt: skip
    return Trainer(model, config, torch.device("cpu"))


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


def test_divergence_of_a_two_way_part_names_its_checkpoint(spark, run, capsys):
    """A two-way model diverging in its user-based part: exit 6, and the message names the part
    and that part's last good checkpoint; no model is written."""
    conf = deep_merge(run.conf, {"train": {"epochs": 3, "lr_decay": 1e37, "item_based": True}})
    model = run.out / "model_nan_two_way"
    part = Path(checkpoint_dir(str(model))) / "user"
    code, err = exit_of(lambda: run_train(spark, conf, str(run.out), str(model)), capsys)
    assert code == 6
    line = one_error_line(err)
    assert "the user-based part: training diverged at epoch 2" in line
    assert f"the last good checkpoint (epoch 1) is kept in {part}" in line
    assert f"the model at {model} is unchanged" in line
    assert not model.exists()
    shutil.rmtree(checkpoint_dir(str(model)))


# ------------------------------------------------------------------ item 4: safe model files


def tamper_truncate(folder: Path) -> None:
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def tamper_truncate_and_resign(folder: Path) -> None:
    """Truncated, with model.json's checksum updated to match: the file itself is refused."""
    from rbmcore.io.folders import sha256_file

    tamper_truncate(folder)
    rewrite_meta(folder, weights_sha256=sha256_file(folder / WEIGHTS_FILE))


def tamper_flip_byte(folder: Path) -> None:
    weights = folder / WEIGHTS_FILE
    blob = bytearray(weights.read_bytes())
    blob[-3] ^= 0x40
    weights.write_bytes(bytes(blob))


def rewrite_meta(folder: Path, **changes: Any) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    meta.update(changes)
    (folder / META_FILE).write_text(json.dumps(meta))


def other_vocabulary(folder: Path) -> None:
    """A valid model of the same shape trained on other data (other movie ids)."""
    meta = json.loads((folder / META_FILE).read_text())
    n_items = meta["n_items"]
    model = build_model("binary", n_items, 16, torch.Generator().manual_seed(1))
    save_model(folder, model, np.arange(1, n_items + 1) * 7)


BAD_MODELS = {
    "truncated": (tamper_truncate, "checksum mismatch .*truncated or tampered"),
    "truncated-resigned": (tamper_truncate_and_resign, "weights unreadable"),
    "flipped-byte": (tamper_flip_byte, "checksum mismatch .*truncated or tampered"),
    "wrong-version": (lambda f: rewrite_meta(f, format_version=2), "format version 2 .*retrain"),
    "wrong-shapes": (lambda f: rewrite_meta(f, shapes={"W": [1, 1]}), "do not match the shapes"),
    "no-model-json": (lambda f: (f / META_FILE).unlink(), "not a model folder"),
    "other-vocabulary": (other_vocabulary, "different item vocabulary"),
}


@pytest.mark.parametrize("case", sorted(BAD_MODELS))
def test_bad_model_file_is_refused_with_exit_5(spark, run, tmp_path, capsys, case):
    tamper, message = BAD_MODELS[case]
    model = tmp_path / "model"
    shutil.copytree(run.out / "model", model)
    tamper(model)
    dt = "2024-03-09"
    code, err = exit_of(
        lambda: run_score(spark, run.conf, str(run.out), dt, str(model)), capsys
    )
    assert code == 5
    line = one_error_line(err)
    assert line.startswith("rbm-reco: error: bad model file: ")
    assert re.search(message, line), line
    assert not run.dt_dir(dt).exists() and leftovers(run, dt) == []


PICKLE_PATTERNS = [
    (re.compile(r"^\s*(import|from)\s+(c?pickle|cloudpickle|dill|joblib|shelve)\b", re.M),
     "imports a pickle module"),
    (re.compile(r"\b(pickle|cloudpickle|dill|joblib)\.loads?\("), "unpickles"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"),
     "torch.load without weights_only=True"),
    (re.compile(r"allow_pickle\s*=\s*True"), "allow_pickle=True"),
]  # fmt: skip


def test_no_pickle_anywhere_in_the_sources():
    """Model files, checkpoints and every other file rbm-reco reads are safetensors/JSON/Parquet;
    nothing in the code base loads pickles."""
    problems = []
    for folder in ("jobs", "rbmcore", "scripts", "tests"):
        for path in sorted((REPO / folder).rglob("*.py")):
            if path == Path(__file__).resolve():
                continue
            text = path.read_text()
            for pattern, what in PICKLE_PATTERNS:
                for match in pattern.finditer(text):
                    line = text.count("\n", 0, match.start()) + 1
                    problems.append(f"{path.relative_to(REPO)}:{line}: {what}")
    assert problems == [], "pickle in the sources (issue 6: no pickle anywhere)"


# ------------------------------------------------------------------ item 6: the operations section


def operations_section() -> str:
    """The README's operations section."""
    readme = (REPO / "README.md").read_text()
    match = re.search(r"^## Operations\n(.*?)(?=^## |\Z)", readme, re.M | re.S)
    assert match, "README.md has no ## Operations section"
    return match.group(1)


def test_operations_section_matches_the_exit_codes_and_layout():
    from jobs.common.errors import (
        EXIT_DIVERGED,
        EXIT_MODEL_FILE,
        BadInputError,
        JobError,
        UsageError,
    )
    from jobs.storage import layout
    from jobs.storage.export import MANIFEST, MARKER

    text = operations_section()
    table = dict(re.findall(r"^\| (\d+) \| ([^|]+) \|", text, re.M))
    assert sorted(map(int, table)) == [0, 1, 2, 3, 4, 5, 6, 130]
    assert JobError.exit_code == 1 and "job error" in table["1"]
    assert UsageError.exit_code == 2 and "usage" in table["2"]
    assert BadInputError.exit_code == 3 and "bad input" in table["3"]
    assert LockHeldError.exit_code == 4 and "lock" in table["4"]
    assert EXIT_MODEL_FILE == 5 and "model file" in table["5"]
    assert EXIT_DIVERGED == 6 and "diverged" in table["6"]
    out = "OUT"
    for path in (
        layout.ingest_summary(out),
        layout.quarantine(out),
        layout.recommendations_for(out, "D") + "/",
        lock_path(layout.recommendations(out), "D"),
        checkpoint_dir(layout.model_dir(out)) + "/",
    ):
        assert f"`{path}" in text, path
    assert f"`{MANIFEST}`" in text and f"`{MARKER}`" in text
