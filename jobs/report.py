"""Pictures and reports for people: the training-curve PNG and the evaluation Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LOSS_PLOT = "training.png"


def plot_training(history: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Train loss and validation numbers per epoch, one PNG."""
    epochs = [r["epoch"] for r in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [r["train_loss"] for r in history], label="train loss (reconstruction NLL)")
    if history and "val" in history[0]:
        left.plot(epochs, [r["val"].get("like_nll") for r in history], label="validation like NLL")
        for name in ("like_error", "auc", "rmse", "ndcg"):
            if name in history[0]["val"]:
                right.plot(epochs, [r["val"][name] for r in history], label=f"validation {name}")
    left.set_xlabel("epoch")
    right.set_xlabel("epoch")
    left.legend()
    if right.lines:
        right.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def metrics_markdown(metrics: dict[str, Any], plot_rel_path: str | None) -> str:
    """A short human-readable evaluation report."""
    lines = [
        f"# rbm-reco evaluation, {metrics.get('dt', '')}",
        "",
        f"Model `{metrics.get('model_id')}` ({metrics.get('kind')}), "
        f"{metrics.get('test_users')} test users, {metrics.get('test_pairs')} test pairs.",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for section in ("ranking", "ranking_relevant_ge4", "rating"):
        for name, value in metrics.get(section, {}).items():
            shown = f"{value:.4f}" if isinstance(value, float) else str(value)
            lines.append(f"| {section}.{name} | {shown} |")
    if plot_rel_path:
        lines += ["", f"![training curves]({plot_rel_path})"]
    return "\n".join(lines) + "\n"
