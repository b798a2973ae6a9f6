"""The second-host checks of the eleventh and twelfth rounds (docs/fewlabel/README.md): runs
rerun on another CPU (each study's ``host_rerun/``: same code, config and seeds) against the
committed runs of the first host, and the rows that ran on the second host against those
reruns, paired by seed: mean target test difference in points, 95% bootstrap CI, and the
per-seed differences (with more than ten seeds, how many of them differ).

Run from the repository root: ``python docs/fewlabel/host_compare.py`` (the eleventh round's
table) or ``python docs/fewlabel/host_compare.py twelfth``.
"""

import json
import sys
from pathlib import Path
from statistics import fmean

from alphavil.reports.stats import bootstrap_ci

HEADLINE = ("coarse", "random", "related", "mixed")
FIRST, SECOND = "runs", "host_rerun"  # the study's runs; the default's reruns on the second host
DEFAULT, MARGIN = "alphavil-tsgmp5", "alphavil-tsgmp5m1"
DIGITS = ("digits-n50", "digits-n100", "digits-n400")

# (study, kind, seeds, (folder, row), (folder, row)): the first minus the second
COMPARISONS = [
    ("multimnist-n250", "related", range(5), (SECOND, DEFAULT), (FIRST, DEFAULT)),
    ("multimnist-n250", "related", range(5), (FIRST, MARGIN), (SECOND, DEFAULT)),
    ("multimnist-n250", "related", range(5), (FIRST, "alphavil-gmp5"), (SECOND, DEFAULT)),
    ("multimnist-n250", "related", range(5), (SECOND, "multitask"), (FIRST, "multitask")),
    ("multimnist-n250", "related", range(5), (FIRST, "multitask-sum"), (SECOND, "multitask")),
    *[
        comparison
        for kind in ("coarse", "random")
        for comparison in (
            ("multifashion-n1000", kind, range(5), (SECOND, DEFAULT), (FIRST, DEFAULT)),
            ("multifashion-n1000", kind, range(5), (FIRST, MARGIN), (SECOND, DEFAULT)),
        )
    ],
    *[("multimnist-n1000", k, range(5, 10), (SECOND, DEFAULT), (FIRST, DEFAULT)) for k in HEADLINE],
    *[("multimnist-n1000", k, range(5, 10), (FIRST, MARGIN), (SECOND, DEFAULT)) for k in HEADLINE],
]

# the twelfth round: the default rerun on the second host against the first host's runs
TWELFTH = [
    *[("multimnist-n1000", k, range(5), (SECOND, DEFAULT), (FIRST, DEFAULT)) for k in HEADLINE],
    *[(s, k, range(20), (SECOND, DEFAULT), (FIRST, DEFAULT)) for s in DIGITS for k in HEADLINE],
]


def test_accuracy(run: Path) -> float:
    """The target's test accuracy (points) at the run's best dev epoch."""
    (best,) = json.loads((run / "summary.json").read_text())["best"].values()
    return 100 * best["test_accuracy"]


def target(study: str) -> str:
    """The target task named in the study's run folders."""
    return "digit" if study.startswith("digits") else "left"


def cpu(run: Path) -> str:
    """The run's CPU in two words (``env.json``): "Intel Xeon", "AMD EPYC"."""
    model = json.loads((run / "env.json").read_text())["cpu_model"]
    return " ".join(model.replace("(R)", "").split()[:2])


def scores(study: str, kind: str, seeds: range, folder: str, row: str) -> tuple[list[float], str]:
    """One row's test accuracies over ``seeds`` and the one CPU they ran on; multitask rows
    carry no target in their name."""
    suffix = "" if row.startswith("multitask") else f"-{target(study)}"
    runs = [Path("docs/fewlabel") / study / folder / f"{kind}.{row}{suffix}-s{s}" for s in seeds]
    (host,) = {cpu(run) for run in runs}
    return [test_accuracy(run) for run in runs], host


def main() -> None:
    rounds = {"eleventh": COMPARISONS, "twelfth": TWELFTH}
    which = sys.argv[1] if len(sys.argv) > 1 else "eleventh"
    if which not in rounds:
        sys.exit(f"error: round {which!r} is not one of {', '.join(rounds)}")
    print("| study | kind | seeds | difference | mean [95% CI] (per seed) |")
    print("| --- | --- | --- | --- | --- |")
    for study, kind, seeds, (fa, ra), (fb, rb) in rounds[which]:
        (a, ha), (b, hb) = scores(study, kind, seeds, fa, ra), scores(study, kind, seeds, fb, rb)
        diff = [x - y for x, y in zip(a, b, strict=True)]
        low, high = bootstrap_ci(diff)
        per_seed = ", ".join(f"{d:+.1f}" for d in diff)
        if len(diff) > 10:
            per_seed = f"{sum(abs(d) > 1e-9 for d in diff)} of {len(diff)} seeds differ"
        what = f"{ra} ({ha}) − {rb} ({hb})"
        span = f"{seeds.start}–{seeds.stop - 1}"
        print(
            f"| {study} | {kind} | {span} | {what} "
            f"| {fmean(diff):+.2f} [{low:+.2f}, {high:+.2f}] ({per_seed}) |"
        )


if __name__ == "__main__":
    main()
