#!/usr/bin/env bash
# Build what a YARN submit ships and submit an rbm-reco job to YARN (docs/cluster.md, "YARN").
#
#   deploy/yarn-submit.sh [--dry-run] [--pack-env] JOB [JOB ARGS...]
#   deploy/yarn-submit.sh --pack-env run --ratings hdfs:///data/ratings.dat \
#       --out hdfs:///reco/ml10m --dt 2026-11-27
#
# Always builds DIST/rbm_reco_pyfiles.zip (our code and configs, --py-files).
# The executors' Python environment is the archive ENV_ARCHIVE (shipped with --archives as
# ./environment): --pack-env builds it here (the wheel, then a fresh venv with it installed,
# packed with venv-pack: slow, torch is large); or give
# ENV_ARCHIVE=hdfs:///apps/rbm_reco_env.tar.gz, one packed and uploaded before. --dry-run prints the spark-submit command instead of running it.
# Environment: PYTHON (default .venv/bin/python; in client mode also the driver's Python),
# DIST (default dist), DEPLOY_MODE (client or cluster; default client), SPARK_SUBMIT (default
# spark-submit), PIP_EXTRA_INDEX_URL (e.g. https://download.pytorch.org/whl/cpu for torch's
# CPU build), SPARK_SUBMIT_ARGS (extra spark-submit words).
set -euo pipefail
cd "$(dirname "$0")/.."

dry_run=0 pack_env=0
while [[ "${1:-}" == --* ]]; do
    case "$1" in
        --dry-run) dry_run=1 ;;
        --pack-env) pack_env=1 ;;
        *) echo "deploy/yarn-submit.sh: unknown option $1" >&2; exit 2 ;;
    esac
    shift
done
if [[ $# -lt 1 ]]; then
    echo "usage: deploy/yarn-submit.sh [--dry-run] [--pack-env] JOB [JOB ARGS...]" >&2
    exit 2
fi
job=$1
shift
PYTHON=${PYTHON:-.venv/bin/python}
PYTHON="$(cd "$(dirname "$PYTHON")" && pwd)/$(basename "$PYTHON")"  # absolute, links kept
DIST=${DIST:-dist}
DEPLOY_MODE=${DEPLOY_MODE:-client}
ENV_ARCHIVE=${ENV_ARCHIVE:-$DIST/rbm_reco_env.tar.gz}

if [[ $pack_env == 1 ]]; then
    "$PYTHON" scripts/package.py --dist "$DIST"  # the zip and the wheel the venv installs
else
    "$PYTHON" scripts/package.py --dist "$DIST" --no-wheel
fi
if [[ $pack_env == 1 ]]; then
    wheel=$(ls "$DIST"/rbm_reco-*-py3-none-any.whl)
    rm -rf "$DIST/env"
    "$PYTHON" -m venv "$DIST/env"
    "$DIST/env/bin/pip" install --quiet -c constraints.txt "$wheel" venv-pack==0.2.0
    "$DIST/env/bin/venv-pack" --quiet -p "$DIST/env" -o "$ENV_ARCHIVE" --force
fi
if [[ "$ENV_ARCHIVE" != *://* && ! -f "$ENV_ARCHIVE" ]]; then
    echo "deploy/yarn-submit.sh: no environment archive $ENV_ARCHIVE: give --pack-env or" \
         "ENV_ARCHIVE=hdfs:///... (one packed before)" >&2
    exit 2
fi

if [[ "$DEPLOY_MODE" == cluster ]]; then  # the driver runs in a YARN container too
    driver=(--conf spark.yarn.appMasterEnv.PYSPARK_PYTHON=./environment/bin/python)
else
    driver=(--conf "spark.pyspark.driver.python=$PYTHON")
fi
# shellcheck disable=SC2206
submit=("${SPARK_SUBMIT:-spark-submit}" --master yarn --deploy-mode "$DEPLOY_MODE"
    --archives "$ENV_ARCHIVE#environment"
    --conf spark.pyspark.python=./environment/bin/python
    "${driver[@]}"
    --py-files "$DIST/rbm_reco_pyfiles.zip"
    ${SPARK_SUBMIT_ARGS:-}
    "jobs/$job.py" --conf cluster "$@")

if [[ $dry_run == 1 ]]; then
    printf '%q ' "${submit[@]}"; echo
    exit 0
fi
exec "${submit[@]}"
