"""A hostile-input corpus for what an operator (or a scheduler) can get wrong, generated here (no
MovieLens line): a destructive or empty path, a folder of another kind where an output goes, a
date in another spelling, an edited model folder, an unknown config section or key, a number
out of range. Each case runs a job's command line in-process, as ``rbm-reco`` does, and
asserts the exact exit code, the one-line reason, that the thing it pointed at is untouched,
and that nothing published before changed (the export of DT, the model, the ingested data).

Damage elsewhere has its own tests: locks stolen across containers (test_locks.py), torn or
tampered model files (test_model_files.py), remote resume and non-atomic renames
(test_filesystems.py)."""

from __future__ import annotations

import importlib
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.jobs.support import DT, Run, exit_of, one_error_line


def tree(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` with its bytes (empty when it does not exist)."""
    if not folder.exists():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file()}  # fmt: skip


def published(run: Run) -> dict[str, dict[str, bytes]]:
    """What earlier runs published: the export of DT, the model, the ingested data."""
    places = {"export": run.dt_dir(), "model": run.out / "model", "ingest": run.out / "ingest"}
    return {name: tree(path) for name, path in places.items()}


def foreign_folder(path: Path) -> Path:
    """Someone else's files in the folder where an output goes (with what is there already)."""
    path.mkdir(parents=True, exist_ok=True)
    (path / "ratings.csv").write_text("user,movie\n1,2\n")
    (path / "notes.txt").write_text("not rbm-reco's\n")
    return path


def edited_model(run: Run, where: Path, **changes) -> Path:
    """A copy of the run's model whose model.json was edited by hand."""
    for file in (run.out / "model").iterdir():
        where.mkdir(parents=True, exist_ok=True)
        (where / file.name).write_bytes(file.read_bytes())
    meta = json.loads((where / "model.json").read_text())
    for key, value in changes.items():
        if key in meta["hyperparameters"]:
            meta["hyperparameters"][key] = value
        else:
            meta[key] = value
    (where / "model.json").write_text(json.dumps(meta))
    return where


@dataclass
class Case:
    job: str
    argv: Callable[[Run, Path], list[str]]  # the job's arguments, given the run and a tmp folder
    code: int
    reason: str  # a substring of the error line
    target: Callable[[Run, Path], Path | None] = lambda run, tmp: None  # made before, untouched


def common(run: Run) -> list[str]:
    return ["--conf", str(run.conf_path), "--master", "local[2]"]


CASES: dict[str, Case] = {
    # destructive or empty paths
    "train --model on a data folder": Case(
        "train", lambda r, t: ["--out", str(r.out), "--model", str(t / "data"), *common(r)], 2,
        "is not a model folder (it holds notes.txt, ratings.csv)",
        lambda r, t: foreign_folder(t / "data")),
    "train --model OUT": Case(
        "train", lambda r, t: ["--out", str(r.out), "--model", str(r.out), *common(r)], 2,
        "is not a model folder"),
    "train beside a foreign checkpoint folder": Case(
        "train", lambda r, t: ["--out", str(r.out), "--model", str(t / "m"), *common(r)], 2,
        "is not a training checkpoint", lambda r, t: foreign_folder(t / "m.checkpoint")),
    "score on a foreign dt= folder": Case(
        "score", lambda r, t: ["--out", str(r.out), "--dt", "2024-06-01", *common(r)], 2,
        "is not a date export (it holds notes.txt, ratings.csv)",
        lambda r, t: foreign_folder(r.root / "dt=2024-06-01")),
    "evaluate over a foreign predictions folder": Case(
        "evaluate", lambda r, t: ["--out", str(r.out), "--dt", DT, *common(r)], 2,
        "is not a predictions folder", lambda r, t: foreign_folder(r.out / "predictions")),
    "train --out ''": Case("train", lambda r, t: ["--out", "", *common(r)], 2,
                           "output path '' is empty"),
    "ingest --out ''": Case("ingest", lambda r, t: ["--ratings", "x", "--out", ""], 2,
                            "output path '' is empty"),
    "run --out ' '": Case("run", lambda r, t: ["--out", " "], 2, "output path ' ' is empty"),
    "score --out /": Case("score", lambda r, t: ["--out", "/"], 2,
                          "output path '/' is the root of a file system"),
    "run --out file:///": Case("run", lambda r, t: ["--out", "file:///"], 2,
                               "is the root of a file system"),
    "evaluate --out hdfs://nn": Case("evaluate", lambda r, t: ["--out", "hdfs://nn"], 2,
                                     "is the root of a file system"),
    "train --model ''": Case("train", lambda r, t: ["--out", str(r.out), "--model", ""], 2,
                             "output path '' is empty"),
    "generate --out ''": Case("generate", lambda r, t: ["--preset", "ml-100k", "--out", ""], 2,
                              "output path '' is empty"),
    # dates in other spellings
    "score --dt 20260101": Case("score", lambda r, t: ["--out", str(r.out), "--dt", "20260101"],
                                2, "--dt must be a date YYYY-MM-DD, got '20260101'"),
    "score --dt 2026-W01-4": Case("score", lambda r, t: ["--out", str(r.out), "--dt",
                                                         "2026-W01-4"], 2, "got '2026-W01-4'"),
    "evaluate --dt 2024-02-30": Case("evaluate", lambda r, t: ["--out", str(r.out), "--dt",
                                                               "2024-02-30"], 2, "YYYY-MM-DD"),
    "run --dt 2026-1-1": Case("run", lambda r, t: ["--out", str(t), "--dt", "2026-1-1"], 2,
                              "got '2026-1-1'"),
    # edited model folders
    "score with model.json's n_hidden edited": Case(
        "score", lambda r, t: ["--out", str(r.out), "--dt", "2024-06-02", "--model",
                               str(t / "model"), *common(r)], 5,
        "bad model file: ", lambda r, t: edited_model(r, t / "model", n_hidden=10**9)),
    "score with an unknown key in model.json": Case(
        "score", lambda r, t: ["--out", str(r.out), "--dt", "2024-06-02", "--model",
                               str(t / "model"), *common(r)], 5,
        "unknown keys ['origin']", lambda r, t: edited_model(r, t / "model", origin="me")),
    # config sections, keys and values
    "score --set score.topk=5": Case(
        "score", lambda r, t: ["--out", str(r.out), "--set", "score.topk=5"], 2,
        "unknown [score] setting topk"),
    "train --set scroe.top_k=5": Case(
        "train", lambda r, t: ["--out", str(r.out), "--set", "scroe.top_k=5"], 2,
        "unknown config section [scroe]"),
    "ingest --set ingest.batchsize=5": Case(
        "ingest", lambda r, t: ["--ratings", "x", "--out", str(t), "--set",
                                "ingest.batchsize=5"], 2, "unknown [ingest] setting batchsize"),
    "run --set spark.mastr=yarn": Case(
        "run", lambda r, t: ["--out", str(t), "--set", "spark.mastr=yarn"], 2,
        "unknown [spark] setting mastr"),
    "train --set train.rated.nhidden=5": Case(
        "train", lambda r, t: ["--out", str(r.out), "--set", "train.rated.nhidden=5"], 2,
        "unknown [train.rated] setting nhidden"),
    "score --set score.top_k=inf": Case(
        "score", lambda r, t: ["--out", str(r.out), "--set", "score.top_k=inf"], 2,
        "score.top_k must be an integer within [1, 10000], got inf"),
    "recommend --top-k -1": Case(
        "recommend", lambda r, t: ["--out", str(r.out), "--user", "1", "--top-k", "-1"], 2,
        "score.top_k must be an integer within [1, 10000], got -1"),
    "recommend --user 0": Case(
        "recommend", lambda r, t: ["--out", str(r.out), "--user", "0"], 2,
        "argument --user: must be within [1, 2147483647], got 0"),
    "train --epochs 0": Case("train", lambda r, t: ["--out", str(r.out), "--epochs", "0"], 2,
                             "epochs must be an integer within [1, 100000], got 0"),
    "train --hidden 1000000000": Case(
        "train", lambda r, t: ["--out", str(r.out), "--hidden", "1000000000"], 2,
        "n_hidden must be an integer within [1, 100000]"),
    "train --lr nan": Case("train", lambda r, t: ["--out", str(r.out), "--lr", "nan"], 2,
                           "lr must be a number within (0, 1000], got nan"),
    "train --seed -1": Case("train", lambda r, t: ["--out", str(r.out), "--seed", "-1"], 2,
                            "seed must be an integer within"),
    "train --distributed 100000": Case(
        "train", lambda r, t: ["--out", str(r.out), "--distributed", "100000"], 2,
        "distributed must be within [0, 4096]"),
    "run --max-bad-fraction 2": Case(
        "run", lambda r, t: ["--out", str(t), "--max-bad-fraction", "2"], 2,
        "ingest.max_bad_fraction must be a number within [0.0, 1.0], got 2.0"),
    "run --batch-size 0": Case("run", lambda r, t: ["--out", str(t), "--batch-size", "0"], 2,
                               "ingest.batch_size must be an integer within"),
    "generate --users 0": Case(
        "generate", lambda r, t: ["--users", "0", "--movies", "5", "--ratings", "5", "--out",
                                  str(t)], 2, "argument --users: must be within"),
    "score --log-level LOUD": Case(
        "score", lambda r, t: ["--out", str(r.out), "--log-level", "LOUD"], 2,
        "--log-level must be one of"),
    "score --conf missing.toml": Case(
        "score", lambda r, t: ["--out", str(r.out), "--conf", str(t / "missing.toml")], 2,
        "config file not found"),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_operation_is_refused_and_changes_nothing(spark, run, tmp_path, capsys, name):
    case = CASES[name]
    target = case.target(run, tmp_path)
    target_before = tree(target) if target is not None else None
    before = published(run)
    main = importlib.import_module(f"jobs.{case.job}").main
    code, err = exit_of(lambda: main(case.argv(run, tmp_path)), capsys)
    line = one_error_line(err)
    assert code == case.code, line
    assert case.reason in line, line
    if target is not None:
        assert tree(target) == target_before
        if target.is_relative_to(run.out):
            shutil.rmtree(target)
    assert published(run) == before
