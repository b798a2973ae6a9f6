"""Figures from a study's JSON: curves per arm, per-model paired panel, bad input."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil.pareto.study_plots import hv_curves, main, plot_study
from alphavil.pareto.study_stats import pair

pytest.importorskip("matplotlib")


def _run(hv: list[float], status: str = "completed", scal: list[float] | None = None) -> dict:
    return {"hv": hv, "status": status, "scalarized_test": scal or [0.5, 0.4, 0.3], "seconds": 1.0}


def _result() -> dict[str, Any]:
    a = [_run([0.0, 1.0, 2.0], scal=[0.5, 0.4, 0.3]), _run([0.0, 1.2, 2.2], scal=[0.6, 0.4, 0.2])]
    b = [_run([0.0, 0.5, 1.5], scal=[0.7, 0.5, 0.3]), _run([0.0, 0.7, 1.7], scal=[0.8, 0.4, 0.4])]
    return {
        "problem": "toy",
        "arms": {
            "mt2o/linear": {"lr": 0.05, "runs": a},
            "no_transfer/linear": {"lr": 0.1, "runs": b},
        },
        "pairs": {"mt2o/linear − no_transfer/linear": pair(a, b)},
    }


def test_hv_curves_keeps_completed_runs_and_truncates_to_the_shortest() -> None:
    result = _result()
    result["arms"]["mt2o/linear"]["runs"].append(_run([0.0, 9.0], status="diverged"))
    result["arms"]["no_transfer/linear"]["runs"].append(_run([0.0, 0.1]))
    curves = hv_curves(result)
    assert curves["mt2o/linear"].shape == (2, 3)  # the diverged run is left out
    np.testing.assert_allclose(curves["mt2o/linear"].mean(0), [0.0, 1.1, 2.1])
    assert curves["no_transfer/linear"].shape == (3, 2)  # cut to the shortest curve


def test_plot_study_writes_a_png_with_and_without_pairs(tmp_path: Path) -> None:
    out = plot_study(_result(), tmp_path / "toy.png")
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    no_pairs = {**_result(), "pairs": {}}
    assert plot_study(no_pairs, tmp_path / "single.png").stat().st_size > 0


def test_plot_study_refuses_a_result_without_completed_runs(tmp_path: Path) -> None:
    result = {"problem": "toy", "arms": {"a": {"lr": 1.0, "runs": [_run([0.0], "diverged")]}}}
    with pytest.raises(ValueError, match="no completed test run"):
        plot_study(result, tmp_path / "x.png")


def test_cli_writes_beside_the_json_and_rejects_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    src = tmp_path / "toy.json"
    src.write_text(json.dumps(_result()))
    assert main([str(src)]) == 0
    assert (tmp_path / "toy.png").exists()
    bad = tmp_path / "cfg.json"
    bad.write_text(json.dumps({"train": {}}))
    with pytest.raises(SystemExit) as e:
        main([str(bad)])
    assert e.value.code == 2
    assert "not a study result" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "missing.json")])
    assert e.value.code == 2
