"""Reports computed from run directories alone."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import pytest

from alphavil.report import (
    collect_runs,
    format_paired,
    format_table,
    paired,
    table1,
    write_report,
)
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
    label: str = "",
) -> None:
    d = root / name
    write_json(d / "config.json", {"train": {"method": method, "seed": seed}, "label": label})
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
    assert {r["ours"] for r in rows.values()} == {"alphavil"}
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


def _two_single_lrs(root: Path, a: str, b: str) -> None:
    """Single-task runs at two learning rates labelled ``a`` and ``b``, seeds 0-2: ``a`` wins on
    dev for seeds 0 and 1 (test 91, 92), ``b`` for seed 2 (test 99)."""
    devs = {a: [0.95, 0.96, 0.90], b: [0.94, 0.95, 0.97]}
    tests = {a: [0.91, 0.92, 0.93], b: [0.80, 0.81, 0.99]}
    for lab in devs:
        for s in range(3):
            _fake_run(
                root, f"{lab}-s{s}", "single", "left", s,
                {"left": (devs[lab][s], tests[lab][s])}, label=lab,
            )  # fmt: skip


def test_labels_group_runs_and_tuned_rows_pick_per_seed_on_dev(tmp_path: Path) -> None:
    _two_single_lrs(tmp_path, "lr-a", "lr-b")
    for s in range(3):
        _fake_run(
            tmp_path, f"av-s{s}", "alphavil", "left", s, {"left": (0.97, 0.94 + s / 100)},
            {"left": 1.0, "right": 0.5}, label="av-new",
        )  # fmt: skip
    runs = collect_runs(tmp_path)
    tuned = {"tuned": ["lr-a", "lr-b"]}
    rows = {r["method"]: r for r in table1(runs, tuned)}
    assert set(rows) == {"lr-a", "lr-b", "av-new", "tuned"}
    assert rows["tuned"]["test_mean"] == pytest.approx((91 + 92 + 99) / 3)  # picked a, a, b
    assert rows["tuned"]["dev_mean"] == pytest.approx((95 + 96 + 97) / 3)
    pairs = {(r["ours"], r["baseline"]): r for r in paired(runs, tuned)}
    assert set(pairs) == {("av-new", "lr-a"), ("av-new", "lr-b"), ("av-new", "tuned")}
    t = pairs[("av-new", "tuned")]  # test differences 3, 3, -3 pp
    assert t["test_mean_diff"] == pytest.approx(1.0)
    assert t["test_ci_low"] <= t["test_mean_diff"] <= t["test_ci_high"]
    assert t["test_ci_low"] == pytest.approx(-3.0) and t["test_ci_high"] == pytest.approx(3.0)
    a = pairs[("av-new", "lr-a")]  # test differences 3, 3, 3: a degenerate CI at the value
    assert (a["test_ci_low"], a["test_ci_high"]) == (pytest.approx(3.0), pytest.approx(3.0))
    text = format_paired(paired(runs, tuned))
    assert "| left | av-new | tuned | 3 |" in text


def test_report_cli_rejects_a_malformed_tuned_spec(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from alphavil.cli import main

    _fake_run(tmp_path, "a", "single", "left", 0, {"left": (0.9, 0.9)})
    assert main(["report", str(tmp_path), "--tuned", "only-one=single"]) == 2
    err = capsys.readouterr().err
    assert (
        "--tuned 'only-one=single': expected NAME=LABEL,LABEL" in err and len(err.splitlines()) == 1
    )


def test_report_labels_keep_only_those_runs(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    from alphavil.cli import main

    for s in range(2):
        _fake_run(tmp_path, f"a-s{s}", "single", "left", s, {"left": (0.9, 0.9)}, label="a")
        _fake_run(tmp_path, f"b-s{s}", "single", "left", s, {"left": (0.8, 0.8)}, label="b")
        _fake_run(tmp_path, f"c-s{s}", "multitask", None, s, {"left": (0.7, 0.7)}, label="c")
    assert {r["label"] for r in collect_runs(tmp_path, ["a", "c"])} == {"a", "c"}
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "o"), "--labels", "a,c"]) == 0
    table = (tmp_path / "o" / "table1.md").read_text()
    assert "| left | a |" in table and "| left | b |" not in table
    capsys.readouterr()
    assert main(["report", str(tmp_path), "--out", str(tmp_path / "o2"), "--labels", "a,zz"]) == 2
    err = capsys.readouterr().err
    assert "no completed runs labelled zz" in err and "labels there: a, b, c" in err
    assert len(err.splitlines()) == 1


def test_leaderboard_pairs_with_the_baseline_and_reports_the_harmful_weight(tmp_path: Path) -> None:
    from alphavil.leaderboard import format_leaderboard, leaderboard, write_leaderboard

    for s in range(3):
        _fake_run(tmp_path, f"single-s{s}", "single", "left", s, {"left": (0.9, 0.90 + s / 100)})
        _fake_run(
            tmp_path, f"av-s{s}", "alphavil", "left", s, {"left": (0.95, 0.92 + s / 100)},
            {"left": 1.0, "right": 0.5, "noise": 0.5}, label="av",
        )  # fmt: skip
        _fake_run(
            tmp_path, f"mt-s{s}", "multitask", None, s, {"left": (0.9, 0.89), "right": (0.5, 0.5)},
            {"left": 1.0, "right": 1.0, "noise": 1.0},
        )  # fmt: skip
        _fake_run(
            tmp_path, f"ug-s{s}", "upgrad", "left", s, {"left": (0.9, 0.91)},
            {"left": 1.0, "right": 1.0, "noise": 1.0}, label="ug",
        )  # fmt: skip
        path = tmp_path / f"ug-s{s}" / "metrics.jsonl"
        recs = [{"epoch": 1, "aggregation_weights": {"left": 0.6, "right": 0.3, "noise": 0.1}}]
        write_jsonl(path, recs)
    runs = collect_runs(tmp_path)
    rows = {r["method"]: r for r in leaderboard(runs, harmful="noise")}
    assert rows["ug"]["harmful_weight"] == pytest.approx(0.1)  # share of the aggregate
    # multitask's other task ("right") has no single-task baseline: no rows for it
    assert {r["target"] for r in leaderboard(runs, harmful="noise")} == {"left"}
    assert rows["av"]["diff"] == pytest.approx(2.0) and rows["av"]["n"] == 3
    assert rows["av"]["ci_low"] == pytest.approx(2.0) and rows["av"]["ci_high"] == pytest.approx(
        2.0
    )
    assert rows["av"]["harmful_weight"] == pytest.approx(0.25)
    assert rows["multitask"]["harmful_weight"] == pytest.approx(1 / 3)  # equal weighting
    assert math.isnan(rows["single"]["harmful_weight"]) and math.isnan(rows["single"]["diff"])
    assert next(r["method"] for r in leaderboard(runs)) == "av"  # sorted by test accuracy
    assert "| left | av | 3 | 93.00 ± 1.00 | 2.00 [2.00, 2.00] |" in format_leaderboard(
        leaderboard(runs, harmful="noise"), "single", "noise"
    )
    names = {p.name for p in write_leaderboard(runs, tmp_path / "out", harmful="noise")}
    assert names == {"leaderboard.md", "leaderboard.csv", "leaderboard.png"}


def test_leaderboard_tuned_rows_pick_on_dev_and_can_be_the_baseline(tmp_path: Path) -> None:
    from alphavil.leaderboard import leaderboard

    _two_single_lrs(tmp_path, "a", "b")
    for s in range(3):
        _fake_run(tmp_path, f"m-s{s}", "olaux", "left", s, {"left": (0.9, 0.95)}, label="m")
    tuned = {"single-tuned": ["a", "b"]}
    rows = {
        r["method"]: r for r in leaderboard(collect_runs(tmp_path), "single-tuned", None, tuned)
    }
    assert rows["single-tuned"]["test_mean"] == pytest.approx((91 + 92 + 99) / 3)
    assert rows["m"]["diff"] == pytest.approx(95 - (91 + 92 + 99) / 3)
    assert math.isnan(rows["single-tuned"]["diff"])  # the baseline itself
    assert rows["single-tuned"]["seconds"] == pytest.approx(1.0)  # from the picked runs


def test_leaderboard_figure_keeps_a_collapsed_method_on_the_edge(tmp_path: Path) -> None:
    from alphavil.leaderboard import leaderboard_figure

    def row(name: str, diff: float) -> dict[str, object]:
        return {"target": "left", "method": name, "diff": diff, "ci_low": diff - 0.5,
                "ci_high": diff + 0.5}  # fmt: skip

    rows = [row("a", 0.5), row("b", -1.0), row("collapsed", -60.0)]
    path = leaderboard_figure(rows, "single", tmp_path / "lb.png")
    assert path.stat().st_size > 0
