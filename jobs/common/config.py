"""The job configuration: built-in defaults, a TOML file, ``--set`` pairs and flags, merged and
checked. An unknown section or key, or a value outside its range, is a usage error that names
it (docs/configuration.md).

The ``[train]`` table's defaults and ranges live with the training config
(``rbmcore.training.config``); the other sections' are here.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobs.common.errors import UsageError
from rbmcore.training.config import (
    HYBRID_PARTS,
    HYBRID_PRESETS,
    ITEM_DEFAULTS,
    JobSettings,
    TrainConfig,
    settings_from_table,
)

DEFAULT_CONF: dict[str, Any] = {
    "spark": {
        "app_name": "rbm-reco",
        "conf": {  # defaults: fill what spark-submit and spark-defaults.conf leave unset
            "spark.sql.session.timeZone": "UTC",
            "spark.ui.showConsoleProgress": "false",
            "spark.sql.execution.arrow.pyspark.enabled": "true",
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
    "score": {
        "top_k": 10,
        "commit": "auto",
        "lock_lease_s": 120,
        "max_model_age_days": None,  # None: any age (score --ratings)
    },
}
SPARK_KEYS = ("master", "app_name", "conf")
PACKAGED_CONFS = ("local", "cluster")  # jobs/conf/<name>.toml, installed with the package
COMMIT_MODES = ("auto", "rename", "manifest")  # how an export is published (jobs.storage.export)
MAX_TOP_K = 10_000
MAX_BATCH_SIZE = 1_000_000
MAX_LOCK_LEASE_S = 86_400


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """A new dict: ``base`` with ``override`` merged in, recursively for nested tables."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def packaged_conf(name: str) -> str:
    """The text of a config installed with rbm-reco (``local`` or ``cluster``)."""
    return resources.files("jobs").joinpath("conf", f"{name}.toml").read_text(encoding="utf-8")


def conf_text(path: str) -> str:
    """The text of ``--conf``: a packaged config by name, a local file (a path without a
    scheme, like spark-submit's ``--properties-file``), or any Hadoop URI."""
    if path in PACKAGED_CONFS:
        return packaged_conf(path)
    parsed = urlparse(path)
    if parsed.scheme in ("", "file"):
        file = Path(parsed.path if parsed.scheme else path)
        if not file.is_file():
            raise UsageError(f"config file not found: {path}")
        return file.read_text(encoding="utf-8")
    from jobs.common.session import read_uri_text

    return read_uri_text(path)


def load_conf(path: str | None) -> dict[str, Any]:
    """Defaults merged with the TOML config ``path`` (none: the defaults alone)."""
    if path is None:
        return copy.deepcopy(DEFAULT_CONF)
    try:
        return deep_merge(DEFAULT_CONF, tomllib.loads(conf_text(path)))
    except tomllib.TOMLDecodeError as exc:
        raise UsageError(f"config file {path} is not valid TOML: {exc}") from exc
    except UnicodeDecodeError as exc:
        raise UsageError(f"config file {path} is not UTF-8 text: {exc}") from exc


def set_key_path(key: str) -> list[str]:
    """The table path of a ``--set`` key, read as a TOML dotted key (so quoted parts keep their
    dots: ``spark.conf."spark.sql.shuffle.partitions"``). Under ``spark.conf`` the rest of an
    unquoted key is one Spark setting: ``spark.conf.spark.sql.shuffle.partitions`` works too."""
    try:
        node: Any = tomllib.loads(f"{key} = 0")
    except tomllib.TOMLDecodeError:
        raise UsageError(f"--set: {key!r} is not a valid key") from None
    path = []
    while isinstance(node, dict):
        (name, node), *_ = node.items()
        path.append(name)
    if path[:2] == ["spark", "conf"] and len(path) > 3:
        path = ["spark", "conf", ".".join(path[2:])]
    return path


def parse_set_overrides(pairs: Sequence[str]) -> dict[str, Any]:
    """``["train.lr=0.1", ...]`` -> nested dict; values parsed as TOML values when they are
    (``3``, ``0.5``, ``true``, ``"x"``, ``[[0, 1]]``), else taken as plain strings."""
    result: dict[str, Any] = {}
    for pair in pairs:
        key, sep, raw = pair.partition("=")
        path = set_key_path(key) if sep else []
        if len(path) < 2:
            raise UsageError(f"--set expects SECTION.KEY=VALUE, got {pair!r}")
        try:
            value = tomllib.loads(f"v = {raw}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw
        *sections, leaf = path
        node = result
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise UsageError(f"--set {pair!r}: {section} is a value, not a table")
        node[leaf] = value
    return result


def resolve_conf(args: argparse.Namespace, flag_overrides: dict[str, Any]) -> dict[str, Any]:
    """Config file, then --set pairs, then explicit flags (``None`` flags are ignored); the
    result checked (``check_conf``)."""
    conf = load_conf(args.conf)
    conf = deep_merge(conf, parse_set_overrides(args.set))
    explicit = {
        section: {k: v for k, v in values.items() if v is not None}
        for section, values in flag_overrides.items()
    }
    conf = deep_merge(conf, explicit)
    check_conf(conf)
    return conf


# -- checks ------------------------------------------------------------------------------


def check_conf(conf: dict[str, Any]) -> None:
    """Every section and key known, every value of the right type and range; else a usage
    error naming the first problem."""
    unknown = sorted(set(conf) - set(DEFAULT_CONF))
    if unknown:
        raise UsageError(
            f"unknown config section {', '.join(f'[{s}]' for s in unknown)}; known: "
            + ", ".join(f"[{s}]" for s in DEFAULT_CONF)
        )
    for section, known in (
        ("spark", SPARK_KEYS),
        ("ingest", DEFAULT_CONF["ingest"]),
        ("score", DEFAULT_CONF["score"]),
    ):
        check_keys(section, conf[section], known)
    check_spark(conf["spark"])
    check_ingest(conf["ingest"])
    check_score(conf["score"])
    train_settings(conf)


def check_keys(section: str, table: Any, known: Sequence[str]) -> None:
    if not isinstance(table, dict):
        raise UsageError(f"[{section}] must be a table, got {table!r}")
    unknown = sorted(set(table) - set(known))
    if unknown:
        raise UsageError(
            f"unknown [{section}] setting {', '.join(unknown)}; known: {', '.join(sorted(known))}"
        )


def number_in(name: str, value: Any, low: float, high: float, integer: bool = False) -> float:
    """``value`` when it is a number (an integer if ``integer``) within [low, high]."""
    kind = "an integer" if integer else "a number"
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    if not is_number or (integer and not isinstance(value, int)) or not low <= value <= high:
        raise UsageError(f"{name} must be {kind} within [{low}, {high}], got {value!r}")
    return value


def check_spark(table: dict[str, Any]) -> None:
    for key in ("master", "app_name"):
        if key in table and not (isinstance(table[key], str) and table[key].strip()):
            raise UsageError(f"spark.{key} must be a non-empty string, got {table[key]!r}")
    settings = table.get("conf", {})
    if not isinstance(settings, dict):
        raise UsageError(f"[spark.conf] must be a table of Spark settings, got {settings!r}")
    for key, value in settings.items():
        if not isinstance(value, str | int | float | bool):
            raise UsageError(
                f"[spark.conf] {key!r} must be a string, number or boolean, got {value!r} "
                '(quote a Spark setting\'s name: spark.conf."spark.sql.shuffle.partitions")'
            )


def check_ingest(table: dict[str, Any]) -> None:
    number_in("ingest.max_bad_fraction", table["max_bad_fraction"], 0.0, 1.0)
    number_in("ingest.batch_size", table["batch_size"], 1, MAX_BATCH_SIZE, integer=True)


def check_score(table: dict[str, Any]) -> None:
    number_in("score.top_k", table["top_k"], 1, MAX_TOP_K, integer=True)
    if table["commit"] not in COMMIT_MODES:
        raise UsageError(
            f"score.commit must be one of {', '.join(COMMIT_MODES)}, got {table['commit']!r}"
        )
    number_in("score.lock_lease_s", table["lock_lease_s"], 1, MAX_LOCK_LEASE_S)
    if table.get("max_model_age_days") is not None:
        number_in("score.max_model_age_days", table["max_model_age_days"], 0, 1e6)


# the keys a [train.rated] / [train.like] table may override, and a [train.item] table
_TRAIN_FIELDS = {f.name for f in dataclasses.fields(TrainConfig)}
PART_KEYS = _TRAIN_FIELDS - {"kind", "rated_kind", "like_kind", *HYBRID_PARTS}
ITEM_KEYS = _TRAIN_FIELDS - {
    "kind", "item", "item_batch", "momentum", "val_fraction", "seed", "device", *HYBRID_PARTS
}  # fmt: skip


def train_settings(conf: dict[str, Any]) -> tuple[TrainConfig, JobSettings]:
    """The [train] table as the model's config and the job's settings, its part tables
    ([train.rated], [train.like], [train.item]) checked too; an unknown key or a bad value is a
    usage error naming it."""
    table = conf.get("train", {})
    if not isinstance(table, dict):
        raise UsageError(f"[train] must be a table, got {table!r}")
    for name, known in (("rated", PART_KEYS), ("like", PART_KEYS), ("item", ITEM_KEYS)):
        check_keys(f"train.{name}", table.get(name, {}), sorted(known))
    try:
        config, job = settings_from_table(table)
        hybrid = config.kind in HYBRID_PRESETS
        parts = [config.part(p) for p in HYBRID_PARTS] if hybrid else [config]
        for part in parts:
            if part.kind in ITEM_DEFAULTS:
                part.item_way()
    except (TypeError, ValueError) as exc:
        raise UsageError(f"bad [train] setting: {exc}") from exc
    return config, job
