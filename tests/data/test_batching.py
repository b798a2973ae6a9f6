"""Training streams of separate-example data: interleaved one-task batches, joint steps."""

from __future__ import annotations

import math

import pytest
import torch

from alphavil.data.batching import JointBatch, SeparateInputData
from alphavil.tasks import Task

SIZES = {"a": 10, "b": 25, "c": 4}


def _data(stream: str = "joint", lists: bool = False) -> SeparateInputData:
    """Task t's training example i is the number 1000·k + i (k: the task's position)."""
    examples, labels = {}, {}
    for k, (t, n) in enumerate(SIZES.items()):
        x = torch.arange(n) + 1000 * k
        examples[t] = {"train": x.tolist() if lists else x, "test": x[:2]}
        labels[t] = {"train": torch.arange(n) % 2, "test": torch.zeros(2, dtype=torch.long)}
    tasks = [Task(t, 2) for t in SIZES]
    return SeparateInputData(tasks, examples, labels, torch.tensor if lists else None, stream)


def _steps(data: SeparateInputData, seed: int = 0, batch: int = 4) -> list[JointBatch]:
    g = torch.Generator().manual_seed(seed)
    steps = list(data.train_stream(list(SIZES), batch_size=batch, generator=g))
    assert all(isinstance(s, JointBatch) for s in steps)
    return steps  # type: ignore[return-value]


def _own(step: JointBatch, task: str) -> list[int]:
    return [int(v) for v in step.inputs[step.rows[task]]]


@pytest.mark.parametrize("lists", [False, True])
def test_every_step_holds_a_batch_of_every_task_and_the_largest_is_seen_once(lists: bool) -> None:
    steps = _steps(_data(lists=lists))
    assert len(steps) == math.ceil(max(SIZES.values()) / 4)  # 7
    for s in steps:
        assert list(s.targets) == list(SIZES)
        for t, y in s.targets.items():
            k = list(SIZES).index(t)
            own = _own(s, t)
            assert len(own) == len(y) and all(1000 * k <= v < 1000 * k + SIZES[t] for v in own)
            assert y.tolist() == [(v - 1000 * k) % 2 for v in own]  # labels follow their rows
    seen_b = sorted(v for s in steps for v in _own(s, "b"))
    assert seen_b == list(range(1000, 1025))  # once each; the last batch is the short one
    assert [len(_own(s, "b")) for s in steps] == [4, 4, 4, 4, 4, 4, 1]


def test_a_smaller_task_cycles_through_fresh_orders() -> None:
    steps = _steps(_data())
    a = [_own(s, "a") for s in steps]  # 10 examples: batches of 4, 4, 2, then a new order
    assert [len(b) for b in a] == [4, 4, 2, 4, 4, 2, 4]
    first, second = [v for b in a[:3] for v in b], [v for b in a[3:6] for v in b]
    assert sorted(first) == sorted(second) == list(range(10))
    assert first != second  # reshuffled
    c = [_own(s, "c") for s in steps]  # 4 examples: one full batch per pass of its own
    assert all(sorted(b) == list(range(2000, 2004)) for b in c)


def test_a_pass_is_drawn_before_it_is_iterated_and_is_reproducible() -> None:
    data = _data()
    g = torch.Generator().manual_seed(3)
    data.train_stream(list(SIZES), batch_size=4, generator=g)  # not iterated
    drawn = g.get_state()
    g2 = torch.Generator().manual_seed(3)
    list(data.train_stream(list(SIZES), batch_size=4, generator=g2))
    assert torch.equal(drawn, g2.get_state())
    assert [_own(s, "a") for s in _steps(data, 5)] == [_own(s, "a") for s in _steps(data, 5)]
    assert [_own(s, "a") for s in _steps(data, 5)] != [_own(s, "a") for s in _steps(data, 6)]


def test_a_fraction_samples_each_task_and_cycles_within_the_sample() -> None:
    data = _data()
    g = torch.Generator().manual_seed(0)
    steps = list(data.joint_batches(list(SIZES), batch_size=4, generator=g, fraction=0.5))
    assert len(steps) == math.ceil(round(0.5 * 25) / 4)  # 13 of b's 25
    a = {v for s in steps for v in _own(s, "a")}
    assert len(a) == 5  # a's half, repeated rather than widened


def test_tasks_without_training_examples_are_left_out() -> None:
    data = _data()
    data.examples["c"]["train"] = data.examples["c"]["train"][:0]
    data.labels["c"]["train"] = data.labels["c"]["train"][:0]
    steps = _steps(data)
    assert all(list(s.targets) == ["a", "b"] for s in steps)


def test_the_interleaved_stream_gives_one_task_per_batch_and_draws_eagerly() -> None:
    data = _data("interleaved")
    assert not data.all_tasks_per_step and _data().all_tasks_per_step
    g = torch.Generator().manual_seed(0)
    batches = data.train_stream(list(SIZES), batch_size=4, generator=g)
    drawn = g.get_state()
    batches = list(batches)
    assert torch.equal(drawn, g.get_state())
    assert all(len(targets) == 1 for _, targets in batches)
    assert len(batches) == sum(math.ceil(n / 4) for n in SIZES.values())


def test_tasks_without_a_split_yield_no_evaluation_batches() -> None:
    data = _data()
    assert data.num_examples("dev", "a") == 0
    assert list(data.eval_batches("dev", ["a", "b"], batch_size=4)) == []
    assert len(list(data.eval_batches("test", ["a", "b"], batch_size=4))) == 2
