"""The default model trained to convergence on one device, in process: time per epoch, GPU
utilisation and held-out metrics.

    .venv/bin/python -m bench.gpu_default --device cuda [--preset ml-25m]
    .venv/bin/python -m bench.gpu_default --device cpu --preset ml-100k --epochs 2   # dry run

The preset's train and test splits are generated in memory (``bench.scale.generated_split``:
the data of ``rbm-reco generate --preset PRESET --test-fraction 0.2``). The default hybrid is
trained as the train job trains it on the driver (``bench.quality.train_rbm``: validation
carve, every part early-stopped with no epoch cap unless ``--epochs`` is given, the two-way
weights and alpha chosen, then the refit on all ratings), on ``--device``. While it trains,
``nvidia-smi`` samples the GPU's utilisation and memory every 0.5 s (where it is installed).
Then every test user is scored on the device and the held-out top-10 metrics are printed,
with the seconds of every epoch by part and way. ``bench/gpu_check.sh`` runs it on CUDA.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import statistics
import subprocess
import sys
import threading
import time

import torch

from bench.quality import train_rbm
from bench.scale import generated_split
from rbmcore.data.splits import align_rows
from rbmcore.device import choose_device
from rbmcore.evaluation import ranking_quality
from rbmcore.training.config import TrainConfig

SAMPLE_MS = 500


class GpuSampler(threading.Thread):
    """``nvidia-smi`` utilisation (%) and memory used (MiB) of GPU 0 every ``SAMPLE_MS``."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.samples: list[tuple[float, float]] = []
        self.process: subprocess.Popen | None = None

    def run(self) -> None:
        query = ["nvidia-smi", "--query-gpu=utilization.gpu,memory.used",
                 "--format=csv,noheader,nounits", f"-lms={SAMPLE_MS}", "--id=0"]  # fmt: skip
        self.process = subprocess.Popen(query, stdout=subprocess.PIPE, text=True)
        for line in self.process.stdout:
            try:
                used, memory = (float(x) for x in line.split(","))
            except ValueError:
                continue
            self.samples.append((used, memory))

    def stop(self) -> dict[str, float]:
        if self.process is not None:
            self.process.terminate()
        self.join(timeout=5)
        if not self.samples:
            return {}
        used = sorted(u for u, _ in self.samples)
        return {
            "samples": len(used),
            "utilisation_mean_pct": statistics.fmean(used),
            "utilisation_median_pct": statistics.median(used),
            "utilisation_p90_pct": used[int(0.9 * (len(used) - 1))],
            "memory_max_mib": max(m for _, m in self.samples),
        }


def epoch_seconds(history: list[dict]) -> dict[str, list[float]]:
    """Seconds of every epoch by part and way (e.g. ``rated user``, ``like member2 item``)."""
    out: dict[str, list[float]] = {}
    for record in history:
        name = " ".join(str(record[k]) for k in ("part", "member", "way") if k in record)
        out.setdefault(name or "model", []).append(round(record["seconds"], 2))
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_default",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    parser.add_argument("--preset", default="ml-25m",
                        choices=["ml-100k", "ml-1m", "ml-10m", "ml-25m"])  # fmt: skip
    parser.add_argument("--epochs", type=int, help="cap every part's epochs (a dry run)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = choose_device(args.device)
    start = time.perf_counter()
    train, test = generated_split(args.preset)
    print(f"{args.preset}: {len(train):,} users, {train.n_items:,} items, {train.nnz:,} train / "
          f"{test.nnz:,} test ratings, generated in {time.perf_counter() - start:.0f} s",
          flush=True)  # fmt: skip
    capped = {"epochs": args.epochs, "item": {"epochs": args.epochs}} if args.epochs else {}
    config = TrainConfig(device=str(device), **capped)
    sampler = GpuSampler() if device.type == "cuda" and shutil.which("nvidia-smi") else None
    if sampler is not None:
        sampler.start()
    start = time.perf_counter()
    model, selection, refit = train_rbm(train, config, device)
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    train_s = time.perf_counter() - start
    gpu = sampler.stop() if sampler is not None else {}
    start = time.perf_counter()
    context, target = align_rows(train, test)
    metrics = ranking_quality(model.to(device), context, target, device)
    score_s = time.perf_counter() - start
    result = {
        "preset": args.preset,
        "device": str(device),
        "name": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "torch": torch.__version__,
        "train_s": round(train_s, 1),
        "selection_epoch_s": epoch_seconds(selection.history),
        "refit_epoch_s": epoch_seconds(refit.history) if refit is not None else {},
        "choices": selection.validation_choices(),
        "gpu": gpu or "not sampled (no CUDA device or no nvidia-smi)",
        "score_and_evaluate_s": round(score_s, 1),
        "held_out": {k: round(v, 4) for k, v in metrics.items()},
    }
    print(json.dumps(result, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
