"""Files on any Hadoop-compatible file system (local, file://, hdfs://, s3a://), via Spark's JVM.

One meaning for a path: a path without a scheme resolves against Hadoop's default file system
(``fs.defaultFS``: the local disk in local mode, usually HDFS on a cluster), exactly as
``spark.read`` resolves it. The jobs resolve every path they are given once, at their start
(``qualify`` / ``output_dir``), into a full URI (``file:/...``, ``hdfs://nn/...``); what
follows (pyarrow reads, model files, checkpoints, locks, exports) sees only those URIs, and
``is_local`` is true for ``file:`` URIs alone among them.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jobs.common.errors import UsageError
from jobs.common.paths import output_problem
from jobs.common.session import hadoop_text

# Schemes whose directory rename is atomic (one metadata operation): a dated export is
# published by renaming its staging folder there. viewfs is judged by the file system it
# mounts at the path. Object stores (s3a, gs, abfs, wasb, ...) copy then delete.
ATOMIC_RENAME_SCHEMES = ("file", "hdfs", "webhdfs", "swebhdfs")


def _fs_path(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def qualify(spark, path: str) -> str:
    """``path`` as a full URI on its file system: a path without a scheme on the default
    file system, a relative one under its working directory (``/tmp/x`` -> ``file:/tmp/x``
    in local mode, ``hdfs://nn:8020/tmp/x`` on a cluster)."""
    if not path.strip():
        raise UsageError("a path is empty")
    hfs, hpath = _fs_path(spark, path)
    return str(hfs.makeQualified(hpath).toString())


def output_dir(spark, path: str, what: str = "output folder") -> str:
    """``qualify(path)`` for a folder a job writes into; a usage error when it is empty or
    resolves to the root of its file system (every output would land beside the root's
    own content)."""
    problem = output_problem(path)
    qualified = qualify(spark, path) if problem is None else path
    problem = problem or output_problem(qualified)
    if problem is not None:
        raise UsageError(f"{what} {path!r} {problem}; give a folder of its own")
    return qualified


def is_local(path: str) -> bool:
    """True for a path on the local disk: a ``file:`` URI (what ``qualify`` gives for the
    local file system), or a path without a scheme, which the jobs never pass here (they
    qualify first) and which code working on local folders alone (tests, benchmarks) uses."""
    return urlparse(path).scheme in ("", "file")


def shown(path: str) -> str:
    """A path for a message: a local ``file:`` URI as the plain path, any other as it is."""
    return local_path(path) if urlparse(path).scheme == "file" else path


def local_path(path: str) -> str:
    """A local path or file: URI as a plain local path."""
    parsed = urlparse(path)
    return parsed.path if parsed.scheme == "file" else path


def scheme_of(spark, path: str) -> str:
    """The scheme of the file system that stores ``path`` (a viewfs path: the one it mounts)."""
    hfs, hpath = _fs_path(spark, path)
    scheme = str(hfs.getUri().getScheme())
    if scheme != "viewfs":
        return scheme
    probe = hfs.makeQualified(hpath)
    while not hfs.exists(probe) and probe.getParent() is not None:
        probe = probe.getParent()
    return str(hfs.resolvePath(probe).toUri().getScheme())


def renames_atomically(spark, path: str) -> bool:
    """Whether renaming a folder under ``path`` is one atomic step (``ATOMIC_RENAME_SCHEMES``)."""
    return scheme_of(spark, path) in ATOMIC_RENAME_SCHEMES


def exists(spark, path: str) -> bool:
    fs, hpath = _fs_path(spark, path)
    return bool(fs.exists(hpath))


def is_dir(spark, path: str) -> bool:
    fs, hpath = _fs_path(spark, path)
    return bool(fs.exists(hpath) and fs.getFileStatus(hpath).isDirectory())


def delete(spark, path: str) -> None:
    fs, hpath = _fs_path(spark, path)
    if fs.exists(hpath):
        fs.delete(hpath, True)


def mkdirs(spark, path: str) -> None:
    fs, hpath = _fs_path(spark, path)
    fs.mkdirs(hpath)


def rename(spark, src: str, dst: str) -> None:
    """Rename ``src`` to ``dst`` (atomic on HDFS and local disks; a copy then a delete on
    object stores); raise if it did not happen."""
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


def file_paths(spark, path: str) -> list[str]:
    """Every file under the folder ``path``, relative to it (``a/b.json``), sorted; empty when
    ``path`` does not exist. Checksum side files of Hadoop's local file system are not listed."""
    fs, hpath = _fs_path(spark, path)
    if not fs.exists(hpath):
        return []
    root = str(fs.makeQualified(hpath).toUri().getPath()).rstrip("/") + "/"
    files = fs.listFiles(hpath, True)
    found = []
    while files.hasNext():
        found.append(str(files.next().getPath().toUri().getPath())[len(root) :])
    return sorted(found)


def write_text(spark, path: str, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path``, replacing it; the parent folders are created."""
    fs, hpath = _fs_path(spark, path)
    stream = fs.create(hpath, True)
    try:
        stream.write(bytearray(text.encode("utf-8")))
    finally:
        stream.close()


def write_text_atomic(spark, path: str, text: str) -> None:
    """Replace the file ``path`` so that a reader sees the old or the new text, never a part:
    on the local disk a temporary file renamed over it (fsync'd first); elsewhere one create
    (an object store's single PUT; HDFS's create with overwrite)."""
    if not is_local(path):
        write_text(spark, path, text)
        return
    target = Path(local_path(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, target)


EXISTS_ERRORS = ("FileAlreadyExists", "already exists", "PreconditionFailed")


def create_exclusive(spark, path: str, text: str) -> bool:
    """Create ``path`` with ``text`` only if it does not exist; False when it already does
    (a store with conditional writes, e.g. S3A with ``fs.s3a.performance.flags`` = create,
    reports that when the file is closed)."""
    fs, hpath = _fs_path(spark, path)
    try:
        stream = fs.create(hpath, False)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()
    except Exception as exc:  # py4j wraps FileAlreadyExistsException
        if any(marker in str(exc) for marker in EXISTS_ERRORS):
            return False
        raise
    return True


def read_text(spark, path: str) -> str:
    return hadoop_text(spark._jvm, spark._jsc.hadoopConfiguration(), path)


def dumps_json(obj: Any) -> str:
    """JSON as the jobs write it: indented, keys sorted, a final newline."""
    return json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"


def write_json(spark, path: str, obj: Any) -> None:
    write_text(spark, path, dumps_json(obj))


def read_json(spark, path: str) -> Any:
    return json.loads(read_text(spark, path))


def parent_of(path: str) -> str:
    """The folder holding ``path`` (a URI's too: ``hdfs://nn/a/b`` -> ``hdfs://nn/a``)."""
    return path.rstrip("/").rsplit("/", 1)[0]


def swap_in(spark, staged: str, final: str, aside: str) -> bool:
    """Put the folder ``staged`` in the place of ``final`` by renames: the current ``final``
    (if any) is renamed to ``aside`` first and deleted after. Atomic for readers where a
    folder rename is (``renames_atomically``); a kill between the two renames leaves
    ``final`` missing and ``aside`` whole, which ``restore_aside`` puts back. Returns whether
    a previous ``final`` was replaced."""
    replaced = exists(spark, final)
    if replaced:
        mkdirs(spark, parent_of(aside))
        rename(spark, final, aside)
    rename(spark, staged, final)
    if replaced:
        delete(spark, aside)
    return replaced


def restore_aside(spark, final: str, asides: list[str]) -> None:
    """After a killed ``swap_in``: the folder moved aside goes back when ``final`` is missing;
    a copy moved aside while ``final`` exists is deleted."""
    for aside in asides:
        if not exists(spark, final):
            rename(spark, aside, final)
        else:
            delete(spark, aside)


def copy_from_local(spark, local_dir: str | Path, dest: str) -> None:
    """Copy a local folder to ``dest`` (which must not exist)."""
    fs, hdest = _fs_path(spark, dest)
    source = spark._jvm.org.apache.hadoop.fs.Path(Path(local_dir).resolve().as_uri())
    fs.copyFromLocalFile(False, False, source, hdest)


def copy_to_local(spark, src: str, local_dir: str | Path) -> Path:
    """Copy the folder ``src`` into the local folder ``local_dir``; returns the copy's path."""
    fs, hsrc = _fs_path(spark, src)
    target = Path(local_dir) / hsrc.getName()
    fs.copyToLocalFile(False, hsrc, spark._jvm.org.apache.hadoop.fs.Path(target.as_uri()), True)
    return target


def scratch_dir(prefix: str) -> tempfile.TemporaryDirectory:
    """A local temporary folder, removed when its ``with`` block ends."""
    return tempfile.TemporaryDirectory(prefix=f"rbm-reco-{prefix}-")
