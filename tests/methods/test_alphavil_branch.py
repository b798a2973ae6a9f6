"""αVIL's target branch (``alphavil.target_branch``): the target alone over the joint pass's
batches, from the same θ, as a row the fit can choose."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.config import ConfigError
from alphavil.data.batching import step_for_task
from alphavil.deltas import delta, restore
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.training import Trainer
from tests.helpers import BOX_FIT, TOY_BUDGET, assert_resumes_bit_identical, toy_config

BRANCH = ("train.method=alphavil", "alphavil.target_branch=true", "train.threads=1", *BOX_FIT)
BUDGET = TOY_BUDGET


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.mark.parametrize(
    ("budget", "scale", "passes"),
    [((), "full", 1), (BUDGET, "full", 1), (BUDGET, "share", 1), (BUDGET, "share", 2)],
    ids=["shared-inputs", "budget-joint-steps", "share-scale", "two-passes"],
)
def test_the_branch_is_the_target_alone_over_the_same_batches(
    tmp_path: Path, budget: tuple[str, ...], scale: str, passes: int
) -> None:
    cfg = toy_config(
        tmp_path, *budget, *BRANCH, f"alphavil.branch_scale={scale}", f"alphavil.passes={passes}"
    )
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    before = loop.generator.get_state()
    factor = 1.0 if scale == "full" else loop.weights[loop.target] / sum(loop.weights.values())
    assert factor == 1.0 or factor < 0.6  # "share": the target's part of the joint loss
    theta, deltas, _ = loop.method.collect_joint_deltas()  # type: ignore[attr-defined]
    after = loop.generator.get_state()
    n = len(loop.tasks)
    assert next(iter(deltas.values())).shape[0] == n + 1
    # the same pass by hand: torch's SGD on the target's loss over the target's rows
    loop.generator.set_state(before)
    restore(loop.model, theta)
    opt = torch.optim.SGD(loop.model.parameters(), **{
        k: v for k, v in cfg.train.optimizer.items() if k != "name"})  # fmt: skip
    steps = 0
    for step in (s for _ in range(passes) for s in loop.train_stream(loop.tasks, 1.0)):
        cut = step_for_task(step, loop.target)
        if cut is None:
            continue
        outputs, targets, _ = loop.forward(cut)
        assert list(targets) == [loop.target]
        opt.zero_grad()
        loss = loop.task_map[loop.target].loss(outputs[loop.target], targets[loop.target])
        (factor * loss).backward()
        opt.step()
        steps += 1
    assert steps > passes
    assert torch.equal(loop.generator.get_state(), after)  # the batch order moved on once
    by_hand = delta(loop.model, theta)
    for k, d in deltas.items():
        torch.testing.assert_close(d[n], by_hand[k], rtol=1e-5, atol=1e-6, msg=k)


def test_fitted_runs_record_the_branch_share_and_the_target_whole(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *BUDGET, *BRANCH, "train.epochs=3")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    target = cfg.train.target
    for r in records:
        assert 0.0 <= r["target_alone"] <= 1.0
        assert r["alpha"][target] == 1.0
        assert all(0.0 <= a <= 1.0 for a in r["alpha"].values())
        assert f"{target} alone" in r["delta_norm"]
        assert r["alpha_fit"]["objective_end"] <= r["alpha_fit"]["objective_start"]


def test_a_killed_branch_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *BUDGET, *BRANCH)


def test_joint_passes_sum_to_that_many_multitask_passes(tmp_path: Path) -> None:
    """With ``alphavil.passes = 2`` the task rows add up to two passes of the joint loss
    Σ_t (w_t/Σw) L_t by hand (torch's SGD), the batches drawn as two epochs would draw them."""
    cfg = toy_config(tmp_path, *BUDGET, *BRANCH, "alphavil.passes=2")
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    before = loop.generator.get_state()
    scales = {t: w / sum(loop.weights.values()) for t, w in loop.weights.items()}
    theta, deltas, _ = loop.method.collect_joint_deltas()  # type: ignore[attr-defined]
    loop.generator.set_state(before)
    restore(loop.model, theta)
    opt = torch.optim.SGD(loop.model.parameters(), **{
        k: v for k, v in cfg.train.optimizer.items() if k != "name"})  # fmt: skip
    for step in (s for _ in range(2) for s in loop.train_stream(loop.tasks, 1.0)):
        outputs, targets, share = loop.forward(step)
        opt.zero_grad()
        loss = sum(
            scales[t] * loop.task_map[t].loss(outputs[t], targets[t]) * share for t in targets
        )
        assert isinstance(loss, torch.Tensor)
        loss.backward()
        opt.step()
    by_hand = delta(loop.model, theta)
    n = len(loop.tasks)
    for k, d in deltas.items():
        torch.testing.assert_close(d[:n].sum(0), by_hand[k], rtol=1e-4, atol=1e-6, msg=k)


def test_several_passes_are_an_option_of_joint_updates(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.passes: .*updates = 'separate'"):
        toy_config(tmp_path, "train.method=alphavil", "alphavil.preset=paper", "alphavil.passes=3")


@pytest.mark.parametrize("override", ["alphavil.updates=separate", "alphavil.target_alpha=fit"])
def test_the_branch_is_an_option_of_the_joint_box_fit(tmp_path: Path, override: str) -> None:
    with pytest.raises(ConfigError, match=r"alphavil\.target_branch"):
        toy_config(tmp_path, *BRANCH, override, "alphavil.alpha_bounds=[0.0, 1.0]")


def test_with_the_target_alone_there_is_no_branch(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *BRANCH, "train.epochs=2", "train.tasks=['main']")
    execute(cfg, tmp_path / "run", show_progress=False)
    for r in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert "target_alone" not in r and list(r["delta_norm"]) == ["main"]


@pytest.mark.parametrize("branch", [True, False], ids=["branch", "no-branch"])
def test_written_factors_are_the_running_average_of_the_fitted_ones(
    tmp_path: Path, branch: bool
) -> None:
    """``alphavil.write_step`` η < 1: line 10 writes ᾱ ← (1 − η) ᾱ + η α_fit, from the
    multitask step (α_aux = 1, c = 0); the weights move on the fitted α."""
    step = 0.4
    cfg = toy_config(
        tmp_path, *BUDGET, *BRANCH, "train.epochs=3", f"alphavil.write_step={step}",
        f"alphavil.target_branch={str(branch).lower()}",
    )  # fmt: skip
    execute(cfg, tmp_path / "run", show_progress=False)
    target = cfg.train.target
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    avg = {t: (0.0 if branch and t == target else 1.0) for t in records[0]["alpha"]}
    moved = False
    for r in records:
        fitted = r["alpha_fitted"]
        avg = {t: (1 - step) * avg[t] + step * fitted[t] for t in avg}
        for t, a in avg.items():
            if t == target:
                assert r["alpha"][t] == 1.0
                if branch:
                    assert r["target_alone"] == pytest.approx(a, abs=1e-12)
            else:
                assert r["alpha"][t] == pytest.approx(a, abs=1e-12)
                moved |= abs(r["alpha"][t] - fitted[t]) > 1e-6
    assert moved  # the average is not the fit itself


def test_a_killed_run_with_averaged_factors_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *BUDGET, *BRANCH, "alphavil.write_step=0.5")


def test_a_fitted_step_scale_is_written_and_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``alphavil.step_scale``: s in [0, 1] recorded each epoch, the mix (c, α_aux) in the box,
    the target whole; the run resumes bit-identically."""
    lr = "train.optimizer={name='SGD', lr=2.0, momentum=0.9}"  # steps that overshoot
    cfg = toy_config(tmp_path, *BUDGET, *BRANCH, "train.epochs=3", "alphavil.step_scale=true", lr)
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for r in records:
        assert 0.0 <= r["step_scale"] <= 1.0 and 0.0 <= r["target_alone"] <= 1.0
        assert r["alpha"][cfg.train.target] == 1.0
        assert len(r["alpha_fit"]["start"]) == len(r["alpha"]) + 1  # [z, s]
    assert any(r["step_scale"] < 0.5 for r in records)  # the fit shortens an overshooting step
    (tmp_path / "resume").mkdir()
    assert_resumes_bit_identical(
        tmp_path / "resume", monkeypatch, *BUDGET, *BRANCH, lr, "alphavil.step_scale=true"
    )


@pytest.mark.parametrize(
    "override",
    ["alphavil.target_branch=false", "alphavil.write_step=0.5"],
    ids=["no-branch", "averaged"],
)
def test_the_step_scale_is_an_option_of_the_branch_as_fitted(tmp_path: Path, override: str) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.step_scale: .*set step_scale = false$"):
        toy_config(tmp_path, *BRANCH, "alphavil.step_scale=true", override)


def test_the_written_step_has_the_multitask_step_length(tmp_path: Path) -> None:
    """``alphavil.step_length = "multitask"``: whatever the fit chooses, the written step is as
    long as the multitask step over the parameters the target's update moves, and the scale
    that made it so is recorded."""
    cfg = toy_config(tmp_path, *BUDGET, *BRANCH, "alphavil.step_length=multitask")
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    method, seen = loop.method, []
    collect = method.collect_deltas  # type: ignore[attr-defined]
    method.collect_deltas = lambda: seen.append(collect()) or seen[-1]  # type: ignore[attr-defined]
    for _ in range(2):
        info = method.epoch()
        theta, deltas, _ = seen[-1]
        step = delta(loop.model, theta)
        target = loop.tasks.index(loop.target)
        moved = [k for k, d in deltas.items() if bool(d[target].any()) or bool(d[-1].any())]
        assert moved and len(moved) < len(deltas)  # the auxiliary head is left out
        written = torch.sqrt(sum((step[k].double() ** 2).sum() for k in moved))
        multitask = torch.sqrt(sum((deltas[k][:-1].sum(0).double() ** 2).sum() for k in moved))
        torch.testing.assert_close(written, multitask, rtol=1e-4, atol=0.0)
        assert info["step_scale"] > 0.0 and info["alpha"][loop.target] == 1.0


def test_a_run_with_the_multitask_step_length_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(
        tmp_path, monkeypatch, *BUDGET, *BRANCH, "alphavil.step_length=multitask"
    )


@pytest.mark.parametrize(
    "override",
    [
        "alphavil.target_branch=false",
        "alphavil.write_step=0.5",
        "alphavil.step_scale=true",
        "alphavil.shrink_folds=2",
        "alphavil.grid_points=3",
    ],
    ids=["no-branch", "averaged", "step-scale", "shrunk", "grid"],
)
def test_the_multitask_step_length_is_an_option_of_the_branch_as_fitted(
    tmp_path: Path, override: str
) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.step_length: .*set step_length = 'fit'$"):
        toy_config(tmp_path, *BRANCH, "alphavil.step_length=multitask", override)
