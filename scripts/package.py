"""Build what a Spark cluster needs to run rbm-reco's jobs (``make package``).

    python scripts/package.py [--dist DIST] [--no-wheel]

Writes into DIST (default ``dist/``):

- ``rbm_reco-<version>-py3-none-any.whl``: the project wheel (``pip wheel --no-deps``), for
  clusters whose Python environment is built with pip (or for a venv-pack archive below);
- ``rbm_reco_pyfiles.zip``: the pure-Python packages ``rbmcore/`` and ``jobs/`` (with the
  configs ``jobs/conf/*.toml`` that ``--conf local`` / ``--conf cluster`` name) for
  ``spark-submit --py-files``; Spark puts it on every executor's ``sys.path``.

The zip carries our code only. The third-party dependencies (torch, numpy, pandas, pyarrow,
safetensors) must already be on the executors, or be shipped as a packed virtualenv with
``--archives`` (docs/cluster.md; ``deploy/yarn-submit.sh`` builds and ships both):

    pip install venv-pack   # or: pip install -e '.[cluster]'
    venv-pack -p .venv -o dist/rbm_reco_env.tar.gz
    spark-submit --archives dist/rbm_reco_env.tar.gz#environment \\
        --conf spark.pyspark.python=./environment/bin/python ...

The zip is deterministic (sorted entries, fixed timestamps), so rebuilding an unchanged tree
gives a byte-identical file.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("rbmcore", "jobs")
PACKAGE_DATA = ("*.py", "conf/*.toml")  # the files of each package the zip carries
PYFILES_ZIP = "rbm_reco_pyfiles.zip"
_FIXED_TIME = (2020, 1, 1, 0, 0, 0)


def build_pyfiles_zip(dist: Path, repo: Path = REPO) -> Path:
    """Zip the ``.py`` files of ``rbmcore/`` and ``jobs/`` and the packaged configs
    (package-relative paths) into DIST."""
    dist.mkdir(parents=True, exist_ok=True)
    target = dist / PYFILES_ZIP
    tmp = target.with_suffix(".zip.tmp")
    files = sorted(
        {
            path
            for package in PACKAGES
            for pattern in PACKAGE_DATA
            for path in (repo / package).rglob(pattern)
            if "__pycache__" not in path.parts
        }
    )
    if not any(path.name == "__init__.py" for path in files):
        raise SystemExit(f"no packages found under {repo}")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in files:
            info = zipfile.ZipInfo(path.relative_to(repo).as_posix(), date_time=_FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, path.read_bytes())
    tmp.replace(target)
    return target


def build_wheel(dist: Path, repo: Path = REPO) -> Path:
    """The project wheel via ``pip wheel --no-deps`` with the installed setuptools (no network)."""
    dist.mkdir(parents=True, exist_ok=True)
    before = set(dist.glob("rbm_reco-*.whl"))
    for old in before:
        old.unlink()
    cmd = [
        sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
        "-w", str(dist), str(repo),
    ]  # fmt: skip
    subprocess.run(cmd, check=True)
    wheels = sorted(dist.glob("rbm_reco-*.whl"))
    if len(wheels) != 1:
        raise SystemExit(f"expected one rbm_reco wheel in {dist}, found {wheels}")
    return wheels[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dist", default=str(REPO / "dist"), help="output folder (default dist/)")
    parser.add_argument("--no-wheel", action="store_true", help="build only the --py-files zip")
    args = parser.parse_args(argv)
    dist = Path(args.dist)
    built = [build_pyfiles_zip(dist)]
    if not args.no_wheel:
        built.append(build_wheel(dist))
    for path in built:
        print(f"built {path} ({path.stat().st_size // 1024} KiB)")
    print(
        "ship with: spark-submit --py-files "
        f"{dist / PYFILES_ZIP} jobs/<job>.py ...   (docs/cluster.md: dependencies via --archives)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
