"""The model artifact (rbmcore/io/artifact.py): a save and load restores the weights, the
vocabulary and the metadata; truncated or tampered weights, another format version, another
vocabulary and a missing folder are refused; a save replaces an existing model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from rbmcore.errors import ModelFileError
from rbmcore.io.artifact import META_FILE, WEIGHTS_FILE, load_model, save_model, vocab_checksum
from rbmcore.models.factory import build_model

MOVIES = np.array([10, 20, 30, 40, 50])


@pytest.fixture
def saved(tmp_path):
    model = build_model("softmax", 5, 3, torch.Generator().manual_seed(0))
    meta = save_model(tmp_path / "model", model, MOVIES, {"epochs": 2})
    return tmp_path / "model", model, meta


def test_round_trip_restores_weights_vocab_and_metadata(saved):
    folder, model, meta = saved
    loaded = load_model(folder, expected_vocab_sha256=vocab_checksum(MOVIES))
    for name, tensor in model.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[name], tensor)
    assert loaded.movie_ids.tolist() == MOVIES.tolist()
    assert loaded.meta["kind"] == "softmax" and loaded.meta["training"] == {"epochs": 2}
    on_disk = json.loads((folder / META_FILE).read_text())
    assert on_disk["weights_sha256"] == meta["weights_sha256"]
    hyper = on_disk["hyperparameters"]
    assert {k: hyper[k] for k in ("kind", "n_items", "n_hidden", "states")} == {
        "kind": "softmax", "n_items": 5, "n_hidden": 3, "states": 5
    }
    assert hyper["scale"]["name"] == "stars" and hyper["scale"]["like_threshold"] == 3.0


def test_truncated_weights_are_refused(saved):
    folder, _, _ = saved
    weights = folder / WEIGHTS_FILE
    weights.write_bytes(weights.read_bytes()[:-50])
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(folder)


def test_tampered_weights_are_refused(saved):
    folder, _, _ = saved
    weights = folder / WEIGHTS_FILE
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0xFF
    weights.write_bytes(bytes(data))
    with pytest.raises(ModelFileError, match="checksum mismatch"):
        load_model(folder)


def test_wrong_format_version_is_refused(saved):
    folder, _, _ = saved
    meta = json.loads((folder / META_FILE).read_text())
    meta["format_version"] = 99
    (folder / META_FILE).write_text(json.dumps(meta))
    with pytest.raises(ModelFileError, match="format version 99"):
        load_model(folder)


def test_vocabulary_mismatch_is_refused(saved):
    folder, _, _ = saved
    with pytest.raises(ModelFileError, match="different item vocabulary"):
        load_model(folder, expected_vocab_sha256=vocab_checksum(np.array([1, 2, 3, 4, 5])))


def test_missing_folder_is_refused(tmp_path):
    with pytest.raises(ModelFileError, match="not a model folder"):
        load_model(tmp_path / "nothing")


def test_save_replaces_an_existing_model(saved, tmp_path):
    folder, _, first = saved
    other = build_model("softmax", 5, 3, torch.Generator().manual_seed(1))
    second = save_model(folder, other, MOVIES)
    assert second["model_id"] != first["model_id"]
    assert load_model(folder).meta["model_id"] == second["model_id"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model"]
