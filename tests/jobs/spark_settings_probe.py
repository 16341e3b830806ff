"""Submitted by tests/jobs/test_cluster.py with spark-submit: the Spark settings a job's session
ends up with (``jobs.common.session.get_spark`` on a TOML config), and the cores a task of that
session really holds, written as JSON.

    spark-submit ... tests/jobs/spark_settings_probe.py CONF OUT_JSON
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from jobs.common.config import load_conf
from jobs.common.session import get_spark

SQL_SETTINGS = (
    "spark.sql.shuffle.partitions",
    "spark.sql.session.timeZone",
    "spark.sql.sources.partitionOverwriteMode",
)


def task_cpus() -> int:
    """``TaskContext.cpus()`` of a task run on an executor."""
    from pyspark import TaskContext

    return TaskContext.get().cpus()


def main(conf_path: str, out_path: str) -> None:
    spark = get_spark(load_conf(conf_path))
    sc = spark.sparkContext
    result = {key: spark.conf.get(key) for key in SQL_SETTINGS}
    result["spark.task.cpus"] = sc.getConf().get("spark.task.cpus")
    result["cpus of a task"] = sc.parallelize([0], 1).map(lambda _: task_cpus()).collect()[0]
    Path(out_path).write_text(json.dumps(result))
    spark.stop()


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
