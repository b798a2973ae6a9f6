"""Statistics and tables for :mod:`alphavil.pareto.study`: per-arm summaries with bootstrap CIs,
paired MT2O − no-transfer differences with Wilcoxon p-values, and their Markdown tables.

Thin wrappers over ``scipy.stats.bootstrap`` (95% percentile CI, 5,000 resamples) and
``scipy.stats.wilcoxon`` (two-sided signed-rank test).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from alphavil.pareto.summary import epochs_to_fraction

__all__ = ["ci", "e95", "hv_auc", "markdown", "pair", "paired", "summarise"]


def ci(values: list[float]) -> tuple[float, float, float]:
    """Mean and 95% percentile-bootstrap CI (``scipy.stats.bootstrap``, 5,000 resamples)."""
    from scipy.stats import bootstrap

    x = np.asarray(values, dtype=float)
    if len(x) < 2 or np.ptp(x) == 0:
        return float(x.mean()), float(x.mean()), float(x.mean())
    res = bootstrap(
        (x,), np.mean, confidence_level=0.95, n_resamples=5000, method="percentile", rng=0
    )
    return float(x.mean()), float(res.confidence_interval.low), float(res.confidence_interval.high)


def e95(hv: list[float], target: float | None = None) -> float:
    """Epochs to 95% of the final (or ``target``) HV; censored at ``len(hv)`` if never."""
    e = epochs_to_fraction(hv, 0.95, target)
    return float(len(hv) if e is None else e)


def hv_auc(hv: list[float]) -> float:
    """Mean test HV over all evaluations, epoch 0 included: the study's validation criterion
    applied to the test curve; higher when a run gets good sooner, not only at the end."""
    return float(np.mean(hv))


def paired(a: list[float], b: list[float]) -> dict[str, Any]:
    """Paired differences a − b: mean, 95% bootstrap CI, Wilcoxon signed-rank p (two-sided)."""
    from scipy.stats import wilcoxon

    d = np.asarray(a, float) - np.asarray(b, float)
    mean, lo, hi = ci(d.tolist())
    p = float("nan") if np.all(d == 0) else float(wilcoxon(d).pvalue)
    return {"mean": mean, "ci": [lo, hi], "wilcoxon_p": p, "n": len(d)}


def _final(runs: list[dict[str, Any]], key: str) -> list[float] | None:
    """The last value of curve ``key`` of every run, or None where a run lacks it."""
    if any(not r.get(key) for r in runs):
        return None
    return [float(r[key][-1]) for r in runs]


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Per-arm statistics over the test seeds (runs that diverged are left out and counted)."""
    ok = [r for r in runs if r["status"] == "completed"]
    out: dict[str, Any] = {"diverged": len(runs) - len(ok)}
    if not ok:
        return out
    out["final_hv"] = ci([r["hv"][-1] for r in ok])
    for key, name in (
        ("hv_dev", "final_hv_dev"),
        ("igd_plus", "final_igd_plus"),
        ("subproblem_distance", "final_subproblem_distance"),
    ):
        vals = _final(ok, key)
        if vals is not None:
            out[name] = ci(vals)
    if all(r.get("scalarized_test") for r in ok):
        out["scalarized_test_mean"] = ci([float(np.mean(r["scalarized_test"])) for r in ok])
    out["epochs_to_95_own"] = ci([e95(r["hv"]) for r in ok])
    out["hv_auc"] = ci([hv_auc(r["hv"]) for r in ok])
    out["never_positive"] = sum(r["hv"][-1] <= 0 for r in ok)
    out["seconds"] = float(np.mean([r["seconds"] for r in ok]))
    return out


def pair(ra: list[dict[str, Any]], rb: list[dict[str, Any]]) -> dict[str, Any]:
    """Paired comparison of two arms' test runs (same seeds, same order)."""
    keep = [i for i in range(len(ra)) if ra[i]["status"] == rb[i]["status"] == "completed"]
    ra, rb = [ra[i] for i in keep], [rb[i] for i in keep]
    if not ra:
        return {}
    target = max(np.mean([r["hv"][-1] for r in ra]), np.mean([r["hv"][-1] for r in rb]))
    out: dict[str, Any] = {
        "final_hv": paired([r["hv"][-1] for r in ra], [r["hv"][-1] for r in rb]),
        "epochs_to_95_own": paired([e95(r["hv"]) for r in ra], [e95(r["hv"]) for r in rb]),
        "epochs_to_95_common": paired(
            [e95(r["hv"], target) for r in ra], [e95(r["hv"], target) for r in rb]
        ),
        "common_target_hv": 0.95 * float(target),
        "hv_auc": paired([hv_auc(r["hv"]) for r in ra], [hv_auc(r["hv"]) for r in rb]),
    }
    for key, name in (
        ("igd_plus", "final_igd_plus"),
        ("subproblem_distance", "final_subproblem_distance"),
    ):
        a, b = _final(ra, key), _final(rb, key)
        if a is not None and b is not None:
            out[name] = paired(a, b)
    if all(r.get("scalarized_test") for r in ra + rb):
        k = len(ra[0]["scalarized_test"])
        out["scalarized_test_per_model"] = [
            paired([r["scalarized_test"][i] for r in ra], [r["scalarized_test"][i] for r in rb])
            for i in range(k)
        ]
    return out


def _fmt(c: list[float] | tuple[float, float, float] | None, digits: int = 4) -> str:
    if c is None:
        return "–"
    mean, lo, hi = c
    return f"{mean:.{digits}g} [{lo:.{digits}g}, {hi:.{digits}g}]"


def _cell(p: dict[str, Any] | None) -> str:
    if not p:
        return "–"
    return f"{p['mean']:+.3g} [{p['ci'][0]:+.3g}, {p['ci'][1]:+.3g}] p={p['wilcoxon_p']:.2g}"


def markdown(result: dict[str, Any]) -> str:
    """The per-arm table and the paired-comparison tables of one problem."""
    lines = [
        "| arm | lr (val) | final HV | final IGD+ | subproblem dist. "
        "| epochs to 95% own HV | HV-AUC | s/run |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for arm, r in result["arms"].items():
        edge = " (edge)" if r.get("lr_at_edge") else ""
        div = f", {r['diverged']} diverged" if r.get("diverged") else ""
        lines.append(
            f"| {arm} | {r['lr']:g}{edge}{div} | {_fmt(r.get('final_hv'))} | "
            f"{_fmt(r.get('final_igd_plus'))} | {_fmt(r.get('final_subproblem_distance'), 3)} | "
            f"{_fmt(r.get('epochs_to_95_own'), 3)} | {_fmt(r.get('hv_auc'))} | "
            f"{r.get('seconds', float('nan')):.1f} |"
        )
    pairs = result.get("pairs", {})
    if pairs:
        lines += [
            "",
            "| paired difference (MT2O − no transfer) | final HV | final IGD+ | subproblem dist. "
            "| epochs to 95% own HV | epochs to 95% common HV | HV-AUC |",
            "|---|---|---|---|---|---|---|",
        ]
        for name, p in pairs.items():
            lines.append(
                f"| {name.split('/')[-1]} | {_cell(p.get('final_hv'))} | "
                f"{_cell(p.get('final_igd_plus'))} | {_cell(p.get('final_subproblem_distance'))} "
                f"| {_cell(p.get('epochs_to_95_own'))} | {_cell(p.get('epochs_to_95_common'))} "
                f"| {_cell(p.get('hv_auc'))} |"
            )
        per_model = {
            n: p["scalarized_test_per_model"]
            for n, p in pairs.items()
            if p.get("scalarized_test_per_model")
        }
        for name, rows in per_model.items():
            lines += [
                "",
                f"Scalarised test loss per weight vector, {name} (negative: transfer better):",
                "",
                "| model k | paired difference [95% CI] |",
                "|---|---|",
                *(f"| {k} | {_cell(p)} |" for k, p in enumerate(rows)),
            ]
    return "\n".join(lines) + "\n"
