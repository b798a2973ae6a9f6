"""Figures for :mod:`alphavil.pareto.study` results, drawn from the study's JSON only.

    python -m alphavil.pareto.study_plots docs/figures/mt2o/real/*.json

writes ``<problem>.png`` beside each ``<problem>.json``: the test hypervolume per epoch of every
arm (mean over the test seeds, shaded ± one standard deviation, at the arm's validation-chosen
lr) and, when the study paired two arms and logged per-model scalarised test losses (real data),
the paired MT2O − no-transfer difference per weight vector with its 95% bootstrap CI.
Needs matplotlib (``pip install alphavil[plot]``); uses Agg.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.reports.figures import pyplot
from alphavil.runs import atomic_write

__all__ = ["hv_curves", "main", "plot_study"]


def hv_curves(result: dict[str, Any]) -> dict[str, np.ndarray]:
    """Per arm, the test-HV curves of its completed test runs as a (seeds, epochs + 1) array."""
    out: dict[str, np.ndarray] = {}
    for arm, r in result["arms"].items():
        curves = [run["hv"] for run in r.get("runs", []) if run.get("status") == "completed"]
        if curves:
            n = min(len(c) for c in curves)
            out[arm] = np.array([c[:n] for c in curves], dtype=float)
    return out


def plot_study(result: dict[str, Any], path: str | Path) -> Path:
    """One study problem's figure (see the module docstring); returns ``path``."""
    curves = hv_curves(result)
    if not curves:
        raise ValueError(f"{result.get('problem', '?')}: no completed test run to plot")
    per_model = {
        name: p["scalarized_test_per_model"]
        for name, p in result.get("pairs", {}).items()
        if p.get("scalarized_test_per_model")
    }
    plt = pyplot()
    ncols = 2 if per_model else 1
    fig, axes = plt.subplots(1, ncols, figsize=(4.4 * ncols, 3.4), squeeze=False)
    ax = axes[0, 0]
    for arm, hv in curves.items():
        lr = result["arms"][arm].get("lr")
        mean, std = hv.mean(0), hv.std(0)
        x = np.arange(hv.shape[1])
        line = ax.plot(x, mean, label=f"{arm} lr {lr:g} (n={hv.shape[0]})")[0]
        ax.fill_between(x, mean - std, mean + std, color=line.get_color(), alpha=0.2, lw=0)
    ax.set_xlabel("epoch")
    ax.set_ylabel("test hypervolume")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    if per_model:
        ax = axes[0, 1]
        width = 0.8 / len(per_model)
        for j, (name, rows) in enumerate(per_model.items()):
            k = np.arange(len(rows)) + (j - (len(per_model) - 1) / 2) * width
            mean = np.array([p["mean"] for p in rows])
            lo = mean - np.array([p["ci"][0] for p in rows])
            hi = np.array([p["ci"][1] for p in rows]) - mean
            ax.errorbar(k, mean, yerr=[lo, hi], fmt="o", capsize=3, label=name.split("/")[-1])
        ax.axhline(0.0, color="k", lw=0.8)
        ax.set_xlabel("model k (weight vector)")
        ax.set_ylabel("Δ scalarised test loss\n(MT2O − no transfer)")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    ci = "; right: paired differences, 95% bootstrap CI" if per_model else ""
    fig.suptitle(f"{result.get('problem', '')}: test HV, mean ± std over seeds{ci}", fontsize=9)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return Path(path)


def main(argv: list[str] | None = None) -> int:
    """CLI: one PNG beside each study JSON given."""
    p = argparse.ArgumentParser(prog="python -m alphavil.pareto.study_plots", description=__doc__)
    p.add_argument("results", nargs="+", help="<problem>.json files written by the study")
    args = p.parse_args(argv)
    for name in args.results:
        src = Path(name)
        try:
            result = json.loads(src.read_text())
        except (OSError, json.JSONDecodeError) as e:
            p.error(f"cannot read study result {src}: {e}")
        if not isinstance(result, dict) or "arms" not in result:
            p.error(f"{src} is not a study result (no 'arms'); pass <problem>.json files")
        try:
            print(plot_study(result, src.with_suffix(".png")))
        except ValueError as e:
            p.error(str(e))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
