"""Scale benchmark: the whole pipeline on a generated MovieLens-sized preset, measured in one run.

    .venv/bin/python -m bench.scale run --preset ml-1m  [--work /tmp/rbm-scale]
    .venv/bin/python -m bench.scale run --preset ml-10m
    .venv/bin/python -m bench.scale run --preset ml-25m
    .venv/bin/python -m bench.scale report        # -> the "## Scale" section of BENCHMARKS.md
    .venv/bin/python -m bench.scale tutorial      # only the tutorial comparison (ml-1m, ~1 min)
    .venv/bin/python -m bench.scale throughput --preset ml-1m --factor 32   # after `run`

``run`` generates the preset (20% per-user test holdout) unless it is already under WORK, then
runs ``rbm-reco run --epochs 1 --kind binary --master local[2]`` as a child process while a
thread samples the resident memory (VmRSS from /proc) of its whole process tree every 0.5 s:
the Python driver, the driver JVM and the Python workers (pyspark daemon and its children),
split by pipeline step from the job's log. Then, in this process, on the same ingested data
and the same trained weights: ``rbmcore.scoring.recommend_csr`` throughput (torch threads =
2, the cores Spark had), a plain ``torch.matmul`` GFLOP/s baseline, the training FLOP rate,
and at ml-1m the tutorial's dense algorithm vs ours at equal settings. Then ``rbm-reco
train --epochs 1`` again with ``train.cache = "stream"`` for the driver's memory when streaming.
``throughput`` (after ``run``) times the warm score job on the preset's users and on them
replicated F times, side by side, which separates the job's fixed cost from its users/s.
Results go to WORK/results/PRESET.json; ``report`` renders every result found into the
``## Scale`` section of BENCHMARKS.md (replacing only that section).

FLOP models (what the GFLOP/s numbers count):
- scoring (binary kind): the dense hidden-to-visible product, 2 * users * n_hidden * n_items
  (one multiply-add per user, hidden unit and item); masking, top-k and the sparse
  visible-to-hidden pass are not counted (they are the overhead).
- training (binary kind, K = 2 states, CD-k): per rating and hidden unit, a visible-to-hidden
  pass (embedding_bag) counts 1 flop (an add), a hidden-to-visible pass over the rated items
  2 * K flops; an update does 8 + k hidden passes (data, k chain steps, the reconstruction
  loss, the two free energies forward and twice that backward) and 1 + k visible passes:
  (8 + k + 2 * K * (1 + k)) * ratings * n_hidden per epoch.
- matmul baseline: 2 * n^3 for an n x n float32 product (n = 2048), and the scoring block's
  own shape (chunk users x n_hidden) @ (n_hidden x n_items).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from datetime import date, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
DEFAULT_WORK = "/tmp/rbm-scale"
CORES = 2
SECTION = "## Scale"
DT = "2026-01-01"

SPARK_CONF = """
[spark]
master = "local[2]"
app_name = "rbm-reco-scale"

[spark.conf]
"spark.driver.memory" = "6g"
"spark.sql.shuffle.partitions" = "8"
"spark.sql.session.timeZone" = "UTC"
"spark.ui.showConsoleProgress" = "false"
"spark.ui.enabled" = "false"
"spark.sql.sources.partitionOverwriteMode" = "dynamic"

[ingest]
max_bad_fraction = 0.01
batch_size = 100

"""
CONF = SPARK_CONF + """
[train]
kind = "binary"
item_based = false  # the user-based binary RBM: sparse training, the BinaryRanker scoring path
n_models = 1  # one RBM (binary's default averages 3), what this bench has always measured
seed = 42
device = "cpu"

[score]
top_k = 10
"""
# the project's default model (the [train] defaults: the hybrid), nothing overridden but the device
DEFAULT_MODEL_CONF = SPARK_CONF + """
[train]
seed = 42
device = "cpu"

[score]
top_k = 10
"""


# -- memory of a process tree ----------------------------------------------------------------


def _proc_table() -> dict[int, tuple[int, str, int]]:
    """pid -> (ppid, command name, VmRSS bytes) for every readable process."""
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as fh:
                status = fh.read()
        except OSError:
            continue
        name = re.search(r"^Name:\s*(\S+)", status, re.M)
        ppid = re.search(r"^PPid:\s*(\d+)", status, re.M)
        rss = re.search(r"^VmRSS:\s*(\d+) kB", status, re.M)
        table[int(entry)] = (
            int(ppid.group(1)) if ppid else 0,
            name.group(1) if name else "?",
            int(rss.group(1)) * 1024 if rss else 0,
        )
    return table


class TreeSampler(threading.Thread):
    """Samples the RSS of ``root`` and its descendants every ``interval`` seconds.

    Each sample: (time, python driver, JVM, python workers) in bytes. The root is the Python
    driver; a JVM is a ``java`` descendant; every Python process below a JVM is a worker.
    """

    def __init__(self, root: int, interval: float = 0.5) -> None:
        super().__init__(daemon=True)
        self.root, self.interval = root, interval
        self.samples: list[tuple[float, int, int, int]] = []
        self.stop_event = threading.Event()

    def sample(self) -> tuple[float, int, int, int]:
        table = _proc_table()
        children: dict[int, list[int]] = {}
        for pid, (ppid, _, _) in table.items():
            children.setdefault(ppid, []).append(pid)
        driver = jvm = workers = 0
        stack = [(self.root, False)]
        while stack:
            pid, under_jvm = stack.pop()
            if pid not in table:
                continue
            _, name, rss = table[pid]
            is_jvm = name == "java"
            if pid == self.root:
                driver += rss
            elif is_jvm:
                jvm += rss
            elif under_jvm:
                workers += rss
            else:
                driver += rss  # a helper of the driver (none expected)
            stack += [(c, under_jvm or is_jvm) for c in children.get(pid, [])]
        return time.time(), driver, jvm, workers

    def run(self) -> None:
        while not self.stop_event.is_set():
            self.samples.append(self.sample())
            self.stop_event.wait(self.interval)

    def stop(self) -> None:
        self.stop_event.set()
        self.join()


def run_monitored(cmd: list[str], log_path: Path) -> tuple[int, list, float]:
    """Run ``cmd`` (stderr+stdout to ``log_path``) under a TreeSampler; (rc, samples, wall)."""
    start = time.time()
    with open(log_path, "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=REPO)
        sampler = TreeSampler(proc.pid)
        sampler.start()
        rc = proc.wait()
        sampler.stop()
    return rc, sampler.samples, time.time() - start


STEP_RE = re.compile(
    r"^(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d),(\d{3}) INFO rbm-reco: (\w+): (started|finished)"
)


def step_windows(log_path: Path) -> dict[str, tuple[float, float]]:
    """step -> (start, end) epoch seconds from the job log's ``timed`` lines."""
    starts, windows = {}, {}
    for line in log_path.read_text(errors="replace").splitlines():
        m = STEP_RE.match(line)
        if not m:
            continue
        t = datetime.strptime(m.group(1), "%Y-%m-%d %H:%M:%S").timestamp() + int(m.group(2)) / 1e3
        if m.group(4) == "started":
            starts[m.group(3)] = t
        elif m.group(3) in starts:
            windows[m.group(3)] = (starts[m.group(3)], t)
    return windows


def peaks(samples, window: tuple[float, float] | None = None) -> dict[str, float]:
    """Peak RSS in MB of the driver (Python + JVM), the Python workers and all together."""
    rows = [s for s in samples if window is None or window[0] - 0.5 <= s[0] <= window[1] + 0.5]
    if not rows:
        return {}
    mb = 2**20
    return {
        "python_driver_mb": round(max(r[1] for r in rows) / mb),
        "jvm_mb": round(max(r[2] for r in rows) / mb),
        "driver_mb": round(max(r[1] + r[2] for r in rows) / mb),
        "workers_mb": round(max(r[3] for r in rows) / mb),
        "total_mb": round(max(r[1] + r[2] + r[3] for r in rows) / mb),
    }


# -- in-process measurements -------------------------------------------------------------------


def median_time(fn, repeats: int = 5) -> float:
    fn()  # warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def matmul_gflops(n: int = 2048, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    return 2 * n**3 / median_time(lambda: a @ b, repeats) / 1e9


def shape_gflops(m: int, k: int, n: int, repeats: int = 5) -> float:
    import torch

    a, b = torch.randn(m, k), torch.randn(k, n)
    out = torch.empty(m, n)
    return 2 * m * k * n / median_time(lambda: torch.mm(a, b, out=out), repeats) / 1e9


def load_ingested(out: Path, n_items: int):
    import pyarrow.dataset as ds

    from jobs.ingestion.readback import csr_from_arrow

    table = ds.dataset(out / "ingest" / "train", format="parquet", ignore_prefixes=[".", "_"])
    table = table.to_table(columns=["user_id", "items", "ratings", "batch"]).sort_by("user_id")
    return csr_from_arrow(table, n_items), table.column("batch").to_numpy()


def in_process(out: Path, preset: str, max_users: int) -> dict:
    """Scoring and training rates in this process on the pipeline's data and weights."""
    import numpy as np
    import torch

    from rbmcore.data.batch import batches_from_assignment
    from rbmcore.io.artifact import load_model
    from rbmcore.scoring import fast_users_per_chunk, recommend_csr
    from rbmcore.training.config import TrainConfig
    from rbmcore.training.trainer import Trainer

    torch.set_num_threads(CORES)
    loaded = load_model(out / "model")
    model = loaded.model
    n_items, n_hidden = model.n_items, model.n_hidden
    csr, batch_ids = load_ingested(out, n_items)
    result: dict = {"users": len(csr), "ratings": csr.nnz, "n_items": n_items, "hidden": n_hidden}

    mm = [matmul_gflops() for _ in range(3)]
    result["matmul_gflops"] = statistics.median(mm)
    chunk = fast_users_per_chunk(n_items)
    result["chunk_users"] = chunk
    result["matmul_shape_gflops"] = shape_gflops(chunk, n_hidden + 1, n_items)

    sub = csr.slice(0, min(len(csr), max_users))
    t = median_time(lambda: recommend_csr(model, sub, 10), repeats=3)
    result["score_users"] = len(sub)
    result["score_users_per_s"] = len(sub) / t
    result["score_gflops"] = 2 * len(sub) * n_hidden * n_items / t / 1e9
    result["matmul_after_gflops"] = matmul_gflops()

    # training rate of one epoch's worth of batches (the pipeline's settings, CD-1)
    batches = batches_from_assignment(batch_ids)
    n_batches = min(len(batches), 50)
    config = TrainConfig(kind="binary", n_hidden=n_hidden, cd_schedule=[[0, 1]], seed=0)
    part = [batches[i] for i in range(n_batches)]
    nnz = int(sum(csr.row_lengths()[b].sum() for b in part))
    from rbmcore.models.factory import build_model

    rbm = build_model("binary", n_items, n_hidden, torch.Generator().manual_seed(0))
    trainer = Trainer(rbm, config, torch.device("cpu"))
    t = median_time(lambda: trainer.train_epoch(csr, part, 0), repeats=3)
    k, states = 1, 2
    flops = (8 + k + 2 * states * (1 + k)) * nnz * n_hidden
    result["train_users_per_s"] = sum(len(b) for b in part) / t
    result["train_gflops"] = flops / t / 1e9
    if preset == "ml-1m":
        result["tutorial_comparison"] = tutorial_comparison(csr, batches, n_items)
    del np
    return result


def spark_score_warm(out: Path, conf_path: Path, repeats: int = 3, warmup: int = 2) -> dict:
    """The score job's users/s once its Python workers are up: ``jobs.score.run_score`` on the
    run's data and model in a local[2] session of this process, ``warmup`` times to start the
    workers and warm the JVM (its JIT keeps speeding the job up over the first runs), then
    ``repeats`` times (median); each run publishes its own date, deleted afterwards."""
    import shutil

    from jobs.common.config import load_conf
    from jobs.common.session import get_spark
    from jobs.score import run_score
    from jobs.storage.layout import recommendations_for

    conf = load_conf(str(conf_path))
    spark = get_spark(conf, None)
    times = []
    try:
        for i in range(warmup + repeats):
            dt = f"2026-02-{i + 1:02d}"
            start = time.perf_counter()
            info = run_score(spark, conf, str(out), dt)
            times.append(time.perf_counter() - start)
            shutil.rmtree(recommendations_for(str(out), dt), ignore_errors=True)
    finally:
        spark.stop()
    return {
        "first_s": times[0],
        "warmup_s": times[:warmup],
        "warm_s": times[warmup:],
        "users": info["users"],
        "users_per_s": info["users"] / statistics.median(times[warmup:]),
    }


def replicate_out(spark, out: Path, target: Path, factor: int) -> int:
    """A run folder ``target`` whose ingested users are ``out``'s ``factor`` times over (copy k
    has user ids shifted by k * (max id + 1); same items, ratings, vocabulary and model), for
    the score job at a larger size; returns its number of users."""
    import shutil

    from pyspark.sql import functions as F

    from jobs.ingestion.unit import ID_FILE, MANIFEST
    from jobs.score import score_tasks

    shutil.rmtree(target, ignore_errors=True)
    (target / "ingest").mkdir(parents=True)
    shutil.copytree(out / "ingest" / "items", target / "ingest" / "items")
    shutil.copy(out / "ingest" / MANIFEST, target / "ingest" / MANIFEST)  # the same unit id
    shutil.copytree(out / "model", target / "model")
    users = spark.read.parquet(str(out / "ingest" / "train"))
    shift = int(users.agg(F.max("user_id")).first()[0]) + 1
    copies = spark.range(factor).withColumnRenamed("id", "copy")
    replicated = users.crossJoin(F.broadcast(copies)).withColumn(
        "user_id", (F.col("user_id") + F.col("copy") * shift).cast("int")
    ).drop("copy")
    replicated.repartition(score_tasks(spark)).write.parquet(str(target / "ingest" / "train"))
    shutil.copy(out / "ingest" / "items" / ID_FILE, target / "ingest" / "train" / ID_FILE)
    return spark.read.parquet(str(target / "ingest" / "train")).count()


def score_throughput(args: argparse.Namespace) -> dict:
    """The score job's fixed cost and per-user rate, apart: ``jobs.score.run_score`` on the
    run's users (N) and on them replicated F times (F x N), alternating, median of
    ``repeats`` each after one warm-up of each, in one local[2] session; users/s beyond the
    fixed cost = (F - 1) N / (t_F - t_1). In-process ``recommend_csr`` users/s (2 threads, same
    weights) is measured in the same process between the Spark runs. Saved into the preset's
    result as ``spark_throughput``."""
    import shutil

    import torch

    from jobs.common.config import load_conf
    from jobs.common.session import get_spark
    from rbmcore.io.artifact import load_model

    work = Path(args.work)
    out, big = work / "out" / args.preset, work / "out" / f"{args.preset}-x{args.factor}"
    path = work / "results" / f"{args.preset}.json"
    result = json.loads(path.read_text())
    conf = load_conf(str(work / "scale.toml"))
    spark = get_spark(conf, None)
    torch.set_num_threads(CORES)
    model = load_model(out / "model").model
    csr, _ = load_ingested(out, model.n_items)
    sub = csr.slice(0, min(len(csr), args.max_users))
    try:
        users_big = replicate_out(spark, out, big, args.factor)
        times = alternating_score_times(spark, conf, out, big, model, sub, args.repeats)
    finally:
        spark.stop()
        shutil.rmtree(big, ignore_errors=True)
    throughput = throughput_summary(times, len(csr), users_big, args)
    result["spark_throughput"] = throughput
    path.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(throughput, indent=1))
    return throughput


def alternating_score_times(
    spark, conf: dict, out: Path, big: Path, model, sub, repeats: int
) -> dict[str, list[float]]:
    """``repeats + 1`` rounds of the score job on ``out`` (``x1``) then on ``big`` (``xF``),
    then in-process scoring of ``sub``; the seconds of the score jobs after the first round
    (which warms the workers and the JVM) and the in-process users/s of every round."""
    import shutil

    from jobs.score import run_score
    from jobs.storage.layout import recommendations_for
    from rbmcore.scoring import recommend_csr

    times: dict[str, list[float]] = {"x1": [], "xF": [], "in_process": []}
    for i in range(repeats + 1):
        for name, folder in (("x1", out), ("xF", big)):
            dt = f"2026-03-{i + 1:02d}"
            start = time.perf_counter()
            run_score(spark, conf, str(folder), dt)
            elapsed = time.perf_counter() - start
            shutil.rmtree(recommendations_for(str(folder), dt), ignore_errors=True)
            if i:
                times[name].append(elapsed)
        start = time.perf_counter()
        recommend_csr(model, sub, 10)
        times["in_process"].append(len(sub) / (time.perf_counter() - start))
    return times


def throughput_summary(
    times: dict[str, list[float]], users: int, users_big: int, args: argparse.Namespace
) -> dict:
    """The ``spark_throughput`` result: the medians' rate beyond the fixed cost, the fixed
    cost and the ratio to the in-process rate (its first, warm-up round left out)."""
    t1, tf = statistics.median(times["x1"]), statistics.median(times["xF"])
    rate = (users_big - users) / (tf - t1)
    in_process = statistics.median(times["in_process"][1:])
    return {
        "factor": args.factor, "users": users, "users_replicated": users_big,
        "x1_s": times["x1"], "xF_s": times["xF"], "in_process_users_per_s": in_process,
        "spark_users_per_s": rate, "fixed_s": t1 - users / rate,
        "ratio": rate / in_process, "load_after": os.getloadavg(),
        "command": f"-m bench.scale throughput --preset {args.preset} --factor {args.factor}",
    }  # fmt: skip


def tutorial_comparison(csr, batches, n_items: int, n_batches: int = 20, repeats: int = 5) -> dict:
    """Users/s of one CD-10 update, hidden 200, batch 100: the tutorial's dense algorithm
    (``rbmcore.baselines.tutorial_rbm.TutorialRBM.train_step``) vs ours
    (``Trainer.train_epoch``), side by side, alternating ``repeats`` times (medians; one
    warm-up run of each first)."""
    import numpy as np
    import torch

    from rbmcore.baselines.tutorial_rbm import TutorialRBM, to_dense_binary
    from rbmcore.models.factory import build_model
    from rbmcore.training.config import TrainConfig
    from rbmcore.training.trainer import Trainer

    hidden, k = 200, 10
    part = [b for b in batches if len(b) == 100][:n_batches]
    users = sum(len(b) for b in part)
    dense = []
    for b in part:
        sub = csr.take(b)
        dense.append(
            to_dense_binary(sub.row_of_entries(), sub.items, sub.ratings, len(sub), n_items)
        )
    tutorial = TutorialRBM(n_items, hidden, torch.Generator().manual_seed(0))

    def run_tutorial():
        for v in dense:
            tutorial.train_step(v, k=k)

    config = TrainConfig(kind="binary", n_hidden=hidden, cd_schedule=[[0, k]], seed=0)
    ours = Trainer(build_model("binary", n_items, hidden, torch.Generator().manual_seed(0)),
                   config, torch.device("cpu"))  # fmt: skip
    tutorial_t, ours_t = [], []
    for _ in range(repeats):  # alternate, so both see the same machine load
        tutorial_t.append(median_time(run_tutorial, 1))
        ours_t.append(median_time(lambda: ours.train_epoch(csr, part, 0), 1))
    tutorial_rate = users / statistics.median(tutorial_t)
    ours_rate = users / statistics.median(ours_t)
    del np
    return {
        "hidden": hidden,
        "batch": 100,
        "cd_k": k,
        "batches": len(part),
        "threads": torch.get_num_threads(),
        "tutorial_s": tutorial_t,
        "ours_s": ours_t,
        "tutorial_users_per_s": tutorial_rate,
        "ours_users_per_s": ours_rate,
        "ratio": ours_rate / tutorial_rate,
    }


def generated_train(preset: str, batch_size: int = 100, seed: int = 0):
    """The train split of ``rbm-reco generate --preset PRESET --test-fraction 0.2``, built in
    memory (no files, no Spark): (CSR over the rated items' dense indices, n_items, batches of
    ``batch_size`` users shuffled with ``seed``)."""
    import numpy as np

    csr, _ = generated_split(preset)
    order = np.random.default_rng(seed).permutation(len(csr))
    return csr, csr.n_items, np.array_split(order, range(batch_size, len(csr), batch_size))


def generated_split(preset: str):
    """(train, test) of ``rbm-reco generate --preset PRESET --test-fraction 0.2``, built in
    memory: CSRs over the train split's movies (dense indices, ``train.n_items``); the test
    rows keep the movies and users of the train split only, as ingest does."""
    import numpy as np

    from rbmcore.data.csr import csr_from_pairs
    from rbmcore.data.synthetic import GeneratorSpec, generate_chunks, holdout_mask

    spec = GeneratorSpec.from_preset(preset, test_fraction=0.2)
    parts: dict[bool, list[tuple]] = {False: [], True: []}
    for block, (u, m, r, _) in enumerate(generate_chunks(spec)):
        held = holdout_mask(spec, block, u)
        for side in (False, True):
            keep = held == side
            parts[side].append((u[keep], m[keep], r[keep]))
    train_u, train_m, train_r = (np.concatenate(c) for c in zip(*parts[False], strict=True))
    test_u, test_m, test_r = (np.concatenate(c) for c in zip(*parts[True], strict=True))
    vocabulary, dense = np.unique(train_m, return_inverse=True)
    train = csr_from_pairs(train_u, dense, train_r, len(vocabulary))
    known = np.isin(test_m, vocabulary) & np.isin(test_u, train.user_ids)
    test = csr_from_pairs(test_u[known], np.searchsorted(vocabulary, test_m[known]),
                          test_r[known], len(vocabulary))  # fmt: skip
    return train, test


def tutorial_only(args: argparse.Namespace) -> None:
    """``tutorial_comparison`` alone on the preset's generated train split, in this process."""
    import torch

    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    csr, n_items, batches = generated_train(args.preset)
    result = {
        "preset": args.preset,
        "users": len(csr),
        "items": n_items,
        "ratings": csr.nnz,
        "data_s": time.perf_counter() - start,
        "load_before": os.getloadavg(),
    }
    result.update(tutorial_comparison(csr, batches, n_items, repeats=args.repeats))
    result["load_after"] = os.getloadavg()
    print(json.dumps(result, indent=1))


# -- the run ---------------------------------------------------------------------------------


def generate(preset: str, folder: Path) -> tuple[float, bool]:
    """Generate the preset into ``folder`` unless it is there; (seconds, reused). Reused data
    report the generator's own time from its summary (measured when it was generated)."""
    summary = folder / "generate_summary.json"
    if summary.exists():
        return float(json.loads(summary.read_text())["seconds"]), True
    start = time.perf_counter()
    subprocess.run(
        [str(BIN / "rbm-reco"), "generate", "--preset", preset, "--test-fraction", "0.2",
         "--out", str(folder)],
        check=True, cwd=REPO,
    )  # fmt: skip
    return time.perf_counter() - start, False


def machine() -> dict:
    from bench.machine import cpu_model

    with open("/proc/meminfo") as fh:
        mem = int(re.search(r"MemTotal:\s*(\d+)", fh.read()).group(1)) * 1024
    import torch

    return {
        "nproc": os.cpu_count(),
        "cpu": cpu_model(),
        "memory_gb": round(mem / 2**30, 1),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "loadavg": os.getloadavg(),
    }


def pipeline_command(data: Path, out: Path, conf: Path, *extra: str) -> list[str]:
    """``rbm-reco run --epochs 1`` on a generated preset's files in ``data``, local[CORES]."""
    return [
        str(BIN / "rbm-reco"), "run", "--ratings", str(data / "train.dat"),
        "--test", str(data / "test.dat"), "--movies", str(data / "movies.dat"),
        "--out", str(out), "--epochs", "1", *extra, "--conf", str(conf),
        "--master", f"local[{CORES}]", "--dt", DT,
    ]  # fmt: skip


def run(args: argparse.Namespace) -> dict:
    work = Path(args.work)
    data, out = work / "data" / args.preset, work / "out" / args.preset
    (work / "results").mkdir(parents=True, exist_ok=True)
    conf = work / "scale.toml"
    conf.write_text(CONF)
    result: dict = {"preset": args.preset, "date": date.today().isoformat(), "machine": machine()}
    result["generate_s"], result["generate_reused"] = generate(args.preset, data)
    cmd = pipeline_command(data, out, conf, "--kind", "binary")
    result["command"] = " ".join(cmd[1:]).replace(str(work), "WORK")
    print("running:", " ".join(cmd), flush=True)
    log_path = work / "results" / f"{args.preset}.run.log"
    rc, samples, wall = run_monitored(cmd, log_path)
    if rc != 0:
        raise SystemExit(f"pipeline failed (exit {rc}); see {log_path}")
    summary = json.loads((out / "run_summary.json").read_text())
    meta = json.loads((out / "model" / "model.json").read_text())
    history = meta["training"]["history"]
    windows = step_windows(log_path)
    result.update(
        wall_s=wall,
        seconds=summary["seconds"],
        train_epoch_s=[h["seconds"] for h in history],
        users_scored=summary["users_scored"],
        ratings=summary["ratings_accepted"],
        memory_all=peaks(samples),
        memory_by_step={s: peaks(samples, w) for s, w in windows.items()},
        load_during_run=os.getloadavg(),
    )
    print(json.dumps(result, indent=1), flush=True)
    result["in_process"] = in_process(out, args.preset, args.max_users)
    inproc = result["in_process"]
    spark_rate = result["users_scored"] / result["seconds"]["score"]
    result["spark_score_users_per_s"] = spark_rate
    result["spark_warm"] = spark_score_warm(out, conf)
    result["spark_score_gflops"] = (
        2 * result["users_scored"] * inproc["hidden"] * inproc["n_items"]
        / result["seconds"]["score"] / 1e9
    )  # fmt: skip
    if not args.stream:
        return save(work, result)
    # the driver's memory when the training data are streamed from the Parquet
    train_cmd = [
        str(BIN / "rbm-reco"), "train", "--out", str(out), "--model", str(work / "stream-model"),
        "--epochs", "1", "--kind", "binary", "--conf", str(conf), "--master", f"local[{CORES}]",
        "--set", "train.cache=\"stream\"", "--set", "train.cache_budget_mb=256",
    ]  # fmt: skip
    log_path = work / "results" / f"{args.preset}.stream.log"
    rc, samples, wall = run_monitored(train_cmd, log_path)
    result["stream_train"] = {
        "rc": rc, "wall_s": wall, "memory": peaks(samples), "budget_mb": 256,
        "epoch_s": json.loads((work / "stream-model" / "model.json").read_text())["training"][
            "history"][0]["seconds"] if rc == 0 else None,
    }  # fmt: skip
    return save(work, result)


def run_default_model(args: argparse.Namespace) -> dict:
    """``rbm-reco run --epochs 1`` as a user runs it, with the project's default model (no
    ``--kind``), under the same memory monitor as ``run``."""
    work = Path(args.work)
    data, out = work / "data" / args.preset, work / "out" / f"{args.preset}-default"
    (work / "results" / "default").mkdir(parents=True, exist_ok=True)
    conf = work / "scale-default.toml"
    conf.write_text(DEFAULT_MODEL_CONF)
    result: dict = {"preset": args.preset, "date": date.today().isoformat(), "machine": machine()}
    result["generate_s"], result["generate_reused"] = generate(args.preset, data)
    cmd = pipeline_command(data, out, conf, *(["--resume"] if args.resume else []))
    result["command"] = " ".join(cmd[1:]).replace(str(work), "WORK")
    result["resumed"] = args.resume
    print("running:", " ".join(cmd), flush=True)
    log_path = work / "results" / "default" / f"{args.preset}.run.log"
    rc, samples, wall = run_monitored(cmd, log_path)
    if rc != 0:
        raise SystemExit(f"pipeline failed (exit {rc}); see {log_path}")
    summary = json.loads((out / "run_summary.json").read_text())
    training = json.loads((out / "model" / "model.json").read_text())["training"]
    result.update(
        wall_s=wall,
        kind=summary["kind"],
        seconds=summary["seconds"],
        train_part_s=part_seconds(training["history"]),
        refit_part_s=part_seconds(training.get("refit", {}).get("history", [])),
        users_scored=summary["users_scored"],
        ratings=summary["ratings_accepted"],
        metrics=summary.get("metrics", {}).get("ranking"),
        memory_all=peaks(samples),
        memory_by_step={s: peaks(samples, w) for s, w in step_windows(log_path).items()},
        load_after=os.getloadavg(),
    )
    path = work / "results" / "default" / f"{args.preset}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    print(f"results: {path}")
    return result


def part_seconds(history: list[dict]) -> dict[str, float]:
    """Training seconds per part (``rated``, ``like``; a plain model's epochs under ``model``)."""
    seconds: dict[str, float] = {}
    for h in history:
        part = h.get("part", "model")
        seconds[part] = seconds.get(part, 0.0) + h["seconds"]
    return seconds


def save(work: Path, result: dict) -> dict:
    result["load_after"] = os.getloadavg()
    path = work / "results" / f"{result['preset']}.json"
    path.write_text(json.dumps(result, indent=1, default=str))
    print(json.dumps(result, indent=1, default=str))
    print(f"results: {path}")
    return result


# -- the report --------------------------------------------------------------------------------


RowAdder = Callable[[str, Callable[[dict], str]], None]  # row(name, cell of one result)
IP = "in_process"  # the results' key of the in-process measurements


def memory_rows(row: RowAdder, bold: str = "") -> None:
    """The peak-memory rows of a results table (``row(name, fn)`` adds one)."""
    row(f"{bold}peak RSS, all processes (MB){bold}",
        lambda r: f"{bold}{r['memory_all']['total_mb']:,}{bold}")  # fmt: skip
    row("peak RSS, driver: Python + JVM (MB)", lambda r: f"{r['memory_all']['driver_mb']:,}")
    row("peak RSS, Python workers (MB)", lambda r: f"{r['memory_all']['workers_mb']:,}")
    for step in ("ingest", "train", "score", "evaluate"):
        row(f"{step}: Python driver / JVM / workers (MB)",
            lambda r, s=step: "{python_driver_mb:,} / {jvm_mb:,} / {workers_mb:,}".format(
                **r["memory_by_step"][s]))  # fmt: skip


def render(results: list[dict]) -> str:
    """The ``## Scale`` section of BENCHMARKS.md: how it was measured, a table with one column
    per preset, then its footnotes and the notes on the FLOP models and reference runs."""
    lines = scale_preamble(results)
    row = row_adder(lines, results)
    step_time_rows(row)
    memory_rows(row)
    streamed_train_rows(row)
    scoring_rate_rows(row)
    if any("spark_throughput" in r for r in results):
        throughput_rows(row)
    flop_rate_rows(row)
    lines += scale_footnotes(results)
    lines += ["", *FLOP_NOTES, "", *REFERENCE_NOTES, ""]
    return "\n".join(lines)


def scale_preamble(results: list[dict]) -> list[str]:
    """The section's title, the machine, the commands, the load, and the table's head."""
    m = results[0]["machine"]
    return [
        SECTION,
        "",
        f"Measured {', '.join(sorted({r['date'] for r in results}))} by `bench/scale.py` on "
        f"{m['nproc']} cores ({m['cpu']}), {m['memory_gb']} GB, Python {m['python']}, torch "
        f"{m['torch']}, Spark `local[{CORES}]`, kind `binary`, one user-based RBM (`item_based = "
        "false`, `n_models = 1` in the bench conf; 100 hidden), 1 epoch, top-10.",
        "",
        "Commands (WORK = /tmp/rbm-scale; each preset measured in one run):",
        "",
        "```",
        *[
            f".venv/bin/python -m bench.scale run --preset {r['preset']}"
            + ("" if "stream_train" in r else " --no-stream")
            for r in results
        ],
        *[
            f".venv/bin/python {r['spark_throughput']['command']}"
            for r in results
            if "spark_throughput" in r
        ],
        ".venv/bin/python -m bench.scale report",
        "```",
        "",
        "Each runs `rbm-reco "
        + results[0]["command"].replace(results[0]["preset"], "PRESET")
        + "` (the generated data with a 20% per-user test holdout).",
        "",
        "Load (1-minute average; the presets ran one after another, so a preset's \"before\" "
        "includes the end of the one before it: "
        + ", ".join(
            f"{r['preset']}: {r['machine']['loadavg'][0]:.1f} before, "
            f"{r['load_during_run'][0]:.1f} after the pipeline"
            for r in results
        )
        + f" on {m['nproc']} cores): wall times are upper bounds; ratios are measured side by "
        "side in the same run.",
        "",
        "| | " + " | ".join(r["preset"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]


def row_adder(lines: list[str], results: list[dict]) -> RowAdder:
    """``row(name, fn)``: appends to ``lines`` a table row of ``fn(result)`` per result, "-"
    where a result lacks what ``fn`` reads."""

    def row(name: str, fn: Callable[[dict], str]) -> None:
        cells = []
        for r in results:
            try:
                cells.append(fn(r))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("-")
        lines.append(f"| {name} | " + " | ".join(cells) + " |")

    return row


def step_time_rows(row: RowAdder) -> None:
    """The data's size and the seconds of every pipeline step."""
    row("users / items / ratings (train)", lambda r: f"{r[IP]['users']:,} / {r[IP]['n_items']:,} "
        f"/ {r[IP]['ratings']:,}")  # fmt: skip
    reused = {True: " †", False: ""}
    row("generate (s)",
        lambda r: f"{r['generate_s']:.0f}{reused[bool(r.get('generate_reused'))]}")  # fmt: skip
    row("ingest (s)", lambda r: f"{r['seconds']['ingest']:.0f}")
    row("train, 1 epoch (s)", lambda r: f"{r['train_epoch_s'][0]:.1f}")
    row("train step incl. loading + validation (s)", lambda r: f"{r['seconds']['train']:.0f}")
    row("score, Spark job incl. export (s)", lambda r: f"{r['seconds']['score']:.0f}")
    row("evaluate (s)", lambda r: f"{r['seconds']['evaluate']:.0f}")
    row("whole run (s)", lambda r: f"{r['wall_s']:.0f}")


def streamed_train_rows(row: RowAdder) -> None:
    """The driver's memory and the epoch's seconds when training streams its data."""
    star = {True: " *", False: ""}
    row("train, streamed (256 MB budget): Python driver peak (MB)",
        lambda r: f"{r['stream_train']['memory']['python_driver_mb']:,}"
        + star[bool(r["stream_train"].get("separate_run"))])  # fmt: skip
    row("train, streamed: epoch (s)", lambda r: f"{r['stream_train']['epoch_s']:.0f}")


def scoring_rate_rows(row: RowAdder) -> None:
    """Users/s of the Spark score job (as run, and warm) and in-process, and their ratios."""
    row("score chunk (users x items block)", lambda r: f"{r[IP]['chunk_users']} x "
        f"{r[IP]['n_items']:,}")  # fmt: skip
    row("score, Spark job, the run's step (users/s)",
        lambda r: f"{r['spark_score_users_per_s']:,.0f}")  # fmt: skip
    row("score, Spark job, workers up: median of 3 runs after 2 (s)",
        lambda r: f"{statistics.median(r['spark_warm']['warm_s']):.1f}")  # fmt: skip
    row("score, Spark job, workers up (users/s)",
        lambda r: f"{r['spark_warm']['users_per_s']:,.0f}")  # fmt: skip
    row("score, in-process (users/s)", lambda r: f"{r[IP]['score_users_per_s']:,.0f}")
    row("Spark / in-process: the run's step",
        lambda r: f"{r['spark_score_users_per_s'] / r[IP]['score_users_per_s']:.0%}")  # fmt: skip
    row("Spark / in-process: workers up",
        lambda r: f"{r['spark_warm']['users_per_s'] / r[IP]['score_users_per_s']:.0%}")  # fmt: skip


def throughput_rows(row: RowAdder) -> None:
    """The ``throughput`` sub-command's rows (empty cells for the presets without it)."""

    def tp(fmt: Callable[[dict], str]) -> Callable[[dict], str]:
        return lambda r: fmt(r["spark_throughput"]) if "spark_throughput" in r else ""

    row("score job, N vs F x N users: F, F x N",
        tp(lambda t: f"{t['factor']}, {t['users_replicated']:,}"))  # fmt: skip
    row("score job, N vs F x N users: median s",
        tp(lambda t: f"{statistics.median(t['x1_s']):.1f} vs "
           f"{statistics.median(t['xF_s']):.1f}"))  # fmt: skip
    row("score job: fixed cost (s)", tp(lambda t: f"{t['fixed_s']:.1f}"))
    row("score job: users/s beyond the fixed cost",
        tp(lambda t: f"{t['spark_users_per_s']:,.0f}"))  # fmt: skip
    row("in-process, same session (users/s)",
        tp(lambda t: f"{t['in_process_users_per_s']:,.0f}"))  # fmt: skip
    row("**Spark / in-process: beyond the fixed cost**",
        tp(lambda t: f"**{t['ratio']:.0%}**"))  # fmt: skip


def flop_rate_rows(row: RowAdder) -> None:
    """GFLOP/s of the matmul baselines, of scoring and of training, and their ratios."""
    row("plain torch.matmul 2048^3 (GFLOP/s)", lambda r: f"{r[IP]['matmul_gflops']:.1f}")
    row("torch.mm at the scoring block's shape (GFLOP/s)",
        lambda r: f"{r[IP]['matmul_shape_gflops']:.1f}")  # fmt: skip
    row("score, in-process (GFLOP/s)", lambda r: f"{r[IP]['score_gflops']:.1f}")
    row("score, in-process / plain matmul",
        lambda r: f"{r[IP]['score_gflops'] / r[IP]['matmul_gflops']:.0%}")  # fmt: skip
    row("score, Spark (GFLOP/s)", lambda r: f"{r['spark_score_gflops']:.1f}")
    row("train, in-process (users/s)", lambda r: f"{r[IP]['train_users_per_s']:,.0f}")
    row("train, in-process (GFLOP/s)", lambda r: f"{r[IP]['train_gflops']:.2f}")
    row("train / plain matmul", lambda r: f"{r[IP]['train_gflops'] / r[IP]['matmul_gflops']:.1%}")


def scale_footnotes(results: list[dict]) -> list[str]:
    """The table's footnotes (reused data, a separate streamed run), the presets' notes and
    the training comparison with the tutorial's algorithm, each only where it applies."""
    lines: list[str] = []
    if any(r.get("generate_reused") for r in results):
        lines += [
            "",
            "† the data were generated by an earlier run of the bench (same preset and seed); "
            "the time is the generator's own, from its `generate_summary.json`.",
        ]
    if any(r.get("stream_train", {}).get("separate_run") for r in results):
        lines += [
            "",
            "\\* measured after that preset's `--no-stream` run, with the same `rbm-reco train "
            '--set train.cache="stream" --set train.cache_budget_mb=256` command the bench '
            "runs, on the same ingested data (the extra epoch did not fit the run's time).",
        ]
    notes = [f"{r['preset']}: {r['note']}" for r in results if r.get("note")]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    compared = [r for r in results if "tutorial_comparison" in r.get(IP, {})]
    if compared:
        s = compared[0][IP]["tutorial_comparison"]
        lines += [
            "",
            f"Training vs the tutorial's dense algorithm at {compared[0]['preset']} size, equal "
            f"settings (hidden {s['hidden']}, batch {s['batch']}, CD-{s['cd_k']}, "
            f"{s['batches']} batches, 2 threads, median of {len(s['tutorial_s'])} alternating "
            f"runs): tutorial {s['tutorial_users_per_s']:,.0f} users/s, ours "
            f"{s['ours_users_per_s']:,.0f} users/s, ratio {s['ratio']:.1f}x.",
        ]
    return lines


def render_default(results: list[dict]) -> list[str]:
    """The table of ``default`` runs (the project's default model), one column per preset."""
    lines = [
        "",
        "### The default model",
        "",
        "The same pipeline with the project's default model (`hybrid`: the rated RBM and the "
        "like ensemble, each part's defaults, validation carve and refit) instead of the bench's "
        "one binary RBM, 1 epoch per part (`--epochs 1` caps the item-based ways too):",
        "",
        "```",
        *[f".venv/bin/python -m bench.scale default --preset {r['preset']}" for r in results],
        "```",
        "",
        "Each runs `rbm-reco "
        + results[0]["command"].replace(results[0]["preset"], "PRESET")
        + "`.",
        "",
        "| | " + " | ".join(r["preset"] for r in results) + " |",
        "|---|" + "---|" * len(results),
    ]

    def row(name, fn):
        lines.append(f"| {name} | " + " | ".join(fn(r) for r in results) + " |")

    def parts(key):
        return lambda r: ", ".join(f"{p} {s:.0f}" for p, s in r[key].items()) or "-"

    row("kind", lambda r: r["kind"])
    for step in ("ingest", "train", "score", "evaluate"):
        row(f"{step} (s)", lambda r, s=step: f"{r['seconds'][s]:.0f}")
    row("whole run (s)", lambda r: f"{r['wall_s']:.0f}")
    row("train: selection epochs per part (s)", parts("train_part_s"))
    row("train: refit epochs per part (s)", parts("refit_part_s"))
    memory_rows(row, bold="**")
    row("held-out nDCG@10 (generated data)",
        lambda r: f"{r['metrics']['ndcg']:.3f}" if r.get("metrics") else "-")  # fmt: skip
    notes = [f"{r['preset']}: {r['note']}" for r in results if r.get("note")]
    if notes:
        lines += ["", "Notes: " + "; ".join(notes) + "."]
    return lines


FLOP_NOTES = [
    "FLOP models: scoring = 2 x users x hidden x items (the dense hidden-to-visible product; "
    "masking, top-k and the sparse visible-to-hidden pass are overhead, not counted). "
    "Training (CD-k, K = 2 states) = (8 + k + 2K(1 + k)) x ratings x hidden per epoch: a "
    "visible-to-hidden pass (embedding_bag) counts 1 flop per rating and hidden unit, a "
    "hidden-to-visible pass over the rated items 2K; an update makes 8 + k of the first "
    "(data, chain, reconstruction loss, two free energies forward and backward) and 1 + k of "
    "the second. Training is gather/scatter-bound, not a matmul, so its GFLOP/s is far below "
    "the matmul's by nature; its comparison that matters is against the tutorial's dense "
    "algorithm.",
    "",
    "In-process numbers: `rbmcore.scoring.recommend_csr` / `Trainer.train_epoch` on the same "
    "ingested data and the trained weights, torch threads = 2, median of 3 (the matmul baseline: "
    "median of 3 x 5 runs, measured in the same process just before). Scoring in-process uses "
    "the first 20,000 users (all of them below that). Spark users/s = users / the score job's "
    "wall time, which includes reading the model and the input, the export write, its manifest "
    "check (a re-read of the written export) and the publish; \"the run's step\" is the "
    "pipeline's score step, the first Python job of that Spark session, so it also includes "
    "starting the Python workers (each imports torch: a few seconds, once per job); \"workers "
    "up\" is `jobs.score.run_score` run again in one local[2] session of the bench process "
    "after two warm-up runs (median of the next 3), the same warm state as the in-process "
    "median. \"Beyond the fixed cost\" (`python -m bench.scale throughput --preset PRESET "
    "--factor F`, run after that preset's `run`, in one local[2] session): the same warm "
    "`run_score` on the run's N users and on them replicated F times (user ids shifted, same "
    "items, ratings, vocabulary and model), alternating, median of 3 each after one warm-up round; "
    "users/s = (F - 1) N / (t(F x N) - t(N)) and fixed cost = t(N) - N / that rate; the "
    "in-process rate is measured between the Spark runs in the same process (first 20,000 "
    "users, 2 threads). A job over few users is bound by the fixed cost (job scheduling, "
    "the input count, the export check, the publish), not by its scoring. "
    "Memory: VmRSS of every process of the run's tree sampled every 0.5 s; per step from the "
    "job log's step boundaries.",
]


REFERENCE_NOTES = [
    "Reference runs on an unloaded machine (not this one; one-off probes with the same code, "
    "2026-11-27): on 2 threads of an Intel Xeon (16-core GPU host, plain torch.matmul 2048^3 "
    "= 323 GFLOP/s on 2 threads), in-process binary scoring of synthetic users with 100 "
    "hidden reached 12,148 users/s = 143 GFLOP/s = 44% of that matmul at the ml-25m "
    "catalogue (59,047 items), 31% at ml-10m's (10,677) and 16% at ml-1m's (3,706), where the "
    "per-user sparse pass and top-k outweigh the thin product; training at ml-1m size with "
    "the tutorial's settings (hidden 200, batch 100, CD-10; `python -m bench.scale tutorial`, 2 "
    "threads): BENCHMARKS.md `### Training vs the tutorial's dense algorithm`. GPU: "
    "BENCHMARKS.md `## GPU`.",
]


def report(args: argparse.Namespace) -> None:
    order = {"ml-100k": 0, "ml-1m": 1, "ml-10m": 2, "ml-25m": 3}
    results = [json.loads(p.read_text()) for p in Path(args.work, "results").glob("*.json")]
    if not results:
        raise SystemExit(f"no results under {args.work}/results")
    results.sort(key=lambda r: order.get(r["preset"], 9))
    section = render(results)
    default_runs = Path(args.work, "results", "default").glob("*.json")
    defaults = [json.loads(p.read_text()) for p in default_runs]
    if defaults:
        defaults.sort(key=lambda r: order.get(r["preset"], 9))
        section = section.rstrip("\n") + "\n" + "\n".join(render_default(defaults)) + "\n"
    replace_section(SECTION, section)
    print(section)


def replace_section(heading: str, section: str) -> None:
    """Replace BENCHMARKS.md's section under the line ``heading`` (up to the next ``## ``
    heading) with ``section``, or append it."""
    path = REPO / "BENCHMARKS.md"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    start = text.find(f"\n{heading}\n")
    if start >= 0:
        end = text.find("\n## ", start + len(heading) + 2)
        text = text[: start + 1] + section + ("\n" + text[end + 1 :] if end >= 0 else "")
    else:
        text = text.rstrip("\n") + "\n\n" + section
    path.write_text(text.rstrip("\n") + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.scale", description=__doc__.split("\n\n")[0]
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("run", help="generate (if needed) and measure one preset")
    p.add_argument("--preset", required=True, choices=["ml-100k", "ml-1m", "ml-10m", "ml-25m"])
    p.add_argument("--work", default=DEFAULT_WORK)
    p.add_argument("--max-users", type=int, default=20_000, dest="max_users")
    p.add_argument(
        "--no-stream",
        action="store_false",
        dest="stream",
        help="skip the extra streamed training epoch (driver memory when streaming)",
    )
    r = sub.add_parser("report", help="render WORK/results/*.json into BENCHMARKS.md")
    r.add_argument("--work", default=DEFAULT_WORK)
    s = sub.add_parser(
        "tutorial",
        help="only the in-process training comparison with the tutorial's dense algorithm "
        "(hidden 200, batch 100, CD-10) on the preset's train split generated in memory; prints "
        "JSON",
    )
    s.add_argument("--preset", default="ml-1m", choices=["ml-100k", "ml-1m", "ml-10m", "ml-25m"])
    s.add_argument("--repeats", type=int, default=5, help="alternating runs of each (median)")
    s.add_argument("--threads", type=int, default=CORES, help="torch threads")
    t = sub.add_parser(
        "throughput",
        help="after `run`: the score job on the preset's users and on them replicated FACTOR "
        "times, side by side (its fixed cost and users/s beyond it) vs in-process; saved into "
        "WORK/results/PRESET.json",
    )
    t.add_argument("--preset", required=True, choices=["ml-100k", "ml-1m", "ml-10m", "ml-25m"])
    t.add_argument("--factor", type=int, default=8, help="copies of the users (default 8)")
    t.add_argument("--repeats", type=int, default=3, help="timed runs of each size (median)")
    t.add_argument("--work", default=DEFAULT_WORK)
    t.add_argument("--max-users", type=int, default=20_000, dest="max_users")
    d = sub.add_parser(
        "default",
        help="the pipeline with the project's default model (the hybrid) and --epochs 1: step "
        "times and peak memory only; saved into WORK/results/default/PRESET.json",
    )
    d.add_argument("--preset", required=True, choices=["ml-100k", "ml-1m", "ml-10m", "ml-25m"])
    d.add_argument("--work", default=DEFAULT_WORK)
    d.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted default run of this preset (rbm-reco run --resume: ingest "
        "again, skip the training parts its checkpoints finished)",
    )
    args = parser.parse_args()
    commands = {
        "run": run, "report": report, "tutorial": tutorial_only, "throughput": score_throughput,
        "default": run_default_model,
    }  # fmt: skip
    commands[args.command](args)


if __name__ == "__main__":
    main()
