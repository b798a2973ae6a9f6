"""``alphavil.restore_best``: with several joint passes per fit, the joint pass and the target
branch bring line 9 their state at the end of the interval's best pass (ForkMerge's
interval-best state)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.config import ConfigError
from alphavil.deltas import restore, snapshot
from alphavil.methods.alphavil_joint import joint_passes
from alphavil.methods.merging import Key
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.task_shares import share_deltas
from alphavil.training import Trainer
from tests.helpers import TOY_BUDGET, assert_resumes_bit_identical, toy_config

BEST = (
    "train.method=alphavil",
    "train.threads=1",
    "alphavil.passes=3",
    "alphavil.restore_best=true",
)

pytestmark = pytest.mark.usefixtures("one_thread")


def scripted(keys: list[Key]) -> tuple[list[int], object]:
    """A dev score that returns ``keys`` in turn, and the list of calls made."""
    calls: list[int] = []

    def score() -> Key:
        calls.append(1)
        return keys[len(calls) - 1]

    return calls, score


@pytest.mark.parametrize(
    ("keys", "best"),
    [
        ([(0.5, -1.0), (0.9, -1.0), (0.7, -0.1)], 2),  # accuracy first
        ([(0.5, -1.0), (0.5, -0.5), (0.4, 0.0)], 2),  # equal accuracy: the lower loss
        ([(0.5, -1.0), (0.5, -1.0), (0.5, -1.0)], 1),  # all equal: the first
        ([(0.1, -1.0), (0.2, -1.0), (0.3, -1.0)], 3),  # the last: nothing to restore
    ],
)
def test_the_shares_and_model_end_at_the_best_pass(
    tmp_path: Path, keys: list[Key], best: int
) -> None:
    """Three passes scored by a scripted dev score leave the task shares and the model exactly
    where ``best`` passes from the same θ and batch order end."""
    cfg = toy_config(tmp_path, *TOY_BUDGET, *BEST)
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    opt = loop.method.share_optimizer()  # type: ignore[attr-defined]
    scales = dict.fromkeys(loop.tasks, 1.0 / len(loop.tasks))
    theta, order, fresh = snapshot(loop.model), loop.generator.get_state(), opt.state_dict()

    def passes(n: int, score: object = None) -> tuple[dict[str, torch.Tensor], int, object]:
        restore(loop.model, theta)
        loop.generator.set_state(order)
        opt.load_state_dict(fresh)  # no momentum yet, as at the first run
        opt.reset_shares()
        _, ended = joint_passes(loop, opt, loop.tasks, scales, "test", n, score)  # type: ignore[arg-type]
        return share_deltas(loop.model, theta, opt), ended, snapshot(loop.model)

    calls, score = scripted(keys)
    got, ended, state = passes(3, score)
    assert ended == best and len(calls) == 3
    want, _, want_state = passes(best)
    for k in want:
        torch.testing.assert_close(got[k], want[k], rtol=0, atol=0, msg=k)
        torch.testing.assert_close(state[k], want_state[k], rtol=0, atol=0, msg=k)


def test_runs_record_each_trajectorys_best_pass(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *TOY_BUDGET, *BEST, "train.epochs=2")
    execute(cfg, tmp_path / "run", show_progress=False)
    for r in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert set(r["best_pass"]) == {"joint", "alone", "second"}  # the default second_scale
        assert all(1 <= k <= 3 for k in r["best_pass"].values())


def test_a_killed_restore_best_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *TOY_BUDGET, *BEST)


def test_restore_best_needs_several_passes(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.restore_best: .*passes = 1, fit_every = 1"):
        toy_config(
            tmp_path, "train.method=alphavil", "alphavil.restore_best=true", "alphavil.fit_every=1"
        )
