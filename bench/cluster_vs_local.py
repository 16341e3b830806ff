"""Wall time per step: local mode vs a Spark standalone cluster on this machine (ml-1m preset).

    python -m bench.cluster_vs_local [--preset ml-1m] [--epochs 3] [--kind KIND]
                                     [--distributed 2] [--work DIR] [--no-write]

Generates the preset (``rbm-reco generate --preset ml-1m --test-fraction 0.2``) once, then runs
the same four ``spark-submit`` calls (ingest, train, score, evaluate; ``--conf cluster``,
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Pipeline:
    """What both runs submit: the generated data, the zipped code, the conf, the train step's
    arguments and the driver's and executors' memory."""

    data: Path
    pyfiles: Path
    conf: Path
    train_args: list[str]
    memory: str

    def submit(self, master: str, out: Path, logs: Path) -> dict[str, float]:
        """The four steps against ``master`` into ``out``; seconds per step."""
        return submit_pipeline(
            master, self.data, out, self.pyfiles, logs, self.conf, self.train_args,
            timeout=3600, memory=self.memory,
        )  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    """Both runs, the exports compared, the section printed and written; 1 if they differ."""
    args = parse_args(argv)
    work = Path(args.work)
    data = work / "data" / args.preset
    generate(args.preset, data)
    train_args = ["--epochs", str(args.epochs)] + (["--kind", args.kind] if args.kind else [])
    pipeline = Pipeline(
        data, build_pyfiles(work / "dist"), "cluster", train_args, args.memory
    )
    loads = [load_average()]
    results = {"local": run_local(pipeline, work / "local", args.cores)}
    loads.append(load_average())
    results["cluster"] = run_cluster(
        pipeline, work / "cluster", args.cores, args.distributed, loads
    )
    same, max_score_diff = compare_exports(work / "local" / "run", work / "cluster" / "run")
    command = " ".join(["python -m bench.cluster_vs_local", *(argv or sys.argv[1:])])
    body = section_body(args, command, results, loads, same, max_score_diff)
    print("\n" + body)
    if not args.no_write:
        write_section(REPO / "BENCHMARKS.md", body)
        print(f"\nwrote the '{SECTION}' section of {REPO / 'BENCHMARKS.md'}")
    return 0 if same else 1


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.cluster_vs_local", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--preset", default="ml-1m")
    parser.add_argument("--epochs", type=int, default=3, help="training epochs (default 3)")
    parser.add_argument("--kind", help="model kind (default: the packaged cluster config's)")
    parser.add_argument("--cores", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--memory", default="3g", help="driver and executor memory")
    parser.add_argument("--distributed", type=int, default=0, help="also train with N processes")
    parser.add_argument("--work", default=str(REPO / "out" / "bench-cluster"))
    parser.add_argument("--no-write", action="store_true", help="do not touch BENCHMARKS.md")
    return parser.parse_args(argv)


def run_local(pipeline: Pipeline, folder: Path, cores: int) -> dict[str, float]:
    """The pipeline with ``--master local[cores]`` into ``folder/run``; seconds per step."""
    out = folder / "run"
    shutil.rmtree(out, ignore_errors=True)
    print(f"local[{cores}] ...", flush=True)
    return pipeline.submit(f"local[{cores}]", out, folder / "logs")


def run_cluster(
    pipeline: Pipeline, folder: Path, cores: int, distributed: int, loads: list[str]
) -> dict[str, float]:
    """The pipeline on a standalone cluster started here (one worker with ``cores`` cores)
    into ``folder/run``, then with ``distributed`` the train step again with that many
    processes (``train_distributed``); seconds per step. Appends the load after each."""
    out = folder / "run"
    shutil.rmtree(out, ignore_errors=True)
    print("standalone cluster ...", flush=True)
    worker_memory = f"{2 * int(pipeline.memory.rstrip('g'))}g"
    with StandaloneCluster(folder / "spark", cores, worker_memory) as cluster:
        results = pipeline.submit(cluster.url, out, folder / "logs")
        loads.append(load_average())
        if distributed:
            log = folder / "logs" / "train_distributed.log"
            results["train_distributed"] = train_distributed(
                pipeline, cluster.url, out, distributed, log
            )
            loads.append(load_average())
    return results


def train_distributed(
    pipeline: Pipeline, master: str, out: Path, processes: int, log: Path
) -> float:
    """Seconds of the train step with ``--distributed processes`` on the run in ``out``."""
    started = time.perf_counter()
    spark_submit(
        master, "train",
        ["--conf", str(pipeline.conf), "--out", str(out), *pipeline.train_args,
         "--model", str(out / "model_distributed"), "--distributed", str(processes)],
        pipeline.pyfiles, log, timeout=3600, memory=pipeline.memory,
    )  # fmt: skip
    return time.perf_counter() - started


def compare_exports(local_out: Path, cluster_out: Path) -> tuple[bool, float]:
    """Whether the two exports list the same (user, rank, movie) rows, and the largest score
    difference between them (nan when they differ)."""
    a, b = read_export(local_out), read_export(cluster_out)
    key = ["user_id", "rank", "movie_id"]
    same = len(a) == len(b) and a[key].equals(b[key])
    max_score_diff = float((a["score"] - b["score"]).abs().max()) if same else float("nan")
    return same, max_score_diff


def step_rows(results: dict[str, dict[str, float]], distributed: int) -> list[str]:
    """The table's rows: seconds per step in each mode, their totals, the distributed train."""
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
            f"| train, `--distributed {distributed}` | | "
            f"{results['cluster']['train_distributed']:.1f} |"
        )
    return rows


def section_body(
    args: argparse.Namespace,
    command: str,
    results: dict[str, dict[str, float]],
    loads: list[str],
    same: bool,
    max_score_diff: float,
) -> str:
    """The section's text: the command, data and machine, the table, the exports' check."""
    return "\n".join(
        [
            f"`{command}` ({datetime.now(UTC):%Y-%m-%d}). Data: the generated `{args.preset}` "
            "preset with a 20% per-user test holdout; `--conf cluster`, "
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
            *step_rows(results, args.distributed),
            "",
            f"Exports identical (user, rank, movie): {same}; max |score difference| "
            f"{max_score_diff:.2g}.",
        ]
    )


if __name__ == "__main__":
    sys.exit(main())
