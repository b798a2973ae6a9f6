"""αVIL with line 9 as ForkMerge's greedy merge of whole updates (``alphavil.merge =
"greedy"``): what a run writes and records, resume, and the options it refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.alpha_greedy import merge_candidates
from alphavil.config import ConfigError
from alphavil.deltas import mix, snapshot
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.target_branch import full_alphas
from alphavil.training import Trainer
from tests.helpers import TOY_BUDGET, assert_resumes_bit_identical, toy_config

GREEDY = (
    "train.method=alphavil",
    "alphavil.merge=greedy",
    "train.threads=1",
    "alphavil.loss_scale=mean",
    "alphavil.fit_every=1",
)

pytestmark = pytest.mark.usefixtures("one_thread")


def test_an_epoch_writes_the_merge_of_whole_updates(tmp_path: Path) -> None:
    """The epoch's written θ is θ + Σ factors δ at the merged z; z is the convex mix of the
    candidates with the recorded λs, and no worse on the dev key than the best candidate."""
    cfg = toy_config(tmp_path, *TOY_BUDGET, *GREEDY)
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    method = loop.method
    order, theta = loop.generator.get_state(), snapshot(loop.model)
    seen: dict[str, object] = {}
    collect = method.collect_deltas  # type: ignore[attr-defined]

    def spy() -> object:
        out = collect()
        seen["deltas"] = out[1]
        return out

    method.collect_deltas = spy  # type: ignore[attr-defined]
    loop.generator.set_state(order)
    record = method.epoch()
    merge = record["merge"]
    target = loop.tasks.index(loop.target)
    cands = dict(merge_candidates(len(loop.tasks), target))
    assert sorted(merge["ranking"]) == sorted(cands)
    assert merge["lambdas"][0] == 1.0
    assert merge["score"] >= max(merge["scores"].values())
    lam = merge["lambdas"]
    z = sum(w * cands[name] for w, name in zip(lam, merge["ranking"], strict=True)) / sum(lam)
    assert record["target_alone"] == pytest.approx(float(z[target]))
    for i, t in enumerate(loop.tasks):
        if i != target:
            assert record["alpha"][t] == pytest.approx(float(z[i]))
    want = mix(theta, seen["deltas"], full_alphas(z, target))  # type: ignore[arg-type]
    got = snapshot(loop.model)
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=k)


def test_runs_record_the_merge(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *TOY_BUDGET, *GREEDY, "train.epochs=3")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        assert 0.0 <= r["target_alone"] <= 1.0
        assert all(0.0 <= a <= 1.0 for a in r["alpha"].values())
        assert r["merge"]["score_calls"] == 4 + 3 * 5  # 4 candidates (3 tasks), grid without 0
        assert r["alpha_fit"]["forward_passes"] == 2 * r["merge"]["score_calls"]


def test_a_killed_greedy_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *GREEDY)


@pytest.mark.parametrize(
    "override",
    [
        "alphavil.target_branch=false",
        "alphavil.fit_loss=zero_one",
        "alphavil.step_scale=true",
        "alphavil.step_length=multitask",
        "alphavil.shrink_folds=2",
    ],
    ids=["no-branch", "zero-one", "step-scale", "step-length", "shrunk"],
)
def test_the_greedy_merge_needs_the_target_branch_and_the_plain_fit(
    tmp_path: Path, override: str
) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.merge: 'greedy' .*set merge = 'fit'$"):
        toy_config(tmp_path, *GREEDY, override)


@pytest.mark.parametrize("grid", ["[]", "[0, -0.5, 1]"])
def test_a_bad_merge_grid_is_refused(tmp_path: Path, grid: str) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.merge_grid: .*values >= 0"):
        toy_config(tmp_path, *GREEDY, f"alphavil.merge_grid={grid}")


def test_the_paper_preset_refuses_the_greedy_merge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.merge: 'greedy' .*target_branch = False"):
        toy_config(tmp_path, *GREEDY, "alphavil.preset=paper")


@pytest.mark.parametrize("choice", ["alphavil.merge=greedy", "alphavil.fit_loss=zero_one"])
def test_with_the_target_alone_its_update_is_taken_whole(tmp_path: Path, choice: str) -> None:
    """No auxiliary task, no branch: the discrete choices have one point, α = 1, and the run is
    single-task training."""
    cfg = toy_config(
        tmp_path,
        *TOY_BUDGET,
        "train.method=alphavil",
        "train.threads=1",
        choice,
        "alphavil.fit_every=1",
        "train.tasks=['main']",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["alpha"] for r in records] == [{"main": 1.0}, {"main": 1.0}]


def test_the_margin_keeps_the_joint_pass_without_evidence(tmp_path: Path) -> None:
    """With a margin no dev set can pass every merge leads with the joint pass; with margin 0
    (off) the record has no margin and the ranking follows the score alone."""
    cfg = toy_config(tmp_path, *TOY_BUDGET, *GREEDY, "train.epochs=3", "alphavil.merge_margin=1e9")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert all(r["merge"]["ranking"][0] == "joint" for r in records)
    tested = [r["merge"]["margin"] for r in records if "margin" in r["merge"]]
    assert tested and all(m["beats"] is False and m["candidate"] != "joint" for m in tested)
    for r in records:
        extra = 2 if "margin" in r["merge"] else 0
        assert r["alpha_fit"]["forward_passes"] == 2 * r["merge"]["score_calls"] + extra
    off = toy_config(tmp_path, *TOY_BUDGET, *GREEDY, "train.epochs=3")
    execute(off, tmp_path / "off", show_progress=False)
    assert not any("margin" in r["merge"] for r in read_jsonl(tmp_path / "off" / "metrics.jsonl"))


def test_the_margin_needs_the_greedy_merge(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.merge_margin: .*set merge = 'greedy'"):
        toy_config(
            tmp_path, "train.method=alphavil", "alphavil.merge=fit", "alphavil.merge_margin=1"
        )
    with pytest.raises(ConfigError, match=r"alphavil\.merge_margin"):
        toy_config(tmp_path, *GREEDY, "alphavil.merge_margin=-1")
