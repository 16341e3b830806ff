"""Files on any Hadoop-compatible file system (local, file://, hdfs://, s3a://), via Spark's JVM.

Paths without a scheme resolve against Hadoop's default file system: the local disk in
local mode, usually HDFS on a cluster, exactly as ``spark.read`` resolves them.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from typing import Any
from urllib.parse import urlparse


def _fs_path(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def is_local(path: str) -> bool:
    """True for plain local paths and file:// URIs."""
    return urlparse(path).scheme in ("", "file")


def local_path(path: str) -> str:
    """A local path or file:// URI as a plain local path."""
    parsed = urlparse(path)
    return parsed.path if parsed.scheme == "file" else path


def exists(spark, path: str) -> bool:
    fs, hpath = _fs_path(spark, path)
    return bool(fs.exists(hpath))


def delete(spark, path: str) -> None:
    fs, hpath = _fs_path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def mkdirs(spark, path: str) -> None:
    fs, hpath = _fs_path(spark, path)
    fs.mkdirs(hpath)


def rename(spark, src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` (atomic on HDFS and local disks); raise if it did not happen."""
    fs, hsrc = _fs_path(spark, src)
    _, hdst = _fs_path(spark, dst)
    if not fs.rename(hsrc, hdst):
        raise OSError(f"could not rename {src} to {dst}")


def list_names(spark, path: str) -> list[str]:
    """Names of the entries directly under ``path`` (empty when it does not exist)."""
    fs, hpath = _fs_path(spark, path)
    if not fs.exists(hpath):
        return []
    return sorted(status.getPath().getName() for status in fs.listStatus(hpath))


def write_text(spark, path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing it; the parent folders are created."""
    fs, hpath = _fs_path(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def create_exclusive(spark, path: str, text: str) -> bool:
    """Create ``path`` with ``text`` only if it does not exist; False when it already does."""
    fs, hpath = _fs_path(spark, path)
    try:
        stream = fs.create(hpath, False)
    except Exception as exc:  # py4j wraps FileAlreadyExistsException
        if "FileAlreadyExists" in str(exc) or "already exists" in str(exc):
            return False
        raise
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()
    return True


def read_text(spark, path: str) -> str:
    fs, hpath = _fs_path(spark, path)
    stream = fs.open(hpath)
    try:
        jvm = spark._jvm
        return jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8")
    finally:
        stream.close()


def dumps_json(obj: Any) -> str:
    """JSON as the jobs write it: indented, keys sorted, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json(spark, path: str, obj: Any) -> None:
    write_text(spark, path, dumps_json(obj))


def read_json(spark, path: str) -> Any:
    return json.loads(read_text(spark, path))


def upload_dir(spark, local_dir: str, dest: str) -> None:
    """Copy a local folder's files to ``dest`` (replacing it); a plain move when dest is local."""
    if is_local(dest):
        target = local_path(dest)
        if os.path.abspath(local_dir) != os.path.abspath(target):
            shutil.rmtree(target, ignore_errors=True)
            shutil.copytree(local_dir, target)
        return
    delete(spark, dest)
    fs, hdest = _fs_path(spark, dest)
    jvm = spark._jvm
    fs.copyFromLocalFile(False, True, jvm.org.apache.hadoop.fs.Path(local_dir), hdest)


def download_dir(spark, src: str) -> str:
    """A local folder holding ``src``'s files: ``src`` itself when local, else a temp copy."""
    if is_local(src):
        return local_path(src)
    tmp = tempfile.mkdtemp(prefix="rbm-reco-")
    fs, hsrc = _fs_path(spark, src)
    jvm = spark._jvm
    fs.copyToLocalFile(False, hsrc, jvm.org.apache.hadoop.fs.Path(tmp), True)
    return os.path.join(tmp, os.path.basename(src.rstrip("/")))
