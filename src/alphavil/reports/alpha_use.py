"""How much each task's update entered the model: αVIL's per-epoch α, read back from runs.

Line 10 of Algorithm 1 (Kurz et al., 2021) writes θ + Σ_t α_t δ_t back. An auxiliary task whose
α_t sits near 0 contributes nothing that epoch, whatever its task weight says; a target α well
below 1 is a shortened step of the target's own update. A task's *share* of an epoch's step is
|α_t|·‖δ_t‖ / Σ_s |α_s|·‖δ_s‖ (norms only: it ignores the directions' overlap). For every αVIL
configuration, target and auxiliary task this summarises over seeds: in how many epochs the
auxiliary task's share was at least ``on`` (the task was *used*; α_aux ≥ ``on`` for runs that did
not log ‖δ_t‖), its mean share and α, the target's own α at the first, middle and last epoch
(median over seeds) and the α fit's dev passes per epoch. Read from ``metrics.jsonl`` only.

    alphavil report runs/full --out docs/multimnist_full     # writes alpha_use.md / .csv
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from pathlib import Path
from typing import Any

from alphavil.runs import read_jsonl


def _records(run: dict[str, Any]) -> list[dict[str, Any]]:
    path = Path(run["path"]) / "metrics.jsonl"
    recs = read_jsonl(path) if path.exists() else []
    return [r for r in recs if "epoch" in r and isinstance(r.get("alpha"), dict)]


def _alpha_at(recs: list[dict[str, Any]], where: int, task: str) -> float:
    return float(recs[where]["alpha"].get(task, float("nan")))


def _share(rec: dict[str, Any], task: str) -> float | None:
    """``task``'s share of the step written back at this epoch; None without delta norms."""
    norms = rec.get("delta_norm")
    if not isinstance(norms, dict):
        return None
    alone = {t for t in norms if t.endswith(" alone")}  # the target branch's row
    c = float(rec.get("target_alone", 0.0))
    if set(norms) - alone != set(rec["alpha"]) or (alone and "target_alone" not in rec):
        return None
    parts = {t: abs(float(rec["alpha"][t])) * float(norms[t]) for t in rec["alpha"]}
    for row in alone:  # the target's update: (1 - c) of its joint share, c of the branch
        t = row.removesuffix(" alone")
        parts[t] = (1.0 - c) * float(norms[t]) + c * float(norms[row])
    total = sum(parts.values())
    return parts[task] / total if total > 0 else 0.0


def _mean_alone(per_seed: list[list[dict[str, Any]]]) -> float:
    """The mean share c of the target-alone branch (``alphavil.target_branch``); NaN without."""
    cs = [float(rec["target_alone"]) for recs in per_seed for rec in recs if "target_alone" in rec]
    return statistics.fmean(cs) if cs else float("nan")


def alpha_use(runs: list[dict[str, Any]], on: float = 0.1) -> list[dict[str, Any]]:
    """One row per (target, label, auxiliary task) of the αVIL runs that logged α.

    Columns: ``seeds``, ``epochs`` (mean logged epochs), ``epochs_on`` (mean over seeds of the
    epochs in which the task was used, see the module doc), ``share_mean`` (its mean share of
    the step; NaN without delta norms), ``alpha_aux_mean`` (mean α_aux over epochs and seeds),
    ``alpha_target_first`` / ``_mid`` / ``_last`` (median over seeds of the target's α at the
    first, middle and last logged epoch), ``fit_passes`` (mean dev passes per epoch) and
    ``target_alone_mean`` (the mean share c of the target-alone branch; NaN without one).

    Raises:
        ValueError: ``on`` is not positive.
    """
    if not on > 0:
        raise ValueError(f"on: the threshold for a used task must be > 0, got {on}")
    groups: dict[tuple[str, str], list[list[dict[str, Any]]]] = defaultdict(list)
    for r in runs:
        if r["method"] != "alphavil" or not r.get("target"):
            continue
        recs = _records(r)
        if recs:
            groups[(r["target"], r["label"])].append(recs)
    rows = []
    for (target, label), per_seed in sorted(groups.items()):
        aux = sorted({t for recs in per_seed for rec in recs for t in rec["alpha"]} - {target})
        firsts = [_alpha_at(recs, 0, target) for recs in per_seed]
        mids = [_alpha_at(recs, (len(recs) - 1) // 2, target) for recs in per_seed]
        lasts = [_alpha_at(recs, -1, target) for recs in per_seed]
        passes = [
            rec["alpha_fit"]["passes"]
            for recs in per_seed
            for rec in recs
            if isinstance(rec.get("alpha_fit"), dict) and "passes" in rec["alpha_fit"]
        ]
        for task in aux:
            mine = [[rec for rec in recs if task in rec["alpha"]] for recs in per_seed]
            # per record: its share of the step, or α_aux where the run logged no delta norms
            used = [
                [(_share(rec, task), float(rec["alpha"][task])) for rec in recs] for recs in mine
            ]
            shares = [sh for seed in used for sh, _ in seed]
            rows.append(
                {
                    "target": target,
                    "label": label,
                    "aux": task,
                    "seeds": len(per_seed),
                    "epochs": statistics.fmean(len(recs) for recs in per_seed),
                    "epochs_on": statistics.fmean(
                        sum((a if sh is None else sh) >= on for sh, a in seed) for seed in used
                    ),
                    "share_mean": (
                        float("nan")
                        if None in shares
                        else statistics.fmean(x for x in shares if x is not None)
                    ),
                    "alpha_aux_mean": statistics.fmean(a for seed in used for _, a in seed),
                    "alpha_target_first": statistics.median(firsts),
                    "alpha_target_mid": statistics.median(mids),
                    "alpha_target_last": statistics.median(lasts),
                    "fit_passes": statistics.fmean(passes) if passes else float("nan"),
                    "target_alone_mean": _mean_alone(per_seed),
                }
            )
    return rows


def format_alpha_use(rows: list[dict[str, Any]], on: float = 0.1) -> str:
    """Markdown table of :func:`alpha_use` rows."""
    head = (
        "| target | configuration | auxiliary task | seeds | epochs "
        f"| epochs used (share ≥ {on:g}) | mean share of the step | mean α_aux "
        "| α_target first / middle / last (median) "
        "| dev passes per epoch |\n"
        "|---|---|---|---|---|---|---|---|---|---|"
    )
    lines = [head]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['label']} | {r['aux']} | {r['seeds']} | {r['epochs']:.0f} "
            f"| {r['epochs_on']:.1f} | {r['share_mean']:.3f} | {r['alpha_aux_mean']:.3f} "
            f"| {r['alpha_target_first']:.2f} / {r['alpha_target_mid']:.2f} / "
            f"{r['alpha_target_last']:.2f} | {r['fit_passes']:.1f} |"
        )
    return "\n".join(lines)
