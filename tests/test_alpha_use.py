"""αVIL's use of each task, read back from metrics.jsonl: shares, counts and medians by hand."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from alphavil.alpha_use import alpha_use, format_alpha_use
from alphavil.report import collect_runs, write_report
from alphavil.runs import write_json, write_jsonl


def _run(
    root: Path, name: str, seed: int, recs: list[dict[str, Any]], method: str = "alphavil"
) -> None:
    d = root / name
    write_json(d / "config.json", {"train": {"method": method, "seed": seed}, "label": "av"})
    best = {"left": {"epoch": 1, "dev_accuracy": 0.9, "test_accuracy": 0.9}}
    dev = {"left": {"accuracy": 0.9}}
    weights = {"left": 1.0, "right": 1.0}
    write_json(
        d / "summary.json",
        {"method": method, "target": "left", "status": "completed", "best": best,
         "final_weights": {"left": 1.0, "right": 1.0}, "seconds": 1.0},
    )  # fmt: skip
    write_jsonl(
        d / "metrics.jsonl",
        [{"epoch": i + 1, "dev": dev, "weights": weights, **r} for i, r in enumerate(recs)],
    )


def _rec(
    a_left: float, a_right: float, n_left: float = 1.0, n_right: float = 1.0
) -> dict[str, Any]:
    return {
        "alpha": {"left": a_left, "right": a_right},
        "delta_norm": {"left": n_left, "right": n_right},
        "alpha_fit": {"passes": 4},
    }


def test_share_counts_and_medians_match_a_hand_computation(tmp_path: Path) -> None:
    # seed 0: shares of right = 0.5, 0.0, 3*1/(3*1+1*1)=0.75 -> used in 2 epochs (share >= 0.1)
    _run(tmp_path, "a-s0", 0, [_rec(1.0, 1.0), _rec(0.5, 0.0), _rec(1.0, -1.0, n_right=3.0)])
    # seed 1: shares 0.05/1.05, 0.2/1.2, 1/2 -> used in 2 epochs
    _run(tmp_path, "a-s1", 1, [_rec(1.0, 0.05), _rec(1.0, 0.2), _rec(0.25, 0.25)])
    (row,) = alpha_use(collect_runs(tmp_path))
    assert (row["target"], row["label"], row["aux"], row["seeds"]) == ("left", "av", "right", 2)
    assert row["epochs"] == 3 and row["epochs_on"] == 2.0
    shares = [0.5, 0.0, 0.75, 0.05 / 1.05, 0.2 / 1.2, 0.5]
    assert row["share_mean"] == pytest.approx(sum(shares) / 6, rel=1e-12)
    assert row["alpha_aux_mean"] == pytest.approx((1 + 0 - 1 + 0.05 + 0.2 + 0.25) / 6)
    # target α: first (1, 1), middle (0.5, 1) and last (1, 0.25), medians over the two seeds
    assert (row["alpha_target_first"], row["alpha_target_mid"]) == (1.0, 0.75)
    assert row["alpha_target_last"] == 0.625 and row["fit_passes"] == 4.0
    table = format_alpha_use([row])
    assert "| left | av | right | 2 | 3 | 2.0 |" in table


def test_the_target_branch_counts_in_the_target_s_part_of_the_step(tmp_path: Path) -> None:
    # target part (1 - c)·‖δ_left‖ + c·‖δ_alone‖ = 0.75·2 + 0.25·6 = 3; right 0.5·2 = 1
    rec = {
        "alpha": {"left": 1.0, "right": 0.5},
        "target_alone": 0.25,
        "delta_norm": {"left": 2.0, "right": 2.0, "left alone": 6.0},
    }
    _run(tmp_path, "a-s0", 0, [rec, {**rec, "target_alone": 1.0}])  # then 6 and 1
    (row,) = alpha_use(collect_runs(tmp_path))
    assert row["share_mean"] == pytest.approx((1 / 4 + 1 / 7) / 2, rel=1e-12)
    assert row["target_alone_mean"] == 0.625


def test_without_delta_norms_alpha_itself_decides_and_the_share_is_nan(tmp_path: Path) -> None:
    recs = [{"alpha": {"left": 1.0, "right": a}} for a in (0.09, 0.1, 2.0)]
    _run(tmp_path, "a-s0", 0, recs)
    (row,) = alpha_use(collect_runs(tmp_path))
    assert row["epochs_on"] == 2.0 and math.isnan(row["share_mean"])
    assert math.isnan(row["fit_passes"]) and math.isnan(row["target_alone_mean"])


def test_other_methods_and_runs_without_alpha_give_no_rows(tmp_path: Path) -> None:
    _run(tmp_path, "single-s0", 0, [{"weights": {"left": 1.0}}], method="single")
    _run(tmp_path, "a-s0", 0, [{"weights": {"left": 1.0, "right": 1.0}}])
    assert alpha_use(collect_runs(tmp_path)) == []
    write_report(tmp_path, tmp_path / "rep")
    assert not (tmp_path / "rep" / "alpha_use.md").exists()


def test_the_report_writes_the_table(tmp_path: Path) -> None:
    _run(tmp_path, "a-s0", 0, [_rec(1.0, 1.0)])
    paths = write_report(tmp_path, tmp_path / "rep")
    assert tmp_path / "rep" / "alpha_use.md" in paths
    assert (
        "| left | av | right | 1 | 1 | 1.0 | 0.500 |"
        in (tmp_path / "rep" / "alpha_use.md").read_text()
    )


@pytest.mark.parametrize("on", [0.0, -1.0, math.nan])
def test_a_threshold_that_is_not_positive_is_refused(tmp_path: Path, on: float) -> None:
    with pytest.raises(ValueError, match="must be > 0"):
        alpha_use([], on=on)
