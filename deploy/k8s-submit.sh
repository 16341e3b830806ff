#!/usr/bin/env bash
# Build the image deploy/Dockerfile describes, push it, and submit an rbm-reco job with it to
# Kubernetes in cluster mode (docs/cluster.md, "Kubernetes").
#
#   deploy/k8s-submit.sh [--dry-run] IMAGE K8S_API_URL JOB [JOB ARGS...]
#   deploy/k8s-submit.sh registry/rbm-reco:0.2.0 https://k8s-api:6443 run \
#       --ratings s3a://bucket/ratings.dat --out s3a://bucket/reco --dt 2026-11-27 \
#       --set score.commit=manifest
#
# --dry-run builds the wheel and the build context (DIST/image/) and prints the docker and
# spark-submit commands without running them. Environment: PYTHON (builds the wheel; default .venv/bin/python), DIST (default dist),
# SPARK_SUBMIT (default spark-submit), NAMESPACE (default default), SERVICE_ACCOUNT (default
# spark). Extra spark-submit settings: SPARK_SUBMIT_ARGS (word-split).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0
if [[ "${1:-}" == "--dry-run" ]]; then dry_run=1; shift; fi
if [[ $# -lt 3 ]]; then
    echo "usage: deploy/k8s-submit.sh [--dry-run] IMAGE K8S_API_URL JOB [JOB ARGS...]" >&2
    exit 2
fi
image=$1 api=$2 job=$3
shift 3
PYTHON=${PYTHON:-.venv/bin/python}
DIST=${DIST:-dist}

# the build context: the Dockerfile, constraints.txt and the wheel it installs
"$PYTHON" scripts/package.py --dist "$DIST"
context="$DIST/image"
rm -rf "$context" && mkdir -p "$context"
cp deploy/Dockerfile constraints.txt "$DIST"/rbm_reco-*-py3-none-any.whl "$context/"

build=(docker build -t "$image" "$context")
push=(docker push "$image")
# shellcheck disable=SC2206
submit=("${SPARK_SUBMIT:-spark-submit}" --master "k8s://$api" --deploy-mode cluster
    --name "rbm-reco-$job"
    --conf "spark.kubernetes.container.image=$image"
    --conf "spark.kubernetes.namespace=${NAMESPACE:-default}"
    --conf "spark.kubernetes.authenticate.driver.serviceAccountName=${SERVICE_ACCOUNT:-spark}"
    ${SPARK_SUBMIT_ARGS:-}
    "local:///opt/rbm-reco/jobs/$job.py" --conf cluster "$@")

if [[ $dry_run == 1 ]]; then
    printf '%q ' "${build[@]}"; echo
    printf '%q ' "${push[@]}"; echo
    printf '%q ' "${submit[@]}"; echo
    exit 0
fi
"${build[@]}"
"${push[@]}"
exec "${submit[@]}"
