"""jobs/common/memory.py: the allocator settings of the driver and the Python workers, and the
release of memory between the steps of ``rbm-reco run``."""

import os
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from jobs.common.memory import release_memory
from rbmcore.io.artifact import save_model
from rbmcore.models.factory import build_model
from tests.conftest import REPO


def score_chunks_growth_mb() -> float:
    """How many MB this process grows over growing (users, items) score blocks with small
    results kept after each (the pattern of the hybrid's alpha search)."""
    import re

    import torch

    def rss_mb() -> float:
        status = open("/proc/self/status").read()
        return int(re.search(r"VmRSS:\s*(\d+)", status).group(1)) / 1024

    torch.set_num_threads(2)
    g = torch.Generator().manual_seed(0)
    w = torch.randn(100, 10677, generator=g)
    start = rss_mb()
    kept = []
    for chunk in range(40):
        h = torch.rand(400 + chunk, 100, generator=g)
        for alpha in (0.5, 1.0, 2.0):
            score = torch.sigmoid(h @ w) * alpha + torch.sigmoid(h @ w)
            kept.append(torch.topk(score, 10, dim=1).indices.numpy().copy())
    return rss_mb() - start


def big_blocks_are_mappings() -> bool:
    """Whether a 24 MB block allocated right after a 30 MB one was freed is a mapping of its
    own (outside the brk heap). glibc as it starts raises its mmap threshold to 30 MB on that
    free and serves the 24 MB from the heap; with the threshold fixed it maps it."""
    import numpy as np

    freed = np.ones(30 * 2**17)
    del freed
    block = np.ones(24 * 2**17)
    for line in open("/proc/self/maps"):
        if line.rstrip().endswith("[heap]"):
            low, high = (int(x, 16) for x in line.split()[0].split("-"))
            return not low <= block.ctypes.data < high
    return True  # no brk heap at all


def in_fresh_process(setup: str, check: str, *args: str) -> str:
    """Run ``setup`` then print ``check``'s result in a new Python (glibc as it starts)."""
    code = (
        f"import sys\n{setup}\nfrom tests.jobs.common.test_memory import {check}\n"
        f"print({check}())"
    )
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "THP_MEM_ALLOC_ENABLE")}  # fmt: skip
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", code, *args], env=env,
                          capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, f"{check} failed in a fresh process:\n{done.stderr[-3000:]}"
    return done.stdout.strip()


CONFIGURED = "from jobs.common.memory import configure_allocator; assert configure_allocator()"
# what a scoring worker runs first: its model from the broadcast (a stand-in holding the value)
WORKER = """
from jobs.scoring.workers import broadcast_payload, model_on_worker
from rbmcore.io.artifact import load_model
class Broadcast:
    value = broadcast_payload(load_model(sys.argv[1]))
model_on_worker(Broadcast())
"""

glibc_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


@glibc_only
def test_configured_allocator_maps_big_blocks_and_returns_freed_score_blocks():
    assert in_fresh_process("", "big_blocks_are_mappings") == "False"
    assert in_fresh_process(CONFIGURED, "big_blocks_are_mappings") == "True"
    plain = float(in_fresh_process("", "score_chunks_growth_mb"))
    configured = float(in_fresh_process(CONFIGURED, "score_chunks_growth_mb"))
    assert plain > 300, plain  # glibc's default keeps ~0.6 GB of freed blocks here
    assert configured < 150, configured  # live: the weights' product buffers and results


@glibc_only
def test_scoring_worker_configures_its_allocator(tmp_path):
    model = build_model("binary", 20, 4, torch.Generator().manual_seed(0))
    save_model(tmp_path / "model", model, np.arange(20), {})
    assert in_fresh_process(WORKER, "big_blocks_are_mappings", str(tmp_path / "model")) == "True"


def jvm_heap_around_a_collect() -> str:
    """"before kept after": the driver JVM's committed heap (bytes) of a new local Spark
    session after ``release_memory``, after 10M rows went through it to Python (as ingest's and
    older loads did), and after ``release_memory`` again."""
    from jobs.common.session import get_spark

    # a 2 GB heap ceiling: at the default 1 GB the 10M rows fill the heap to its maximum, and in
    # the full suite the collect failed there; the test measures growth
    spark = get_spark({"spark": {"conf": {"spark.driver.memory": "2g"}}}, "local[2]")
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    release_memory(spark)
    before = runtime.totalMemory()
    rows = spark.range(0, 10_000_000, numPartitions=2).selectExpr("id", "id * 2 AS b").toArrow()
    assert rows.num_rows == 10_000_000
    del rows
    time.sleep(1)
    kept = runtime.totalMemory()  # the JVM does not give it back by itself
    release_memory(spark)
    after = runtime.totalMemory()
    spark.stop()
    return f"{before} {kept} {after}"


def test_release_memory_gives_the_driver_jvm_heap_back():
    # a JVM of its own: the tests' shared session may already hold a heap the rows fit in
    before, kept, after = (
        int(x) for x in in_fresh_process("", "jvm_heap_around_a_collect").split()[-3:]
    )
    assert kept - before > 300 * 2**20, (before, kept)
    assert kept - after > 300 * 2**20, (kept, after)
