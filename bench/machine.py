"""What the benchmarks record about the machine they ran on (one place for every bench)."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (else what ``platform`` knows)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def nproc() -> str:
    """``nproc``'s answer (the cores this process may use), ignoring OMP_NUM_THREADS."""
    try:
        env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}  # nproc reads it
        return subprocess.run(["nproc"], capture_output=True, text=True, env=env).stdout.strip()
    except OSError:
        return "?"


def load_average() -> str:
    """The 1-, 5- and 15-minute load averages, e.g. ``"0.4 0.7 1.1"``."""
    try:
        return " ".join(f"{x:.1f}" for x in os.getloadavg())
    except OSError:
        return "?"
