"""glibc's allocator as a process starts vs ``jobs.common.memory.configure_allocator``, on the
driver's heaviest loops: the hybrid's alpha search (both sub-models score chunks of validation
users, then 7 combinations and top-k per chunk) and training batches of its rated part.

    .venv/bin/python -m bench.allocator [--preset ml-10m] [--users 20000] [--repeats 2]

Every measurement runs in a fresh process (an allocator's state is per process), the two
modes alternating: ``default`` (glibc as it starts) and ``configured`` (``configure_allocator``
first, as every job does). The model is the default hybrid freshly initialised at the
preset's sizes (memory and time do not depend on trained values), the data the preset's
train split generated in memory. Prints, per run: peak and final RSS of the alpha search and
its seconds, then the same for ``--batches`` CD updates of the rated part; then the medians.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

MODES = ("default", "configured")


def rss_mb() -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmRSS:\s*(\d+) kB", status, re.M).group(1)) // 1024


class PeakRss(threading.Thread):
    """The highest RSS of this process since the last ``reset`` (sampled every 20 ms)."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = 0

    def run(self) -> None:
        while True:
            self.peak = max(self.peak, rss_mb())
            time.sleep(0.02)

    def reset(self) -> None:
        self.peak = rss_mb()


def measure(fn, peak: PeakRss) -> dict:
    peak.reset()
    start = time.perf_counter()
    fn()
    seconds = time.perf_counter() - start
    return {"seconds": round(seconds, 2), "peak_mb": max(peak.peak, rss_mb()), "after_mb": rss_mb()}


def child(args: argparse.Namespace) -> None:
    """One measurement in this process; prints one JSON line."""
    if args.child == "configured":
        from jobs.common.memory import configure_allocator

        assert configure_allocator(), "mallopt failed (not glibc?)"
    import numpy as np
    import torch

    from bench.scale import generated_train
    from rbmcore.data.splits import split_holdout
    from rbmcore.training.build import model_for_config
    from rbmcore.training.composite import use_all_ratings
    from rbmcore.training.config import TrainConfig
    from rbmcore.training.selection import ALPHA_GRID, alpha_grid_quality
    from rbmcore.training.trainer import Trainer

    torch.set_num_threads(args.threads)
    peak = PeakRss()
    peak.start()
    csr, n_items, batches = generated_train(args.preset)
    config = TrainConfig(kind="hybrid", seed=42, epochs=1)
    model = model_for_config(config, n_items, torch.Generator().manual_seed(42), len(csr))
    model.init_visible_biases(csr)
    use_all_ratings(model, csr, None)
    context, target = split_holdout(
        csr.take(np.arange(min(args.users, len(csr)))), 0.1, np.random.default_rng(0)
    )
    start_mb = rss_mb()
    cpu = torch.device("cpu")
    search = measure(lambda: alpha_grid_quality(model, context, target, cpu, ALPHA_GRID), peak)
    trainer = Trainer(model.rated, config.part("rated"), cpu)
    train = measure(lambda: trainer.train_epoch(csr, batches[: args.batches], 0), peak)
    print(json.dumps({"mode": args.child, "start_mb": start_mb, "alpha_search": search,
                      "rated_batches": train}))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.allocator", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", default="ml-10m", choices=["ml-1m", "ml-10m", "ml-25m"])
    parser.add_argument("--users", type=int, default=20_000, help="validation users searched")
    parser.add_argument("--batches", type=int, default=20, help="CD updates of the rated part")
    parser.add_argument("--repeats", type=int, default=2, help="runs of each mode")
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--child", choices=MODES, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    env_free = ("MALLOC_MMAP_THRESHOLD_", "THP_MEM_ALLOC_ENABLE")
    env = {k: v for k, v in os.environ.items() if k not in env_free}
    runs: dict[str, list[dict]] = {mode: [] for mode in MODES}
    for _ in range(args.repeats):
        for mode in MODES:
            cmd = [sys.executable, "-m", "bench.allocator", "--child", mode,
                   "--preset", args.preset, "--users", str(args.users),
                   "--batches", str(args.batches), "--threads", str(args.threads)]  # fmt: skip
            line = subprocess.run(
                cmd, env=env, cwd=REPO, check=True, capture_output=True, text=True
            )
            result = json.loads(line.stdout.strip().splitlines()[-1])
            runs[mode].append(result)
            print(json.dumps(result), flush=True)
    for mode, results in runs.items():
        for step in ("alpha_search", "rated_batches"):
            summary = {
                key: statistics.median(r[step][key] for r in results)
                for key in ("seconds", "peak_mb", "after_mb")
            }
            print(f"{mode:>10} {step}: median of {len(results)}: {summary}")


if __name__ == "__main__":
    main()
