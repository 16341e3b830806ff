"""The job configuration (jobs/common/config.py, jobs/common/args.py) without Spark: packaged
configs, --set keys with dots, every section's keys and values checked, strict dates, output
paths that are not empty or a root."""

from __future__ import annotations

import argparse

import pytest

from jobs.common.args import export_date, output_path
from jobs.common.config import (
    DEFAULT_CONF,
    PACKAGED_CONFS,
    check_conf,
    deep_merge,
    load_conf,
    parse_set_overrides,
    resolve_conf,
)
from jobs.common.errors import UsageError
from jobs.common.paths import output_problem


def resolved(*pairs: str, conf: str | None = None) -> dict:
    return resolve_conf(argparse.Namespace(conf=conf, set=list(pairs)), {})


def test_packaged_configs_are_found_by_name():
    for name in PACKAGED_CONFS:
        conf = load_conf(name)
        check_conf(conf)
        assert conf["spark"]["conf"]["spark.sql.session.timeZone"] == "UTC"
    assert "master" not in load_conf("cluster")["spark"]  # spark-submit's master is used
    assert load_conf("local")["spark"]["master"] == "local[*]"


def test_conf_reads_a_file_uri(tmp_path):
    path = tmp_path / "job.toml"
    path.write_text("[score]\ntop_k = 7\n")
    assert load_conf(path.as_uri())["score"]["top_k"] == 7
    assert load_conf(str(path))["score"]["top_k"] == 7
    with pytest.raises(UsageError, match="config file not found"):
        load_conf(str(tmp_path / "missing.toml"))


def test_set_keeps_the_dots_of_a_spark_setting():
    quoted = parse_set_overrides(['spark.conf."spark.sql.shuffle.partitions"=64'])
    plain = parse_set_overrides(["spark.conf.spark.sql.shuffle.partitions=64"])
    assert quoted == plain == {"spark": {"conf": {"spark.sql.shuffle.partitions": 64}}}
    assert parse_set_overrides(["train.rated.n_models=1"]) == {"train": {"rated": {"n_models": 1}}}
    assert parse_set_overrides(["train.cache=stream"]) == {"train": {"cache": "stream"}}
    conf = resolved('spark.conf."spark.sql.shuffle.partitions"=64')
    assert conf["spark"]["conf"]["spark.sql.shuffle.partitions"] == 64
    for bad in ("train", "lr=0.1", "train.=1", '"a.b=1'):
        with pytest.raises(UsageError):
            parse_set_overrides([bad])


@pytest.mark.parametrize(
    "pair, message",
    [
        ("score.topk=5",
         r"unknown \[score\] setting topk; known: commit, lock_lease_s, max_model_age_days, top_k"),
        ("scroe.top_k=5", r"unknown config section \[scroe\]"),
        ("ingest.max_bad=0.1", r"unknown \[ingest\] setting max_bad"),
        ("spark.mastr=local", r"unknown \[spark\] setting mastr"),
        ("train.nhidden=10", r"unknown \[train\] settings: nhidden"),
        ("train.rated.nhidden=10", r"unknown \[train.rated\] setting nhidden"),
        ("train.item.seed=3", r"unknown \[train.item\] setting seed"),
        ("score.top_k=inf", r"score.top_k must be an integer within \[1, 10000\], got inf"),
        ("score.top_k=-1", r"score.top_k must be an integer"),
        ("score.top_k=2.5", r"score.top_k must be an integer"),
        ("score.top_k=ten", r"score.top_k must be an integer.*'ten'"),
        ("score.top_k=10001", r"score.top_k must be an integer within"),
        ("score.commit=copy", r"score.commit must be one of auto, rename, manifest"),
        ("score.lock_lease_s=0", r"score.lock_lease_s must be a number within"),
        ("score.lock_lease_s=nan", r"score.lock_lease_s must be a number within"),
        ("ingest.batch_size=0", r"ingest.batch_size must be an integer within"),
        ("ingest.max_bad_fraction=1.5", r"ingest.max_bad_fraction must be a number within"),
        ("train.n_hidden=1000000000", r"n_hidden must be an integer within \[1, 100000\]"),
        ("train.epochs=0", r"epochs must be an integer within"),
        ("train.lr=inf", r"lr must be a number within"),
        ("train.seed=-1", r"seed must be an integer within"),
        ("train.distributed=100000", r"distributed must be within"),
        ("train.rated.n_hidden=-3", r"n_hidden must be an integer within"),
        ("spark.conf.x.y={a=1}", r"\[spark.conf\] 'x.y' must be a string, number or boolean"),
        ("spark.master=''", r"spark.master must be a non-empty string"),
    ],
)
def test_every_section_refuses_unknown_keys_and_bad_values(pair, message):
    with pytest.raises(UsageError, match=message):
        resolved(pair)


def test_defaults_and_packaged_configs_pass_the_checks():
    check_conf(deep_merge(DEFAULT_CONF, {}))
    conf = resolved("score.top_k=10000", "train.kind=binary", "score.commit=manifest")
    assert conf["score"] == {
        "top_k": 10000, "commit": "manifest", "lock_lease_s": 120, "max_model_age_days": None
    }


@pytest.mark.parametrize("value", ["2026-01-01", "2024-02-29"])
def test_export_dates_are_accepted_in_one_spelling(value):
    assert export_date(value) == value


@pytest.mark.parametrize(
    "value", ["20260101", "2026-W01-4", "2026-001", "2026-1-1", "2026-02-30", " 2026-01-01",
              "2026-01-01T00:00", "２０２６-01-01", ""],
)  # fmt: skip
def test_other_spellings_of_a_date_are_refused(value):
    with pytest.raises(UsageError, match="--dt must be a date YYYY-MM-DD"):
        export_date(value)


@pytest.mark.parametrize(
    "path", ["", "  ", "/", "//", "/..", "file:/", "file:///", "hdfs://nn", "hdfs://nn:8020/",
             "s3a://bucket", "s3a://bucket/"],
)  # fmt: skip
def test_empty_and_root_output_paths_are_refused(path):
    assert output_problem(path) is not None
    with pytest.raises(UsageError, match="give a folder of its own"):
        output_path(path)


def test_relative_output_paths_count_from_the_current_folder(monkeypatch, tmp_path):
    assert output_problem("out") is None and output_problem("s3a://bucket/reco") is None
    monkeypatch.chdir("/")
    assert output_problem(".") == "is the root of a file system"
    monkeypatch.chdir(tmp_path)
    assert output_problem(".") is None
