"""αVIL's greedy merge with a second joint pass at another loss scale (``alphavil.second_scale``):
what an epoch collects and writes, the state every trajectory continues from, resume, and the
options it refuses."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from alphavil.config import ConfigError
from alphavil.deltas import mix, snapshot
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.second_scale import scale_candidates, summary_point
from alphavil.training import Trainer
from tests.helpers import TOY_BUDGET, assert_resumes_bit_identical, toy_config

TWO_SCALES = (
    "train.method=alphavil",
    "alphavil.merge=greedy",
    "train.threads=1",
    "alphavil.loss_scale=target",
    "alphavil.second_scale=mean",
    "alphavil.branch_scale=full",
    "alphavil.fit_every=1",
)

pytestmark = pytest.mark.usefixtures("one_thread")


def _first_epoch(tmp_path: Path, *overrides: str) -> tuple[Trainer, dict[str, Any], Any, Any]:
    """A fresh toy loop's first αVIL epoch: the loop, its record, θ and the stacked deltas."""
    cfg = toy_config(tmp_path, *TOY_BUDGET, *overrides)
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    method: Any = loop.method
    theta = snapshot(loop.model)
    seen: dict[str, Any] = {}
    collect = method.collect_deltas

    def spy() -> Any:
        out = collect()
        seen["deltas"] = out[1]
        return out

    method.collect_deltas = spy
    record = method.epoch()
    return loop, record, theta, seen["deltas"]


def test_the_second_rows_are_the_joint_pass_at_the_second_scale(tmp_path: Path) -> None:
    """The deltas hold 2T + 1 rows, and the last T are the task shares a run with
    loss_scale = "mean" collects from the same θ over the same batches."""
    loop, _, _, deltas = _first_epoch(tmp_path / "a", *TWO_SCALES)
    n = len(loop.tasks)
    mean = (*TWO_SCALES[:3], "alphavil.loss_scale=mean", "alphavil.fit_every=1")
    _, _, _, plain = _first_epoch(tmp_path / "b", *mean)
    for k, d in deltas.items():
        assert d.shape[0] == 2 * n + 1
        torch.testing.assert_close(d[n + 1 :], plain[k][:n], msg=k)
        assert not torch.equal(d[:n], d[n + 1 :]) or not d.any(), k


def test_an_epoch_writes_the_merge_over_three_trajectories(tmp_path: Path) -> None:
    loop, record, theta, deltas = _first_epoch(tmp_path, *TWO_SCALES)
    n, target = len(loop.tasks), loop.tasks.index(loop.target)
    merge = record["merge"]
    cands = dict(scale_candidates(n, target))
    assert sorted(merge["ranking"]) == sorted(cands)
    assert merge["score"] >= max(merge["scores"].values())
    lam = merge["lambdas"]
    f = sum(w * cands[name] for w, name in zip(lam, merge["ranking"], strict=False)) / sum(lam)
    z = summary_point(f, n, target)
    assert record["target_alone"] == pytest.approx(float(z[target]))
    assert record["second_scale_share"] == pytest.approx(float(f[n + 1 + target]))
    for i, t in enumerate(loop.tasks):
        if i != target:
            assert record["alpha"][t] == pytest.approx(float(z[i]))
    assert len(record["delta_norm"]) == 2 * n + 1
    want, got = mix(theta, deltas, f), snapshot(loop.model)
    for k in want:
        torch.testing.assert_close(got[k], want[k], msg=k)
    method: Any = loop.method
    for t in range(n):  # every trajectory continues from the state of what was taken
        for a, b in zip(method.shares.task_state(t), method.second.task_state(t), strict=True):
            assert (a is None and b is None) or torch.equal(a, b)
    for a, b in zip(method.shares.task_state(target), method.alone.task_state(0), strict=True):
        assert (a is None and b is None) or torch.equal(a, b)


def test_runs_record_the_three_trajectory_merge(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *TOY_BUDGET, *TWO_SCALES, "train.epochs=3", "alphavil.passes=2")
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        assert 0.0 <= r["target_alone"] <= 1.0 and 0.0 <= r["second_scale_share"] <= 1.0
        assert r["target_alone"] + r["second_scale_share"] <= 1.0 + 1e-12
        assert r["merge"]["score_calls"] == 7 + 6 * 5  # 7 candidates (3 tasks), grid without 0


def test_a_killed_two_scale_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *TWO_SCALES)


def test_a_run_killed_inside_a_two_scale_interval_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after epoch 1 of a 2-epoch interval: the three trajectories' ends, shares and
    best passes are in the state."""
    every = ("alphavil.fit_every=2", "alphavil.restore_best=true")
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *TWO_SCALES[:-1], *every)


@pytest.mark.parametrize(
    "override",
    [
        "alphavil.merge=fit",
        "alphavil.second_scale=target",
        "alphavil.write_step=0.5",
    ],
    ids=["box-fit", "same-scale", "averaged"],
)
def test_the_second_scale_needs_the_greedy_merge_at_another_scale(
    tmp_path: Path, override: str
) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.second_scale: .*or second_scale = 'none'$"):
        toy_config(tmp_path, *TWO_SCALES, override)


def test_an_unknown_second_scale_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"alphavil\.second_scale.*'sum'"):
        toy_config(tmp_path, *TWO_SCALES, "alphavil.second_scale=sum")


@pytest.mark.parametrize("every", ["alphavil.fit_every=1", "alphavil.fit_every=2"])
def test_with_the_target_alone_there_is_no_second_pass(tmp_path: Path, every: str) -> None:
    """Both loss scales are 1 for the target alone: the run is the single-task run of the same
    options without a second scale (no second pass, the target's update whole)."""
    one = (*TOY_BUDGET, "train.tasks=['main']", *TWO_SCALES[:-1], every)
    execute(toy_config(tmp_path, *one), tmp_path / "two", show_progress=False)
    execute(toy_config(tmp_path, *one, "alphavil.second_scale=none"), tmp_path / "one",
            show_progress=False)  # fmt: skip
    two, single = (read_jsonl(tmp_path / n / "metrics.jsonl") for n in ("two", "one"))
    assert [r.get("alpha") for r in two] == [r.get("alpha") for r in single]
    assert all(r.get("alpha") in (None, {"main": 1.0}) for r in two)
    assert [(r["dev"], r["test"]) for r in two] == [(r["dev"], r["test"]) for r in single]
