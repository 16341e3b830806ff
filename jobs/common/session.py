"""The SparkSession of a job, and per-job Spark settings that do not leak into the next job."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobs.common.memory import configure_allocator


def under_spark_submit() -> bool:
    """True when this Python driver was launched by spark-submit (the JVM came first)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def get_spark(conf: dict[str, Any], master: str | None = None):
    """The SparkSession for a job; master from --master, the config, spark-submit, or local[*].
    Sets this process's allocator first (``jobs.common.memory``)."""
    from pyspark.sql import SparkSession

    configure_allocator()

    spark_conf = conf.get("spark", {})
    chosen = master or spark_conf.get("master")
    if chosen is None and not under_spark_submit():
        chosen = "local[*]"
    builder = SparkSession.builder.appName(spark_conf.get("app_name", "rbm-reco"))
    if chosen:
        builder = builder.master(chosen)
    if chosen and chosen.startswith("local"):
        # Python workers must run this interpreter, the one that has pyarrow and torch;
        # local mode stays on the loopback interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        builder = builder.config("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        if "spark.driver.memory" not in spark_conf.get("conf", {}):
            builder = builder.config("spark.driver.memory", local_driver_memory())
    for key, value in spark_conf.get("conf", {}).items():
        builder = builder.config(key, str(value))
    builder = builder.config("spark.sql.execution.arrow.pyspark.enabled", "true")
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def local_driver_memory() -> str:
    """The JVM heap of a local-mode job without a configured ``spark.driver.memory``: a
    quarter of the machine's memory within 1..8 GB (Spark's own default, 1 GB, makes ingest
    spill its cached input at ml-1m size and thrash at ml-25m)."""
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return "2g"
    return f"{min(8, max(1, total // 4 // 2**30))}g"


@contextmanager
def restoring_conf(spark, *keys: str) -> Iterator[None]:
    """Put the session's values of ``keys`` back (or unset them) when the block ends, so a
    job's tuning does not leak into the next job of the same session (``rbm-reco run``)."""
    before = {key: spark.conf.get(key, None) for key in keys}
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)
