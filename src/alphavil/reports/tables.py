"""Reports from run directories only (never re-trains): the paper's Table 1 and Figure 3.

Accuracies are reported in percent. For each target task and configuration the table gives min,
max, mean and sample standard deviation (ddof = 1) over seeds of dev and test accuracy, each read
at the run's best *dev* snapshot for that task. Multitask contributes one run per seed and its
best snapshot per task, as in the paper. Runs are grouped by their ``label`` (a sweep variant's
name), or by method when they have none.

Paired comparisons pair runs by seed and give the mean difference, a 95% bootstrap confidence
interval of it (``scipy.stats.bootstrap``, percentile method, 10,000 resamples, fixed seed) and
the Wilcoxon signed-rank p (``scipy.stats.wilcoxon``). A *tuned* row picks, for every seed, the
candidate configuration with the best dev accuracy and reports that run (selection on dev only).
"""

from __future__ import annotations

import math
import statistics
from typing import Any

from alphavil.reports.labels import display_name, label_order
from alphavil.reports.stats import per_target, summary_stats


def table1(
    runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Rows of Table 1: target, label, n seeds, min/max/mean/std of dev and test accuracy,
    and the mean best epoch."""
    rows = []
    by_target = per_target(runs, tuned)
    targeted = {t for t, ms in by_target.items() if set(ms) - {"multitask"}}
    for target, labels in sorted(by_target.items()):
        if targeted and target not in targeted:
            continue  # multitask's other heads: shown only when no target-task run exists
        for label in label_order(labels):
            seeds = labels[label]
            if not seeds:
                continue
            row: dict[str, Any] = {"target": target, "method": label, "n": len(seeds)}
            for split in ("dev", "test"):
                for k, v in summary_stats([s[split] for s in seeds.values()]).items():
                    row[f"{split}_{k}"] = v
            row["best_epoch_mean"] = statistics.fmean(s["epoch"] for s in seeds.values())
            rows.append(row)
    return rows


def fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def format_table(runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None) -> str:
    """Table 1 as Markdown (one block per target task)."""
    rows = table1(runs, tuned)
    if not rows:
        return "(no completed single/multitask/diw/alphavil runs)"
    head = (
        "| target | method | seeds | dev min | dev max | dev mean | dev std | test min | "
        "test max | test mean | test std | best epoch (mean) |"
    )
    lines = [head, "|" + "---|" * 12]
    for r in rows:
        cells = [r["target"], display_name(r["method"]), r["n"]]
        cells += [
            fmt(r[f"{s}_{k}"]) for s in ("dev", "test") for k in ("min", "max", "mean", "std")
        ]
        cells.append(fmt(r["best_epoch_mean"], 1))
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def format_paired(rows: list[dict[str, Any]]) -> str:
    """Paired comparisons as Markdown."""
    lines = [
        "| target | ours | vs | seeds | dev mean diff (pp) [95% CI] | dev p | "
        "test mean diff (pp) [95% CI] | test p |",
        "|" + "---|" * 8,
    ]
    for r in rows:
        cells = [r["target"], display_name(r["ours"]), display_name(r["baseline"]), str(r["n"])]
        for split in ("dev", "test"):
            cells.append(
                f"{fmt(r[f'{split}_mean_diff'])} [{fmt(r[f'{split}_ci_low'])}, "
                f"{fmt(r[f'{split}_ci_high'])}]"
            )
            cells.append(fmt(r[f"{split}_p"], 3))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def format_summary(summary: dict[str, Any]) -> str:
    """A run summary as a small per-task table (printed by ``alphavil run``)."""
    lines = [
        f"{summary['method']} (target {summary.get('target') or '-'}): {summary['status']} "
        f"in {summary['seconds']:.0f}s",
        "| task | best epoch | dev acc % | test acc % |",
        "|---|---|---|---|",
    ]
    for t, b in summary["best"].items():
        dev = "–" if b["dev_accuracy"] is None else f"{100 * b['dev_accuracy']:.2f}"
        test = "–" if b["test_accuracy"] is None else f"{100 * b['test_accuracy']:.2f}"
        lines.append(f"| {t} | {b['epoch']} | {dev} | {test} |")
    return "\n".join(lines)


def figure3_check(runs: list[dict[str, Any]], target: str, label: str = "alphavil") -> str | None:
    """Whether αVIL's final normalised auxiliary weights end below the target's (paper Fig. 3)."""
    finals = []
    for r in runs:
        if r["label"] == label and r["method"] == "alphavil" and r["target"] == target:
            w = r["summary"]["final_weights"]
            if len(r["summary"].get("tasks", w)) < 2:
                continue
            total = sum(w.values())
            finals.append({t: v / total for t, v in w.items()})
    if not finals:
        return None
    mean = {t: statistics.fmean(f[t] for f in finals) for t in finals[0]}
    aux = {t: v for t, v in mean.items() if t != target}
    holds = all(v < mean[target] for v in aux.values())
    ws = ", ".join(f"{t} {v:.3f}" for t, v in mean.items())
    verdict = "holds" if holds else "does NOT hold"
    return (
        f"{display_name(label)}, target {target}: final normalised weights (mean over "
        f"{len(finals)} seeds) {ws}; the paper's Figure 3 behaviour (auxiliary weight below "
        f"the target's) {verdict}."
    )
