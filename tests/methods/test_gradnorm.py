"""GradNorm: one step by hand, the gradient-norm ratio approaching its target on imbalanced
losses, the shared layer, training through the runner and exact resume."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from alphavil.methods.gradnorm import GradNorm, GradNormConfig, shared_layer
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import assert_resumes_bit_identical, toy_config
from tests.methods.test_aggregators import untrained_target_accuracy


def fake_loop(model: nn.Module, tasks: list[str], **extra: Any) -> Any:
    cfg = SimpleNamespace(extra=extra, train=SimpleNamespace(optimizer={"name": "SGD", "lr": 0.1}))
    return SimpleNamespace(model=model, tasks=tasks, cfg=cfg, device=torch.device("cpu"))


def regression(
    dim: int = 6, hidden: int = 8
) -> tuple[MultiHeadModel, torch.Tensor, dict[str, Any]]:
    """Two regression tasks on one input whose targets differ 10x in scale (losses ~100x)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, dim, generator=g)
    ys = {"small": x @ torch.randn(dim, generator=g), "big": 10 * x @ torch.randn(dim, generator=g)}
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(dim, hidden), nn.Tanh(), nn.Linear(hidden, hidden), nn.Tanh())
    return MultiHeadModel(encoder, {t: nn.Linear(hidden, 1) for t in ys}), x, ys


def losses_of(model: MultiHeadModel, x: torch.Tensor, ys: dict[str, Any]) -> dict[str, Any]:
    out = model(x, list(ys))
    return {t: nn.functional.mse_loss(out[t].squeeze(-1), y) for t, y in ys.items()}


def test_the_last_shared_layer_is_w() -> None:
    model, _, _ = regression()
    assert shared_layer(model) == [model.encoder[2].weight, model.encoder[2].bias]
    assert shared_layer(model, "encoder.0") == [model.encoder[0].weight, model.encoder[0].bias]
    with pytest.raises(ValueError, match="no module 'nope'"):
        shared_layer(model, "nope")


def test_one_step_by_hand() -> None:
    """Step 0: r_t = 1, target = Ḡ; plain SGD moves w_t by −lr·sign(G_t − Ḡ)·‖∇_W L_t‖, then
    Σ w = T; the model's gradient is that of Σ w_t(0)·L_t with w(0) = 1."""
    model, x, ys = regression()
    cfg = GradNormConfig(optimizer={"name": "SGD", "lr": 0.01})
    method = GradNorm(fake_loop(model, list(ys), gradnorm=cfg))
    losses = losses_of(model, x, ys)
    w_params = shared_layer(model)
    norms = torch.stack([
        torch.linalg.vector_norm(torch.cat([
            g.reshape(-1) for g in torch.autograd.grad(v, w_params, retain_graph=True)
        ]))
        for v in losses.values()
    ])  # fmt: skip
    expected_grad = torch.autograd.grad(
        sum(losses.values()), model.encoder[0].weight, retain_graph=True
    )[0]
    method.backward(losses)
    stepped = 1 - 0.01 * torch.sign(norms - norms.mean()) * norms
    assert torch.allclose(method.weights.detach(), 2 * stepped / stepped.sum())
    assert torch.allclose(model.encoder[0].weight.grad, expected_grad)
    assert method.last["grad_norms"] == pytest.approx(dict(zip(ys, norms.tolist(), strict=True)))


def test_gradient_norm_ratio_moves_to_its_target_with_positive_weights_summing_to_t() -> None:
    model, x, ys = regression()
    cfg = GradNormConfig(alpha=1.5, optimizer={"name": "Adam", "lr": 0.02})
    method = GradNorm(fake_loop(model, list(ys), gradnorm=cfg))
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    gaps = []
    for _ in range(150):
        losses = losses_of(model, x, ys)
        optimizer.zero_grad(set_to_none=True)
        method.backward(losses)
        optimizer.step()
        norms, targets = method.last["grad_norms"], method.last["targets"]
        ratio = torch.tensor(norms["big"] / norms["small"]).log()
        target = torch.tensor(targets["big"] / targets["small"]).log()
        gaps.append(float((ratio - target).abs()))
        w = method.weights.detach()
        assert (w > 0).all() and float(w.sum()) == pytest.approx(2.0, abs=1e-5)
    assert gaps[0] > 1.0  # the big task's gradient starts ~10x the small one's
    # |log ratio − log target| falls from ~2.9 to ~0.07 on average (Adam's sign steps on the
    # |G − target| loss make it oscillate around 0)
    assert sum(gaps[-20:]) / 20 < 0.05 * gaps[0] and max(gaps[-20:]) < 0.15 * gaps[0]
    weights = method.epoch_info()["gradnorm_weights"]
    assert weights["small"] > 1 > weights["big"]  # the small task was up-weighted


def test_trains_the_toy_problem(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=gradnorm", "train.threads=1")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert summary["status"] == "completed" and summary["target"] == "main"
    assert records[-1]["dev"]["main"]["accuracy"] > untrained_target_accuracy(tmp_path) + 0.15
    weights = records[-1]["gradnorm_weights"]
    assert records[-1]["weights"] == weights and min(weights.values()) > 0
    assert sum(weights.values()) == pytest.approx(3.0, abs=1e-5)


def test_killed_run_resumes_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, "train.method=gradnorm")
