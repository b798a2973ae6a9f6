"""αVIL's joint updates (``alphavil.updates = "joint"``): the task shares of one multitask pass."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alphavil.config import ConfigError
from alphavil.runner import execute
from alphavil.runs import load_checkpoint, read_jsonl
from tests.helpers import (
    BOX_FIT,
    TOY_BUDGET,
    assert_pinned,
    assert_resumes_bit_identical,
    toy_config,
)

JOINT = ("train.method=alphavil", "alphavil.updates=joint", "train.threads=1", *BOX_FIT)
BUDGET = TOY_BUDGET


pytestmark = pytest.mark.usefixtures("one_thread")


def _final_model(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "state.pt")["model"]


ADAMW = "train.optimizer={name='AdamW', lr=0.01, weight_decay=0.05}"


@pytest.mark.parametrize(
    ("budget", "opt"),
    [((), ""), (BUDGET, ""), (BUDGET, ADAMW)],
    ids=["shared-inputs", "budget-joint-steps", "adamw"],
)
def test_alpha_one_is_the_multitask_run(tmp_path: Path, budget: tuple[str, ...], opt: str) -> None:
    # α ≡ 1 (no α steps from the sum start) and unchanged weights: θ + Σ δ_t is every step of
    # equal-weight multitask training, so both runs visit the same parameters (float sums in
    # another order: equal to float32 rounding, not bit for bit)
    common = (*budget, "train.epochs=2", "train.threads=1", *([opt] if opt else []))
    execute(
        toy_config(tmp_path, *common, "train.method=multitask"),
        tmp_path / "mt",
        show_progress=False,
    )
    joint = toy_config(
        tmp_path, *common, *JOINT, "alphavil.alpha_solver=sgd", "alphavil.steps=0",
        "alphavil.alpha_bounds=[]", "alphavil.weight_rule=additive",
    )  # fmt: skip
    execute(joint, tmp_path / "joint", show_progress=False)
    a, b = _final_model(tmp_path / "mt"), _final_model(tmp_path / "joint")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)
    records = read_jsonl(tmp_path / "joint" / "metrics.jsonl")
    assert all(set(r["alpha"].values()) == {1.0} for r in records)


def test_fitted_joint_run_records_alpha_in_the_box_and_the_target_whole(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *BUDGET, *JOINT, "train.epochs=3", "alphavil.target_alpha=one")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    target = cfg.train.target
    for r in records:
        assert r["alpha"][target] == 1.0
        assert all(0.0 <= a <= 1.0 for a in r["alpha"].values())
        assert r["alpha_fit"]["objective_end"] <= r["alpha_fit"]["objective_start"]


def test_a_killed_joint_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *BUDGET, *JOINT)


@pytest.mark.parametrize(
    ("override", "match"),
    [
        ("train.optimizer={name='RMSprop', lr=0.001}", "'RMSprop' cannot be split"),
        ("train.optimizer={name='SGD', lr=0.1, maximize=true}", "SGD options maximize"),
    ],
)
def test_joint_updates_refuse_an_optimiser_they_cannot_split(
    tmp_path: Path, override: str, match: str
) -> None:
    with pytest.raises(ConfigError, match=match):
        toy_config(tmp_path, *JOINT, override)
    toy_config(tmp_path, "train.method=multitask", override)  # other methods are not affected


def test_parallel_deltas_are_a_separate_updates_option(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="parallel_deltas: runs separate task updates"):
        toy_config(tmp_path, "alphavil.parallel_deltas=true")
    toy_config(tmp_path, "alphavil.parallel_deltas=true", "alphavil.updates=separate")


def test_a_fixed_target_alpha_needs_the_box_fit(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="target_alpha: 'one' is an option of the box fit"):
        toy_config(tmp_path, "alphavil.target_alpha=one", "alphavil.alpha_bounds=[]")


GOLDEN = Path(__file__).parents[1] / "golden" / "toy_joint_metrics_v1.json"


def test_joint_updates_reproduce_the_pinned_metrics(tmp_path: Path) -> None:
    # Metrics of joint updates with the box fit under a label budget, as the code made them when
    # they became the default (identical at commit 54811c0, before the target branch existed).
    golden = json.loads(GOLDEN.read_text())
    cfg = toy_config(
        tmp_path, *BUDGET, *JOINT, "train.epochs=3", "alphavil.target_alpha=one",
        "alphavil.target_branch=false",
    )  # fmt: skip
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == len(golden)
    for new, old in zip(records, golden, strict=True):
        for key, value in old.items():
            assert_pinned(new[key], value, (new["epoch"], key))


@pytest.mark.parametrize("budget", [(), BUDGET], ids=["shared-inputs", "budget-joint-steps"])
def test_target_loss_scale_with_alpha_one_is_summed_multitask_training(
    tmp_path: Path, budget: tuple[str, ...]
) -> None:
    # loss_scale = "target" with equal weights: every task's loss at scale 1, the sum of the
    # losses. With α ≡ 1 that is multitask training (the mean of T losses) at T times the lr
    # (SGD with momentum, no weight decay, is linear in the loss scale)
    tasks = ["main", "helper", "noise"]
    common = (*budget, "train.epochs=2", "train.threads=1", f"train.tasks={tasks}")
    n = len(tasks)
    execute(
        toy_config(
            tmp_path, *common, "train.method=multitask",
            f"train.optimizer={{name='SGD', lr={0.1 * n!r}, momentum=0.9}}",
        ),
        tmp_path / "mt",
        show_progress=False,
    )  # fmt: skip
    summed = toy_config(
        tmp_path, *common, *JOINT, "alphavil.alpha_solver=sgd", "alphavil.steps=0",
        "alphavil.alpha_bounds=[]", "alphavil.weight_rule=fixed", "alphavil.loss_scale=target",
    )  # fmt: skip
    execute(summed, tmp_path / "summed", show_progress=False)
    records = read_jsonl(tmp_path / "summed" / "metrics.jsonl")
    assert set(records[0]["alpha"]) == set(tasks)
    a, b = _final_model(tmp_path / "mt"), _final_model(tmp_path / "summed")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_target_loss_scale_refuses_the_additive_rule(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alphavil\.loss_scale: 'target' divides"):
        toy_config(tmp_path, *JOINT, "alphavil.loss_scale=target", "alphavil.weight_rule=additive")
