"""The nightly export with a saved model (``rbm-reco score --ratings``) against the full pipeline
(``rbm-reco run``), and the quality of users folded in against the same users trained on.

    .venv/bin/python -m bench.nightly --preset ml-1m [--epochs 1]
    .venv/bin/python -m bench.nightly --preset ml-25m --epochs 1
    .venv/bin/python -m bench.nightly --quality [--kind hybrid] [--seeds 0]

Speed (``--preset``): the preset is generated with a 20% test holdout (as ``bench.scale``);
``rbm-reco run`` ingests train.dat, trains the default model (``--epochs N`` caps every part's
epochs, 1 by default as ``bench.scale``'s default-model runs), scores and evaluates; then
``rbm-reco score --ratings ratings.dat --model OUT/model`` (every rating of the preset as the
night's ratings) exports for the same users without training. Both run as new processes
under the same memory monitor (RSS of the Python driver, the JVM and the Python workers,
sampled every 0.5 s; ``bench.scale``), one after the other in one bench run; the table gives
the wall time and the peak of all processes of each.

Quality (``--quality``): on MovieLens 100k u1, the users with ``id % 10 == 3`` are held out.
Model A trains on all of u1.base, model B on u1.base without those users; both score the held
out users from their u1.base ratings (B folds them in), in process with the function the Spark
job calls, against their u1.test ratings: P@10, nDCG@10, like error, AUC; most popular unseen
for reference.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from datetime import date
from pathlib import Path

import numpy as np

from bench.scale import BIN, CORES, generate, machine, peaks, run_monitored

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data" / "ml-100k"
DT = "2026-12-01"


def held_out(user_ids: np.ndarray) -> np.ndarray:
    return user_ids % 10 == 3


def speed(args: argparse.Namespace) -> dict:
    """The full run and the nightly score on the preset, one after the other."""
    work = Path(args.work)
    data, out = work / "data" / args.preset, work / "out" / args.preset
    results = work / "results"
    results.mkdir(parents=True, exist_ok=True)
    generate(args.preset, data)
    master = f"local[{CORES}]"
    run_cmd = [
        str(BIN / "rbm-reco"), "run", "--ratings", str(data / "train.dat"),
        "--test", str(data / "test.dat"), "--movies", str(data / "movies.dat"),
        "--out", str(out), "--epochs", str(args.epochs), "--master", master, "--dt", DT,
    ]  # fmt: skip
    nightly_cmd = [
        str(BIN / "rbm-reco"), "score", "--ratings", str(data / "ratings.dat"),
        "--model", str(out / "model"), "--out", str(work / "out" / f"{args.preset}-nightly"),
        "--master", master, "--dt", DT,
    ]  # fmt: skip
    result: dict = {"preset": args.preset, "date": date.today().isoformat(), "machine": machine()}
    for name, cmd in (("run", run_cmd), ("score --ratings", nightly_cmd)):
        print("running:", " ".join(cmd), flush=True)
        log = results / f"{args.preset}.{name.split()[0]}.log"
        rc, samples, wall = run_monitored(cmd, log)
        if rc != 0:
            raise SystemExit(f"{name} failed (exit {rc}); see {log}")
        result[name] = {"command": " ".join(cmd[1:]).replace(str(work), "WORK"),
                        "wall_s": round(wall, 1), "memory": peaks(samples)}  # fmt: skip
    manifest = json.loads(
        (work / "out" / f"{args.preset}-nightly" / "recommendations" / f"dt={DT}"
         / "_manifest.json").read_text()
    )  # fmt: skip
    result["nightly_users"] = manifest["users"]
    result["load_after"] = os.getloadavg()
    path = results / f"nightly-{args.preset}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(f"\n{args.preset}, {result['date']}, load after {result['load_after']}")
    print("| step | wall (s) | peak of all processes (MB) |\n|---|---|---|")
    for name in ("run", "score --ratings"):
        print(f"| `rbm-reco {name}` | {result[name]['wall_s']:.0f} | "
              f"{result[name]['memory'].get('total_mb', '')} |")  # fmt: skip
    print(f"\nresults: {path}")
    return result


def quality(args: argparse.Namespace) -> None:
    """Folded-in users against the same users trained on (module doc)."""
    import torch

    from bench.protocol import load_splits, train_rbm
    from rbmcore import metrics
    from rbmcore.scoring import predict_csr, recommend_csr
    from rbmcore.training.config import TrainConfig

    torch.set_num_threads(args.threads)
    split = load_splits(["u1"], DATA)[0]
    train = split.train
    held = np.flatnonzero(held_out(split.test.user_ids))
    test, context = split.test.take(held), split.context.take(held)
    users = np.repeat(test.user_ids, test.row_lengths())
    without = train.take(np.flatnonzero(~held_out(train.user_ids)))
    counts = np.bincount(without.items, minlength=train.n_items).astype(float)
    print(f"u1: {len(held)} held-out users with u1.test ratings, {test.nnz} test pairs")
    popular = recommend_popular(counts, context)
    rows = {"most popular unseen (B's training data)": (popular, None)}
    for seed in [int(s) for s in args.seeds.split(",")]:
        config = TrainConfig(kind=args.kind, seed=seed)
        for name, data in (("A: trained on them", train), ("B: folded in", without)):
            start = time.perf_counter()
            model, *_ = train_rbm(data, config)
            recs = recommend_csr(model, context, 10)
            preds = predict_csr(model, context, test)
            rows[f"{name}, {args.kind}, seed {seed}"] = (
                (recs.user_ids, recs.items, recs.ranks), preds["p_like"]
            )
            print(f"{name}: trained in {time.perf_counter() - start:.0f} s", flush=True)
    print("\n| model | P@10 | nDCG@10 | like error | AUC |\n|---|---|---|---|---|")
    for name, (recs, p_like) in rows.items():
        rank = metrics.ranking_metrics(*recs, users, test.items, 10)
        like = metrics.like_and_rating_metrics(users, test.ratings, p_like) if p_like is not None \
            else {}  # fmt: skip
        print(f"| {name} | {rank['precision']:.3f} | {rank['ndcg']:.3f} | "
              f"{like.get('like_error', float('nan')):.3f} | {like.get('auc', float('nan')):.3f} |")


def recommend_popular(counts: np.ndarray, context) -> tuple:
    """The 10 most rated movies each user of ``context`` has not rated."""
    users, items, ranks = [], [], []
    order = np.argsort(-counts, kind="stable")
    for row in range(len(context)):
        seen = context.items[context.indptr[row] : context.indptr[row + 1]]
        top = order[~np.isin(order, seen)][:10]
        users += [context.user_ids[row]] * len(top)
        items += top.tolist()
        ranks += list(range(1, len(top) + 1))
    return np.array(users), np.array(items), np.array(ranks)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.nightly", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--preset", help="speed: generator preset (ml-1m, ml-10m, ml-25m)")
    parser.add_argument("--epochs", type=int, default=1, help="speed: run's --epochs")
    parser.add_argument("--work", default="/tmp/rbm-reco-bench-nightly")
    parser.add_argument("--quality", action="store_true", help="u1 fold-in quality")
    parser.add_argument("--kind", default="hybrid", help="quality: the model kind")
    parser.add_argument("--seeds", default="0", help="quality: seeds, comma-separated")
    parser.add_argument("--threads", type=int, default=2, help="quality: torch threads")
    args = parser.parse_args()
    if args.quality:
        quality(args)
    elif args.preset:
        speed(args)
    else:
        parser.error("give --preset (speed) or --quality")


if __name__ == "__main__":
    main()
