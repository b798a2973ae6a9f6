"""The eleventh round's second-host check (docs/fewlabel/README.md): the default's runs rerun
on another CPU (each study's ``host_rerun/``, same code, config and seeds) against the committed
runs of the first host, and the margin's runs (second host) against those reruns, paired by
seed: mean test difference in points, 95% bootstrap CI, and the per-seed differences.

Run from the repository root: ``python docs/fewlabel/host_compare.py``.
"""

import json
from pathlib import Path
from statistics import fmean

from alphavil.reports.stats import bootstrap_ci

CELLS = [
    ("multimnist-n250", "related", range(5)),
    ("multifashion-n1000", "coarse", range(5)),
    ("multifashion-n1000", "random", range(5)),
    *[("multimnist-n1000", k, range(5, 10)) for k in ("coarse", "random", "related", "mixed")],
]


def test_accuracy(run: Path) -> float:
    """The target's test accuracy (points) at the run's best dev epoch."""
    return 100 * json.loads((run / "summary.json").read_text())["best"]["left"]["test_accuracy"]


def cell(xs: list[float], ys: list[float]) -> str:
    diff = [x - y for x, y in zip(xs, ys, strict=True)]
    low, high = bootstrap_ci(diff)
    seeds = ", ".join(f"{d:+.1f}" for d in diff)
    return f"{fmean(diff):+.2f} [{low:+.2f}, {high:+.2f}] ({seeds})"


def main() -> None:
    print("| study | kind | seeds | default: second host − first | margin − default, second host |")
    print("| --- | --- | --- | --- | --- |")
    for study, kind, seeds in CELLS:
        d = Path("docs/fewlabel") / study
        first, second, margin = (
            [test_accuracy(d / folder / f"{kind}.{row}-left-s{s}") for s in seeds]
            for folder, row in (
                ("runs", "alphavil-tsgmp5"),
                ("host_rerun", "alphavil-tsgmp5"),
                ("runs", "alphavil-tsgmp5m1"),
            )
        )
        span = f"{seeds.start}–{seeds.stop - 1}"
        print(f"| {study} | {kind} | {span} | {cell(second, first)} | {cell(margin, second)} |")


if __name__ == "__main__":
    main()
