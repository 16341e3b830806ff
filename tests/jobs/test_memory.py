"""jobs.memory: the allocator settings of the driver and the Python workers, and the release
of memory between the steps of ``rbm-reco run``."""

import os
import subprocess
import sys

import pytest

from jobs.memory import WORKER_ALLOCATOR_ENV, release_memory
from tests.conftest import REPO

# Growing (users, items) score blocks with small results kept after each (the pattern of the
# hybrid's alpha search); prints how many MB the process grew.
SCORE_CHUNKS = """
import re, sys
if sys.argv[1] == "configured":
    from jobs.memory import configure_allocator
    assert configure_allocator()
import torch
torch.set_num_threads(2)
def rss_mb():
    return int(re.search(r"VmRSS:\\s*(\\d+)", open("/proc/self/status").read()).group(1)) / 1024
g = torch.Generator().manual_seed(0)
w = torch.randn(100, 10677, generator=g)
start = rss_mb()
kept = []
for chunk in range(40):
    h = torch.rand(400 + chunk, 100, generator=g)
    for alpha in (0.5, 1.0, 2.0):
        score = torch.sigmoid(h @ w) * alpha + torch.sigmoid(h @ w)
        kept.append(torch.topk(score, 10, dim=1).indices.numpy().copy())
print(rss_mb() - start)
"""


def growth_mb(mode: str) -> float:
    env = {k: v for k, v in os.environ.items()
           if k not in ("MALLOC_MMAP_THRESHOLD_", "THP_MEM_ALLOC_ENABLE")}  # fmt: skip
    env["PYTHONPATH"] = str(REPO)
    done = subprocess.run([sys.executable, "-c", SCORE_CHUNKS, mode], env=env, check=True,
                          capture_output=True, text=True)  # fmt: skip
    return float(done.stdout.strip())


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's allocator")
def test_configured_allocator_returns_freed_score_blocks():
    plain, configured = growth_mb("plain"), growth_mb("configured")
    assert plain > 300, plain  # glibc's default keeps ~0.6 GB of freed blocks here
    assert configured < 150, configured  # live: the weights' product buffers and results


def test_python_workers_run_with_the_allocator_settings(spark):
    def worker_env(_):
        import os

        yield {k: os.environ.get(k) for k in WORKER_ALLOCATOR_ENV}

    seen = spark.sparkContext.parallelize(range(2), 2).mapPartitions(worker_env).collect()
    assert seen == [WORKER_ALLOCATOR_ENV] * 2


def test_release_memory_gives_the_driver_jvm_heap_back(spark):
    runtime = spark.sparkContext._jvm.java.lang.Runtime.getRuntime()
    release_memory(spark)
    before = runtime.totalMemory()
    # an 800 MB string built and dropped inside the JVM: its heap grows to hold it
    built = spark.range(1).selectExpr("length(repeat('x', 800000000)) AS n").collect()
    grown = runtime.totalMemory()
    release_memory(spark)
    after = runtime.totalMemory()
    assert built[0].n == 800_000_000
    assert grown - before > 300 * 2**20, (before, grown)
    assert grown - after > 300 * 2**20, (grown, after)  # committed heap handed back
