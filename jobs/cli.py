"""The ``rbm-reco`` command: one sub-command per job.

    rbm-reco {run,ingest,train,score,evaluate,generate,recommend} [options]
    rbm-reco COMMAND --help
    rbm-reco --version
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Sequence

from jobs.common.errors import run_main
from rbmcore import __version__

COMMANDS = {
    "run": "the whole pipeline: ingest, train, score, evaluate (generates data if none given)",
    "ingest": "validate ratings (any MovieLens release, CSV, Parquet, tables), quarantine bad "
    "lines, publish per-user Parquet + vocabulary as one unit",
    "train": "train the model on the driver, save the model artifact",
    "score": "score every user on Spark, publish OUT/recommendations/dt=.../ "
    "(--ratings: tonight's ratings with a saved model, no training)",
    "evaluate": "metrics of an export and the model on the test split",
    "generate": "write a synthetic MovieLens-like data set in a release's shape",
    "recommend": "one user's top-N with titles, for a person to read",
}


def usage() -> str:
    lines = ["usage: rbm-reco COMMAND [options]   (rbm-reco COMMAND --help for its options)",
             "       rbm-reco --version", "", "commands:"]
    lines += [f"  {name:<10} {text}" for name, text in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] in ("-h", "--help", "help"):
        print(usage())
        sys.exit(0 if args else 2)
    if args[0] in ("--version", "-V"):
        print(f"rbm-reco {__version__}")
        sys.exit(0)
    command, rest = args[0], args[1:]
    if command not in COMMANDS:
        print(f"rbm-reco: unknown command {command!r}\n\n{usage()}", file=sys.stderr)
        sys.exit(2)
    try:
        module = importlib.import_module(f"jobs.{command}")
    except ModuleNotFoundError as exc:
        if exc.name is None or exc.name.split(".")[0] not in ("pyspark", "py4j"):
            raise
        print(
            f"rbm-reco: error: {exc.name} is not installed: install rbm-reco[spark] for "
            "local mode, or run the jobs with spark-submit (the cluster's Spark)",
            file=sys.stderr,
        )
        sys.exit(1)
    run_main(module.main, rest)


if __name__ == "__main__":
    main()
