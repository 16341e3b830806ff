"""Where each output lives under the run folder OUT (local path or URI)."""

from __future__ import annotations


def join_path(base: str, *parts: str) -> str:
    """Join path parts with '/', for local paths and URIs (hdfs://, s3a://, file://) alike."""
    out = base.rstrip("/")
    for part in parts:
        out = f"{out}/{part.strip('/')}"
    return out


def ingest_dir(out: str) -> str:
    return join_path(out, "ingest")


def train_ratings(out: str) -> str:
    return join_path(out, "ingest", "train")


def test_ratings(out: str) -> str:
    return join_path(out, "ingest", "test")


def items_vocab(out: str) -> str:
    return join_path(out, "ingest", "items")


def quarantine(out: str) -> str:
    return join_path(out, "quarantine")


def ingest_summary(out: str) -> str:
    return join_path(out, "ingest_summary.json")


def fresh_dir(out: str, dt: str) -> str:
    """What ``score --ratings`` for date ``dt`` keeps of that night's ratings."""
    return join_path(out, "fresh", f"dt={dt}")


def fresh_summary(out: str, dt: str) -> str:
    return join_path(fresh_dir(out, dt), "ingest_summary.json")


def fresh_quarantine(out: str, dt: str) -> str:
    return join_path(fresh_dir(out, dt), "quarantine")


def model_dir(out: str) -> str:
    return join_path(out, "model")


def recommendations(out: str) -> str:
    return join_path(out, "recommendations")


def recommendations_for(out: str, dt: str) -> str:
    return join_path(out, "recommendations", f"dt={dt}")


def predictions(out: str) -> str:
    return join_path(out, "predictions")


def metrics_json(out: str) -> str:
    return join_path(out, "metrics.json")


def report_md(out: str) -> str:
    return join_path(out, "report.md")


def run_summary(out: str) -> str:
    return join_path(out, "run_summary.json")


def model_checkpoints(model_path: str) -> str:
    """Where training checkpoints a model folder that is on the local disk: beside it."""
    return model_path.rstrip("/") + ".checkpoint"
