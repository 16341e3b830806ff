"""One user's top-N with titles, for a person to read.

    rbm-reco recommend --out OUT --user 42 [--top-k 10]

Scores the user in-process with OUT's model from the user's ingested ratings (the same
``rbmcore`` function the Spark job calls) and prints the recommendations next to the movies
the user rated highest.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from jobs.common.args import (
    add_common_arguments,
    bounded_int,
    input_path,
    parse_job_args,
)
from jobs.common.config import resolve_conf
from jobs.common.errors import BadInputError, run_main
from jobs.common.session import get_spark
from jobs.ingestion.readback import csr_from_arrow, load_vocabulary
from jobs.storage import fs, layout, model_store
from rbmcore.scoring import recommend_csr


def user_report(spark, out: str, user_id: int, top_k: int, model_path: str | None = None) -> str:
    from pyspark.sql import functions as F

    out = fs.qualify(spark, out)
    vocab = load_vocabulary(spark, out)
    loaded = model_store.load(spark, model_path or layout.model_dir(out), vocab.checksum)
    rows = spark.read.parquet(layout.train_ratings(out)).where(F.col("user_id") == user_id)
    csr = csr_from_arrow(rows.select("user_id", "items", "ratings").toArrow(), vocab.n_items)
    if len(csr) == 0:
        raise BadInputError(f"user {user_id} has no training ratings in {out}")
    recs = recommend_csr(loaded.model, csr, top_k)

    def title(item: int) -> str:
        return vocab.titles[item] or f"movie {vocab.movie_ids[item]}"

    lines = [
        f"User {user_id}: {csr.nnz} ratings; model {loaded.meta['model_id']} "
        f"({loaded.meta['kind']})",
        "",
        "Rated highest:",
    ]
    best = sorted(zip(csr.ratings, csr.items, strict=True), key=lambda p: (-p[0], p[1]))[:5]
    scale = vocab.scale
    if scale.implicit:
        lines[-1] = "Has:"
        lines += [f"  {title(i)}" for _, i in best]
    else:
        lines += [f"  {scale.value_of(int(r)):g}/{scale.high:g}  {title(i)}" for r, i in best]
    lines += ["", f"Top {len(recs.items)} recommendations:"]
    p_like = recs.extras.get("p_like")
    for n, item in enumerate(recs.items):
        like = f"  p(like) {p_like[n]:.2f}" if p_like is not None else ""
        lines.append(f"  {recs.ranks[n]:>2}. {title(item)}  (score {recs.scores[n]:.3f}{like})")
    return "\n".join(lines)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--out", required=True, type=input_path, help="run folder with ingest/ and model/"
    )
    parser.add_argument("--user", type=bounded_int(1, 2**31 - 1), required=True, help="user id")
    parser.add_argument("--model", type=input_path, help="model folder (default OUT/model)")
    parser.add_argument("--top-k", type=int, dest="top_k", help="how many (default 10)")
    add_common_arguments(parser)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_job_args("rbm-reco recommend", __doc__, add_arguments, argv)
    conf = resolve_conf(args, {"score": {"top_k": args.top_k}})
    spark = get_spark(conf, args.master, args.log_level)
    print(user_report(spark, args.out, args.user, int(conf["score"]["top_k"]), args.model))
    return 0


if __name__ == "__main__":
    run_main(main, None)
