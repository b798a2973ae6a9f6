"""αVIL with ``alphavil.shrink_folds``: the written factors are the fit shrunk toward the
multitask step by the cross-validated strength, read back from a run's records."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.config import ConfigError
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import BOX_FIT, TOY_BUDGET, assert_resumes_bit_identical, toy_config

BASE = ("train.method=alphavil", "train.threads=1", *TOY_BUDGET, *BOX_FIT)

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("branch", "rule"),
    [(True, "min"), (False, "min"), (True, "one_se")],
    ids=["branch", "no-branch", "one-se"],
)
def test_written_factors_are_the_fit_shrunk_by_the_recorded_strength(
    tmp_path: Path, branch: bool, rule: str
) -> None:
    cfg = toy_config(
        tmp_path, *BASE, "train.epochs=3", "alphavil.shrink_folds=3",
        f"alphavil.target_branch={str(branch).lower()}", f"alphavil.shrink_rule={rule}",
    )  # fmt: skip
    execute(cfg, tmp_path / "run", show_progress=False)
    target = cfg.train.target
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        lam, fitted = r["shrink"]["strength"], r["alpha_fitted"]
        curve = r["shrink"]["held_out_loss"]
        assert lam in (0.0, 0.25, 0.5, 0.75, 1.0) and list(curve) == [
            "0.0",
            "0.25",
            "0.5",
            "0.75",
            "1.0",
        ]
        best = min(curve, key=lambda g: (curve[g], float(g)))
        slack = r["shrink"]["standard_error"][best] if rule == "one_se" else 0.0
        assert lam == min(float(g) for g, v in curve.items() if v <= curve[best] + slack)
        assert sum(r["shrink"]["fold_sizes"]) == 16  # every dev example once (TOY_BUDGET)
        for t, a in fitted.items():
            ref = 0.0 if branch and t == target else 1.0
            want = (1 - lam) * ref + lam * a
            if t == target:
                assert r["alpha"][t] == 1.0
                if branch:
                    assert r["target_alone"] == pytest.approx(want, abs=1e-12)
            else:
                assert r["alpha"][t] == pytest.approx(want, abs=1e-12)


def test_a_killed_run_with_shrinkage_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *BASE, "alphavil.shrink_folds=2")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["alphavil.shrink_folds=1"], r"^alphavil\.shrink_folds: must be 0 \(off\) or >= 2"),
        (["alphavil.shrink_grid=[0.0, 1.5]"], r"^alphavil\.shrink_grid: expected .* in \[0, 1\]"),
        (["alphavil.shrink_grid=[]"], r"^alphavil\.shrink_grid: expected a non-empty list"),
        (
            ["alphavil.shrink_folds=5", "alphavil.step_scale=true"],
            r"^alphavil\.shrink_folds: not an option with step_scale.*step_scale = false$",
        ),
    ],
    ids=["one-fold", "grid-range", "empty-grid", "step-scale"],
)
def test_bad_shrinkage_settings_get_one_line(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        toy_config(tmp_path, *BASE, *overrides)
