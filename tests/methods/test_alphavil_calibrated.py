"""αVIL with line 9 on the calibrated dev loss (``alphavil.fit_loss = "calibrated"``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.config import ConfigError
from alphavil.dev_calibration import best_scale
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import BOX_FIT, TOY_BUDGET, assert_resumes_bit_identical, toy_config

CALIBRATED = ("train.method=alphavil", "alphavil.fit_loss=calibrated", "train.threads=1", *BOX_FIT)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_a_calibrated_fit_runs_and_ends_no_higher_than_it_starts(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *TOY_BUDGET, *CALIBRATED, "train.epochs=3")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        assert r["alpha"][cfg.train.target] == 1.0
        assert all(0.0 <= a <= 1.0 for a in r["alpha"].values())
        fit = r["alpha_fit"]
        assert fit["objective_end"] <= fit["objective_start"] + 1e-12


def test_the_calibrated_objective_is_at_most_the_plain_one(tmp_path: Path) -> None:
    # min over s includes s = 1: the calibrated start value <= the plain start value
    plain = toy_config(tmp_path, *TOY_BUDGET, "train.method=alphavil", "train.epochs=1")
    calib = toy_config(tmp_path, *TOY_BUDGET, *CALIBRATED, "train.epochs=1")
    execute(plain, tmp_path / "plain", show_progress=False)
    execute(calib, tmp_path / "calib", show_progress=False)
    a = read_jsonl(tmp_path / "plain" / "metrics.jsonl")[0]["alpha_fit"]["objective_start"]
    b = read_jsonl(tmp_path / "calib" / "metrics.jsonl")[0]["alpha_fit"]["objective_start"]
    assert b <= a + 1e-6
    z = torch.tensor([[2.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    assert best_scale(z, torch.tensor([0, 1]))[1] <= float(
        torch.nn.functional.cross_entropy(z, torch.tensor([0, 1]))
    )


def test_a_killed_calibrated_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *CALIBRATED)


def test_the_calibrated_loss_has_no_newton_solver(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alphavil\.fit_loss: 'calibrated' has no Hessian"):
        toy_config(
            tmp_path, *CALIBRATED, "alphavil.alpha_solver=newton", "alphavil.alpha_bounds=[]",
            "alphavil.target_branch=false", "alphavil.target_alpha=fit",
        )  # fmt: skip
