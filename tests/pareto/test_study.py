"""The controlled MT2O study driver: lr grid extension, resume from stored runs, paired stats."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil.pareto import study
from alphavil.pareto.study_stats import hv_auc, markdown, pair, paired, summarise


def _fake(peak: float, calls: list[tuple[str, str, float, int]]) -> Any:
    """A run whose HV-AUC is highest at lr = ``peak`` (log-quadratic), with per-seed noise 0."""

    def run_arm(problem: str, arm: str, lr: float, seed: int) -> dict[str, Any]:
        calls.append((problem, arm, lr, seed))
        level = 1.0 - (math.log(lr) - math.log(peak)) ** 2 / 100
        hv = [level * (1 - 0.5**e) for e in range(1, 11)]
        return {
            "hv": hv,
            "hv_dev": hv,
            "status": "completed",
            "seconds": 0.0,
            "igd_plus": None,
            "subproblem_distance": None,
            "scalarized_test": None,
        }

    return run_arm


def test_extend_one_geometric_step() -> None:
    assert study._extend([0.5, 1.0, 2.0], 2.0) == 4.0
    assert study._extend([0.1, 0.3, 1.0], 0.1) == pytest.approx(0.03333, rel=1e-3)
    assert study._extend([0.5, 1.0, 2.0], 1.0) is None
    assert study._extend([0.05], 0.05) is None


def test_choose_lr_extends_until_interior(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, float, int]] = []
    monkeypatch.setattr(study, "run_arm", _fake(4.0, calls))
    chosen = study.choose_lr("convex", ["mt2o/linear"], [1000, 1001], tmp_path, 1, 3)
    c = chosen["mt2o/linear"]
    assert c["lr"] == 4.0 and not c["lr_at_edge"]
    assert sorted(c["validation_hv_auc"]) == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert len(calls) == 5 * 2  # every lr on both validation seeds, each once


def test_choose_lr_reports_edge_when_budget_runs_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "run_arm", _fake(100.0, []))
    c = study.choose_lr("convex", ["epo"], [0], tmp_path, 1, 1)["epo"]
    assert c["lr"] == 4.0 and c["lr_at_edge"]


def test_study_resumes_from_stored_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, str, float, int]] = []
    monkeypatch.setattr(study, "run_arm", _fake(1.0, calls))
    arms = ["mt2o/linear", "no_transfer/linear"]
    first = study.study("convex", arms, [1000], [0, 1, 2], tmp_path)
    n = len(calls)
    assert n == 2 * 3 + 2 * 3  # grid on one validation seed + three test seeds, per arm
    stored = sorted(p.name for p in (tmp_path / "runs" / "convex" / "mt2o+linear").iterdir())
    assert "lr1_s0.json" in stored and "lr0.5_s1000.json" in stored
    again = study.study("convex", arms, [1000], [0, 1, 2], tmp_path)
    assert len(calls) == n  # nothing rerun
    assert json.dumps(again["arms"], sort_keys=True) == json.dumps(first["arms"], sort_keys=True)
    assert "mt2o/linear − no_transfer/linear" in again["pairs"]


def test_real_problem_scores_dev_split() -> None:
    r = {"status": "completed", "hv": [0.0, 0.0], "hv_dev": [1.0, 3.0]}
    assert study.criterion("multimnist", r) == 2.0
    assert study.criterion("convex", r) == 0.0
    assert study.criterion("convex", {"status": "diverged"}) == -math.inf


def test_paired_closed_form() -> None:
    p = paired([1.0, 2.0, 3.0, 4.0, 5.0], [0.0, 1.0, 2.0, 3.0, 4.0])
    assert p["mean"] == 1.0 and p["ci"] == [1.0, 1.0] and p["n"] == 5
    assert np.isnan(paired([1.0, 2.0], [1.0, 2.0])["wilcoxon_p"])


def _run(hv: float, scal: list[float] | None = None, status: str = "completed") -> dict[str, Any]:
    return {
        "hv": [hv / 2, hv],
        "hv_dev": [hv / 2, hv],
        "status": status,
        "seconds": 1.0,
        "igd_plus": None,
        "subproblem_distance": None,
        "scalarized_test": scal,
    }


def test_summary_and_pair_leave_out_diverged_runs() -> None:
    a = [_run(1.0, [0.1, 0.2]), _run(2.0, [0.3, 0.4]), {"status": "diverged", "seconds": 1.0}]
    b = [_run(0.5, [0.2, 0.2]), _run(1.0, [0.5, 0.6]), _run(1.0, [0.0, 0.0])]
    s = summarise(a)
    assert s["diverged"] == 1 and s["final_hv"][0] == 1.5
    assert s["scalarized_test_mean"][0] == pytest.approx(0.25)
    p = pair(a, b)
    assert p["final_hv"]["n"] == 2 and p["final_hv"]["mean"] == 0.75
    per_model = p["scalarized_test_per_model"]
    assert [q["mean"] for q in per_model] == pytest.approx([-0.15, -0.1])
    result = {"arms": {"x": {"lr": 0.1, **s}}, "pairs": {"x − y": p}}
    table = markdown(result)
    assert "1 diverged" in table and "Scalarised test loss per weight vector" in table


def test_cli_rejects_bad_workers(tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as err:
        study.main(["--workers", "0", "--out", str(tmp_path)])
    assert err.value.code == 2


def test_end_to_end_convex(tmp_path: Path) -> None:
    """A real (tiny) study: two arms, one validation and two test seeds, two workers."""
    args = ["--problems", "convex", "--arms", "mt2o/linear", "no_transfer/linear"]
    args += ["--val-seeds", "1000", "--test-seeds", "0", "1", "--max-extend", "0"]
    assert study.main([*args, "--workers", "2", "--out", str(tmp_path)]) == 0
    result = json.loads((tmp_path / "convex.json").read_text())
    for arm in ("mt2o/linear", "no_transfer/linear"):
        r = result["arms"][arm]
        assert r["lr"] in (0.5, 1.0, 2.0)
        assert 0.8 < r["final_hv"][0] < 1.0  # the analytic front's HV is 0.9366
        # every stored run says what made it: its seed, lr and resolved config
        assert [run["seed"] for run in r["runs"]] == [0, 1]
        for run in r["runs"]:
            assert run["lr"] == r["lr"] and run["config"]["train"]["seed"] == run["seed"]
            assert run["config"]["train"]["optimizer"]["lr"] == r["lr"]
    assert (tmp_path / "convex.md").read_text().startswith("| arm |")


def test_real_data_path_pairs_each_weight_vector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The real-data path (dev-split criterion, per-model scalarised test loss) run on the
    convex problem, which logs a dev split and scalarised losses like MultiMNIST does."""
    monkeypatch.setattr(study, "REAL", frozenset({"convex"}))
    monkeypatch.setitem(study.LR_GRIDS, "convex", (1.0,))
    arms = ["mt2o/linear", "no_transfer/linear"]
    result = study.study("convex", arms, [1000], [0, 1], tmp_path, max_extend=0)
    run = result["arms"]["mt2o/linear"]["runs"][0]
    assert len(run["scalarized_test"]) == 5 and len(run["hv_dev"]) == len(run["hv"])
    per_model = result["pairs"]["mt2o/linear − no_transfer/linear"]["scalarized_test_per_model"]
    assert len(per_model) == 5 and all(p["n"] == 2 for p in per_model)
    assert "Scalarised test loss per weight vector" in markdown(result)


def test_hv_auc_is_the_mean_over_evaluations_and_is_paired() -> None:
    a, b = [_run(1.0), _run(2.0)], [_run(0.5), _run(1.0)]
    assert hv_auc([0.0, 1.0, 2.0, 3.0]) == 1.5
    s = summarise(a)
    assert s["hv_auc"][0] == pytest.approx((0.75 + 1.5) / 2)  # curves [h/2, h]
    assert pair(a, b)["hv_auc"]["mean"] == pytest.approx(((0.75 - 0.375) + (1.5 - 0.75)) / 2)
    assert "HV-AUC" in markdown({"arms": {"x": {"lr": 0.1, **s}}})


def test_render_recomputes_statistics_and_keeps_the_rest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(study, "run_arm", _fake(1.0, []))
    args = ["--problems", "convex", "--arms", "mt2o/linear", "no_transfer/linear"]
    assert (
        study.main([*args, "--val-seeds", "1000", "--test-seeds", "0", "1", "--out", str(tmp_path)])
        == 0
    )
    path = tmp_path / "convex.json"
    written = json.loads(path.read_text())
    md = path.with_suffix(".md").read_text()
    stale = json.loads(path.read_text())
    for arm in stale["arms"].values():  # as if written by an older study_stats
        del arm["hv_auc"], arm["final_hv"]
    stale["pairs"] = {}
    path.write_text(json.dumps(stale))
    path.with_suffix(".md").write_text("old")
    assert study.main(["--render", str(path)]) == 0
    assert json.loads(path.read_text()) == written
    assert path.with_suffix(".md").read_text() == md


def test_render_rejects_a_file_that_is_not_a_study_result(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text(json.dumps({"train": {}}))
    with pytest.raises(SystemExit) as err:
        study.main(["--render", str(bad)])
    assert err.value.code == 2
    assert bad.read_text() == json.dumps({"train": {}})  # left untouched
