"""What the driver was launched with (jobs/common/session.py), read the way spark-submit reads
it, without starting Spark: spark-defaults.conf, PYSPARK_SUBMIT_ARGS. (The standalone-cluster
test checks that a spark-submit --conf and spark-defaults.conf beat the TOML.)"""

from __future__ import annotations

from jobs.common.session import (
    given_settings,
    read_properties,
    spark_log_level,
    spark_value,
    submit_args_settings,
)


def test_spark_defaults_conf_is_read_as_spark_submit_reads_it(tmp_path):
    path = tmp_path / "spark-defaults.conf"
    path.write_text(
        "# a comment\n! another\n\nspark.task.cpus   4\nspark.sql.shuffle.partitions=64\n"
        "spark.executor.extraJavaOptions -Da=1 -Db=2\nspark.app.name: nightly\n"
    )
    assert read_properties(path) == {
        "spark.task.cpus": "4",
        "spark.sql.shuffle.partitions": "64",
        "spark.executor.extraJavaOptions": "-Da=1 -Db=2",
        "spark.app.name": "nightly",
    }


def test_given_settings_outside_spark_submit(tmp_path, monkeypatch):
    (tmp_path / "spark-defaults.conf").write_text("spark.task.cpus 4\nspark.master local[3]\n")
    monkeypatch.delenv("PYSPARK_GATEWAY_PORT", raising=False)
    monkeypatch.setenv("SPARK_CONF_DIR", str(tmp_path))
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", "--conf spark.task.cpus=2 --name x pyspark-shell")
    assert given_settings() == {
        "spark.task.cpus": "2", "spark.master": "local[3]", "spark.app.name": "x"
    }
    other = tmp_path / "other.conf"
    other.write_text("spark.sql.shuffle.partitions 9\n")
    monkeypatch.setenv("PYSPARK_SUBMIT_ARGS", f"--properties-file {other} pyspark-shell")
    assert given_settings() == {"spark.sql.shuffle.partitions": "9"}


def test_submit_args_and_values():
    assert submit_args_settings("--conf=a.b=1 --master yarn --driver-memory 3g --conf") == {
        "a.b": "1", "spark.master": "yarn", "spark.driver.memory": "3g"
    }
    assert spark_value(True) == "true" and spark_value(64) == "64"
    assert spark_log_level("warning") == "WARN" and spark_log_level("DEBUG") == "DEBUG"
