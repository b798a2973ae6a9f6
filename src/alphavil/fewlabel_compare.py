"""Few-label studies side by side (docs/fewlabel): per study folder, each configuration's mean
target test accuracy per auxiliary kind, paired differences against one configuration, the
mean fitted α of αVIL's auxiliary tasks and their final weights. The tables of
docs/fewlabel/README.md are its output::

    python -m alphavil.fewlabel_compare means STUDY --rows multitask alphavil
    python -m alphavil.fewlabel_compare paired STUDY... --rows alphavil-joint --against alphavil
    python -m alphavil.fewlabel_compare alpha STUDY... --row alphavil   # and c, s
    python -m alphavil.fewlabel_compare weights STUDY... --row alphavil # line 11's end point
    python -m alphavil.fewlabel_compare firsts STUDY... --row alphavil  # greedy merges' firsts
    python -m alphavil.fewlabel_compare leads STUDY... --row alphavil   # and by how much
    python -m alphavil.fewlabel_compare bar STUDY... --row alphavil-w03
    python -m alphavil.fewlabel_compare bar STUDY... --rows alphavil --seeds-beside seeds5-9
    python -m alphavil.fewlabel_compare curve STUDY... --label alphavil-T1 --keys alpha.left
    python -m alphavil.fewlabel_compare pick STUDY... --rows single-tuned multitask

Scores and paired bootstrap differences are :mod:`alphavil.fewlabel_report`'s; the target is
read from the runs' configs.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
from pathlib import Path
from typing import Any

from alphavil.fewlabel_fits import alpha_use, final_weights, merge_firsts, merge_leads
from alphavil.fewlabel_folders import KINDS, folder_beside, markdown_table, study_name, target_runs
from alphavil.fewlabel_report import (
    CONTROLS,
    Scores,
    bar_numbers,
    mean_score,
    paired_diff,
    scores,
    verdict,
)
from alphavil.report import collect_runs
from alphavil.runs import read_jsonl

# the loop's rule (the first of tied epochs), the lower dev loss, or the last of tied epochs
TIES = ("first", "loss", "last")


def reselect(
    run: dict[str, Any], target: str, every: int = 1, ties: str = "first"
) -> dict[str, Any]:
    """``run`` with its best dev epoch re-selected: among the epochs after every ``every``-th
    pass of training (an αVIL run with ``passes`` = p evaluates after every p-th), the highest
    dev accuracy, ties going to the first epoch (``ties = "first"``, as the loop picks), to
    the lower dev loss and then the first (``"loss"``), or to the last epoch (``"last"``)."""
    if ties not in TIES:
        raise ValueError(f"ties: expected one of {', '.join(TIES)}, got {ties!r}")
    cfg = run["config"]
    passes = cfg.get("alphavil", {}).get("passes", 1) if cfg["train"]["method"] == "alphavil" else 1
    kept = [
        rec
        for rec in read_jsonl(run["path"] / "metrics.jsonl")
        if target in rec.get("dev", {}) and rec["epoch"] * passes % every == 0
    ]
    if not kept:
        return {**run, "summary": {**run["summary"], "best": {}}}

    def key(rec: dict[str, Any]) -> tuple[float, ...]:
        dev = rec["dev"][target]
        if ties in ("first", "last"):
            return (dev["accuracy"], -rec["epoch"] if ties == "first" else rec["epoch"])
        loss = dev.get("loss")  # a missing or non-finite loss loses the tie (as score_key)
        neg_loss = -loss if loss is not None and math.isfinite(loss) else -math.inf
        return (dev["accuracy"], neg_loss, -rec["epoch"])

    best = max(kept, key=key)
    chosen = {
        "epoch": best["epoch"],
        "dev_accuracy": best["dev"][target]["accuracy"],
        "test_accuracy": best["test"][target]["accuracy"],
    }
    return {**run, "summary": {**run["summary"], "best": {target: chosen}}}


def study_scores(
    folder: Path,
    every: int = 1,
    ties: str = "first",
    rerun: Path | None = None,
    more: Path | None = None,
) -> tuple[str, dict[str, dict[str, Scores]]]:
    """A study folder's target and its scores table (:func:`alphavil.fewlabel_report.scores`);
    with ``every`` > 1 or another ``ties`` rule each run's best epoch re-selected
    (:func:`reselect`), so that rows evaluated on different schedules, or under another tie
    rule, compare; ``rerun``, ``more``: :func:`alphavil.fewlabel_folders.target_runs`."""
    target, runs = target_runs(folder, rerun, more)
    if every > 1 or ties != "first":
        runs = [reselect(r, target, every, ties) for r in runs]
    return target, scores(runs, target)


def means(folder: Path, rows: list[str], every: int = 1, ties: str = "first") -> str:
    """Mean test accuracy (seeds) per kind: the dev-tuned single-task row, then ``rows``
    (``every``, ``ties``: :func:`study_scores`)."""
    _, table = study_scores(folder, every, ties)
    single = table.get(CONTROLS, {}).get("single-tuned")
    body = []
    for kind in KINDS:
        own = table.get(kind, {})
        cells = [f"{mean_score(own[r]):.2f} ({len(own[r])})" if r in own else "–" for r in rows]
        first = f"{mean_score(single):.2f} ({len(single)})" if single else "–"
        body.append([kind, first, *cells])
    return markdown_table(["kind", "single (dev-tuned)", *rows], body)


def paired(
    folders: list[Path],
    rows: list[str],
    against: str,
    every: int = 1,
    ties: str = "first",
    rerun: Path | None = None,
    beside: str | None = None,
    seeds: str | None = None,
) -> str:
    """Each row minus ``against`` per study and kind, paired by seed: test mean [95% bootstrap
    CI] (seeds higher / seeds) and the mean dev difference (``every``, ``ties``, ``rerun``:
    :func:`study_scores`; ``rerun`` needs one study; ``beside``: each study's reruns from the
    folder of that name beside its runs, :func:`~alphavil.fewlabel_folders.folder_beside`;
    ``seeds``: each study's further seeds from the folder of that name beside its runs)."""
    if rerun is not None and len(folders) != 1:
        raise ValueError(f"--rerun replaces one study's runs; got {len(folders)} studies")
    if rerun is not None and beside is not None:
        raise ValueError("give --rerun or --rerun-beside, not both")
    body = []
    for folder in folders:
        _, table = study_scores(
            folder, every, ties, rerun or folder_beside(folder, beside), _more(folder, seeds)
        )
        for kind in KINDS:
            own = table.get(kind, {})
            cells = []
            for r in rows:
                if r not in own or against not in own or not set(own[r]) & set(own[against]):
                    cells.append("–")
                    continue
                d = paired_diff(own[r], own[against])
                both = [s for s in own[r] if s in own[against]]
                dev = sum(own[r][s]["dev"] - own[against][s]["dev"] for s in both) / len(both)
                ci = f" [{d['low']:+.2f}, {d['high']:+.2f}]" if d["n"] > 2 else ""
                cells.append(f"{d['mean']:+.2f}{ci} ({d['wins']}/{d['n']}); dev {dev:+.2f}")
            body.append([study_name(folder), kind, *cells])
    return markdown_table(["study", "kind", *(f"{r} − {against}" for r in rows)], body)


def _more(folder: Path, seeds: str | None) -> Path | None:
    return folder_beside(folder, seeds, "--seeds-beside")


def _read(
    folder: Path, ties: str, beside: str | None, seeds: str | None
) -> tuple[str, dict[str, dict[str, Scores]]]:
    return study_scores(
        folder, ties=ties, rerun=folder_beside(folder, beside), more=_more(folder, seeds)
    )


def bar(
    folders: list[Path],
    row: str,
    multitask: str = "multitask",
    ties: str = "first",
    beside: str | None = None,
    seeds: str | None = None,
) -> str:
    """The issue's bar for configuration ``row`` per study and kind
    (:func:`alphavil.fewlabel_report.verdict`; ``multitask``: the equal-weight row; ``ties``:
    :func:`study_scores`; ``beside``, ``seeds``: as in :func:`paired`)."""
    lines = []
    for folder in folders:
        _, table = _read(folder, ties, beside, seeds)
        name = study_name(folder)
        lines += [f"* {name}, {verdict(table, kind, row, multitask)}" for kind in KINDS]
    return "\n".join(lines)


def bar_table(
    folders: list[Path],
    rows: list[str],
    multitask: str = "multitask",
    ties: str = "first",
    beside: str | None = None,
    seeds: str | None = None,
) -> str:
    """The issue's bar for several configurations side by side: per study and kind, each
    row's mean, what the bar needs on that row's seeds (shared with single-task and
    ``multitask``) and the verdict, with the cells that meet it counted in the last line
    (``ties``: every run's best epoch under that tie rule, :func:`study_scores`; ``beside``,
    ``seeds``: as in :func:`paired`)."""
    body, met, measured = [], dict.fromkeys(rows, 0), dict.fromkeys(rows, 0)
    for folder in folders:
        _, table = _read(folder, ties, beside, seeds)
        for kind in KINDS:
            cells = [study_name(folder), kind]
            for row in rows:
                found = bar_numbers(table, kind, row, multitask)
                if isinstance(found, str):
                    cells.append("–")
                    continue
                ours, _, _, need, n = found
                measured[row] += 1
                met[row] += ours >= need
                verdict = "meets" if ours >= need else f"misses by {need - ours:.2f}"
                cells.append(f"{ours:.2f} / {need:.2f} ({n}): {verdict}")
            body.append(cells)
    body.append(["cells met", "", *(f"{met[r]} of {measured[r]}" for r in rows)])
    return markdown_table(["study", "kind", *(f"{r} / needs (seeds)" for r in rows)], body)


def dev_pick(
    folders: list[Path],
    rows: list[str],
    multitask: str = "multitask",
    beside: str | None = None,
    seeds: str | None = None,
) -> str:
    """The bar (against the equal-weight row ``multitask``) for a row made by choosing, per
    seed, whichever of ``rows`` has the higher dev accuracy (the first on ties): what training
    every candidate and keeping the best on dev would score. Rows are configurations of the
    kind or controls (``single-tuned``); ``beside``, ``seeds``: as in :func:`paired`."""
    lines = []
    for folder in folders:
        _, table = _read(folder, "first", beside, seeds)
        controls = table.get(CONTROLS, {})
        for kind in KINDS:
            own = table.get(kind, {})
            found = [f for r in rows if (f := own.get(r) or controls.get(r))]
            if len(found) < len(rows) or multitask not in own:
                lines.append(f"* {study_name(folder)}, {kind}: not enough runs")
                continue
            common = set.intersection(*(set(f) for f in found))
            name = "pick(" + ", ".join(rows) + ")"
            own[name] = {s: max((f[s] for f in found), key=lambda v: v["dev"]) for s in common}
            lines.append(f"* {study_name(folder)}, {verdict(table, kind, name, multitask)}")
    return "\n".join(lines)


def _lookup(rec: dict[str, Any], key: str) -> float | None:
    """``rec["dev"]["left"]["loss"]`` for ``"dev.left.loss"`` (a number indexes a list:
    ``"merge.scores.joint.0"``); None where a part is missing."""
    node: Any = rec
    for part in key.split("."):
        if isinstance(node, list) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return None
    return float(node) if isinstance(node, int | float) else None


def curve(folders: list[Path], label: str, keys: list[str], every: int = 3) -> str:
    """Per study and key, the mean over the seeds of runs labelled ``label`` of a metrics value
    (a dotted path into each epoch's record, e.g. ``alpha.left`` or ``dev.left.loss``) at
    epochs 1, 1 + every, ... and the last, and over every epoch and seed (``all``)."""
    body, epochs_seen = [], set()
    rows: list[tuple[str, str, dict[int, float], float]] = []
    for folder in folders:
        runs = [r for r in collect_runs(folder) if r["label"] == label]
        if not runs:
            raise ValueError(f"{folder}: no completed runs labelled {label!r}")
        records = [rec for r in runs for rec in read_jsonl(r["path"] / "metrics.jsonl")]
        for key in keys:
            per: dict[int, list[float]] = {}
            for rec in records:
                v = _lookup(rec, key)
                if v is not None and "epoch" in rec:
                    per.setdefault(int(rec["epoch"]), []).append(v)
            means = {e: statistics.fmean(v) for e, v in per.items()}
            every_value = [x for v in per.values() for x in v]
            overall = statistics.fmean(every_value) if every_value else float("nan")
            rows.append((study_name(folder), f"{label} {key} ({len(runs)})", means, overall))
            epochs_seen |= set(means)
    last = max(epochs_seen, default=1)
    cols = sorted({e for e in epochs_seen if (e - 1) % every == 0} | {last})
    for study, key, means, overall in rows:
        cells = [f"{means[e]:.2f}" if e in means else "–" for e in cols]
        body.append([study, key, *cells, f"{overall:.2f}"])
    return markdown_table(
        ["study", "run label, value (seeds)", *(f"e{e}" for e in cols), "all"], body
    )


EVERY_HELP = "re-select each run's best epoch as if evaluated after every k-th pass only"
TIES_HELP = (
    "among epochs of equal dev accuracy: the first (the loop's rule), the lower dev loss, or "
    "the last"
)


BESIDE_HELP = (
    "in each study, the runs of the folder NAME beside its runs folder (e.g. host_rerun: made "
    "again on another host) replace their namesakes"
)
SEEDS_HELP = (
    "in each study, the runs of the folder NAME beside its runs folder (e.g. seeds5-9) are "
    "more seeds of its rows, added to them (a name in both is an error)"
)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        prog="python -m alphavil.fewlabel_compare", description=__doc__.split("\n\n")[0]
    )
    sub = p.add_subparsers(dest="what", required=True)
    m = sub.add_parser("means", help="mean test accuracy per kind")
    m.add_argument("study", type=Path)
    m.add_argument("--rows", nargs="+", required=True)
    m.add_argument("--every", type=int, default=1, help=EVERY_HELP)
    m.add_argument("--ties", choices=TIES, default="first", help=TIES_HELP)
    pd = sub.add_parser("paired", help="paired differences against one configuration")
    pd.add_argument("studies", type=Path, nargs="+")
    pd.add_argument("--rows", nargs="+", required=True)
    pd.add_argument("--against", default="alphavil")
    pd.add_argument("--every", type=int, default=1, help=EVERY_HELP)
    pd.add_argument("--ties", choices=TIES, default="first", help=TIES_HELP)
    pd.add_argument(
        "--rerun",
        type=Path,
        help="a folder of the study's runs made again (another host): each replaces its namesake",
    )
    pd.add_argument("--rerun-beside", metavar="NAME", help=BESIDE_HELP)
    pd.add_argument("--seeds-beside", metavar="NAME", help=SEEDS_HELP)
    a = sub.add_parser("alpha", help="mean fitted α of the auxiliary tasks")
    a.add_argument("studies", type=Path, nargs="+")
    a.add_argument("--row", default="alphavil")
    a.add_argument("--written", action="store_true", help="the factors written back (line 10)")
    f = sub.add_parser("firsts", help="how often each update ranks first in greedy merges")
    f.add_argument("studies", type=Path, nargs="+")
    f.add_argument("--row", default="alphavil")
    ld = sub.add_parser("leads", help="by how many dev examples the merges leave the joint pass")
    ld.add_argument("studies", type=Path, nargs="+")
    ld.add_argument("--row", default="alphavil")
    w = sub.add_parser("weights", help="mean final weight of the auxiliary tasks")
    w.add_argument("studies", type=Path, nargs="+")
    w.add_argument("--row", default="alphavil")
    b = sub.add_parser("bar", help="the acceptance bar per kind")
    b.add_argument("studies", type=Path, nargs="+")
    b.add_argument("--row", default="alphavil")
    b.add_argument("--rows", nargs="+", help="several rows side by side, as a table")
    b.add_argument("--multitask", default="multitask", help="the equal-weight row to compare")
    b.add_argument("--ties", choices=TIES, default="first", help=TIES_HELP)
    b.add_argument("--rerun-beside", metavar="NAME", help=BESIDE_HELP)
    b.add_argument("--seeds-beside", metavar="NAME", help=SEEDS_HELP)
    c = sub.add_parser("curve", help="per-epoch mean of a metrics value over a row's seeds")
    c.add_argument("studies", type=Path, nargs="+")
    c.add_argument("--label", required=True, help="a run label, e.g. coarse.alphavil")
    c.add_argument("--keys", nargs="+", required=True, help="e.g. alpha.left dev.left.loss")
    c.add_argument("--every", type=int, default=3, help="print every k-th epoch (and the last)")
    k = sub.add_parser("pick", help="the bar for a per-seed choice on dev between rows")
    k.add_argument("studies", type=Path, nargs="+")
    k.add_argument("--rows", nargs="+", default=["single-tuned", "multitask"])
    k.add_argument("--multitask", default="multitask", help="the equal-weight row to compare")
    k.add_argument("--rerun-beside", metavar="NAME", help=BESIDE_HELP)
    k.add_argument("--seeds-beside", metavar="NAME", help=SEEDS_HELP)
    args = p.parse_args(argv)
    try:
        if args.what == "means":
            print(means(args.study, args.rows, args.every, args.ties))
        elif args.what == "paired":
            print(
                paired(
                    args.studies,
                    args.rows,
                    args.against,
                    args.every,
                    args.ties,
                    args.rerun,
                    args.rerun_beside,
                    args.seeds_beside,
                )
            )
        elif args.what == "alpha":
            print(alpha_use(args.studies, args.row, written=args.written))
        elif args.what == "firsts":
            print(merge_firsts(args.studies, args.row))
        elif args.what == "leads":
            print(merge_leads(args.studies, args.row))
        elif args.what == "weights":
            print(final_weights(args.studies, args.row))
        elif args.what == "pick":
            print(
                dev_pick(
                    args.studies, args.rows, args.multitask, args.rerun_beside, args.seeds_beside
                )
            )
        elif args.what == "curve":
            print(curve(args.studies, args.label, args.keys, args.every))
        else:
            kept = (args.multitask, args.ties, args.rerun_beside, args.seeds_beside)
            if args.rows:
                print(bar_table(args.studies, args.rows, *kept))
            else:
                print(bar(args.studies, args.row, *kept))
    except (OSError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
