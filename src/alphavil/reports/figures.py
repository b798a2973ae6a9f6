"""Figures from run directories (matplotlib, Agg backend; install the ``plot`` extra)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from alphavil.reports.labels import display_name, label_order
from alphavil.runs import atomic_write, read_jsonl


def pyplot() -> Any:
    """``matplotlib.pyplot`` on the file-only Agg backend (imported on first use)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(fig: Any, path: Path) -> Path:
    """Write ``fig`` to ``path`` as a PNG (atomically) and close it; returns ``path``."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=110, bbox_inches="tight"))
    pyplot().close(fig)
    return path


def alpha_weight_figure(
    runs: list[dict[str, Any]], target: str, path: Path, label: str = "alphavil"
) -> Path | None:
    """Paper Figure 3: α (left) and normalised task weights (right) over epochs, αVIL runs
    labelled ``label`` with more than one task."""
    chosen = [
        r
        for r in runs
        if r["method"] == "alphavil"
        and r.get("label", r["method"]) == label
        and r["target"] == target
        and len(r["summary"].get("tasks", [0, 1])) > 1
    ]
    if not chosen:
        return None
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for ax, key, title in ((axes[0], "alpha", "α"), (axes[1], "weights", "normalised weight")):
        curves: dict[str, list[np.ndarray]] = {}
        for r in chosen:
            recs = [rec for rec in read_jsonl(r["path"] / "metrics.jsonl") if key in rec]
            for task in recs[0][key] if recs else []:
                vals = np.array([rec[key][task] for rec in recs], dtype=float)
                if key == "weights":
                    vals = vals / np.array([sum(rec[key].values()) for rec in recs])
                curves.setdefault(task, []).append(vals)
        for task, series in curves.items():
            n = min(len(s) for s in series)
            stack = np.stack([s[:n] for s in series])
            epochs = np.arange(1, n + 1)
            legend = f"{task}{' (target)' if task == target else ''}"
            line = ax.plot(epochs, stack.mean(0), label=legend)[0]
            if len(series) > 1:
                ax.fill_between(
                    epochs, stack.min(0), stack.max(0), alpha=0.2, color=line.get_color()
                )
        ax.set_xlabel("epoch")
        ax.set_title(title)
        if curves:  # a run that logged no α (or weights) leaves its panel empty
            ax.legend()
    fig.suptitle(
        f"{display_name(label)}, target {target}: mean over {len(chosen)} seeds, band = min–max"
    )
    return save_figure(fig, path)


def dev_curve_figure(
    runs: list[dict[str, Any]], target: str, path: Path, span: float = 5.0
) -> Path:
    """Target-task dev accuracy over epochs per configuration (label; mean over seeds). The axis
    shows at most ``span`` points below the best mean, so one slow start does not flatten the
    rest (the title says so when a curve leaves the axis)."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    lows, highs = [], []
    for label in label_order({r.get("label", r["method"]) for r in runs}):
        series = []
        for r in runs:
            method = r["method"]
            if r.get("label", method) != label or (method != "multitask" and r["target"] != target):
                continue
            recs = read_jsonl(r["path"] / "metrics.jsonl")
            vals = [rec["dev"].get(target, {}).get("accuracy") for rec in recs]
            if vals and all(v is not None for v in vals):
                series.append(100 * np.array(vals, dtype=float))
        if series:
            n = min(len(s) for s in series)
            mean = np.stack([s[:n] for s in series]).mean(0)
            ax.plot(np.arange(1, n + 1), mean, label=f"{label} ({len(series)} seeds)")
            lows.append(float(mean.min()))
            highs.append(float(mean.max()))
    if lows and min(lows) < max(highs) - span:
        ax.set_ylim(max(highs) - span, max(highs) + 0.1 * span)
        ax.set_title(f"axis clipped {span:g} points below the best mean", fontsize=9)
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"dev accuracy, task {target} (%)")
    ax.legend(fontsize=8)
    return save_figure(fig, path)
