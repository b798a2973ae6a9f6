"""Reports from run directories only (never re-trains): the paper's Table 1 and Figure 3.

Accuracies are reported in percent. For each target task and method the table gives min, max,
mean and sample standard deviation (ddof = 1) over seeds of dev and test accuracy, each read at
the run's best *dev* snapshot for that task. Multitask contributes one run per seed and its best
snapshot per task, as in the paper.
"""

from __future__ import annotations

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from alphavil.runs import atomic_write, read_json

METHOD_ORDER = ("single", "multitask", "diw", "alphavil")
LABELS = {"single": "Singletask", "multitask": "Multitask", "diw": "DIW", "alphavil": "αVIL"}


def collect_runs(root: Path) -> list[dict[str, Any]]:
    """Completed runs under ``root`` (each a folder with config.json and summary.json)."""
    runs = []
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        summary = read_json(summary_path)
        if summary.get("status") != "completed":
            continue
        config = read_json(summary_path.parent / "config.json")
        runs.append(
            {
                "path": summary_path.parent,
                "name": summary_path.parent.name,
                "method": config["train"]["method"],
                "target": summary.get("target"),
                "seed": config["train"]["seed"],
                "summary": summary,
                "config": config,
            }
        )
    return runs


def _per_target(runs: list[dict[str, Any]]) -> dict[str, dict[str, dict[int, dict[str, float]]]]:
    """target -> method -> seed -> {"dev": %, "test": %}."""
    table: dict[str, dict[str, dict[int, dict[str, float]]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in runs:
        if r["method"] not in METHOD_ORDER:
            continue
        best = r["summary"]["best"]
        targets = list(best) if r["method"] == "multitask" else [r["target"]]
        for t in targets:
            b = best.get(t)
            if b is None or b.get("dev_accuracy") is None:
                continue
            test = b.get("test_accuracy")
            table[t][r["method"]][r["seed"]] = {
                "dev": 100.0 * b["dev_accuracy"],
                "test": 100.0 * test if test is not None else math.nan,
            }
    return table


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else math.nan,
    }


def table1(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows of Table 1: target, method, n seeds, and min/max/mean/std of dev and test accuracy."""
    rows = []
    per_target = _per_target(runs)
    targeted = {t for t, ms in per_target.items() if set(ms) - {"multitask"}}
    for target, methods in sorted(per_target.items()):
        if targeted and target not in targeted:
            continue  # multitask's other heads: shown only when no target-task run exists
        for method in METHOD_ORDER:
            seeds = methods.get(method)
            if not seeds:
                continue
            row: dict[str, Any] = {"target": target, "method": method, "n": len(seeds)}
            for split in ("dev", "test"):
                for k, v in _stats([s[split] for s in seeds.values()]).items():
                    row[f"{split}_{k}"] = v
            rows.append(row)
    return rows


def paired(runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """αVIL minus each baseline, paired by seed: mean difference and Wilcoxon signed-rank p."""
    from scipy.stats import wilcoxon

    rows = []
    for target, methods in sorted(_per_target(runs).items()):
        ours = methods.get("alphavil", {})
        for base in ("single", "multitask", "diw"):
            other = methods.get(base, {})
            seeds = sorted(set(ours) & set(other))
            if not seeds:
                continue
            row: dict[str, Any] = {"target": target, "baseline": base, "n": len(seeds)}
            for split in ("dev", "test"):
                diffs = [ours[s][split] - other[s][split] for s in seeds]
                row[f"{split}_mean_diff"] = statistics.fmean(diffs)
                nonzero = [d for d in diffs if d != 0]
                if len(nonzero) >= 1 and len(diffs) >= 2:
                    row[f"{split}_p"] = float(wilcoxon(diffs, zero_method="wilcox").pvalue)
                else:
                    row[f"{split}_p"] = math.nan
            rows.append(row)
    return rows


def _fmt(v: Any, digits: int = 2) -> str:
    if isinstance(v, float):
        return "–" if math.isnan(v) else f"{v:.{digits}f}"
    return str(v)


def format_table(runs: list[dict[str, Any]]) -> str:
    """Table 1 as Markdown (one block per target task)."""
    rows = table1(runs)
    if not rows:
        return "(no completed single/multitask/diw/alphavil runs)"
    head = (
        "| target | method | seeds | dev min | dev max | dev mean | dev std | test min | "
        "test max | test mean | test std |"
    )
    lines = [head, "|" + "---|" * 11]
    for r in rows:
        cells = [r["target"], LABELS[r["method"]], r["n"]]
        cells += [
            _fmt(r[f"{s}_{k}"]) for s in ("dev", "test") for k in ("min", "max", "mean", "std")
        ]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    return "\n".join(lines)


def format_paired(rows: list[dict[str, Any]]) -> str:
    """Paired comparisons as Markdown."""
    lines = [
        "| target | αVIL vs | seeds | dev mean diff (pp) | dev p | test mean diff (pp) | test p |",
        "|" + "---|" * 7,
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {LABELS[r['baseline']]} | {r['n']} | "
            f"{_fmt(r['dev_mean_diff'])} | {_fmt(r['dev_p'], 3)} | "
            f"{_fmt(r['test_mean_diff'])} | {_fmt(r['test_p'], 3)} |"
        )
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


def _write_csv(path: Path, rows: list[dict[str, Any]]) -> None:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    data = buf.getvalue().encode()
    atomic_write(path, lambda f: f.write(data))


def _write_text(path: Path, text: str) -> None:
    data = text.encode()
    atomic_write(path, lambda f: f.write(data))


def figure3_check(runs: list[dict[str, Any]], target: str) -> str | None:
    """Whether αVIL's final normalised auxiliary weights end below the target's (paper Fig. 3)."""
    finals = []
    for r in runs:
        if r["method"] == "alphavil" and r["target"] == target:
            w = r["summary"]["final_weights"]
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
        f"target {target}: final normalised weights (mean over {len(finals)} seeds) {ws}; "
        f"the paper's Figure 3 behaviour (auxiliary weight below the target's) {verdict}."
    )


def write_report(root: Path, out: Path | None = None) -> list[Path]:
    """Write Table 1 (md, csv), paired statistics (md, csv) and figures; returns the paths."""
    out = out or Path(root) / "report"
    runs = collect_runs(root)
    rows, pairs = table1(runs), paired(runs)
    paths = [out / "table1.md", out / "table1.csv", out / "paired.md", out / "paired.csv"]
    _write_text(paths[0], format_table(runs) + "\n")
    _write_csv(paths[1], rows)
    _write_text(paths[2], format_paired(pairs) + "\n")
    _write_csv(paths[3], pairs)
    checks = [c for t in sorted({r["target"] for r in rows}) if (c := figure3_check(runs, t))]
    _write_text(out / "figure3_check.md", "\n".join(f"- {c}" for c in checks) + "\n")
    paths.append(out / "figure3_check.md")
    from alphavil.plots import alpha_weight_figure, dev_curve_figure

    for target in sorted({r["target"] for r in rows}):
        p = alpha_weight_figure(runs, target, out / f"figure3_{target}.png")
        if p:
            paths.append(p)
        paths.append(dev_curve_figure(runs, target, out / f"dev_curves_{target}.png"))
    return paths
