"""Pareto plots and tables from population run directories only (never re-trains).

    alphavil plot-pareto RUN_DIR... [--out DIR]      (or :func:`plot_pareto`)

writes ``front_loss.png`` (final test losses of every model, each run's non-dominated front as a
line, the HV reference point and box), ``front_accuracy.png`` (classification), ``hv_epoch.png``
(test hypervolume vs epoch and vs wall-clock seconds, mean ± std over seeds per method) and
``epochs_to_95.md`` / ``.csv``: per method the final HV, the epochs to reach 95% of the run's own
final HV, and the epochs to reach 95% of the best method's mean final HV (the common target of
reconstruction §4.3). Runs are grouped by their whole resolved config (``config.json``) except
the seed and bookkeeping keys (:data:`IGNORED_KEYS`): the label is the method plus every key
whose value differs between the runs, e.g. ``mt2o train.optimizer.lr=0.1``, so runs that differ
in learning rate, scalarisation or anything else are never averaged together. Keys that a
method does not use (the transfer settings for non-MT2O methods) are left out of its label.
Old ``ls`` runs are shown as ``no_transfer``. Needs matplotlib (``pip install alphavil[plot]``);
uses Agg.
"""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.pareto.hypervolume import nondominated_mask
from alphavil.pareto.mt2o import METHOD_ALIASES
from alphavil.pareto.summary import epochs_to_fraction
from alphavil.reports.figures import pyplot
from alphavil.runs import atomic_write, read_json, read_jsonl

__all__ = [
    "IGNORED_KEYS",
    "config_labels",
    "epochs_table",
    "load_runs",
    "plot_front",
    "plot_hv",
    "plot_pareto",
]

COLORS = {
    "mt2o": "tab:red",
    "no_transfer": "tab:blue",
    "pmtl": "tab:green",
    "epo": "tab:purple",
    "pareto_mgda": "tab:gray",
}
VARIANT_COLORS = ("tab:red", "tab:orange", "tab:purple", "tab:brown", "tab:pink", "tab:olive")
# no_transfer hollow, drawn larger
MARKERS = {"mt2o": ("o", 18), "no_transfer": ("s", 40), "pmtl": ("^", 22), "epo": ("D", 18)}
# never a reason to keep runs apart: the seed (what a group averages over) and bookkeeping
IGNORED_KEYS = frozenset(
    {
        "name",
        "out_dir",
        "train.method",
        "train.seed",
        "train.threads",
        "train.device",
        "train.save_checkpoints",
        "train.save_predictions",
        "train.save_state",
        "train.eval_batch_size",
        "mt2o.forward",
        "mt2o.eval_dev",
    }
)
TRANSFER_KEYS = frozenset(
    f"mt2o.{k}"
    for k in (
        "beta",
        "n_neighbours",
        "coefficients",
        "period",
        "decay",
        "decay_start",
        "decay_end",
        "mix_buffers",
    )
)


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out |= _flatten(v, f"{prefix}{k}.")
        return out
    return {prefix[:-1]: value}


def config_labels(configs: list[dict[str, Any]], methods: list[str]) -> list[str]:
    """One label per run: its method plus ``key=value`` for every config key that differs
    between the runs (except :data:`IGNORED_KEYS`, and the transfer keys for non-MT2O runs)."""
    methods = [METHOD_ALIASES.get(m, m) for m in methods]
    flats = [_flatten(c) for c in configs]
    keys = sorted(set().union(*flats)) if flats else []
    differing = [
        k
        for k in keys
        if k not in IGNORED_KEYS and len({json.dumps(f.get(k), sort_keys=True) for f in flats}) > 1
    ]
    labels = []
    for f, method in zip(flats, methods, strict=True):
        parts = [
            f"{k}={f.get(k)}" for k in differing if not (method != "mt2o" and k in TRANSFER_KEYS)
        ]
        labels.append(" ".join([method, *parts]))
    return labels


def load_runs(paths: list[str | Path]) -> list[dict[str, Any]]:
    """Completed population runs in ``paths`` (run directories or folders of them)."""
    dirs: list[Path] = []
    for p in map(Path, paths):
        dirs += (
            [p]
            if (p / "summary.json").exists()
            else sorted(d.parent for d in p.glob("*/summary.json"))
        )
    runs = []
    for d in dirs:
        summary = read_json(d / "summary.json")
        if "hv_curve" not in summary or summary.get("status") != "completed":
            continue
        config = read_json(d / "config.json") if (d / "config.json").exists() else {}
        runs.append(
            {
                "path": d,
                "summary": summary,
                "config": config,
                "records": read_jsonl(d / "metrics.jsonl"),
            }
        )
    if not runs:
        raise ValueError(f"no completed population runs (summary.json with hv_curve) in {paths}")
    labels = config_labels([r["config"] for r in runs], [r["summary"]["method"] for r in runs])
    for r, label in zip(runs, labels, strict=True):
        r["label"] = label
    variants = sorted({r["label"] for r in runs if r["label"] not in COLORS})
    for r in runs:
        r["color"] = (
            COLORS.get(r["label"])
            or VARIANT_COLORS[variants.index(r["label"]) % len(VARIANT_COLORS)]
        )
    return runs


def _groups(runs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    groups: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in runs:
        groups[r["label"]].append(r)
    return dict(sorted(groups.items()))


def plot_hv(runs: list[dict[str, Any]], path: str | Path) -> None:
    """Test hypervolume vs epoch and vs seconds, mean ± std over seeds per method label."""
    plt = pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(8.5, 3.4))
    for label, rs in _groups(runs).items():
        n = min(len(r["summary"]["hv_curve"]) for r in rs)
        hv = np.array([r["summary"]["hv_curve"][:n] for r in rs])
        secs = np.array(
            [[rec.get("seconds_total", np.nan) for rec in r["records"][:n]] for r in rs]
        )
        mean, std = hv.mean(0), hv.std(0)
        for ax, x in ((axes[0], np.arange(n)), (axes[1], secs.mean(0))):
            color = rs[0]["color"]
            ax.plot(x, mean, color=color, label=f"{label} (n={len(rs)})")
            ax.fill_between(x, mean - std, mean + std, color=color, alpha=0.2, lw=0)
    axes[0].set_xlabel("epoch")
    axes[1].set_xlabel("wall-clock seconds (mean over seeds)")
    for ax in axes:
        ax.set_ylabel("test hypervolume")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    ref = runs[0]["summary"]["ref_point"]
    fig.suptitle(f"Hypervolume of the K test-loss vectors (ref {ref})", fontsize=10)
    fig.tight_layout()
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)


def plot_front(runs: list[dict[str, Any]], path: str | Path, metric: str = "loss") -> bool:
    """Final test ``metric`` (loss or accuracy) of every model, first two tasks; False if none."""
    plt = pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 4.0))
    names = runs[0]["summary"]["tasks"][:2]
    drawn = False
    shown: list[np.ndarray] = []
    for label, rs in _groups(runs).items():
        for i, r in enumerate(rs):
            test = r["records"][-1]["test"]
            if any(test[t][metric] is None for t in names):
                continue
            pts = np.array([test[names[0]][metric], test[names[1]][metric]]).T
            front = pts[nondominated_mask(pts, maximize=metric == "accuracy")]
            front = front[np.argsort(front[:, 0])]
            ax.plot(front[:, 0], front[:, 1], "-", color=r["color"], alpha=0.5, lw=1)
            shown.append(pts)
            marker, size = MARKERS.get(label.split()[0], ("o", 18))
            ax.scatter(
                pts[:, 0],
                pts[:, 1],
                s=size,
                marker=marker,
                label=label if i == 0 else None,
                facecolors="none" if marker == "s" else r["color"],
                edgecolors=r["color"],
            )
            drawn = True
    if metric == "loss":
        ref = runs[0]["summary"]["ref_point"]
        ax.scatter([ref[0]], [ref[1]], marker="x", color="k", label="HV reference")
        ax.axvline(ref[0], color="k", ls=":", lw=0.8)
        ax.axhline(ref[1], color="k", ls=":", lw=0.8)
        _true_front(ax, runs[0])
        pts = np.concatenate(shown) if shown else np.zeros((0, 2))
        if len(pts) and (pts > np.asarray(ref[:2])).any():  # zoom to the HV box
            lo = pts.min(axis=0)
            for i, (low, r_i) in enumerate(zip(lo, ref[:2], strict=True)):
                (ax.set_xlim if i == 0 else ax.set_ylim)(low - 0.05 * (r_i - low), 1.08 * r_i)
            ax.text(
                0.98,
                0.02,
                "points beyond 1.08 × reference not shown",
                fontsize=7,
                ha="right",
                transform=ax.transAxes,
            )
    ax.set_xlabel(f"test {metric}: {names[0]}")
    ax.set_ylabel(f"test {metric}: {names[1]}")
    ax.set_title(f"final models, one point per weight vector ({metric})", fontsize=9)
    ax.grid(alpha=0.3)
    if drawn:
        ax.legend(fontsize=8)
        fig.tight_layout()
        atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=90))
    plt.close(fig)
    return drawn


def _true_front(ax: Any, run: dict[str, Any]) -> None:
    """Overlay the analytic front of the synthetic problems (first two objectives)."""
    data = run["config"].get("data", {})
    if data.get("name") != "synthetic":
        return
    from alphavil.pareto.problems import pareto_front

    pts = pareto_front(data.get("problem", "convex"), data.get("n_objectives", 3))
    if pts.shape[1] == 2:
        ax.plot(pts[:, 0], pts[:, 1], "k.", ms=0.5, label="true front")


def epochs_table(runs: list[dict[str, Any]], fraction: float = 0.95) -> list[dict[str, Any]]:
    """Rows per method label: seeds, final HV, epochs to ``fraction`` of own / best final HV."""
    groups = _groups(runs)
    finals = {
        lab: statistics.mean(r["summary"]["hv_curve"][-1] for r in rs) for lab, rs in groups.items()
    }
    common = fraction * max(finals.values())
    rows = []
    for label, rs in groups.items():
        own = [epochs_to_fraction(r["summary"]["hv_curve"], fraction) for r in rs]
        best = [
            epochs_to_fraction(r["summary"]["hv_curve"], fraction, target=common / fraction)
            for r in rs
        ]
        hv = [r["summary"]["hv_curve"][-1] for r in rs]
        rows.append(
            {
                "method": label,
                "seeds": len(rs),
                "final_hv_mean": statistics.mean(hv),
                "final_hv_std": statistics.stdev(hv) if len(hv) > 1 else 0.0,
                f"epochs_to_{round(100 * fraction)}_own": _mean_or_none(own),
                f"epochs_to_{round(100 * fraction)}_best": _mean_or_none(best),
                "reached_best": sum(b is not None for b in best),
                "seconds_mean": statistics.mean(r["summary"]["seconds"] for r in rs),
            }
        )
    return rows


def _mean_or_none(values: list[int | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.mean(got) if len(got) == len(values) else None


def _markdown(rows: list[dict[str, Any]]) -> str:
    def fmt(v: Any) -> str:
        return "–" if v is None else f"{v:.4f}" if isinstance(v, float) else str(v)

    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(fmt(r[h]) for h in head) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def plot_pareto(paths: list[str | Path], out_dir: str | Path, fraction: float = 0.95) -> list[Path]:
    """All figures and the epochs-to-fraction table for ``paths``; returns the files written."""
    runs = load_runs(paths)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "hv_epoch.png"]
    plot_hv(runs, written[0])
    for metric in ("loss", "accuracy"):
        if plot_front(runs, out / f"front_{metric}.png", metric):
            written.append(out / f"front_{metric}.png")
    rows = epochs_table(runs, fraction)
    md = _markdown(rows).encode()
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    name = f"epochs_to_{round(100 * fraction)}"
    atomic_write(out / f"{name}.md", lambda f: f.write(md))
    atomic_write(out / f"{name}.csv", lambda f: f.write(buf.getvalue().encode()))
    return [*written, out / f"{name}.md", out / f"{name}.csv"]


def main(argv: list[str] | None = None) -> int:
    """``python -m alphavil.pareto.plots RUN_DIR... --out DIR`` (until the CLI wires it)."""
    import argparse

    p = argparse.ArgumentParser(prog="alphavil plot-pareto", description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", help="run directories or folders of run directories")
    p.add_argument("--out", default="pareto_plots", help="output folder")
    p.add_argument("--fraction", type=float, default=0.95)
    args = p.parse_args(argv)
    for f in plot_pareto(args.runs, args.out, args.fraction):
        print(f)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
