"""Ingest speed per input format, side by side: the same generated ratings written as ``::``
lines, tab lines, CSV with a header and Parquet, each ingested (train, test and movies, as the
pipeline does) in a fresh local-mode Spark process with the built-in settings (no --conf).

    .venv/bin/python -m bench.ingest --preset ml-1m [--formats dat,tab,csv,parquet] [--runs 3]
    .venv/bin/python -m bench.ingest --preset ml-25m --runs 1
    .venv/bin/python -m bench.ingest --preset ml-1m --pythonpath ../other-checkout --formats dat

The data: ``rbm-reco generate --preset P --test-fraction 0.2 --format F`` (half stars at the
ml-10m and ml-25m presets, as those releases), generated once under ``--work``. Each run
starts a new Python process (``--one``) that starts Spark, then times ``run_ingest`` alone (the
pipeline's ingest step), and counts its Spark jobs and stages. Runs alternate the formats
(run 1 of every format, then run 2, ...); the table gives the median wall time, seconds per
million ratings lines, and each step of the job's log (median). ``--pythonpath`` runs another
checkout's ingest on the same data (an A/B of two versions of the code; a version that
predates CSV and Parquet input takes ``--formats dat,tab`` only).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HALF_STAR_PRESETS = ("ml-10m", "ml-25m")
FORMATS = ("dat", "tab", "csv", "parquet")


def dataset(work: Path, preset: str, fmt: str) -> dict[str, str]:
    """The preset generated in ``fmt`` under ``work`` (once); its train, test, movies paths."""
    from rbmcore.data.synthetic import FORMATS as FILES
    from rbmcore.data.synthetic import GeneratorSpec, write_dataset

    folder = work / "data" / f"{preset}-{fmt}"
    if not (folder / "generate_summary.json").exists():
        spec = GeneratorSpec.from_preset(
            preset, test_fraction=0.2, half_stars=preset in HALF_STAR_PRESETS
        )
        write_dataset(spec, str(folder), fmt=fmt)
    _, train, test, movies = FILES[fmt]
    return {"ratings": str(folder / train), "test": str(folder / test),
            "movies": str(folder / movies)}  # fmt: skip


def run_one(args: argparse.Namespace) -> None:
    """In this process: start Spark, ingest once, print one JSON line of what it took."""
    from jobs.common.config import load_conf
    from jobs.common.session import get_spark
    from jobs.ingest import run_ingest

    conf = load_conf(None)
    spark = get_spark(conf, args.master)
    shutil.rmtree(args.out, ignore_errors=True)
    sc = spark.sparkContext
    sc.setJobGroup("ingest", "bench.ingest")
    started = time.perf_counter()
    summary = run_ingest(spark, conf, args.ratings, args.out, test=args.test, movies=args.movies)
    wall = time.perf_counter() - started
    tracker = sc.statusTracker()
    jobs = tracker.getJobIdsForGroup("ingest")
    stages = sum(len(tracker.getJobInfo(j).stageIds) for j in jobs)
    print(json.dumps({
        "wall_s": wall, "jobs": len(jobs), "stages": stages, "lines": summary["lines_read"],
        "test_lines": (summary.get("test") or {}).get("lines_read", 0),
        "timings": summary["timings"],
    }))  # fmt: skip
    spark.stop()


def measure(args: argparse.Namespace, fmt: str, paths: dict[str, str], run: int) -> dict:
    out = Path(args.work) / "out" / f"{args.preset}-{fmt}"
    env = dict(os.environ, PYTHONPATH=args.pythonpath or str(REPO))
    cmd = [sys.executable, "-m", "bench.ingest", "--one", "--master", args.master,
           "--out", str(out), *sum(([f"--{k}", v] for k, v in paths.items()), [])]  # fmt: skip
    proc = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"{fmt} run {run} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(lines[-1])
    print(f"{fmt} run {run}: {result['wall_s']:.1f} s, {result['jobs']} jobs, "
          f"{result['stages']} stages", flush=True)  # fmt: skip
    return result


def table(preset: str, results: dict[str, list[dict]]) -> str:
    """The markdown table of the medians per format."""
    steps: list[str] = []
    for runs in results.values():
        for key in runs[0]["timings"]:
            if key not in steps and key != "total":
                steps.append(key)
    head = ["format", "lines (train + test)", "ingest (s)", "s per M lines", "jobs", "stages"]
    head += [s.removeprefix("ingest: ") + " (s)" for s in steps]
    rows = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for fmt, runs in results.items():
        wall = statistics.median(r["wall_s"] for r in runs)
        lines = runs[0]["lines"] + runs[0]["test_lines"]
        cells = [fmt, f"{lines:,}", f"{wall:.1f}", f"{wall / lines * 1e6:.2f}",
                 str(runs[0]["jobs"]), str(runs[0]["stages"])]  # fmt: skip
        cells += [f"{statistics.median(r['timings'].get(s, 0) for r in runs):.1f}" for s in steps]
        rows.append("| " + " | ".join(cells) + " |")
    return f"{preset}, median of {len(next(iter(results.values())))} runs\n\n" + "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="ml-1m", help="generator preset (default ml-1m)")
    parser.add_argument("--formats", default=",".join(FORMATS), help="comma-separated formats")
    parser.add_argument("--runs", type=int, default=3, help="runs per format (default 3)")
    parser.add_argument("--work", default="/tmp/rbm-reco-bench-ingest", help="data and outputs")
    parser.add_argument("--master", default="local[2]", help="Spark master (default local[2])")
    parser.add_argument("--pythonpath", help="the checkout whose ingest runs (default this one)")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    for name in ("ratings", "test", "movies", "out"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        run_one(args)
        return
    formats = [f for f in args.formats.split(",") if f]
    unknown = sorted(set(formats) - set(FORMATS))
    if unknown:
        raise SystemExit(f"unknown formats {unknown}; known: {FORMATS}")
    paths = {fmt: dataset(Path(args.work), args.preset, fmt) for fmt in formats}
    results: dict[str, list[dict]] = {fmt: [] for fmt in formats}
    for run in range(1, args.runs + 1):
        for fmt in formats:
            results[fmt].append(measure(args, fmt, paths[fmt], run))
    text = table(args.preset, results)
    print("\n" + text)
    report = Path(args.work) / f"ingest-{args.preset}.json"
    report.write_text(json.dumps(results, indent=2) + "\n")
    print(f"\nall runs: {report}")


if __name__ == "__main__":
    main()
