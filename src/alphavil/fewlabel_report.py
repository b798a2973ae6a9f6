"""The few-label benchmark's report: per auxiliary kind, every method against single-task,
multitask and the best other method, paired by seed, from the runs of a study folder.

A study folder holds runs labelled ``<kind>.<method>`` (``coarse.alphavil``, ``random.multitask``,
...: the auxiliary kind and the configuration) and the controls that train the target alone
(``single``, ``single-lr*``, ``alphavil-T1``), which belong to every kind. For each kind:
target test accuracy at the best dev epoch (mean ± std over seeds, and seconds per run), and the
paired differences with 95% bootstrap CIs against single-task (the dev-tuned row ``single-tuned``:
per seed the lr of the ``single*`` runs with the best dev accuracy), against multitask, and
against the best other configuration of the kind (highest mean test accuracy). Then the
information test (each method with the informative coarse-label task minus the same method with
the random-label one), the check of the default αVIL against the better of single-task and
multitask, and the auxiliary tasks' share of αVIL's written step (:mod:`alphavil.alpha_use`).

    python -m alphavil.fewlabel_report runs/fewlabel/multimnist-n1000 \
        --out docs/fewlabel/multimnist-n1000
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from alphavil.alpha_use import alpha_use
from alphavil.report import bootstrap_ci, collect_runs
from alphavil.runs import atomic_write

Scores = dict[int, dict[str, float]]  # seed -> {"dev", "test", "seconds", "epoch"}
CONTROLS = "target alone"  # the kind of the runs that train the target alone
KIND_ORDER = ("coarse", "random", "related", "mixed")  # the headline's auxiliary kinds


def split_label(label: str) -> tuple[str, str]:
    """``"coarse.alphavil"`` -> ("coarse", "alphavil"); a control (``single-lr0.025``: its
    prefix is not a name) -> (CONTROLS, label)."""
    kind, dot, method = label.partition(".")
    return (kind, method) if dot and kind.isidentifier() else (CONTROLS, label)


def scores(runs: list[dict[str, Any]], target: str) -> dict[str, dict[str, Scores]]:
    """kind -> configuration -> seed -> the target's scores at its best dev epoch (in %)."""
    out: dict[str, dict[str, Scores]] = defaultdict(lambda: defaultdict(dict))
    for r in runs:
        best = r["summary"].get("best", {}).get(target)
        if best is None or best.get("test_accuracy") is None:
            continue
        kind, method = split_label(r["label"])
        out[kind][method][r["seed"]] = {
            "dev": 100.0 * best["dev_accuracy"],
            "test": 100.0 * best["test_accuracy"],
            "epoch": float(best.get("epoch", math.nan)),
            "seconds": float(r["summary"].get("seconds", math.nan)),
        }
    controls = out.get(CONTROLS, {})
    singles = [m for m in controls if m == "single" or m.startswith("single-lr")]
    if len(singles) > 1:
        seeds = set.intersection(*(set(controls[m]) for m in singles))
        controls["single-tuned"] = {
            s: controls[max(singles, key=lambda m: controls[m][s]["dev"])][s] for s in seeds
        }
    return out


def paired_diff(a: Scores, b: Scores) -> dict[str, Any]:
    """Mean and 95% bootstrap CI of a − b (test, points) over the seeds both have."""
    seeds = sorted(set(a) & set(b))
    diffs = [a[s]["test"] - b[s]["test"] for s in seeds]
    if not diffs:
        return {"n": 0, "mean": math.nan, "low": math.nan, "high": math.nan, "wins": 0}
    low, high = bootstrap_ci(diffs) if len(diffs) > 1 else (math.nan, math.nan)
    wins = sum(d > 0 for d in diffs)
    return {
        "n": len(diffs),
        "mean": statistics.fmean(diffs),
        "low": low,
        "high": high,
        "wins": wins,
    }


def mean_score(s: Scores, key: str = "test") -> float:
    """The mean of one score (test by default) over a configuration's seeds."""
    return statistics.fmean(v[key] for v in s.values()) if s else math.nan


def _fmt_diff(d: dict[str, Any]) -> str:
    if not d["n"]:
        return "–"
    ci = "" if math.isnan(d["low"]) else f" [{d['low']:+.2f}, {d['high']:+.2f}]"
    return f"{d['mean']:+.2f}{ci} ({d['wins']}/{d['n']})"


def kind_rows(table: dict[str, dict[str, Scores]], kind: str) -> list[dict[str, Any]]:
    """One row per configuration of ``kind`` plus the target-alone controls."""
    configs = {**table.get(CONTROLS, {}), **table.get(kind, {})}
    single, multi = (
        configs.get("single-tuned") or configs.get("single", {}),
        configs.get("multitask", {}),
    )
    rows = []
    for name, s in sorted(configs.items(), key=lambda kv: -mean_score(kv[1])):
        others = {m: o for m, o in table.get(kind, {}).items() if m != name}
        best_other = max(others, key=lambda m: mean_score(others[m]), default=None)
        values = [v["test"] for v in s.values()]
        rows.append(
            {
                "kind": kind,
                "config": name,
                "seeds": len(s),
                "test_mean": statistics.fmean(values),
                "test_std": statistics.stdev(values) if len(values) > 1 else math.nan,
                "dev_mean": mean_score(s, "dev"),
                "best_epoch": mean_score(s, "epoch"),
                "seconds": mean_score(s, "seconds"),
                "vs_single": paired_diff(s, single)
                if name not in ("single", "single-tuned")
                else None,
                "vs_multitask": paired_diff(s, multi) if name != "multitask" else None,
                "best_other": best_other,
                "vs_best_other": paired_diff(s, others[best_other]) if best_other else None,
            }
        )
    return rows


def verdict(
    table: dict[str, dict[str, Scores]],
    kind: str,
    method: str = "alphavil",
    multitask: str = "multitask",
) -> str:
    """The acceptance check: ``method``'s mean against the better of single-task and multitask
    (never more than 0.3 below; at least as good where the two differ by >= 2 points), all
    three averaged over the seeds they share. ``multitask`` names the equal-weight row (e.g.
    ``multitask-sum``, equal weights on the summed losses)."""
    found = bar_numbers(table, kind, method, multitask)
    if isinstance(found, str):
        return f"{kind}: {found}"
    ours, s, m, need, n = found
    ok = "meets" if ours >= need else "misses"
    return (
        f"{kind}: {method} {ours:.2f} vs single {s:.2f}, {multitask} {m:.2f} (the {n} "
        f"seeds all three have); needs >= {need:.2f}: {ok}"
    )


def bar_numbers(
    table: dict[str, dict[str, Scores]], kind: str, method: str, multitask: str = "multitask"
) -> tuple[float, float, float, float, int] | str:
    """:func:`verdict`'s numbers: ``method``'s, single-task's and ``multitask``'s means over
    the seeds all three share, what the bar needs, and how many seeds; or why there are none."""
    controls, own = table.get(CONTROLS, {}), table.get(kind, {})
    single = controls.get("single-tuned") or controls.get("single")
    if method not in own or not single or multitask not in own:
        return "not enough runs"
    seeds = set(own[method]) & set(single) & set(own[multitask])  # paired: the same draws
    if not seeds:
        return f"no seed has all three of {method}, single-task and {multitask}"

    def on(rows: Scores) -> Scores:
        return {k: v for k, v in rows.items() if k in seeds}

    ours, s, m = (
        mean_score(on(own[method])),
        mean_score(on(single)),
        mean_score(on(own[multitask])),
    )
    better, gap = max(s, m), abs(s - m)
    need = better if gap >= 2 else better - 0.3
    return ours, s, m, need, len(seeds)


def information(table: dict[str, dict[str, Scores]]) -> list[str]:
    """Each method with the coarse-label auxiliary task minus with the random-label one."""
    coarse, rand = table.get("coarse", {}), table.get("random", {})
    return [
        f"| {m} | {_fmt_diff(paired_diff(coarse[m], rand[m]))} |"
        for m in sorted(set(coarse) & set(rand))
    ]


def _row(cells: list[Any]) -> str:
    return "| " + " | ".join(str(c) for c in cells) + " |"


HEAD = ["configuration", "seeds", "test", "dev", "best epoch", "s/run"]
HEAD += ["− single-tuned", "− multitask", "− best other"]
SHARE_HEAD = [
    "configuration",
    "auxiliary task",
    "seeds",
    "mean share",
    "epochs used",
    "mean α_aux",
    "mean c (target alone)",
]


EARLY_EPOCH = 4  # the learning-speed table: the target's test accuracy after this epoch


def early_accuracy(
    runs: list[dict[str, Any]], target: str, epoch: int = EARLY_EPOCH
) -> dict[str, dict[str, list[float]]]:
    """kind -> configuration -> the target's test accuracy (%) after ``epoch`` of each run (from
    its metrics.jsonl; runs with fewer epochs left out): how fast each method learns."""
    out: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for r in runs:
        path = Path(r["path"]) / "metrics.jsonl"
        if not path.is_file():
            continue
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec.get("epoch") == epoch:
                score = rec.get("test", {}).get(target, {}).get("accuracy")
                if score is not None:
                    kind, method = split_label(r["label"])
                    out[kind][method].append(100.0 * score)
                break
    return out


def format_report(runs: list[dict[str, Any]], target: str) -> str:
    """The markdown report of a study folder's runs (see the module doc)."""
    table = scores(runs, target)
    kinds: list[str] = [k for k in KIND_ORDER if k in table]
    kinds += sorted(k for k in table if k not in kinds and k != CONTROLS)
    lines = [
        f"Target `{target}`: test accuracy (%) at the best dev epoch (dev: the dev accuracy",
        "there, what model selection and the choice of defaults read); differences in points",
        "(test), paired by seed: mean [95% bootstrap CI] (seeds where the row is higher / seeds).",
        "",
    ]
    for kind in kinds:
        lines += [f"### Auxiliary kind: {kind}", "", _row(HEAD), _row(["---"] * len(HEAD))]
        for r in kind_rows(table, kind):
            std = "" if math.isnan(r["test_std"]) else f" ± {r['test_std']:.2f}"
            diffs = [_fmt_diff(r[k]) if r[k] else "–" for k in ("vs_single", "vs_multitask")]
            other = f"{_fmt_diff(r['vs_best_other'])} ({r['best_other']})"
            lines.append(
                _row(
                    [
                        r["config"],
                        r["seeds"],
                        f"{r['test_mean']:.2f}{std}",
                        f"{r['dev_mean']:.2f}",
                        f"{r['best_epoch']:.1f}",
                        f"{r['seconds']:.0f}",
                        *diffs,
                        other if r["best_other"] else "–",
                    ]
                )
            )
        lines.append("")
    early = early_accuracy(runs, target)
    if early:
        lines += [
            f"### Learning speed: the target's test accuracy after epoch {EARLY_EPOCH}",
            "",
            "| auxiliary kind | configuration | runs | mean test % |",
            "|---|---|---|---|",
        ]
        for kind in [CONTROLS, *kinds]:
            for name, vals in sorted(
                early.get(kind, {}).items(), key=lambda kv: -statistics.fmean(kv[1])
            ):
                lines.append(_row([kind, name, len(vals), f"{statistics.fmean(vals):.1f}"]))
        lines.append("")
    lines += ["### The default αVIL against the better of single-task and multitask", ""]
    lines += [f"* {verdict(table, k)}" for k in kinds] + [""]
    info = information(table)
    if info:
        lines += ["### Information test: coarse-label minus random-label auxiliary task", ""]
        lines += ["| configuration | coarse − random |", "|---|---|", *info, ""]
    share = alpha_use(runs)
    if share:
        lines += ["### Auxiliary tasks' share of αVIL's written step (|α_t|·‖δ_t‖ / Σ)", ""]
        lines += [_row(SHARE_HEAD), _row(["---"] * len(SHARE_HEAD))]
        for r in share:
            used = f"{r['epochs_on']:.1f} / {r['epochs']:.0f}"
            lines.append(
                _row(
                    [
                        r["label"],
                        r["aux"],
                        r["seeds"],
                        f"{r['share_mean']:.3f}",
                        used,
                        f"{r['alpha_aux_mean']:.3f}",
                        "–"
                        if math.isnan(r["target_alone_mean"])
                        else f"{r['target_alone_mean']:.3f}",
                    ]
                )
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("runs", help="a study folder of run directories")
    p.add_argument("--out", help="folder for report.md and scores.json (default: print)")
    p.add_argument("--target", default="left")
    p.add_argument(
        "--figure",
        nargs="+",
        metavar="STUDY",
        help="also draw gain_vs_budget.png from these study folders (one per budget N)",
    )
    p.add_argument(
        "--figure-rows",
        nargs="+",
        metavar="CONFIG",
        help="only these configurations in the figure (default: every one at two budgets)",
    )
    a = p.parse_args(argv)
    try:
        runs = collect_runs(Path(a.runs))
    except ValueError as err:
        print(f"alphavil: error: {err}", file=sys.stderr)
        return 2
    if not runs:
        print(
            f"alphavil: error: {a.runs}: no completed runs (folders with summary.json)",
            file=sys.stderr,
        )
        return 2
    text = format_report(runs, a.target)
    if a.out is None:
        print(text, end="")
        return 0
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write(out / "report.md", lambda f: f.write(text.encode()))
    table = json.dumps(scores(runs, a.target), indent=1, sort_keys=True)
    atomic_write(out / "scores.json", lambda f: f.write(table.encode()))
    print(out / "report.md")
    if a.figure:
        from alphavil.fewlabel_figure import gain_figure  # it builds on this module

        try:
            studies = [collect_runs(Path(d)) for d in a.figure]
        except ValueError as err:
            print(f"alphavil: error: {err}", file=sys.stderr)
            return 2
        fig = gain_figure(studies, a.target, out / "gain_vs_budget.png", a.figure_rows)
        print(fig or "no figure: the study folders have no label budget or no single-task runs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
