"""The lock of a dated export (jobs/storage/locks.py) on a real local SparkSession: a run whose
date is locked by a live run exits 4 and changes nothing; a lock is taken over only when its
holder's process is provably gone or its lease expired; it is renewed and released only by its
owner; exactly one of simultaneous runs gets it; two runs in containers that share a host name
(each sees the other's pid as dead) do not steal each other's lock; a score run SIGKILLed
mid-write keeps the published export and the next run (with a scoring task retried by Spark)
publishes the same rows."""

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
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from jobs.common.config import deep_merge
from jobs.common.errors import LockHeldError
from jobs.score import run_score
from jobs.storage.export import MANIFEST, MARKER
from jobs.storage.locks import date_lock, lease_expired, lock_path, process_identity
from tests.conftest import REPO
from tests.faults.other_container import OTHER_NAMESPACE
from tests.jobs.support import DT, cli, cli_env, exit_of, leftovers, one_error_line, snapshot


def holder(**changes) -> dict:
    """A lock document as a live run of this process writes it, with ``changes``."""
    now = datetime.now(UTC)
    document = {
        "token": "t" * 32, "host": socket.gethostname(), "pid": os.getpid(),
        "process": process_identity(), "since": now.isoformat(timespec="seconds"),
        "renewed": now.isoformat(timespec="milliseconds"), "lease_s": 120.0,
    }  # fmt: skip
    return {**document, **changes}


def identity_of_a_dead_process() -> str:
    """The identity a process of this machine had before it exited."""
    proc = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read()"],
                            stdin=subprocess.PIPE)  # fmt: skip
    identity = process_identity(proc.pid)
    proc.communicate(b"")
    assert identity is not None and process_identity(proc.pid) != identity
    return identity


def test_lock_held_by_a_live_run_refuses_with_exit_4(spark, run, capsys):
    lock = Path(lock_path(str(run.root), DT))
    lock.parent.mkdir(parents=True, exist_ok=True)
    live = holder()
    lock.write_text(json.dumps(live))
    before = snapshot(run.dt_dir())
    try:
        code, err = exit_of(lambda: run_score(spark, run.conf, str(run.out), DT), capsys)
        assert code == 4
        line = one_error_line(err)
        assert f"another run is writing the export for dt={DT}" in line
        assert f"pid {os.getpid()} on host {socket.gethostname()}" in line and str(lock) in line
        assert json.loads(lock.read_text()) == live  # the refused run leaves the lock alone
        assert snapshot(run.dt_dir()) == before
        # Held too: an unreadable lock (a person must look), and a run of another container
        # with this host name whose pid is dead here, its lease live.
        other_container = holder(pid=dead_pid(), process=f"boot/{OTHER_NAMESPACE}/{dead_pid()}/1")
        for text, reason in (("garbage", "unreadable"), (json.dumps(other_container), "lease")):
            lock.write_text(text)
            with pytest.raises(LockHeldError, match=reason):
                with date_lock(spark, str(run.root), DT):
                    pass
            assert lock.read_text() == text
    finally:
        lock.unlink(missing_ok=True)


@pytest.mark.parametrize("case", ["process gone", "lease expired"])
def test_a_stale_lock_is_taken_over_and_released(spark, tmp_path, case):
    """Stale: its process is gone (same machine and pid namespace), or its lease expired (a
    holder anywhere, e.g. another container, that stopped renewing it)."""
    long_ago = (datetime.now(UTC) - timedelta(seconds=121)).isoformat()
    stale = (holder(process=identity_of_a_dead_process()) if case == "process gone" else
             holder(process=f"boot/{OTHER_NAMESPACE}/1/1", renewed=long_ago))  # fmt: skip
    root = str(tmp_path)
    lock = Path(lock_path(root, DT))
    lock.parent.mkdir(parents=True)
    lock.write_text(json.dumps(stale))
    with date_lock(spark, root, DT) as held:
        mine = json.loads(lock.read_text())
        assert mine["token"] == held.token != stale["token"] and mine["pid"] == os.getpid()
    assert not lock.exists()


def test_a_lock_is_renewed_and_released_only_by_its_owner(spark, tmp_path):
    root = str(tmp_path)
    lock = Path(lock_path(root, DT))
    with date_lock(spark, root, DT, lease_s=1.5) as held:
        first = json.loads(lock.read_text())
        time.sleep(1.2)  # the heartbeat renews every lease / 3
        renewed = json.loads(lock.read_text())
        assert renewed["token"] == first["token"] and renewed["renewed"] > first["renewed"]
        assert not lease_expired(renewed)
        # Another run took the lock over (this one had stalled past its lease):
        theirs = holder(token="x" * 32)
        lock.write_text(json.dumps(theirs))
        with pytest.raises(LockHeldError, match="this run lost the lock"):
            held.ensure_held()
        time.sleep(1.0)  # the heartbeat does not overwrite their lock either
    assert json.loads(lock.read_text()) == theirs  # not released: it is not this run's


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
    stale = holder(process=identity_of_a_dead_process())
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
        wait_for_staging(proc, staging, DT, tmp_path / "score.log")
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


def wait_for_staging(proc: subprocess.Popen, staging: Path, dt: str, log: Path) -> None:
    deadline = time.monotonic() + 240
    while not list(staging.glob(f"dt={dt}.*")):
        assert proc.poll() is None, log.read_text()
        assert time.monotonic() < deadline, "the score run never started writing"
        time.sleep(0.02)


def test_runs_in_two_containers_with_one_host_name_do_not_steal_the_lock(
    spark, run, tmp_path, capsys
):
    """Run A (another container: this host name, its own pid namespace, its pid dead here)
    holds the lock of a date and is frozen mid-write. Run B here must not take the lock while
    A's lease runs, takes it over once the lease expired and publishes; A, thawed, finds its
    lock gone: it exits 4, publishes nothing, and leaves B's lock and export alone."""
    dt, lease = "2024-03-05", 6
    conf = deep_merge(run.conf, {"score": {"lock_lease_s": lease}})
    published_before = snapshot(run.dt_dir())
    log = tmp_path / "a.log"
    a = subprocess.Popen(
        [sys.executable, "-m", "tests.faults.other_container", str(dead_pid()), "score",
         "--out", str(run.out), "--dt", dt, "--master", "local[2]", "--conf", str(run.conf_path),
         "--set", f"score.lock_lease_s={lease}"],
        cwd=REPO, env=cli_env(), stdout=log.open("w"), stderr=subprocess.STDOUT,
        start_new_session=True,
    )  # fmt: skip
    lock = Path(lock_path(str(run.root), dt))
    try:
        wait_for_staging(a, run.root / "_staging", dt, log)
        os.killpg(a.pid, signal.SIGSTOP)
        held_by_a = json.loads(lock.read_text())
        assert held_by_a["host"] == socket.gethostname() and held_by_a["pid"] != a.pid
        with pytest.raises(LockHeldError, match="another run is writing"):
            with date_lock(spark, str(run.root), dt, lease):
                pass
        while not lease_expired(json.loads(lock.read_text())):
            time.sleep(0.2)
        info = run_score(spark, conf, str(run.out), dt)  # B takes the lock over
        assert json.loads((run.dt_dir(dt) / MANIFEST).read_text())["run_id"] == info["run_id"]
        b_export = snapshot(run.dt_dir(dt))
        os.killpg(a.pid, signal.SIGCONT)
        a.wait(timeout=240)
    finally:
        if a.poll() is None:
            os.killpg(a.pid, signal.SIGKILL)
            a.wait()
    output = log.read_text()
    assert a.returncode == 4, output[-3000:]
    assert "rbm-reco: error: this run lost the lock" in one_error_line(output)
    assert snapshot(run.dt_dir(dt)) == b_export and snapshot(run.dt_dir()) == published_before
    assert leftovers(run, dt) == [] and not lock.exists()
    shutil.rmtree(run.dt_dir(dt))


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
