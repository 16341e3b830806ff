"""Wall time per step: local mode vs a Spark standalone cluster on this machine (ml-1m preset).

    python bench/cluster_vs_local.py [--preset ml-1m] [--epochs 3] [--kind KIND]
                                     [--distributed 2] [--work DIR] [--no-write]

Generates the preset (``rbm-reco generate --preset ml-1m --test-fraction 0.2``) once, then runs
the same four ``spark-submit`` calls (ingest, train, score, evaluate, conf/cluster.toml,
``--py-files dist/rbm_reco_pyfiles.zip``) twice: with ``--master local[N]`` and with
``--master spark://127.0.0.1:PORT`` (a master and one worker with N cores, started here and
stopped by PID at the end). Each step's time is the wall time of its spark-submit (JVM start,
executor start and the job). Both runs train on the driver, so the train step measures the
same work; ``--distributed 2`` adds a train run with two TorchDistributor processes on the
cluster. Checks the two exports are identical, prints a table and replaces the
``## Cluster vs local`` section of BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

from bench.machine import cpu_model, load_average
from tests.jobs.test_cluster import (
    StandaloneCluster,
    build_pyfiles,
    read_export,
    spark_submit,
    submit_pipeline,
)

REPO = Path(__file__).resolve().parent.parent

SECTION = "## Cluster vs local"
STEPS = ("ingest", "train", "score", "evaluate")


def generate(preset: str, folder: Path) -> None:
    if (folder / "generate_summary.json").exists():
        return
    cmd = [sys.executable, "-m", "jobs.cli", "generate", "--preset", preset,
           "--test-fraction", "0.2", "--out", str(folder)]  # fmt: skip
    subprocess.run(cmd, check=True, cwd=REPO)


def write_section(path: Path, body: str) -> None:
    """Replace (or append) this benchmark's section of BENCHMARKS.md, leaving the rest as is."""
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    block = f"{SECTION}\n\n{body.rstrip()}\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        text = head + block + ("\n" + tail if tail else "")
    else:
        text = text.rstrip() + "\n\n" + block
    path.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="ml-1m")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--kind", help="model kind (default: conf/cluster.toml's)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--memory", default="3g", help="driver and executor memory")
    parser.add_argument("--distributed", type=int, default=0, help="also train with N processes")
    parser.add_argument("--work", default=str(REPO / "out" / "bench-cluster"))
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    args = parser.parse_args(argv)

    work = Path(args.work)
    data = work / "data" / args.preset
    generate(args.preset, data)
    pyfiles = build_pyfiles(work / "dist")
    conf = REPO / "conf" / "cluster.toml"
    train_args = ["--epochs", str(args.epochs)] + (["--kind", args.kind] if args.kind else [])
    loads = [load_average()]
    results: dict[str, dict[str, float]] = {}

    local_out = work / "local" / "run"
    shutil.rmtree(local_out, ignore_errors=True)
    print(f"local[{args.cores}] ...", flush=True)
    results["local"] = submit_pipeline(
        f"local[{args.cores}]", data, local_out, pyfiles, work / "local" / "logs", conf,
        train_args, timeout=3600, memory=args.memory,
    )  # fmt: skip
    loads.append(load_average())

    cluster_out = work / "cluster" / "run"
    shutil.rmtree(cluster_out, ignore_errors=True)
    print("standalone cluster ...", flush=True)
    worker_memory = f"{2 * int(args.memory.rstrip('g'))}g"
    with StandaloneCluster(work / "cluster" / "spark", args.cores, worker_memory) as cluster:
        results["cluster"] = submit_pipeline(
            cluster.url, data, cluster_out, pyfiles, work / "cluster" / "logs", conf,
            train_args, timeout=3600, memory=args.memory,
        )  # fmt: skip
        loads.append(load_average())
        if args.distributed:
            started = time.perf_counter()
            spark_submit(
                cluster.url, "train",
                ["--conf", str(conf), "--out", str(cluster_out), *train_args,
                 "--model", str(cluster_out / "model_distributed"),
                 "--distributed", str(args.distributed)],
                pyfiles, work / "cluster" / "logs" / "train_distributed.log",
                timeout=3600, memory=args.memory,
            )  # fmt: skip
            results["cluster"]["train_distributed"] = time.perf_counter() - started
            loads.append(load_average())

    a, b = read_export(local_out), read_export(cluster_out)
    key = ["user_id", "rank", "movie_id"]
    same = len(a) == len(b) and a[key].equals(b[key])
    max_score_diff = float((a["score"] - b["score"]).abs().max()) if same else float("nan")

    rows = [
        f"| {step} | {results['local'][step]:.1f} | {results['cluster'][step]:.1f} |"
        for step in STEPS
    ]
    rows.append(
        f"| **total** | **{sum(results['local'][s] for s in STEPS):.1f}** | "
        f"**{sum(results['cluster'][s] for s in STEPS):.1f}** |"
    )
    if "train_distributed" in results["cluster"]:
        rows.append(
            f"| train, `--distributed {args.distributed}` | | "
            f"{results['cluster']['train_distributed']:.1f} |"
        )
    command = " ".join(["python bench/cluster_vs_local.py", *(argv or sys.argv[1:])])
    body = "\n".join(
        [
            f"`{command}` ({datetime.now(UTC):%Y-%m-%d}). Data: the generated `{args.preset}` "
            "preset with a 20% per-user test holdout; conf/cluster.toml, "
            f"`--epochs {args.epochs}`" + (f", `--kind {args.kind}`" if args.kind else "") + ".",
            f"Machine: {os.cpu_count()} cores (`nproc`), {cpu_model()}; "
            f"local[{args.cores}] vs a standalone master + one worker with {args.cores} cores on "
            "127.0.0.1. Load average (1/5/15 min) before/between runs, this bench's own runs "
            f"included (the machine may be shared): {' | '.join(loads)}.",
            "",
            "Seconds of wall time per step, each step one `spark-submit` (JVM start, executors, "
            "the job); training runs on the driver in both modes.",
            "",
            f"| step | local[{args.cores}] | standalone cluster |",
            "|---|---|---|",
            *rows,
            "",
            f"Exports identical (user, rank, movie): {same}; max |score difference| "
            f"{max_score_diff:.2g}.",
        ]
    )
    print("\n" + body)
    if not args.no_write:
        write_section(REPO / "BENCHMARKS.md", body)
        print(f"\nwrote the '{SECTION}' section of {REPO / 'BENCHMARKS.md'}")
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
