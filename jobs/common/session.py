"""The SparkSession of a job, and per-job Spark settings that do not leak into the next job.

Spark's own precedence holds (docs/configuration.md, "Spark settings"): what the driver was
launched with (spark-submit's ``--conf``, ``--master``, ``--name``, ``--properties-file`` or
``spark-defaults.conf``) wins, and the TOML ``[spark.conf]`` only fills the settings left unset.
The job's own ``--master`` flag wins over all of them. Spark's log level is left to
``spark.log.level`` and the log4j2 configuration unless ``--log-level`` is given.
"""

from __future__ import annotations

import logging
import os
import re
import shlex
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from jobs.common.errors import UsageError
from jobs.common.memory import configure_allocator

log = logging.getLogger("rbm-reco")

# settings read when the driver's JVM starts: too late once it runs (under spark-submit)
LAUNCH_SETTINGS = (
    "spark.driver.memory",
    "spark.driver.extraJavaOptions",
    "spark.driver.extraClassPath",
    "spark.driver.extraLibraryPath",
)
SUBMIT_FLAGS = {"--master": "spark.master", "--name": "spark.app.name",
                "--driver-memory": "spark.driver.memory"}  # fmt: skip
PROPERTY_LINE = re.compile(r"([^\s=:]+)\s*[=:\s]\s*(.*)")


def under_spark_submit() -> bool:
    """True when this Python driver was launched by spark-submit (the JVM came first)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def read_properties(path: Path) -> dict[str, str]:
    """A Java properties file as spark-submit reads ``spark-defaults.conf``: ``key value`` (or
    ``key=value``, ``key:value``) per line, ``#`` and ``!`` comments."""
    settings = {}
    for raw in path.read_text(encoding="utf-8", errors="replace").splitlines():
        line = raw.strip()
        if not line or line[0] in "#!":
            continue
        match = PROPERTY_LINE.fullmatch(line)
        if match:
            settings[match.group(1)] = match.group(2).strip()
    return settings


def spark_defaults_file() -> Path:
    """``$SPARK_CONF_DIR/spark-defaults.conf`` (default ``$SPARK_HOME/conf``), as spark-submit
    finds it."""
    conf_dir = os.environ.get("SPARK_CONF_DIR")
    if not conf_dir:
        from pyspark.find_spark_home import _find_spark_home

        conf_dir = os.path.join(os.environ.get("SPARK_HOME") or _find_spark_home(), "conf")
    return Path(conf_dir) / "spark-defaults.conf"


def submit_args_settings(args: str) -> dict[str, str]:
    """The settings ``PYSPARK_SUBMIT_ARGS`` gives the JVM pyspark launches: ``--conf K=V``,
    ``--properties-file`` (instead of spark-defaults.conf), ``--master``, ``--name``,
    ``--driver-memory``."""
    settings: dict[str, str] = {}
    words = shlex.split(args)
    for flag, value in zip(words, [*words[1:], ""], strict=False):
        if flag == "--conf" and "=" in value:
            key, _, setting = value.partition("=")
            settings[key] = setting
        elif flag.startswith("--conf=") and "=" in flag[7:]:
            key, _, setting = flag[7:].partition("=")
            settings[key] = setting
        elif flag == "--properties-file" and value:
            settings = {**read_properties(Path(value)), **settings}
        elif flag in SUBMIT_FLAGS and value:
            settings[SUBMIT_FLAGS[flag]] = value
    return settings


def given_settings() -> dict[str, str]:
    """The Spark settings the driver was launched with, which the TOML must not override.

    Under spark-submit: the JVM's SparkConf (spark-submit turned its flags, ``--conf`` pairs
    and properties file into it). Otherwise: what the JVM pyspark launches will be given,
    ``spark-defaults.conf`` and ``PYSPARK_SUBMIT_ARGS``."""
    if under_spark_submit():
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        return dict(SparkConf().getAll())
    submit_args = os.environ.get("PYSPARK_SUBMIT_ARGS", "")
    defaults = spark_defaults_file()
    given = read_properties(defaults) if defaults.is_file() else {}
    if "--properties-file" in submit_args:
        given = {}
    return {**given, **submit_args_settings(submit_args)}


def spark_log_level(level: str) -> str:
    """A --log-level as log4j names it (WARNING -> WARN)."""
    return {"WARNING": "WARN"}.get(level.upper(), level.upper())


def spark_value(value: str | int | float | bool) -> str:
    """A [spark.conf] value as Spark reads it (``true``, not Python's ``True``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def get_spark(conf: dict[str, Any], master: str | None = None, log_level: str | None = None):
    """The SparkSession for a job. Master: ``master`` (the job's --master), else the one the
    driver was launched with (spark-submit, spark-defaults.conf), else the config's
    ``[spark].master``, else ``local[*]``. The config's ``[spark.conf]`` fills the settings the
    launch left unset. Sets this process's allocator first (``jobs.common.memory``)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    configure_allocator()
    table = conf.get("spark", {})
    given = given_settings()
    chosen = master or given.get("spark.master") or table.get("master") or "local[*]"
    builder = SparkSession.builder.master(chosen)
    if "spark.app.name" not in given:
        builder = builder.appName(table.get("app_name", "rbm-reco"))
    settings = {key: spark_value(value) for key, value in table.get("conf", {}).items()}
    if chosen.startswith("local"):
        # Python workers must run this interpreter, the one that has pyarrow and torch;
        # local mode stays on the loopback interface.
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
        os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
        os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
        settings.setdefault("spark.pyspark.python", os.environ["PYSPARK_PYTHON"])
        settings.setdefault("spark.driver.memory", local_driver_memory())
    filled = {key: value for key, value in settings.items() if key not in given}
    for key, value in filled.items():
        builder = builder.config(key, value)
    kept = sorted(key for key in settings if key in given and given[key] != settings[key])
    jvm_started = SparkContext._active_spark_context is None and (
        under_spark_submit() or SparkContext._gateway is not None
    )
    configured = set(table.get("conf", {}))  # not the local defaults filled in above
    late = sorted(set(filled) & set(LAUNCH_SETTINGS) & configured) if jvm_started else []
    spark = builder.getOrCreate()
    if log_level:
        spark.sparkContext.setLogLevel(spark_log_level(log_level))
    if kept:
        log.info("spark: kept the launch's value of %s over the config's", ", ".join(kept))
    if late:
        log.warning(
            "spark: %s from the config has no effect: the driver's JVM was already running; "
            "give it to spark-submit (--driver-memory, --conf)",
            ", ".join(late),
        )
    return spark


def hadoop_text(jvm, hadoop_conf, uri: str) -> str:
    """The UTF-8 text of the file at ``uri`` (any Hadoop file system)."""
    path = jvm.org.apache.hadoop.fs.Path(uri)
    stream = path.getFileSystem(hadoop_conf).open(path)
    try:
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def read_uri_text(uri: str) -> str:
    """A config file at a Hadoop URI, read through the driver's JVM. Outside spark-submit
    that JVM starts here, before the config is known: its launch settings
    (``LAUNCH_SETTINGS``) then cannot apply, and ``get_spark`` says so."""
    from py4j.protocol import Py4JJavaError
    from pyspark import SparkContext

    SparkContext._ensure_initialized()
    jvm = SparkContext._jvm
    active = SparkContext._active_spark_context
    if active is not None:
        hadoop_conf = active._jsc.hadoopConfiguration()
    else:
        utils = jvm.org.apache.spark.deploy.SparkHadoopUtil.get()
        hadoop_conf = utils.newConfiguration(jvm.org.apache.spark.SparkConf())
    try:
        return hadoop_text(jvm, hadoop_conf, uri)
    except Py4JJavaError as exc:
        reason = str(exc.java_exception.toString())
        raise UsageError(f"config file {uri} cannot be read: {reason}") from None


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
