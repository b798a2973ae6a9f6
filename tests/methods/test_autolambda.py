"""Auto-Lambda (Liu et al. 2022) look-ahead meta-gradients (``train.method = "autolambda"``)."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from torch import nn

from alphavil.methods.autolambda import lookahead_loss
from alphavil.methods.gradients import task_gradients
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from alphavil.tasks import Task
from tests.helpers import toy_config
from tests.methods.test_cosine import killed_and_resumed

TASKS = {"main": Task("main", 3), "aux": Task("aux", 2), "reg": Task("reg", 1, "regression")}


def test_meta_gradient_matches_central_differences_in_float64() -> None:
    g = torch.Generator().manual_seed(0)
    model = MultiHeadModel(
        nn.Sequential(nn.Linear(4, 5), nn.Tanh(), nn.Dropout(0.5)),  # dropout: eval mode is used
        {t.name: nn.Linear(5, t.num_outputs) for t in TASKS.values()},
    ).double()
    x, x_dev = (torch.randn(n, 4, generator=g, dtype=torch.float64) for n in (12, 9))
    y = {"main": torch.randint(0, 3, (12,), generator=g),
         "aux": torch.randint(0, 2, (12,), generator=g),
         "reg": torch.randn(12, generator=g, dtype=torch.float64)}  # fmt: skip
    dev = (x_dev, {"main": torch.randint(0, 3, (9,), generator=g)})
    model.eval()
    out = model(x, list(TASKS))
    params, grads = task_gradients(model, {t: TASKS[t].loss(out[t], y[t]) for t in TASKS})
    shift = [0.1 * torch.randn(p.shape, generator=g, dtype=torch.float64) for p in params]
    lr, main = 0.3, TASKS["main"]

    def f(lam: torch.Tensor) -> torch.Tensor:
        lambdas = {t: lam[i] for i, t in enumerate(TASKS)}
        return lookahead_loss(model, grads, lambdas, lr, dev, main, shift)

    lam = torch.tensor([0.7, 0.4, -0.2], dtype=torch.float64, requires_grad=True)
    (exact,) = torch.autograd.grad(f(lam), lam)
    h, eye = 1e-5, torch.eye(3, dtype=torch.float64)
    with torch.no_grad():
        central = torch.stack([(f(lam + h * e) - f(lam - h * e)) / (2 * h) for e in eye])
    assert exact.tolist() == pytest.approx(central.tolist(), abs=1e-6, rel=0)
    assert exact.abs().min() > 1e-4  # not trivially zero
    # ... and equals the limit of the paper's approximation: −lr · ⟨∇L_t(θ), d⟩ by central
    # differences of the training losses at θ ± ε d, d = ∇_θ' L_main(θ'; dev)
    moved = copy.deepcopy(model)
    with torch.no_grad():
        for i, p in enumerate(moved.parameters()):
            step = sum(lam[j] * grads[t][i] for j, t in enumerate(TASKS) if grads[t][i] is not None)
            p -= lr * (step + shift[i])
    dev_loss = main.loss(moved(dev[0], ["main"])["main"], dev[1]["main"])
    d = [
        torch.zeros_like(p) if v is None else v
        for p, v in zip(
            moved.parameters(),
            torch.autograd.grad(dev_loss, list(moved.parameters()), allow_unused=True),
            strict=True,
        )
    ]
    eps = 1e-5 / float(torch.cat([v.flatten() for v in d]).norm())

    def train_losses(sign: float) -> torch.Tensor:
        probe = copy.deepcopy(model)
        with torch.no_grad():
            for p, v in zip(probe.parameters(), d, strict=True):
                p += sign * eps * v
            o = probe(x, list(TASKS))
            return torch.stack([TASKS[t].loss(o[t], y[t]) for t in TASKS])

    paper = -lr * (train_losses(1) - train_losses(-1)) / (2 * eps)
    assert exact.tolist() == pytest.approx(paper.tolist(), abs=1e-6, rel=0)


def test_weights_move_towards_the_helpful_task_on_the_toy_problem(tmp_path: Path) -> None:
    # λ = 1 lets the auxiliary heads learn at the target's pace; Adam lr 1e-2 instead of the
    # paper's 1e-4 makes 16 meta steps visible
    cfg = toy_config(tmp_path, "train.method=autolambda", "autolambda.init_weight=1.0",
                     "autolambda.meta_optimizer={name='Adam', lr=0.01}")  # fmt: skip
    execute(cfg, tmp_path / "run", show_progress=False)
    final = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]["weights"]
    assert final["helper"] > 1.0 and final["helper"] > final["noise"]
    assert final["main"] > final["helper"]


def test_autolambda_trains_the_toy_problem(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=autolambda", "train.epochs=3")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["dev"]["main"]["accuracy"] > records[0]["dev"]["main"]["accuracy"]
    for r in records:
        assert r["meta_steps"] == 8  # one per batch (paper)
        assert r["weights"] == {"main": r["target_weight"], **r["aux_weights"]}
    lam = records[-1]["weights"]
    assert lam != {"main": 0.1, "helper": 0.1, "noise": 0.1}  # initial λ = 0.1 (paper)
    assert all(abs(v - 0.1) < 0.01 for v in lam.values())  # Adam, lr 1e-4: ~1e-4 per step


def test_autolambda_resumes_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a meta step every 3 batches: the step count crosses the resume; the dev stream restarts
    # every epoch from loop.dev_generator (restored by the loop)
    killed_and_resumed(tmp_path, monkeypatch, "train.method=autolambda", "autolambda.every=3",
                       "autolambda.meta_optimizer={name='Adam', lr=0.01}")  # fmt: skip
