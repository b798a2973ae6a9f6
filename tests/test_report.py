"""Reports computed from run directories alone."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from alphavil.report import collect_runs, format_table, paired, table1, write_report
from alphavil.runs import write_json, write_jsonl


def _fake_run(
    root: Path,
    name: str,
    method: str,
    target: str | None,
    seed: int,
    best: dict[str, tuple[float, float]],
    weights: dict[str, float] | None = None,
    status: str = "completed",
) -> None:
    d = root / name
    write_json(d / "config.json", {"train": {"method": method, "seed": seed}})
    write_json(
        d / "summary.json",
        {
            "method": method,
            "target": target,
            "status": status,
            "best": {
                t: {"epoch": 1, "dev_accuracy": dev, "test_accuracy": test}
                for t, (dev, test) in best.items()
            },
            "final_weights": weights or {},
            "seconds": 1.0,
        },
    )
    recs = [
        {
            "epoch": e,
            "dev": {t: {"accuracy": dev} for t, (dev, _) in best.items()},
            "weights": weights or {},
            **({"alpha": {"left": 1.0, "right": 0.9}} if method == "alphavil" else {}),
        }
        for e in (1, 2)
    ]
    write_jsonl(d / "metrics.jsonl", recs)


@pytest.fixture
def runs_dir(tmp_path: Path) -> Path:
    dev = {0: 0.95, 1: 0.96, 2: 0.97}
    for s in range(3):
        _fake_run(tmp_path, f"single-left-s{s}", "single", "left", s, {"left": (dev[s], 0.90)})
        _fake_run(
            tmp_path,
            f"multitask-s{s}",
            "multitask",
            None,
            s,
            {"left": (dev[s] - 0.01, 0.89), "right": (0.5, 0.5)},
        )
        _fake_run(
            tmp_path,
            f"alphavil-left-s{s}",
            "alphavil",
            "left",
            s,
            {"left": (dev[s] + 0.01 * (s + 1), 0.90)},
            {"left": 2.0, "right": 0.5},
        )
    _fake_run(tmp_path, "diw-left-s0", "diw", "left", 0, {"left": (0.5, 0.5)}, status="diverged")
    return tmp_path


def test_table1_values_are_exact(runs_dir: Path) -> None:
    rows = {r["method"]: r for r in table1(collect_runs(runs_dir))}
    assert set(rows) == {"single", "multitask", "alphavil"}  # the diverged DIW run is left out
    s = rows["single"]
    assert (s["n"], s["dev_min"], s["dev_max"]) == (3, pytest.approx(95.0), pytest.approx(97.0))
    assert s["dev_mean"] == pytest.approx(96.0) and s["dev_std"] == pytest.approx(1.0)
    assert s["test_mean"] == pytest.approx(90.0) and s["test_std"] == pytest.approx(0.0)
    a = rows["alphavil"]  # dev 96, 98, 100
    assert a["dev_mean"] == pytest.approx(98.0) and a["dev_std"] == pytest.approx(2.0)
    assert rows["multitask"]["dev_mean"] == pytest.approx(95.0)
    assert "right" not in {r["target"] for r in table1(collect_runs(runs_dir))}


def test_paired_statistics(runs_dir: Path) -> None:
    rows = {r["baseline"]: r for r in paired(collect_runs(runs_dir))}
    single = rows["single"]  # differences 1, 2, 3 pp: all positive
    assert single["dev_mean_diff"] == pytest.approx(2.0)
    assert single["dev_p"] == pytest.approx(0.25)  # exact two-sided Wilcoxon, n = 3
    assert rows["multitask"]["test_mean_diff"] == pytest.approx(1.0)
    assert math.isnan(single["test_p"])  # all test differences are 0


def test_write_report_files(runs_dir: Path) -> None:
    paths = write_report(runs_dir, runs_dir / "out")
    names = {p.name for p in paths}
    assert {
        "table1.md",
        "table1.csv",
        "paired.md",
        "paired.csv",
        "figure3_left.png",
        "dev_curves_left.png",
        "figure3_check.md",
    } <= names
    with open(runs_dir / "out" / "table1.csv") as f:
        assert len(list(csv.DictReader(f))) == 3
    check = (runs_dir / "out" / "figure3_check.md").read_text()
    assert "left 0.800, right 0.200" in check and "holds" in check
    assert "| left | αVIL | 3 | 96.00 | 100.00 | 98.00 | 2.00 |" in format_table(
        collect_runs(runs_dir)
    )
