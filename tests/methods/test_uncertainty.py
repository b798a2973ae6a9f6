"""Uncertainty weighting: the loss and its gradient, recovery of known noise variances, its
optimiser, training through the runner and exact resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from alphavil.config import ConfigError
from alphavil.methods.uncertainty import Uncertainty, UncertaintyConfig, uncertainty_loss
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import assert_resumes_bit_identical, toy_config
from tests.methods.test_aggregators import untrained_target_accuracy


def fake_loop(model: nn.Module, tasks: list[str], optimizer: dict[str, Any], **extra: Any) -> Any:
    cfg = SimpleNamespace(extra=extra, train=SimpleNamespace(optimizer=optimizer))
    return SimpleNamespace(model=model, tasks=tasks, cfg=cfg, device=torch.device("cpu"))


def test_loss_gradient_float64() -> None:
    g = torch.Generator().manual_seed(0)
    losses = (torch.rand(3, generator=g, dtype=torch.float64) + 0.1).requires_grad_()
    log_vars = torch.randn(3, generator=g, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(uncertainty_loss, (losses, log_vars))
    grad_s, grad_l = torch.autograd.grad(uncertainty_loss(losses, log_vars), (log_vars, losses))
    s, loss = log_vars.detach(), losses.detach()
    assert torch.allclose(grad_s, 1 - torch.exp(-s) * loss)  # zero at exp(s) = L
    assert torch.allclose(grad_l, torch.exp(-s))  # the task weights


def test_backward_weights_the_model_gradients_and_steps_s() -> None:
    torch.manual_seed(0)
    model = MultiHeadModel(nn.Linear(3, 4), {"a": nn.Linear(4, 1), "b": nn.Linear(4, 1)})
    cfg = UncertaintyConfig(init_log_var=0.5, optimizer={"name": "SGD", "lr": 0.1})
    method = Uncertainty(fake_loop(model, ["a", "b"], {"name": "Adam"}, uncertainty=cfg))
    x = torch.randn(8, 3)
    out = model(x, ["a", "b"])
    losses = {"a": out["a"].pow(2).mean(), "b": 3 * out["b"].pow(2).mean()}
    expected = torch.autograd.grad(
        sum(torch.exp(torch.tensor(-0.5)) * v for v in losses.values()),
        model.encoder.weight,
        retain_graph=True,
    )[0]
    reported = method.backward(losses)
    values = torch.stack([v.detach() for v in losses.values()])
    assert reported == pytest.approx(float((torch.exp(torch.tensor(-0.5)) * values + 0.5).sum()))
    assert torch.allclose(model.encoder.weight.grad, expected)
    step = 0.1 * (1 - torch.exp(torch.tensor(-0.5)) * values)  # SGD on s: s − lr·∂/∂s
    assert torch.allclose(method.log_vars.detach(), 0.5 - step)


def test_s_optimizer_defaults_to_the_model_optimizer_without_weight_decay() -> None:
    model = MultiHeadModel(nn.Linear(3, 4), {"a": nn.Linear(4, 1)})
    spec = {"name": "AdamW", "lr": 0.003, "weight_decay": 0.1}
    method = Uncertainty(fake_loop(model, ["a"], spec))
    assert isinstance(method.optimizer, torch.optim.AdamW)
    group = method.optimizer.param_groups[0]
    assert group["lr"] == 0.003 and group["weight_decay"] == 0.0


def test_learnt_variances_recover_the_noise_variances() -> None:
    """y_t = a_t·x + ε_t with ε_t ~ N(0, σ_t²): at the optimum the fit's residual MSE is
    ≈ σ_t² and the stationary point of exp(−s)·L + s is exp(s) = L, so exp(s_t) ≈ σ_t².

    Tolerance: the training residual of n = 4000 draws has a relative standard deviation of
    sqrt(2/n) ≈ 2.2% around σ_t²(1 − p/n) (p ≤ 9 parameters per task: −0.2%), so 10% is ~4.5
    standard deviations; exp(s_t) must match the actual final residual to within 1%."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    variances = {"quiet": 0.05, "mid": 0.5, "loud": 4.0}
    n, dim = 4000, 8
    x = torch.randn(n, dim, generator=g)
    ys = {
        t: x @ torch.randn(dim, generator=g) + v**0.5 * torch.randn(n, generator=g)
        for t, v in variances.items()
    }
    model = MultiHeadModel(nn.Linear(dim, 16), {t: nn.Linear(16, 1) for t in variances})
    spec = {"name": "Adam", "lr": 0.03}
    method = Uncertainty(fake_loop(model, list(variances), spec))
    optimizer = torch.optim.Adam(model.parameters(), lr=0.03)
    for _ in range(800):  # full batch
        out = model(x, list(variances))
        losses = {t: nn.functional.mse_loss(out[t].squeeze(-1), y) for t, y in ys.items()}
        optimizer.zero_grad(set_to_none=True)
        method.backward(losses)
        optimizer.step()
    learnt = dict(zip(variances, method.log_vars.detach().exp().tolist(), strict=True))
    final = {t: float(v.detach()) for t, v in losses.items()}
    for t, v in variances.items():
        assert learnt[t] == pytest.approx(final[t], rel=0.01), t
        assert learnt[t] == pytest.approx(v, rel=0.10), t
    weights = method.epoch_info()["uncertainty_weights"]
    assert weights["quiet"] > weights["mid"] > weights["loud"]


def test_options_are_validated(tmp_path: Path) -> None:
    cfg = toy_config(
        tmp_path, "train.method=uncertainty", "uncertainty.optimizer={name='SGD', lr=1}"
    )
    assert cfg.extra["uncertainty"].optimizer == {"name": "SGD", "lr": 1}
    with pytest.raises(ConfigError, match=r"uncertainty\.optimizer\.name"):
        toy_config(tmp_path, "train.method=uncertainty", "uncertainty.optimizer={name='Nope'}")


def test_trains_the_toy_problem(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=uncertainty", "train.threads=1")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert summary["status"] == "completed" and summary["target"] == "main"
    assert records[-1]["dev"]["main"]["accuracy"] > untrained_target_accuracy(tmp_path) + 0.15
    assert records[-1]["weights"] == records[-1]["uncertainty_weights"]
    assert records[-1]["uncertainty_weights"] != {"main": 1.0, "helper": 1.0, "noise": 1.0}


def test_killed_run_resumes_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, "train.method=uncertainty")
