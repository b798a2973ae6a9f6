"""The target-task leaderboard: every configuration against one baseline, paired by seed.

For each target task and run label: seeds, target test accuracy (mean ± std, at each run's best
dev epoch), the paired difference to the baseline (single-task by default) with its 95%
bootstrap CI and Wilcoxon p, wall seconds per run, and the final normalised weight a method gave
a named harmful task (e.g. a random-label task): its share of the loop's task weights, or for a
gradient aggregator its share of the aggregation weights over the last epoch.
Read from run directories only (:func:`alphavil.reports.collect.collect_runs`).

    alphavil report runs/bench --out docs/benchmark --leaderboard --harmful noise
"""

from __future__ import annotations

import math
import statistics
from pathlib import Path
from typing import Any

from alphavil.reports.figures import pyplot, save_figure
from alphavil.reports.labels import display_name, label_order
from alphavil.reports.stats import bootstrap_ci, per_target
from alphavil.reports.tables import fmt
from alphavil.reports.write import write_csv, write_text
from alphavil.runs import read_jsonl


def _last_record(run: dict[str, Any]) -> dict[str, Any]:
    path = Path(run["path"]) / "metrics.jsonl"
    if not path.exists():
        return {}
    records = [r for r in read_jsonl(path) if "epoch" in r]
    return records[-1] if records else {}


def _harmful_weight(run: dict[str, Any], harmful: str | None) -> float | None:
    """The harmful task's share of the weights at the end of the run: of the gradient
    aggregator's mean weights over the last epoch (TorchJD methods), else of the loop's task
    weights (1/T for a method with no weighting of its own)."""
    if not harmful or run["method"] == "single":
        return None
    agg = _last_record(run).get("aggregation_weights") or {}
    if harmful in agg:
        total = sum(agg.values())
        return agg[harmful] / total if total > 0 else None
    weights = run["summary"].get("final_weights") or {}
    if harmful not in weights:
        return None
    values = list(weights.values())
    if len(set(values)) == 1 and run["method"] not in ("alphavil", "diw"):
        # no weighting of its own: equal weighting (multitask, aggregators) gives 1/T
        return 1.0 / len(values)
    total = sum(values)
    return weights[harmful] / total if total > 0 else None


def leaderboard(
    runs: list[dict[str, Any]],
    baseline: str = "single",
    harmful: str | None = None,
    tuned: dict[str, list[str]] | None = None,
) -> list[dict[str, Any]]:
    """One row per (target, label), sorted by mean test accuracy within each target; ``tuned``
    adds rows that pick, per seed, the listed label with the best dev accuracy (as in
    :func:`alphavil.reports.tables.table1`); such a row may also be the ``baseline``."""
    from scipy.stats import wilcoxon

    table = per_target(runs, tuned)
    rows = []
    with_base = {t for t, labels in table.items() if baseline in labels}
    for target, labels in sorted(table.items()):
        if with_base and target not in with_base:  # e.g. the auxiliary tasks of multitask runs
            continue
        base = labels.get(baseline, {})
        for label in label_order(labels):
            seeds = labels[label]
            picked = {(v.get("picked", label), s) for s, v in seeds.items()}
            mine = [
                r
                for r in runs
                if (r["label"], r["seed"]) in picked
                and (r["target"] == target or r["method"] == "multitask")
            ]
            tests = [v["test"] for v in seeds.values()]
            row: dict[str, Any] = {
                "target": target,
                "method": label,
                "n": len(seeds),
                "test_mean": statistics.fmean(tests),
                "test_std": statistics.stdev(tests) if len(tests) > 1 else math.nan,
                "seconds": statistics.fmean(r["summary"]["seconds"] for r in mine)
                if mine
                else math.nan,
            }
            paired = sorted(set(seeds) & set(base))
            diffs = [seeds[s]["test"] - base[s]["test"] for s in paired]
            if label != baseline and len(diffs) >= 2:
                row["diff"] = statistics.fmean(diffs)
                row["ci_low"], row["ci_high"] = bootstrap_ci(diffs)
                nonzero = any(d != 0 for d in diffs)
                row["p"] = float(wilcoxon(diffs).pvalue) if nonzero else math.nan
            else:
                row["diff"] = row["ci_low"] = row["ci_high"] = row["p"] = math.nan
            weights = [w for r in mine if (w := _harmful_weight(r, harmful)) is not None]
            row["harmful_weight"] = statistics.fmean(weights) if weights else math.nan
            rows.append(row)
    rows.sort(key=lambda r: (r["target"], -r["test_mean"]))
    return rows


def format_leaderboard(rows: list[dict[str, Any]], baseline: str, harmful: str | None) -> str:
    """The leaderboard as Markdown."""
    head = (
        f"| target | method | seeds | test acc % (mean ± std) | vs {display_name(baseline)} (pp) "
        "[95% CI] | p | seconds per run |"
    )
    if harmful:
        head += f" weight of `{harmful}` |"
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for r in rows:
        cells = [
            r["target"],
            display_name(r["method"]),
            str(r["n"]),
            f"{fmt(r['test_mean'])} ± {fmt(r['test_std'])}",
            f"{fmt(r['diff'])} [{fmt(r['ci_low'])}, {fmt(r['ci_high'])}]",
            fmt(r["p"], 3),
            fmt(r["seconds"], 0),
        ]
        if harmful:
            cells.append(fmt(r["harmful_weight"], 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def leaderboard_figure(
    rows: list[dict[str, Any]], baseline: str, path: Path, clip: float = 8.0
) -> Path:
    """Paired difference to the baseline with its CI, one panel per target (dot plot). The axis
    stops ``clip`` points below the baseline; a method further below is drawn at the edge with
    its value written beside it, so one collapsed method does not flatten the others."""

    plt = pyplot()
    targets = sorted({r["target"] for r in rows})
    n = max(sum(r["target"] == t for r in rows) for t in targets)
    fig, axes = plt.subplots(
        1, len(targets), figsize=(6.5 * len(targets), 0.8 + 0.32 * n), constrained_layout=True
    )
    axes = axes if len(targets) > 1 else [axes]
    for ax, target in zip(axes, targets, strict=True):
        mine = [r for r in rows if r["target"] == target and not math.isnan(r["diff"])]
        mine.sort(key=lambda r: r["diff"])
        lo = max(min([r["ci_low"] for r in mine] + [-0.5]), -clip)
        hi = max([r["ci_high"] for r in mine] + [0.5])
        pad = 0.05 * (hi - lo)
        for y, r in enumerate(mine):
            if r["diff"] < lo:  # off the axis: a marker at the edge and the value
                ax.plot([lo], [y], marker="<", color="tab:red")
                ax.annotate(f"{r['diff']:.1f}", (lo, y), xytext=(6, -4), textcoords="offset points")
                continue
            ax.errorbar(
                [r["diff"]],
                [y],
                xerr=[[r["diff"] - max(r["ci_low"], lo)], [r["ci_high"] - r["diff"]]],
                fmt="o",
                capsize=3,
                color="tab:blue",
            )
        ax.axvline(0.0, color="grey", lw=1)
        ax.set_xlim(lo - pad, hi + pad)
        ax.set_yticks(range(len(mine)), [display_name(r["method"]) for r in mine])
        ax.set_xlabel(f"target test accuracy − {display_name(baseline)} (pp), 95% CI")
        ax.set_title(f"target {target}")
    return save_figure(fig, path)


def write_leaderboard(
    runs: list[dict[str, Any]],
    out: Path,
    baseline: str = "single",
    harmful: str | None = None,
    tuned: dict[str, list[str]] | None = None,
) -> list[Path]:
    """``leaderboard.md``, ``leaderboard.csv`` and ``leaderboard.png`` under ``out``."""
    rows = leaderboard(runs, baseline, harmful, tuned)
    write_text(out / "leaderboard.md", format_leaderboard(rows, baseline, harmful) + "\n")
    write_csv(out / "leaderboard.csv", rows)
    return [
        out / "leaderboard.md",
        out / "leaderboard.csv",
        leaderboard_figure(rows, baseline, out / "leaderboard.png"),
    ]
