"""The lock of a dated export (jobs/storage/locks.py) on a real local SparkSession: a run whose
date is locked by a live run exits 4 and changes nothing, stale locks are taken over, exactly
one of simultaneous runs gets the lock; a score run SIGKILLed mid-write keeps the published
export and the next run (with a scoring task retried by Spark) publishes the same rows."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.common.errors import LockHeldError
from jobs.score import run_score
from jobs.storage.export import MANIFEST, MARKER
from jobs.storage.locks import date_lock, lock_path
from tests.conftest import REPO
from tests.jobs.support import DT, cli, cli_env, exit_of, leftovers, one_error_line, snapshot


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


def test_sigkill_mid_write_keeps_previous_export_and_next_run_completes_with_a_retry(
    spark, run, tmp_path
):
    """A score run SIGKILLed while it writes leaves the published date intact;
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
