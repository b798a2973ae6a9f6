"""Per-seed accuracies of every target task and configuration, and the statistics over seeds:
min/max/mean/std, paired differences with a 95% bootstrap CI and the Wilcoxon signed-rank p.

Accuracies are in percent, each read at the run's best *dev* snapshot for that task. Paired
comparisons pair runs by seed and give the mean difference, a 95% bootstrap confidence interval
of it (``scipy.stats.bootstrap``, percentile method, 10,000 resamples, fixed seed) and the
Wilcoxon signed-rank p (``scipy.stats.wilcoxon``). A *tuned* row picks, for every seed, the
candidate configuration with the best dev accuracy and reports that run (selection on dev
only).
"""

from __future__ import annotations

import math
import statistics
from collections import defaultdict
from typing import Any

import numpy as np

from alphavil.reports.labels import label_order

Table = dict[str, dict[str, dict[int, dict[str, float]]]]


def per_target(runs: list[dict[str, Any]], tuned: dict[str, list[str]] | None = None) -> Table:
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


def summary_stats(values: list[float]) -> dict[str, float]:
    return {
        "min": min(values),
        "max": max(values),
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values) if len(values) > 1 else math.nan,
    }


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
    for target, labels in sorted(per_target(runs, tuned).items()):
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
