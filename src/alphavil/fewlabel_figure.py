"""The few-label figure (docs/fewlabel): each configuration's gain over dev-tuned single-task
against the target's label budget N, one panel per auxiliary kind, from one study folder per
budget (the report's paired differences, :mod:`alphavil.fewlabel_report`)."""

from __future__ import annotations

import math
from collections import defaultdict
from pathlib import Path
from typing import Any

from alphavil.fewlabel_report import CONTROLS, KIND_ORDER, paired_diff, scores
from alphavil.plots import pyplot, save_figure


def budget_of(runs: list[dict[str, Any]]) -> int | None:
    """The target's label budget N of a study folder's runs (None without a budget)."""
    sizes = {(r["config"].get("data", {}).get("budget") or {}).get("target") for r in runs}
    return sizes.pop() if len(sizes) == 1 else None


def gain_points(
    studies: list[list[dict[str, Any]]], target: str
) -> dict[str, dict[str, list[tuple[int, dict[str, Any]]]]]:
    """Per auxiliary kind and configuration, (N, paired gain over dev-tuned single-task) for
    each study folder (one per budget N). With two or more budgets only configurations measured
    at two or more of them are kept: the figure is about the trend over N."""
    points: dict[str, dict[str, list[tuple[int, dict[str, Any]]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    budgets = set()
    for runs in studies:
        n, table = budget_of(runs), scores(runs, target)
        controls = table.get(CONTROLS, {})
        single = controls.get("single-tuned") or controls.get("single")
        if n is None or not single:
            continue
        budgets.add(n)
        for kind, configs in table.items():
            if kind == CONTROLS:
                continue
            for name, s in configs.items():
                d = paired_diff(s, single)
                if d["n"]:
                    points[kind][name].append((n, d))
    if len(budgets) > 1:
        for kind in points:
            points[kind] = defaultdict(
                list, {name: pts for name, pts in points[kind].items() if len(pts) > 1}
            )
    return {kind: dict(configs) for kind, configs in points.items() if configs}


def styles(names: list[str]) -> dict[str, dict[str, Any]]:
    """One look per configuration: the ten default colours, then the same colours with another
    marker and line style for the next ten, and so on, so that no two lines look alike."""
    markers, lines = ("o", "s", "^", "D"), ("-", "--", ":", "-.")
    return {
        name: {"color": f"C{i % 10}", "marker": markers[i // 10 % 4], "ls": lines[i // 10 % 4]}
        for i, name in enumerate(names)
    }


def gain_figure(
    studies: list[list[dict[str, Any]]],
    target: str,
    path: Path,
    rows: list[str] | None = None,
) -> Path | None:
    """Each configuration's gain over dev-tuned single-task (mean, 95% bootstrap CI) against the
    target's label budget N, one panel per auxiliary kind; one study folder per budget
    (:func:`gain_points`). ``rows``: only these configurations (all when None)."""
    points = gain_points(studies, target)
    if rows is not None:
        points = {k: {n: v for n, v in c.items() if n in rows} for k, c in points.items()}
        points = {k: c for k, c in points.items() if c}
    if not points:
        return None
    plt = pyplot()
    kinds = [k for k in KIND_ORDER if k in points] + sorted(set(points) - set(KIND_ORDER))
    names = sorted({name for kind in points.values() for name in kind})
    look = styles(names)
    fig, axes = plt.subplots(1, len(kinds), figsize=(4.2 * len(kinds), 3.6), squeeze=False)
    for ax, kind in zip(axes[0], kinds, strict=True):
        for name, pts in sorted(points[kind].items()):
            pts.sort(key=lambda p: p[0])
            xs = [p[0] for p in pts]
            ys = [p[1]["mean"] for p in pts]
            lo = [p[1]["mean"] - p[1]["low"] if not math.isnan(p[1]["low"]) else 0 for p in pts]
            hi = [p[1]["high"] - p[1]["mean"] if not math.isnan(p[1]["high"]) else 0 for p in pts]
            ax.errorbar(xs, ys, yerr=[lo, hi], capsize=3, label=name, **look[name])
        ax.axhline(0.0, color="grey", lw=0.8)
        ax.set_xscale("log")
        budgets = sorted({n for pts in points[kind].values() for n, _ in pts})
        ax.set_xticks(budgets, [str(n) for n in budgets])
        ax.minorticks_off()
        ax.set_title(f"auxiliary: {kind}")
        ax.set_xlabel("target labels N")
        ax.set_ylabel("test acc. − single-task (points)")
    from matplotlib.lines import Line2D

    proxies = [
        Line2D([], [], color=look[n]["color"], marker=look[n]["marker"], ls=look[n]["ls"])
        for n in names
    ]
    fig.legend(
        proxies,
        names,
        loc="lower center",
        ncol=min(len(names), 6),
        fontsize=8,
        bbox_to_anchor=(0.5, -0.17),
    )
    fig.suptitle("Gain over dev-tuned single-task, paired by seed (95% bootstrap CI)", y=1.03)
    return save_figure(fig, path)
