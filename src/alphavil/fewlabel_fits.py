"""What αVIL's fits did in a few-label study (docs/fewlabel), per study and auxiliary kind,
read from each run's metrics: the mean fitted α and target share, how often each whole update
leads the greedy merges and by how many dev examples, and the final task weights. Printed by
``python -m alphavil.fewlabel_compare alpha | firsts | leads | weights``."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from alphavil.fewlabel_folders import KINDS, markdown_table, study_name, target_runs
from alphavil.runs import read_jsonl

Values = Callable[[dict[str, Any], str], Iterator[tuple[str, float]]]


def records(run: dict[str, Any]) -> list[dict[str, Any]]:
    """A run's per-epoch metrics records (``metrics.jsonl``)."""
    return read_jsonl(run["path"] / "metrics.jsonl")


def mean_table(folders: list[Path], row: str, values: Values) -> str:
    """Per study and kind, the mean of each named value that ``values(run, target)`` yields
    over the runs of configuration ``row``."""
    body = []
    for folder in folders:
        target, runs = target_runs(folder)
        cells = []
        for kind in KINDS:
            seen: dict[str, list[float]] = {}
            for run in (r for r in runs if r["label"] == f"{kind}.{row}"):
                for name, v in values(run, target):
                    seen.setdefault(name, []).append(v)
            cells.append(", ".join(f"{t} {statistics.mean(v):.2f}" for t, v in seen.items()) or "–")
        body.append([study_name(folder), *cells])
    return markdown_table(["study", *KINDS], body)


def alpha_use(folders: list[Path], row: str, *, written: bool = False) -> str:
    """Mean fitted α of each auxiliary task over every epoch and seed of configuration ``row``
    (the fitted factors: ``alpha_fitted`` where the run averages or shrinks them; with
    ``written`` the factors written back), and the mean target branch share c (as written),
    step scale s and shrinkage strength λ where the runs record them."""

    def values(run: dict[str, Any], target: str) -> Iterator[tuple[str, float]]:
        for rec in records(run):
            alphas = (
                rec.get("alpha", {}) if written else rec.get("alpha_fitted", rec.get("alpha", {}))
            )
            yield from ((t, float(a)) for t, a in alphas.items() if t != target)
            for key, name in (("target_alone", "c"), ("step_scale", "s")):
                if key in rec:
                    yield name, float(rec[key])
            if "shrink" in rec:  # alphavil.shrink_folds: the cross-validated strength
                yield "λ", float(rec["shrink"]["strength"])

    return mean_table(folders, row, values)


def merge_firsts(folders: list[Path], row: str) -> str:
    """How often each whole update ranks first in the greedy merges (``alphavil.merge =
    "greedy"``) of configuration ``row``: its share of the fits, over every fit and seed."""

    def values(run: dict[str, Any], target: str) -> Iterator[tuple[str, float]]:
        for rec in records(run):
            ranking = rec.get("merge", {}).get("ranking", [])
            yield from ((name, float(i == 0)) for i, name in enumerate(ranking))

    return mean_table(folders, row, values)


def final_weights(folders: list[Path], row: str) -> str:
    """Mean final task weight (line 11, the target's is 1) of each auxiliary task over the
    seeds of configuration ``row``, per study and kind."""

    def values(run: dict[str, Any], target: str) -> Iterator[tuple[str, float]]:
        weights = run["summary"].get("final_weights", {})
        yield from ((t, float(w)) for t, w in weights.items() if t != target)

    return mean_table(folders, row, values)


def merge_leads(folders: list[Path], row: str) -> str:
    """Per study and kind, the greedy merges of configuration ``row`` where an update other
    than the joint pass scores best on dev: how many of the fits, the median lead of its dev
    accuracy over the joint pass's in dev examples (0: equal accuracy, the lower loss), the
    share it leads by at most two examples, and, where the runs test the margin
    (``alphavil.merge_margin``), the share that passes it."""
    body = []
    for folder in folders:
        _, runs = target_runs(folder)
        cells = []
        for kind in KINDS:
            fits, leads, passed = 0, [], []
            for run in (r for r in runs if r["label"] == f"{kind}.{row}"):
                dev = run["config"].get("data", {}).get("budget", {}).get("dev")
                if not dev:
                    raise ValueError(f"{run['path']}: no data.budget.dev to count dev examples")
                for rec in records(run):
                    merge = rec.get("merge")
                    if not merge:
                        continue
                    fits += 1
                    scores = merge["scores"]
                    best = max(scores, key=lambda n: tuple(scores[n]))
                    if best == "joint":
                        continue
                    leads.append(round((scores[best][0] - scores["joint"][0]) * dev))
                    if "margin" in merge:
                        passed.append(float(merge["margin"]["beats"]))
            if not fits:
                cells.append("–")
                continue
            cell = f"{len(leads)}/{fits}"
            if leads:
                small = sum(x <= 2 for x in leads) / len(leads)
                cell += f", median {statistics.median(leads):g}, ≤ 2: {small:.2f}"
            if passed:
                cell += f", passes {statistics.mean(passed):.2f}"
            cells.append(cell)
        body.append([study_name(folder), *cells])
    return markdown_table(["study", *KINDS], body)
