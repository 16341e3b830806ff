"""The job configuration: built-in defaults, a TOML file, ``--set`` pairs and flags, merged.

The ``[train]`` table's defaults live with the training config (``rbmcore.training.config``);
the other sections' defaults are here.
"""

from __future__ import annotations

import argparse
import copy
import tomllib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from jobs.common.errors import UsageError

DEFAULT_CONF: dict[str, Any] = {
    "spark": {
        "app_name": "rbm-reco",
        "conf": {
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
        },
    },
    "ingest": {
        "max_bad_fraction": 0.01,
        "batch_size": 100,
        # how to read the inputs (jobs/ingest.py, jobs/ingestion/sources.py)
        "format": "auto",
        "columns": None,  # role -> column; None: MovieLens's userId, movieId, rating, timestamp
        "rating_scale": "auto",
        "like_threshold": "auto",
        "max_line_bytes": 1 << 20,
    },
    "train": {},  # defaults: rbmcore.training.config
    "score": {"top_k": 10, "max_model_age_days": None},  # None: any age (score --ratings)
}


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, recursively for nested tables."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def load_conf(path: str | None) -> dict[str, Any]:
    """Defaults merged with the TOML file at ``path`` (none: the defaults alone)."""
    if path is None:
        return copy.deepcopy(DEFAULT_CONF)
    file = Path(path)
    if not file.is_file():
        raise UsageError(f"config file not found: {path}")
    try:
        with file.open("rb") as fh:
            return deep_merge(DEFAULT_CONF, tomllib.load(fh))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc


def parse_set_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["train.lr=0.1", ...]`` -> nested dict; values parsed as TOML scalars when they can be."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        if not sep or "." not in key:
            raise UsageError(f"--set expects SECTION.KEY=VALUE, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *sections, leaf = key.split(".")
        node = result
        for section in sections:
            node = node.setdefault(section, {})
        node[leaf] = value
    return result


def resolve_conf(args: argparse.Namespace, flag_overrides: dict[str, Any]) -> dict[str, Any]:
    """Config file, then --set pairs, then explicit flags (``None`` flags are ignored)."""
    conf = load_conf(args.conf)
    conf = deep_merge(conf, parse_set_overrides(args.set))
    explicit = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in flag_overrides.items()
    }
    return deep_merge(conf, explicit)
