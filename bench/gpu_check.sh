#!/usr/bin/env bash
# GPU check: train and score on CUDA; print times, GFLOP/s, GPU utilisation, held-out metrics.
#
#     bash bench/gpu_check.sh [WORK]        # WORK defaults to /tmp/rbm-gpu-check
#     STAGES=default bash bench/gpu_check.sh           # only the default model at ml-25m
#     EPOCHS=5 PYTHON=python3 bash bench/gpu_check.sh
#
# Expects `make install` done with a CUDA-enabled torch in .venv (or PYTHON=... naming an
# interpreter that has torch with CUDA, numpy, pandas, pyarrow, safetensors; run from the
# repository); nothing is downloaded. Exits non-zero without CUDA. STAGES (default
# "check,kinds,default") chooses what runs, in this order:
# - check: the ml-1m preset, EPOCHS epochs of one binary RBM and every user scored on CUDA.
#   With pyspark and Java present it runs the jobs: ingest (Spark local[*]) and
#   `rbm-reco train --device cuda`; without them (a bare GPU box) it trains in-process with the
#   same rbmcore Trainer the train job runs on the driver, on the generated train.dat. Then it
#   scores every user on CUDA with rbmcore.scoring.recommend_csr (what the Spark scoring UDF
#   calls) and measures a plain torch.matmul GFLOP/s on the same GPU.
# - kinds: `python -m bench.gpu_kinds` trains every kind with its defaults (the default hybrid
#   first; KIND_EPOCHS epochs per part, then the refit) and scores it on CUDA, and compares
#   with the CPU.
# - default: `python -m bench.gpu_default` trains the default model to convergence (early
#   stopping, no epoch cap, then the refit) at the DEFAULT_PRESET preset (ml-25m) on CUDA:
#   seconds of every epoch by part, GPU utilisation (nvidia-smi every 0.5 s), held-out metrics.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
WORK=${1:-/tmp/rbm-gpu-check}
EPOCHS=${EPOCHS:-3}
KIND_EPOCHS=${KIND_EPOCHS:-2}
DEFAULT_PRESET=${DEFAULT_PRESET:-ml-25m}
STAGES=${STAGES:-check,kinds,default}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" WORK EPOCHS
mkdir -p "$WORK"
since() { awk "BEGIN {printf \"%.1f\", $(date +%s.%N) - $1}"; }
stage() { [[ ",$STAGES," == *",$1,"* ]]; }

"$PYTHON" - <<'EOF'
import sys, torch
if not torch.cuda.is_available():
    sys.exit(f"CUDA is not available to this torch ({torch.__version__}); nothing to check")
print(f"torch {torch.__version__}, {torch.cuda.get_device_name(0)}")
EOF

if stage check; then
t0=$(date +%s.%N)
[ -f "$WORK/data/generate_summary.json" ] ||
    "$PYTHON" -m jobs.cli generate --preset ml-1m --test-fraction 0.2 --out "$WORK/data" \
        --log-level WARNING
echo "generate ml-1m: $(since "$t0") s"

if "$PYTHON" -c "import pyspark" 2>/dev/null && command -v java >/dev/null; then
    t1=$(date +%s.%N)
    "$PYTHON" -m jobs.cli ingest --ratings "$WORK/data/train.dat" --test "$WORK/data/test.dat" \
        --out "$WORK/out" --master 'local[*]' --log-level WARNING
    t2=$(date +%s.%N)
    "$PYTHON" -m jobs.cli train --out "$WORK/out" --kind binary --epochs "$EPOCHS" \
        --device cuda --master 'local[*]' --set train.val_fraction=0.0 \
        --set train.n_models=1 --log-level WARNING
    echo "ingest $(awk "BEGIN {printf \"%.1f\", $t2 - $t1}") s; train job ($EPOCHS epochs," \
        "incl. Spark start and loading) $(since "$t2") s"
    export MODEL="$WORK/out/model"
else
    echo "no pyspark/Java here: training in-process with rbmcore's Trainer (the train job's code)"
    export MODEL=""
fi

"$PYTHON" - <<'EOF'
import json, os, time
import numpy as np, pandas as pd, torch
from rbmcore.data.csr import csr_from_pairs
from rbmcore.models.factory import build_model
from rbmcore.scoring import fast_users_per_chunk, recommend_csr
from rbmcore.training.config import TrainConfig
from rbmcore.training.trainer import Trainer

work, epochs, dev = os.environ["WORK"], int(os.environ["EPOCHS"]), torch.device("cuda")
raw = pd.read_csv(f"{work}/data/train.dat", sep=":", header=None, usecols=[0, 2, 4]).to_numpy()
movie_ids, items = np.unique(raw[:, 1], return_inverse=True)
csr = csr_from_pairs(raw[:, 0], items, raw[:, 2], len(movie_ids))

def sync_time(fn, reps=5):
    fn(); torch.cuda.synchronize()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); torch.cuda.synchronize(); ts.append(time.perf_counter() - t)
    return sorted(ts)[len(ts) // 2]

if os.environ.get("MODEL"):
    from rbmcore.io.artifact import load_model
    meta = json.load(open(f"{os.environ['MODEL']}/model.json"))
    for h in meta["training"]["history"]:
        print(f"train epoch {h['epoch']}: {h['seconds']:.2f} s on {meta['training']['device']}")
    model = load_model(os.environ["MODEL"], device=dev).model.to(dev)
else:
    config = TrainConfig(kind="binary", n_hidden=100, epochs=epochs, val_fraction=0.0, seed=42)
    model = build_model("binary", csr.n_items, 100, torch.Generator().manual_seed(42))
    model.init_visible_biases(csr)
    trainer = Trainer(model, config, dev)
    order = np.random.default_rng(0).permutation(len(csr))
    batches = [order[i : i + 100] for i in range(0, len(csr), 100)]
    for e in range(epochs):
        t = time.perf_counter(); trainer.train_epoch(csr, batches, e); torch.cuda.synchronize()
        t = time.perf_counter() - t
        flops = 17 * csr.nnz * 100  # CD-1, K=2: (8 + k + 2K(1 + k)) x ratings x hidden
        print(f"train epoch {e + 1} on cuda: {t:.2f} s, {len(csr) / t:,.0f} users/s, "
              f"{flops / t / 1e9:.1f} GFLOP/s (bench/scale.py's FLOP model)")
    model.eval()

n, h = model.n_items, model.n_hidden
torch.backends.cuda.matmul.allow_tf32 = False
a, b = torch.randn(8192, 8192, device=dev), torch.randn(8192, 8192, device=dev)
mm = 2 * 8192**3 / sync_time(lambda: a @ b) / 1e9
for c in (fast_users_per_chunk(n), 8192):
    x, w = torch.randn(c, h + 1, device=dev), torch.randn(h + 1, n, device=dev)
    shape = 2 * c * (h + 1) * n / sync_time(lambda: x @ w) / 1e9
    t = sync_time(lambda: recommend_csr(model, csr, 10, device=dev, chunk_users=c), reps=3)
    print(f"score {len(csr):,} users x {n:,} items, hidden {h}, chunk {c}: {t:.3f} s, "
          f"{len(csr) / t:,.0f} users/s, {2 * len(csr) * h * n / t / 1e9:,.0f} GFLOP/s "
          f"(2*users*hidden*items); torch.mm at that block's shape {shape:,.0f} GFLOP/s")
print(f"plain torch.matmul fp32 8192^3 (no TF32): {mm:,.0f} GFLOP/s")
on_gpu = recommend_csr(model, csr, 10, device=dev)
on_cpu = recommend_csr(model.to("cpu"), csr, 10, device="cpu")
same = np.mean(on_gpu.items == on_cpu.items)
gap = float(np.abs(on_gpu.scores - on_cpu.scores).max())
print(f"top-10 on cuda vs on cpu (same weights): {same:.2%} of rows name the same movie, "
      f"max |score difference| {gap:.1e}")
EOF
fi

if stage kinds; then
    "$PYTHON" -m bench.gpu_kinds --device cuda --preset ml-1m --epochs "$KIND_EPOCHS"
fi

if stage default; then
    "$PYTHON" -m bench.gpu_default --device cuda --preset "$DEFAULT_PRESET"
fi
