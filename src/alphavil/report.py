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

import csv
import io
import math
import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.alpha_use import alpha_use, format_alpha_use
from alphavil.plots import alpha_weight_figure, dev_curve_figure
from alphavil.run_labels import display_name, label_order
from alphavil.runs import atomic_write, read_json


def _read_object(path: Path) -> dict[str, Any]:
    """A run file that must hold a JSON object; ValueError naming ``path`` otherwise."""
    try:
        data = read_json(path)
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (the run folder has a summary.json)") from None
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, not a run file") from None
    except ValueError as err:  # json.JSONDecodeError
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def collect_runs(root: Path, labels: list[str] | None = None) -> list[dict[str, Any]]:
    """Completed runs under ``root`` (each a folder with config.json and summary.json); only
    those whose label (sweep variant, else method) is in ``labels`` when given.

    Raises:
        ValueError: a run file that is not a JSON object or lacks ``train.method`` /
            ``train.seed`` (the message names the file), or a label in ``labels`` that no
            completed run has (the message lists the labels there are).
    """
    runs = []
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        summary = _read_object(summary_path)
        if summary.get("status") != "completed":
            continue
        config_path = summary_path.parent / "config.json"
        config = _read_object(config_path)
        train = config.get("train")
        if not isinstance(train, dict) or "method" not in train or "seed" not in train:
            raise ValueError(f"{config_path}: no train.method and train.seed; not a run config")
        method = train["method"]
        runs.append(
            {
                "path": summary_path.parent,
                "name": summary_path.parent.name,
                "method": method,
                "label": config.get("label") or method,
                "target": summary.get("target"),
                "seed": train["seed"],
                "summary": summary,
                "config": config,
            }
        )
    if labels is not None:
        have = {r["label"] for r in runs}
        missing = [lab for lab in labels if lab not in have]
        if missing:
            raise ValueError(
                f"--labels: no completed runs labelled {', '.join(missing)} under {root}; "
                f"labels there: {', '.join(sorted(have)) or 'none'}"
            )
        runs = [r for r in runs if r["label"] in labels]
    return runs


Table = dict[str, dict[str, dict[int, dict[str, float]]]]


def _per_target(runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None) -> Table:
    """target -> label -> seed -> {"dev": %, "test": %}, plus the ``tuned`` rows."""
    table: Table = defaultdict(lambda: defaultdict(dict))
    from alphavil.methods import method_names

    for r in runs:
        if r["method"] not in method_names():  # target-task methods only (not MT2O)
            continue
        best = r["summary"]["best"]
        targets = list(best) if r["method"] == "multitask" else [r["target"]]
        for t in targets:
            b = best.get(t)
            if b is None or b.get("dev_accuracy") is None:
                continue
            test = b.get("test_accuracy")
            table[t][r["label"]][r["seed"]] = {
                "dev": 100.0 * b["dev_accuracy"],
                "test": 100.0 * test if test is not None else math.nan,
                "epoch": b.get("epoch", math.nan),
            }
    for name, candidates in (tuned or {}).items():
        for labels in table.values():
            present = [c for c in candidates if c in labels]
            if not present:
                continue
            seeds = set.intersection(*(set(labels[c]) for c in present))
            for seed in sorted(seeds):
                pick = max(present, key=lambda c: labels[c][seed]["dev"])  # first wins ties
                labels[name][seed] = {**labels[pick][seed], "picked": pick}  # type: ignore[dict-item]
    return table


def _stats(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else math.nan,
    }


def table1(
    runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Rows of Table 1: target, label, n seeds, min/max/mean/std of dev and test accuracy,
    and the mean best epoch."""
    rows = []
    per_target = _per_target(runs, tuned)
    targeted = {t for t, ms in per_target.items() if set(ms) - {"multitask"}}
    for target, labels in sorted(per_target.items()):
        if targeted and target not in targeted:
            continue  # multitask's other heads: shown only when no target-task run exists
        for label in label_order(labels):
            seeds = labels[label]
            if not seeds:
                continue
            row: dict[str, Any] = {"target": target, "method": label, "n": len(seeds)}
            for split in ("dev", "test"):
                for k, v in _stats([s[split] for s in seeds.values()]).items():
                    row[f"{split}_{k}"] = v
            row["best_epoch_mean"] = statistics.fmean(s["epoch"] for s in seeds.values())
            rows.append(row)
    return rows


def bootstrap_ci(diffs: list[float]) -> tuple[float, float]:
    """95% percentile bootstrap CI of the mean of paired differences."""
    from scipy.stats import bootstrap

    if len(diffs) < 2 or len(set(diffs)) == 1:
        return (diffs[0], diffs[0]) if len(set(diffs)) == 1 else (math.nan, math.nan)
    res = bootstrap(
        (diffs,),
        statistics.fmean,
        n_resamples=10_000,
        confidence_level=0.95,
        method="percentile",
        rng=np.random.default_rng(0),
    )
    return float(res.confidence_interval.low), float(res.confidence_interval.high)


def paired(
    runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None
) -> list[dict[str, Any]]:
    """Every αVIL configuration minus every other configuration, paired by seed: mean
    difference, 95% bootstrap CI and Wilcoxon signed-rank p (percentage points)."""
    from scipy.stats import wilcoxon

    rows = []
    alphavil_labels = {r["label"] for r in runs if r["method"] == "alphavil"}
    for target, labels in sorted(_per_target(runs, tuned).items()):
        order = label_order(labels)
        for ours_label in [lab for lab in order if lab in alphavil_labels]:
            ours = labels[ours_label]
            for base in order:
                other = labels.get(base, {})
                seeds = sorted(set(ours) & set(other))
                if base == ours_label or not seeds:
                    continue
                row: dict[str, Any] = {
                    "target": target,
                    "ours": ours_label,
                    "baseline": base,
                    "n": len(seeds),
                }
                for split in ("dev", "test"):
                    diffs = [ours[s][split] - other[s][split] for s in seeds]
                    row[f"{split}_mean_diff"] = statistics.fmean(diffs)
                    row[f"{split}_ci_low"], row[f"{split}_ci_high"] = bootstrap_ci(diffs)
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
            _fmt(r[f"{s}_{k}"]) for s in ("dev", "test") for k in ("min", "max", "mean", "std")
        ]
        cells.append(_fmt(r["best_epoch_mean"], 1))
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
                f"{_fmt(r[f'{split}_mean_diff'])} [{_fmt(r[f'{split}_ci_low'])}, "
                f"{_fmt(r[f'{split}_ci_high'])}]"
            )
            cells.append(_fmt(r[f"{split}_p"], 3))
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


def write_report(
    root: Path,
    out: Path | None = None,
    tuned: dict[str, list[str]] | None = None,
    labels: list[str] | None = None,
) -> list[Path]:
    """Write Table 1 (md, csv), paired statistics (md, csv), αVIL's use of each task
    (:mod:`alphavil.alpha_use`) and figures of the runs under ``root`` (only ``labels`` when
    given); returns the paths."""
    out = out or Path(root) / "report"
    runs = collect_runs(root, labels)
    rows, pairs = table1(runs, tuned), paired(runs, tuned)
    paths = [out / "table1.md", out / "table1.csv", out / "paired.md", out / "paired.csv"]
    _write_text(paths[0], format_table(runs, tuned) + "\n")
    _write_csv(paths[1], rows)
    _write_text(paths[2], format_paired(pairs) + "\n")
    _write_csv(paths[3], pairs)
    targets = sorted({r["target"] for r in rows})
    alphavil_labels = label_order({r["label"] for r in runs if r["method"] == "alphavil"})
    checks = [c for t in targets for lab in alphavil_labels if (c := figure3_check(runs, t, lab))]
    _write_text(out / "figure3_check.md", "\n".join(f"- {c}" for c in checks) + "\n")
    paths.append(out / "figure3_check.md")
    use = alpha_use(runs)
    if use:
        _write_text(out / "alpha_use.md", format_alpha_use(use) + "\n")
        _write_csv(out / "alpha_use.csv", use)
        paths += [out / "alpha_use.md", out / "alpha_use.csv"]
    for target in targets:
        for lab in alphavil_labels:
            suffix = "" if lab == "alphavil" else f"_{lab}"
            p = alpha_weight_figure(runs, target, out / f"figure3_{target}{suffix}.png", lab)
            if p:
                paths.append(p)
        paths.append(dev_curve_figure(runs, target, out / f"dev_curves_{target}.png"))
    return paths
