"""Pictures and reports for people: the training-curve PNG and the evaluation Markdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from rbmcore.io.artifact import PLOT_FILE

LOSS_PLOT = PLOT_FILE  # the training plot in the model folder


def plot_training(history: list[dict[str, Any]], path: str | Path, title: str = "") -> None:
    """Train loss and validation numbers per epoch, one PNG; one row of panels per trained
    part (a hybrid's ``rated`` and ``like`` parts), the ranking metric (validation nDCG@10)
    where the part tracks it; within a part, one line per model trained (a blend's
    ``machine``, an ensemble's ``member``, a two-way model's user / item ``way``, a deep
    belief net's ``layer``)."""
    parts = list(dict.fromkeys(r.get("part", "") for r in history)) or [""]
    fig = Figure(figsize=(10, 4 * len(parts)))  # no pyplot: no GUI backend, no global state
    axes = fig.subplots(len(parts), 2, squeeze=False)
    for (left, right), part in zip(axes, parts, strict=True):
        _plot_part([r for r in history if r.get("part", "") == part], left, right, part)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


SERIES_TAGS = ("machine", "member", "way", "layer")  # what tells a part's trained models apart


def _series_key(record: dict[str, Any]) -> tuple:
    return tuple(record.get(tag) for tag in SERIES_TAGS)


def _series_label(key: tuple) -> str:
    machine, member, way, layer = key
    names = [machine] if machine else []
    names += [f"member {member}"] if member else []
    names += [f"{way}-based"] if way else []
    names += [f"layer {layer}" if layer else "its RBM"] if layer is not None else []
    return f" ({', '.join(names)})" if names else ""


def _plot_part(history: list[dict[str, Any]], left, right, part: str) -> None:
    series = dict.fromkeys(_series_key(r) for r in history)
    for key in series:
        records = [r for r in history if _series_key(r) == key]
        _plot_series(records, left, right, _series_label(key))
    prefix = f"{part}: " if part else ""
    left.set_title(f"{prefix}loss")
    right.set_title(f"{prefix}validation")
    for ax in (left, right):
        ax.set_xlabel("epoch")
        if ax.lines:
            ax.legend(fontsize="small" if len(series) > 2 else None)


def _plot_series(history: list[dict[str, Any]], left, right, suffix: str) -> None:
    epochs = [r["epoch"] for r in history]
    left.plot(epochs, [r["train_loss"] for r in history], label=f"train loss{suffix}")
    val = history[0].get("val", {}) if history else {}
    if "like_nll" in val:
        left.plot(epochs, [r["val"].get("like_nll") for r in history],
                  label=f"validation like NLL{suffix}")  # fmt: skip
    for name in ("like_error", "auc", "rmse", "ndcg", "precision"):
        if name in val:
            label = (
                f"validation {name}@10" if name in ("ndcg", "precision") else f"validation {name}"
            )
            right.plot(epochs, [r["val"][name] for r in history], label=label + suffix)


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
