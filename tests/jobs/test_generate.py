"""jobs/generate.py, the ``rbm-reco generate`` command: the data set it writes, its usage
errors, and the one-line error and exit code 2 of the script."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from jobs import generate as generate_job
from jobs.common.errors import UsageError
from tests.conftest import REPO


def test_cli_writes_dataset(tmp_path: Path) -> None:
    out = tmp_path / "synth"
    argv = ["--users", "200", "--movies", "150", "--ratings", "8000", "--seed", "2"]
    code = generate_job.main([*argv, "--test-fraction", "0.1", "--out", str(out)])
    assert code == 0
    summary = json.loads((out / "generate_summary.json").read_text())
    assert (summary["n_users"], summary["n_movies"], summary["n_ratings"]) == (200, 150, 8000)
    assert (out / "train.dat").exists() and (out / "test.dat").exists()


def test_cli_usage_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--ratings"):
        generate_job.main(["--users", "10", "--movies", "50", "--out", str(tmp_path)])
    with pytest.raises(UsageError, match="n_ratings must be in"):
        generate_job.main(["--preset", "ml-1m", "--users", "100", "--out", str(tmp_path)])


def test_cli_script_reports_one_line_and_exit_code_2(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "jobs" / "generate.py"),
            "--users",
            "5",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "rbm-reco: error: give --preset or all of --users --movies --ratings "
        "(missing --movies --ratings)"
    ]
