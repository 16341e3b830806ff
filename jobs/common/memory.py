"""Host memory of the job's processes: freed tensors go back to the operating system.

glibc's ``malloc`` raises its mmap threshold (up to 32 MB) every time a large block is freed;
from then on the (users, items) temporaries of training and scoring come from the heap, where
small long-lived allocations made between them pin the freed space. Measured at ml-10m
(``bench/allocator.py``, BENCHMARKS.md ``## Memory``): the hybrid's alpha search grew the
process to 3.4 GB while it held under 1 GB of live data (0.8 GB with the settings below).

``configure_allocator`` (called by every job's driver in ``jobs.common.session.get_spark`` and by
each scoring worker before it builds its model) fixes the threshold at 1 MB, so every larger
block is a mapping of its own, unmapped when freed, and lets torch back its large blocks by
transparent huge pages (``THP_MEM_ALLOC_ENABLE``), which keeps the page faults of those
mappings cheap. A value already set in the process's environment wins (for the workers:
``spark.executorEnv.MALLOC_MMAP_THRESHOLD_`` / ``spark.executorEnv.THP_MEM_ALLOC_ENABLE``).
Without glibc (macOS, musl) the threshold stays the platform's.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import gc
import os

MMAP_THRESHOLD_BYTES = 1 << 20
M_MMAP_THRESHOLD = -3  # glibc's mallopt parameter number


@functools.cache
def glibc():
    """glibc as a ctypes library, or None on a platform without it."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc if hasattr(libc, "mallopt") and hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


def configure_allocator() -> bool:
    """Fix this process's mmap threshold (unless ``MALLOC_MMAP_THRESHOLD_`` is set) and turn
    on torch's huge pages (unless ``THP_MEM_ALLOC_ENABLE`` is set). Call it before the first
    large tensor: torch reads its variable at its first large allocation. Returns whether the
    threshold was set here."""
    os.environ.setdefault("THP_MEM_ALLOC_ENABLE", "1")
    if "MALLOC_MMAP_THRESHOLD_" in os.environ:
        return False
    libc = glibc()
    if libc is None:
        return False
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_BYTES))


def release_memory(spark=None) -> None:
    """Between the steps of one process (``rbm-reco run``): collect Python's reference cycles,
    hand glibc's free pages back (``malloc_trim``) and, with ``spark``, ask the driver JVM for
    full GCs, after which it gives its unused heap back (ingest leaves several GB there)."""
    gc.collect()
    libc = glibc()
    if libc is not None:
        libc.malloc_trim(0)
    if spark is not None:
        # measured: one full GC leaves the heap committed, the second shrinks it (objects
        # released by the first one's cleaners are only collected by the next)
        for _ in range(2):
            spark.sparkContext._jvm.System.gc()
