"""What αVIL's fits did, read back from few-label runs (:mod:`alphavil.fewlabel_fits`): the
fitted factors, the greedy merges' firsts and leads, the final weights."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphavil.fewlabel_fits import alpha_use, final_weights, merge_firsts, merge_leads
from tests.test_fewlabel_compare import left_study


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return left_study(tmp_path)


def test_alpha_table_reads_the_fitted_factors(study: Path) -> None:
    run = study / "coarse.alphavil-s0"
    recs = [
        {"alpha": {"left": 1.0, "left_coarse": 0.2}},
        {
            "alpha": {"left": 1.0, "left_coarse": 0.9},
            "alpha_fitted": {"left": 1.0, "left_coarse": 0.4},
            "target_alone": 0.5,
            "shrink": {"strength": 0.25},
        },
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert "| study | left_coarse 0.30, c 0.50, λ 0.25 | – | – | – |" in alpha_use(
        [study], "alphavil"
    )
    # the factors written back: 0.2 and 0.9
    assert "| study | left_coarse 0.55, c 0.50, λ 0.25 | – | – | – |" in alpha_use(
        [study], "alphavil", written=True
    )


def test_firsts_count_how_often_each_update_ranks_first_in_the_merges(study: Path) -> None:
    """Over every fit of every seed; epochs without a merge (inside an interval) count not."""
    rankings = [
        [["alone", "joint"], ["joint", "alone"]],
        [["alone", "joint"]],
        [["alone", "joint"]],
    ]
    for s, runs in enumerate(rankings):
        recs = [{"merge": {"ranking": r}} for r in runs] + [{"fit_interval": {"pass": 1, "of": 5}}]
        path = study / f"coarse.alphavil-s{s}" / "metrics.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    table = merge_firsts([study], "alphavil")
    assert "| study | alone 0.75, joint 0.25 | – | – | – |" in table


def test_weights_table_averages_the_final_auxiliary_weights(study: Path) -> None:
    for s, w in enumerate((0.2, 0.4, 0.9)):
        path = study / f"coarse.alphavil-s{s}" / "summary.json"
        summary = json.loads(path.read_text())
        summary["final_weights"] = {"left": 1.0, "left_coarse": w}
        path.write_text(json.dumps(summary))
    assert "| study | left_coarse 0.50 | – | – | – |" in final_weights([study], "alphavil")


def test_leads_count_the_dev_examples_by_which_the_best_update_beats_the_joint_pass(
    study: Path,
) -> None:
    """A 200-example dev set: leads of 1 and 4 examples and a loss tie-break (0) over the
    joint pass, one fit where it scores best; the margin's verdicts where recorded."""

    def merge(alone: float, joint: float, beats: bool | None = None) -> dict[str, object]:
        rec: dict[str, object] = {"scores": {"alone": [alone, -0.5], "joint": [joint, -0.6]}}
        if beats is not None:
            rec["margin"] = {"candidate": "alone", "gains": 1, "losses": 0, "beats": beats}
        return {"merge": rec}

    fits = [
        [merge(0.905, 0.9, beats=False), merge(0.92, 0.9, beats=True)],
        [merge(0.9, 0.9), merge(0.8, 0.9)],  # a tie on accuracy, the lower loss: lead 0
        [{"fit_interval": {"pass": 1, "of": 5}}],  # inside an interval: no merge
    ]
    for s, recs in enumerate(fits):
        run = study / f"coarse.alphavil-s{s}"
        (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
        cfg = json.loads((run / "config.json").read_text())
        cfg["data"]["budget"]["dev"] = 200
        (run / "config.json").write_text(json.dumps(cfg))
    table = merge_leads([study], "alphavil")
    assert "| study | 3/4, median 1, ≤ 2: 0.67, passes 0.50 | – | – | – |" in table


def test_leads_need_the_dev_set_size(study: Path) -> None:
    run = study / "coarse.alphavil-s0"
    rec = {"merge": {"scores": {"alone": [0.9, -0.5], "joint": [0.8, -0.6]}}}
    (run / "metrics.jsonl").write_text(json.dumps(rec) + "\n")
    with pytest.raises(ValueError, match=r"no data\.budget\.dev"):
        merge_leads([study], "alphavil")
