"""Safe model files: the score job refuses a truncated, tampered, edited, mismatched or foreign
model with exit 5 and a one-line reason, before it allocates the weights, and publishes
nothing; nothing in the code base loads pickles."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

from jobs.score import run_score
from rbmcore.io.artifact import META_FILE, WEIGHTS_FILE, save_model
from rbmcore.io.folders import sha256_file
from rbmcore.models.factory import build_model
from tests.conftest import REPO
from tests.jobs.support import exit_of, leftovers, one_error_line


def tamper_truncate(folder: Path) -> None:
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[: weights.stat().st_size // 2])


def tamper_truncate_and_resign(folder: Path) -> None:
    """Truncated, with model.json's checksum updated to match: the file itself is refused."""
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


def edit_hyperparameters(folder: Path, **changes: Any) -> None:
    meta = json.loads((folder / META_FILE).read_text())
    rewrite_meta(folder, hyperparameters={**meta["hyperparameters"], **changes})


def as_format_1(folder: Path) -> None:
    """The model as format 1 wrote it: no copy of model.json in the weights' header (so an edit
    of model.json is caught by checking it against the weights, not against the copy)."""
    save_file(load_file(str(folder / WEIGHTS_FILE)), str(folder / WEIGHTS_FILE))
    meta = json.loads((folder / META_FILE).read_text())
    del meta["rbm_reco_version"]
    meta.update(format_version=1, weights_sha256=sha256_file(folder / WEIGHTS_FILE))
    (folder / META_FILE).write_text(json.dumps(meta))


def format_1_then(edit) -> Any:
    return lambda folder: (as_format_1(folder), edit(folder))


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
    "wrong-version": (lambda f: rewrite_meta(f, format_version=3), "format version 3 .*retrain"),
    "edited-shapes": (lambda f: rewrite_meta(f, shapes={"W": [1, 1]}),
                      r"model.json differs from the copy saved with the weights \(shapes\)"),
    "edited-n-hidden": (lambda f: edit_hyperparameters(f, n_hidden=10**9),
                        r"differs from the copy saved with the weights \(hyperparameters\)"),
    "unknown-key": (lambda f: rewrite_meta(f, owner="me"), r"unknown keys \['owner'\]"),
    "not-json": (lambda f: (f / META_FILE).write_text("{"), "is not valid JSON"),
    "format-1-wrong-shapes": (format_1_then(lambda f: rewrite_meta(f, shapes={"W": [1, 1]})),
                              "do not match the shapes"),
    "format-1-edited-n-hidden": (format_1_then(lambda f: edit_hyperparameters(f, n_hidden=10**9)),
                                 "do not match the hyperparameters"),
    "format-1-unknown-hyperparameter": (
        format_1_then(lambda f: edit_hyperparameters(f, depth=3)), "do not describe a model"),
    "format-1-huge-n-models": (format_1_then(lambda f: edit_hyperparameters(f, n_models=10**9)),
                               r"n_models = 1000000000 is outside \[1, 1000\]"),
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
    assert problems == [], "pickle in the sources (no pickle anywhere)"
