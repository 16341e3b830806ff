"""The ingest as one unit (jobs/ingestion/unit.py): every part carries the unit's id, train and
score refuse a mixture, a kill between ingest's writes leaves the published unit as it was, and
a re-run replaces only folders it can prove are ingest outputs."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from jobs.common.errors import BadInputError, UsageError
from jobs.ingest import run_ingest
from jobs.ingestion.readback import load_vocabulary
from jobs.ingestion.unit import ID_FILE, MANIFEST, recover
from jobs.score import run_score
from jobs.train import run_train
from tests.conftest import REPO
from tests.jobs.support import DT, cli_env, exit_of, one_error_line


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` by relative path (its bytes)."""
    return {
        str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()
    }


def copy_run(run, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(run.out / "ingest", out / "ingest")
    shutil.copytree(run.out / "model", out / "model")
    return out


def test_every_part_carries_the_unit_id(run):
    manifest = json.loads((run.out / "ingest" / MANIFEST).read_text())
    assert manifest["ingest_id"] == run.ingest["ingest_id"]
    assert manifest["parts"] == ["items", "train", "test"]
    for part in manifest["parts"]:
        assert (run.out / "ingest" / part / ID_FILE).read_text().strip() == manifest["ingest_id"]
    assert (run.out / "quarantine" / ID_FILE).read_text().strip() == manifest["ingest_id"]
    assert manifest["rating_scale"]["name"] == "stars"
    assert manifest["users"] == run.ingest["users"] and manifest["newest_timestamp"] > 0


def test_train_and_score_refuse_a_mixture(spark, run, tmp_path, capsys):
    out = copy_run(run, tmp_path)
    (out / "ingest" / "train" / ID_FILE).write_text("0123456789ab\n")  # another ingest's rows
    (out / "ingest" / "train" / f".{ID_FILE}.crc").unlink()  # (with its own checksum file)
    with pytest.raises(BadInputError, match="mixes ingests: train/ is from ingest 0123456789ab"):
        load_vocabulary(spark, str(out))
    code, err = exit_of(lambda: run_train(spark, run.conf, str(out)), capsys)
    assert code == 3 and "mixes ingests" in one_error_line(err)
    code, err = exit_of(lambda: run_score(spark, run.conf, str(out), DT), capsys)
    assert code == 3 and "mixes ingests" in one_error_line(err)
    assert not (out / "recommendations").exists()
    (out / "ingest" / "items" / ID_FILE).write_text("edited\n")  # its checksum no longer holds
    with pytest.raises(BadInputError, match="cannot read .*items/_ingest_id .*Checksum"):
        load_vocabulary(spark, str(out))
    shutil.copy(run.out / "ingest" / "items" / ID_FILE, out / "ingest" / "items" / ID_FILE)
    (out / "ingest" / "train" / ID_FILE).unlink()
    with pytest.raises(BadInputError, match="ingested train missing"):
        load_vocabulary(spark, str(out))
    (out / "ingest" / MANIFEST).unlink()
    with pytest.raises(BadInputError, match="no _ingest.json"):
        load_vocabulary(spark, str(out))


def test_kill_between_writes_leaves_the_published_unit(spark, run, tmp_path):
    """SIGKILL after the vocabulary is staged and before the training rows: OUT/ingest is the
    previous unit, byte for byte, and still reads; the next ingest cleans up and publishes."""
    out = copy_run(run, tmp_path)
    before = tree(out / "ingest")
    data = tmp_path / "ratings.dat"
    data.write_text("".join(f"{u}::{m}::4::97830000{m}\n" for u in range(1, 40) for m in (1, 2)))
    proc = subprocess.run(
        [sys.executable, "-m",
         "tests.faults.ingest_killed_between_writes", "--ratings", str(data), "--out", str(out),
         "--master", "local[1]", "--conf", str(run.conf_path)],
        cwd=REPO, env=cli_env(), capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == -9, proc.stderr[-2000:]
    assert tree(out / "ingest") == before
    staged = list((out / "_staging").glob("ingest.*"))
    assert len(staged) == 1 and (staged[0] / "items" / "_SUCCESS").exists()
    assert not (staged[0] / "train").exists()
    assert load_vocabulary(spark, str(out)).ingest_id == run.ingest["ingest_id"]
    summary = run_ingest(spark, run.conf, str(data), str(out))
    assert list((out / "_staging").iterdir()) == []
    assert load_vocabulary(spark, str(out)).ingest_id == summary["ingest_id"]
    assert summary["users"] == 39 and not (out / "ingest" / "test").exists()


def test_a_unit_moved_aside_by_a_killed_swap_is_put_back(spark, run, tmp_path):
    out = copy_run(run, tmp_path)
    before = tree(out / "ingest")
    (out / "_trash").mkdir()
    os.replace(out / "ingest", out / "_trash" / "ingest.deadbeef0001")
    with pytest.raises(BadInputError, match="no ingested data"):
        load_vocabulary(spark, str(out))
    recover(spark, str(out))
    assert tree(out / "ingest") == before and list((out / "_trash").iterdir()) == []


def test_rerun_replaces_only_ingest_outputs(spark, run, tmp_path):
    data = tmp_path / "ratings.dat"
    data.write_text("".join(f"{u}::1::4::978300000\n" for u in range(1, 5)))
    for folder in ("ingest", "quarantine"):
        out = tmp_path / f"not-{folder}"
        (out / folder).mkdir(parents=True)
        (out / folder / "notes.txt").write_text("mine")
        with pytest.raises(UsageError, match=f"{folder} exists and is not an rbm-reco ingest"):
            run_ingest(spark, run.conf, str(data), str(out))
        assert (out / folder / "notes.txt").read_text() == "mine"
        assert sorted(p.name for p in out.iterdir()) == [folder]
    with pytest.raises(UsageError, match="--out must name a folder"):
        run_ingest(spark, run.conf, str(data), "")
