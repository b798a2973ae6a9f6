"""DIW's epoch (alphavil.methods.diw) on a scripted loop: the probes, the weight update
w_t ← max(w_t + lr·scale·(s_t − a), floor) after every try, the stop rule, the reset to θ."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from torch import nn

from alphavil.config import DIWConfig
from alphavil.methods.diw import DIW

TASKS = ["main", "a", "b"]


class ScriptedLoop:
    """The loop primitives DIW calls; ``target_accuracy`` replays ``accuracies`` in order."""

    def __init__(self, accuracies: list[float], **diw: Any) -> None:
        self.cfg = type("Cfg", (), {"diw": DIWConfig(**diw)})()
        self.tasks, self.target = list(TASKS), "main"
        self.weights = dict.fromkeys(TASKS, 1.0)
        self.model = nn.Linear(1, 1)
        self.optimizer = torch.optim.SGD(self.model.parameters(), lr=0.1, momentum=0.9)
        self.accuracies = list(accuracies)
        self.calls: list[tuple[str, dict[str, float], float]] = []  # (label, scales, weight)

    def target_accuracy(self) -> float:
        return self.accuracies.pop(0)

    def task_optimizer(self, task: str, policy: str) -> Any:
        return self.optimizer

    def train_steps(self, opt: Any, tasks: list[str], scales: dict[str, float], rho: float,
                    label: str) -> None:  # fmt: skip
        # every probe and try starts from θ: the model's weight is still its θ value
        self.calls.append((label, dict(scales), float(self.model.weight.detach())))
        with torch.no_grad():
            self.model.weight.add_(1.0)  # a "step" that a missing reset to θ would accumulate


def test_weights_move_by_the_probe_minus_joint_accuracy_after_every_try() -> None:
    # θ's target accuracy 0.5; probes main 0.6, a 0.7, b 0.4; tries 0.45, 0.48, then 0.55 > 0.5
    loop = ScriptedLoop([0.5, 0.6, 0.7, 0.4, 0.45, 0.48, 0.55], lr=0.1, patience=5)
    theta = float(loop.model.weight.detach())
    info = DIW(loop).epoch()
    probes = {"main": 0.6, "a": 0.7, "b": 0.4}
    assert info["probe_target_dev"] == probes and info["previous_target_dev"] == 0.5
    w = dict.fromkeys(TASKS, 1.0)
    for joint, tried in zip([0.45, 0.48, 0.55], info["tries"], strict=True):
        w = {t: max(w[t] + 0.1 * (probes[t] - joint), 1e-6) for t in TASKS}
        assert tried["target_dev"] == joint
        assert tried["weights"] == pytest.approx(w, rel=1e-12)
    assert info["improved"] and loop.weights == pytest.approx(w, rel=1e-12)
    assert not loop.accuracies  # stopped at the first try beating 0.5
    labels = [c[0] for c in loop.calls]
    assert labels == ["probe main", "probe a", "probe b", "joint try 1", "joint try 2",
                      "joint try 3"]  # fmt: skip
    assert all(c[2] == theta for c in loop.calls)  # each from θ
    assert loop.calls[0][1] == {"main": 1.0}  # probes are unweighted single-task updates
    # a try trains with the weights the previous try left, normalised
    after_first = info["tries"][0]["weights"]
    total = sum(after_first.values())
    assert loop.calls[4][1] == pytest.approx({t: v / total for t, v in after_first.items()})


def test_score_scale_and_the_floor() -> None:
    loop = ScriptedLoop([0.5, 0.9, 0.1, 0.5, 0.3, 0.3], lr=2.0, patience=2, score_scale=100.0)
    info = DIW(loop).epoch()
    # try 1: main 1 + 200·0.6 = 121, a 1 + 200·(−0.2) → floor, b 1 + 200·0.2 = 41
    assert info["tries"][0]["weights"] == pytest.approx({"main": 121.0, "a": 1e-6, "b": 41.0})
    assert len(info["tries"]) == 2 and not info["improved"]
    assert loop.weights == info["tries"][-1]["weights"]  # all tries failed: the last one kept
