"""The default pipeline against Spark ALS (implicit), side by side on a generated preset.

    .venv/bin/python -m bench.versus_als run --preset ml-1m   [--work /tmp/rbm-scale]
    .venv/bin/python -m bench.versus_als run --preset ml-10m
    .venv/bin/python -m bench.versus_als run --preset ml-25m [--grid small]
    .venv/bin/python -m bench.versus_als report     # -> "## Versus Spark ALS" in BENCHMARKS.md

One ``run`` measures both systems one after the other on the same data (the preset generated
with a 20% per-user test holdout, as ``bench.scale`` does; reused when already under WORK) and
the same held-out split, each as a child process under the same memory monitor (VmRSS of the
process tree every 0.5 s: Python driver, driver JVM, Python workers):

- **rbm-reco**: ``rbm-reco run`` with the default model trained to convergence (early stopping
  on its validation carve, then the refit; no ``--epochs`` cap), ``--master local[2]``: the wall
  time of each step (ingest, train, score, evaluate) and its held-out nDCG@10 and P@10 (the
  evaluate step's numbers).
- **Spark ALS implicit** (``bench.versus_als als``, local[2], the same Spark settings): the
  ratings read, the per-user 10% validation carve of rbm-reco (``split_holdout``), the grid
  (``bench.quality.IMPLICIT_GRID``, maxIter 15, or ``--grid small``) fitted on the rest and
  scored by validation nDCG@10, the fit on all training ratings at the chosen point, then
  ``recommendForAllUsers(10)`` written to Parquet (the export), each timed; held-out nDCG@10 and
  P@10 from the fitted factors, every user's training movies masked (the candidates of
  docs/design.md, "Evaluation"; ``recommendForAllUsers`` itself can recommend a seen movie).

Results: WORK/results/versus/PRESET.json; ``report`` renders every result found.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import sys
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench.scale import (
    BIN,
    CORES,
    DEFAULT_MODEL_CONF,
    DEFAULT_WORK,
    DT,
    SPARK_CONF,
    generate,
    machine,
    peaks,
    replace_section,
    run_monitored,
    step_windows,
)

SECTION = "## Versus Spark ALS"
PRESETS = ["ml-100k", "ml-1m", "ml-10m", "ml-25m"]
SMALL_GRID = {"rank": (20, 50), "regParam": (0.1,), "alpha": (1.0, 10.0)}
EVAL_USERS = 20_000  # validation users of the grid (as rbm-reco's train.eval_users)
SCORE_CHUNK = 2048  # users per scoring block of the held-out metrics


def rbm_command(data: Path, out: Path, conf: Path) -> list[str]:
    """``rbm-reco run`` with the default model, no epoch cap, local[CORES]."""
    return [
        str(BIN / "rbm-reco"), "run", "--ratings", str(data / "train.dat"),
        "--test", str(data / "test.dat"), "--movies", str(data / "movies.dat"),
        "--out", str(out), "--conf", str(conf), "--master", f"local[{CORES}]", "--dt", DT,
    ]  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    data = work / "data" / args.preset
    results = work / "results" / "versus"
    results.mkdir(parents=True, exist_ok=True)
    conf = work / "versus-default.toml"
    conf.write_text(DEFAULT_MODEL_CONF)
    result: dict = {"preset": args.preset, "date": date.today().isoformat(), "machine": machine()}
    result["generate_s"], result["generate_reused"] = generate(args.preset, data)
    out = work / "out" / f"{args.preset}-versus"
    cmd = rbm_command(data, out, conf)
    result["rbm_command"] = " ".join(cmd[1:]).replace(str(work), "WORK")
    print("running:", " ".join(cmd), flush=True)
    log_path = results / f"{args.preset}.rbm.log"
    rc, samples, wall = run_monitored(cmd, log_path)
    if rc != 0:
        raise SystemExit(f"rbm-reco run failed (exit {rc}); see {log_path}")
    summary = json.loads((out / "run_summary.json").read_text())
    training = json.loads((out / "model" / "model.json").read_text())["training"]
    result["rbm"] = {
        "wall_s": wall,
        "seconds": summary["seconds"],
        "epochs": epochs_by_part(training),
        "metrics": summary["metrics"]["ranking"],
        "memory": peaks(samples),
        "memory_by_step": {s: peaks(samples, w) for s, w in step_windows(log_path).items()},
    }
    als_out = work / "out" / f"{args.preset}-als"
    als_cmd = [sys.executable, "-m", "bench.versus_als", "als", "--data", str(data),
               "--out", str(als_out), "--grid", args.grid]  # fmt: skip
    result["als_command"] = " ".join(als_cmd[1:]).replace(str(work), "WORK")
    print("running:", " ".join(als_cmd), flush=True)
    log_path = results / f"{args.preset}.als.log"
    rc, samples, wall = run_monitored(als_cmd, log_path)
    if rc != 0:
        raise SystemExit(f"ALS failed (exit {rc}); see {log_path}")
    result["als"] = {**json.loads((als_out / "als.json").read_text()), "wall_s": wall,
                     "memory": peaks(samples)}  # fmt: skip
    result["load_after"] = os.getloadavg()
    path = results / f"{args.preset}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    print(f"results: {path}")
    return result


def epochs_by_part(training: dict) -> dict[str, int]:
    """Epochs run per part (and way) of the selection, e.g. {"rated user": 23, ...}."""
    counts: dict[str, int] = {}
    for record in training["history"]:
        name = " ".join(str(record[k]) for k in ("part", "member", "way") if k in record)
        counts[name or "model"] = counts.get(name or "model", 0) + 1
    return counts


# -- the ALS side (a child process of ``run``) ------------------------------------------------


def read_ratings(path: Path):
    """(users, movies, ratings) int arrays of a ``::`` ratings file."""
    import pandas as pd

    frame = pd.read_csv(path, sep=":", header=None, usecols=[0, 2, 4], engine="c")
    return tuple(frame[c].to_numpy() for c in frame.columns)


def als_side(args: argparse.Namespace) -> None:
    """Spark ALS implicit as a user would run it, every step timed (module docstring)."""
    from bench.quality import IMPLICIT_GRID
    from jobs.common.session import get_spark
    from rbmcore.data.csr import csr_from_pairs
    from rbmcore.data.splits import bounded_evaluation, split_holdout

    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(name: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[name] = now - clock
        clock = now

    data, out = Path(args.data), Path(args.out)
    import tomllib

    spark = get_spark(tomllib.loads(SPARK_CONF), f"local[{CORES}]")
    spark.sparkContext.setLogLevel("ERROR")
    lap("spark_start")
    users, movies, ratings = read_ratings(data / "train.dat")
    test_users, test_movies, test_ratings = read_ratings(data / "test.dat")
    vocabulary, items = np.unique(movies, return_inverse=True)
    train = csr_from_pairs(users, items, ratings, len(vocabulary))
    known = np.isin(test_movies, vocabulary) & np.isin(test_users, train.user_ids)
    test = csr_from_pairs(test_users[known], np.searchsorted(vocabulary, test_movies[known]),
                          test_ratings[known], len(vocabulary))  # fmt: skip
    lap("read")
    fit, held = split_holdout(train, 0.1, np.random.default_rng(42))
    order = np.random.default_rng(42).permutation(len(fit))
    fit, validation, _ = bounded_evaluation(fit, [order], (fit, held), None, EVAL_USERS)
    lap("carve")
    grid = IMPLICIT_GRID if args.grid == "full" else SMALL_GRID
    scores = {}
    fit_frame = ratings_frame(spark, fit).cache()
    for values in itertools.product(*grid.values()):
        params = dict(zip(grid, values, strict=True))
        model = fit_als(fit_frame, params)
        scores[values] = held_out(model, *validation)["ndcg"]
        print(f"grid {params}: validation nDCG@10 {scores[values]:.4f}", flush=True)
    fit_frame.unpersist()
    chosen = dict(zip(grid, max(scores, key=scores.get), strict=True))
    lap("grid")
    model = fit_als(ratings_frame(spark, train), chosen)
    lap("fit")
    model.recommendForAllUsers(10).write.mode("overwrite").parquet(str(out / "recommendations"))
    lap("recommend")
    context = train.take(np.searchsorted(train.user_ids, test.user_ids))
    metrics = held_out(model, context, test)
    lap("evaluate")
    spark.stop()
    out.mkdir(parents=True, exist_ok=True)
    result = {"grid": {json.dumps(dict(zip(grid, k, strict=True))): v for k, v in scores.items()},
              "chosen": chosen, "seconds": seconds, "metrics": metrics}  # fmt: skip
    (out / "als.json").write_text(json.dumps(result, indent=1))
    print(json.dumps(result, indent=1))


def ratings_frame(spark, csr):
    """The ratings of ``csr`` as a Spark DataFrame (user, item, rating)."""
    import pandas as pd

    frame = pd.DataFrame({
        "user": np.repeat(csr.user_ids, csr.row_lengths()).astype(np.int32),
        "item": csr.items.astype(np.int32),
        "rating": csr.ratings.astype(np.float32),
    })  # fmt: skip
    return spark.createDataFrame(frame)


def fit_als(frame, params: dict):
    from pyspark.ml.recommendation import ALS

    als = ALS(userCol="user", itemCol="item", ratingCol="rating", implicitPrefs=True,
              coldStartStrategy="drop", seed=0, maxIter=15, **params)  # fmt: skip
    return als.fit(frame)


def held_out(model, context, target) -> dict[str, float]:
    """Top-10 metrics of an ALS model for ``context``'s users (their rows masked) against
    ``target``: the factors collected, scored in blocks of ``SCORE_CHUNK`` users."""
    import torch

    from rbmcore.data.batch import to_batch
    from rbmcore.evaluation import ranking_quality_of
    from rbmcore.scoring import top_k_unseen

    def factors(frame, n: int) -> torch.Tensor:
        table = frame.toPandas()
        dense = torch.zeros(n, int(model.rank))
        dense[torch.as_tensor(table["id"].to_numpy())] = torch.as_tensor(
            np.stack(table["features"].to_numpy()), dtype=torch.float32
        )
        return dense

    users = factors(model.userFactors, int(context.user_ids.max()) + 1)
    items = factors(model.itemFactors, context.n_items)
    found = []
    for start in range(0, len(context), SCORE_CHUNK):
        sub = context.slice(start, min(start + SCORE_CHUNK, len(context)))
        scores = users[torch.as_tensor(sub.user_ids)] @ items.T
        _, top = top_k_unseen(scores, to_batch(sub), 10)
        found.append((np.repeat(sub.user_ids, 10), top.reshape(-1).numpy(),
                      np.tile(np.arange(1, 11), len(sub))))  # fmt: skip
    rec_users, rec_items, ranks = (np.concatenate(c) for c in zip(*found, strict=True))
    return ranking_quality_of(rec_users, rec_items, ranks, target, 10)


# -- the report ------------------------------------------------------------------------------


def report(args: argparse.Namespace) -> None:
    order = {p: i for i, p in enumerate(PRESETS)}
    paths = Path(args.work, "results", "versus").glob("*.json")
    results = sorted((json.loads(p.read_text()) for p in paths), key=lambda r: order[r["preset"]])
    if not results:
        raise SystemExit(f"no results under {args.work}/results/versus")
    section = render(results)
    replace_section(SECTION, section)
    print(section)


def render(results: list[dict]) -> str:
    lines = [
        SECTION,
        "",
        "Commands (one run per preset, both systems one after the other on the same data):",
        "",
        "```",
        *[f".venv/bin/python -m bench.versus_als run --preset {r['preset']}" for r in results],
        "```",
        "",
        f"Dates: {', '.join(sorted({r['date'] for r in results}))}. Machine: "
        f"{results[0]['machine']['cpu']}, {results[0]['machine']['nproc']} cores, "
        f"{results[0]['machine']['memory_gb']} GB; Spark local[{CORES}] for both.",
        "",
        "| | " + " | ".join(r["preset"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(name, fn):
        lines.append(f"| {name} | " + " | ".join(fn(r) for r in results) + " |")

    for step in ("ingest", "train", "score", "evaluate"):
        row(f"rbm-reco {step} (s)", lambda r, s=step: f"{r['rbm']['seconds'][s]:.0f}")
    row("**rbm-reco whole run (s)**", lambda r: f"**{r['rbm']['wall_s']:.0f}**")
    row("rbm-reco epochs (selection) per part", lambda r: ", ".join(
        f"{k} {v}" for k, v in r["rbm"]["epochs"].items()))  # fmt: skip
    for step in ("read", "carve", "grid", "fit", "recommend", "evaluate"):
        row(f"ALS {step} (s)", lambda r, s=step: f"{r['als']['seconds'][s]:.0f}")
    row("**ALS whole run (s)**", lambda r: f"**{r['als']['wall_s']:.0f}**")
    row("ALS without its grid (s)",
        lambda r: f"{r['als']['wall_s'] - r['als']['seconds']['grid']:.0f}")  # fmt: skip
    row("ALS chosen on validation", lambda r: ", ".join(
        f"{k} {v:g}" for k, v in r["als"]["chosen"].items()))  # fmt: skip
    row("rbm-reco / ALS wall time", lambda r: f"{r['rbm']['wall_s'] / r['als']['wall_s']:.2f}")
    for system in ("rbm", "als"):
        name = "rbm-reco" if system == "rbm" else "ALS"
        row(f"{name} peak RSS, all processes (MB)",
            lambda r, s=system: f"{r[s]['memory']['total_mb']:,}")  # fmt: skip
    for metric, title in (("ndcg", "nDCG@10"), ("precision", "P@10")):
        for system in ("rbm", "als"):
            name = "rbm-reco" if system == "rbm" else "ALS"
            row(f"{name} held-out {title}",
                lambda r, s=system, m=metric: f"{r[s]['metrics'][m]:.3f}")  # fmt: skip
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.versus_als",
                                     description=__doc__.split("\n\n")[0])  # fmt: skip
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="both systems on one preset")
    r.add_argument("--preset", required=True, choices=PRESETS)
    r.add_argument("--work", default=DEFAULT_WORK)
    r.add_argument("--grid", choices=["full", "small"], default="full",
                   help="ALS's grid: bench.quality's (12 points) or 4 points")  # fmt: skip
    a = sub.add_parser("als", help="the ALS side alone (run starts it)")
    a.add_argument("--data", required=True)
    a.add_argument("--out", required=True)
    a.add_argument("--grid", choices=["full", "small"], default="full")
    p = sub.add_parser("report", help="render WORK/results/versus/*.json into BENCHMARKS.md")
    p.add_argument("--work", default=DEFAULT_WORK)
    args = parser.parse_args(argv)
    {"run": run, "als": als_side, "report": report}[args.command](args)


if __name__ == "__main__":
    main()
