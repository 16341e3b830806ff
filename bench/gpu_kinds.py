"""Every model kind trained and scored on one device, in process (no Spark, no files).

    .venv/bin/python -m bench.gpu_kinds --device cuda [--preset ml-1m] [--epochs 2]
    .venv/bin/python -m bench.gpu_kinds --device cpu --preset ml-100k --epochs 1   # dry run
    .venv/bin/python -m bench.gpu_kinds --device cuda --preset ml-25m --epochs 1 --kinds hybrid

The code the train job runs on the driver (``bench.protocol.train_rbm``: validation carve,
the kind's trainer with early stopping, the refit on all ratings) and the scoring UDF's
(``rbmcore.scoring.recommend_csr``), for each kind with its defaults (the default hybrid
first) on the preset's train split generated in memory, ``--epochs`` for every part. Then
the same weights score the first ``COMPARED_USERS`` users on the CPU and the top-10 lists are
compared. Prints one line per kind (seconds of training per part and of scoring every user);
exits 1 if any kind failed, after trying all of them. ``bench/gpu_check.sh`` runs it on CUDA.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
import traceback
from pathlib import Path

import numpy as np
import torch

from bench.protocol import train_rbm
from bench.scale import generated_train, part_seconds
from rbmcore.data.csr import RatingsCSR
from rbmcore.device import choose_device
from rbmcore.models.factory import KINDS
from rbmcore.scoring import recommend_csr
from rbmcore.training.config import TrainConfig

REPO = Path(__file__).resolve().parent.parent

TOP_K = 10
COMPARED_USERS = 10_000  # all of ml-1m's; the CPU's share of the check stays short at ml-25m


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def check_kind(kind: str, csr: RatingsCSR, device: torch.device, epochs: int) -> str:
    """Train ``kind`` on ``device`` (``epochs`` for every part), score every user there and
    on the CPU with the same weights; one line saying how long and how alike."""
    config = TrainConfig(kind=kind, epochs=epochs, item={"epochs": epochs}, device=str(device))
    start = time.perf_counter()
    model, selection, refit = train_rbm(csr, config, device)
    synchronize(device)
    train_s = time.perf_counter() - start
    parts = ", ".join(
        f"{stage} {part} {seconds:.1f} s"
        for trainer, stage in ((selection, "selection"), (refit, "refit"))
        if trainer is not None
        for part, seconds in part_seconds(trainer.history).items()
    )
    model = model.to(device).eval()
    recommend_csr(model, csr.slice(0, 100), TOP_K, device=device)  # warm-up
    synchronize(device)
    start = time.perf_counter()
    here = recommend_csr(model, csr, TOP_K, device=device)
    synchronize(device)
    score_s = time.perf_counter() - start
    compared = csr.slice(0, min(len(csr), COMPARED_USERS))
    on_cpu = recommend_csr(model.to("cpu"), compared, TOP_K, device="cpu")
    rows = len(on_cpu.items)
    same = np.mean(here.items[:rows] == on_cpu.items)
    gap = float(np.abs(here.scores[:rows] - on_cpu.scores).max())
    return (
        f"{kind}: train {train_s:.1f} s ({epochs} epoch(s) per part + refit; {parts}), score "
        f"{len(csr):,} users {score_s:.3f} s ({len(csr) / score_s:,.0f} users/s) on {device}; "
        f"top-{TOP_K} vs cpu, same weights, {len(compared):,} users: {same:.2%} same movies, "
        f"max |score diff| {gap:.1e}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.gpu_kinds", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--device", default="auto", help="auto (cuda if available), cpu, cuda")
    presets = ["ml-100k", "ml-1m", "ml-10m", "ml-25m"]
    parser.add_argument("--preset", default="ml-1m", choices=presets)
    parser.add_argument("--epochs", type=int, default=2, help="epochs of every part")
    parser.add_argument("--kinds", default="hybrid,binary,softmax,rated")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    device = choose_device(args.device)
    csr, n_items, _ = generated_train(args.preset)
    print(f"{args.preset} train split: {len(csr):,} users, {n_items:,} items, {csr.nnz:,} ratings")
    failed = []
    for kind in args.kinds.split(","):
        if kind not in KINDS:
            raise SystemExit(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")
        try:
            print(check_kind(kind, csr, device, args.epochs), flush=True)
        except Exception:  # noqa: BLE001 - report every kind, then fail
            failed.append(kind)
            print(f"{kind}: FAILED on {device}\n{traceback.format_exc()}", flush=True)
    if failed:
        print(f"failed on {device}: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
