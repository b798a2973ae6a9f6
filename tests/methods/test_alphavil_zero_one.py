"""αVIL with line 9 on the dev 0-1 loss (``alphavil.fit_loss = "zero_one"``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.config import ConfigError
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import BOX_FIT, TOY_BUDGET, assert_resumes_bit_identical, toy_config

ZERO_ONE = ("train.method=alphavil", "alphavil.fit_loss=zero_one", "train.threads=1", *BOX_FIT)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_the_fit_is_a_grid_point_no_worse_on_dev_than_the_multitask_step(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *TOY_BUDGET, *ZERO_ONE, "train.epochs=3", "alphavil.fit_grid=3")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        fit = r["alpha_fit"]
        assert fit["objective_end"] <= fit["objective_start"]  # errors; the start is multitask
        assert fit["forward_passes"] == 3 ** len(r["alpha"]) + 1
        assert r["alpha"][cfg.train.target] == 1.0
        assert r["target_alone"] in (0.0, 0.5, 1.0)
        assert all(a in (0.0, 0.5, 1.0) for a in r["alpha"].values())


def test_a_killed_zero_one_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *ZERO_ONE)


@pytest.mark.parametrize(
    "override",
    [
        "alphavil.target_branch=false",
        "alphavil.step_scale=true",
        "alphavil.step_length=multitask",
        "alphavil.shrink_folds=2",
        "alphavil.fit_grid=100",
    ],
    ids=["no-branch", "step-scale", "step-length", "shrunk", "grid-too-large"],
)
def test_the_zero_one_fit_is_a_grid_over_the_branch_variables(
    tmp_path: Path, override: str
) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.fit_loss: 'zero_one' .*fit_loss = 'plain'$"):
        toy_config(tmp_path, *ZERO_ONE, override)
