"""TorchJD aggregator methods: known two-gradient answers, heads get their own gradient, the
missing-install error, training through the runner, exact resume of the stateful ones."""

from __future__ import annotations

import sys
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import nn

from alphavil.config import POPULATION_METHODS
from alphavil.data.toy import toy_model
from alphavil.methods.aggregators import MGDA, CAGrad, NashMTL, PCGrad, UPGrad
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.training import Trainer
from tests.helpers import assert_resumes_bit_identical, toy_config

SOLVERS = ("torchjd", "cvxpy", "clarabel", "ecos", "qpsolvers", "quadprog")
needs_torchjd = pytest.mark.skipif(
    any(find_spec(m) is None for m in SOLVERS), reason='pip install "alphavil[aggregators]"'
)
AGGREGATORS = ["mgda", "pcgrad", "cagrad", "nashmtl", "upgrad"]


def fake_loop(model: nn.Module, tasks: list[str], **extra: Any) -> Any:
    train = SimpleNamespace(optimizer={"name": "SGD", "lr": 0.1})
    cfg = SimpleNamespace(extra=extra, train=train)
    return SimpleNamespace(model=model, tasks=tasks, cfg=cfg, device=torch.device("cpu"))


class Theta(nn.Module):
    """A shared 'encoder' whose output is its parameter θ: a loss g·θ has gradient g."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.theta = nn.Parameter(torch.zeros(dim))

    def forward(self, inputs: Any) -> torch.Tensor:
        return self.theta * 1.0


def aggregate(cls: Any, grads: dict[str, torch.Tensor]) -> torch.Tensor:
    """The shared gradient method ``cls`` makes from task gradients ``grads`` (w.r.t. θ)."""
    model = MultiHeadModel(
        Theta(len(next(iter(grads.values())))), {t: nn.Identity() for t in grads}
    )
    method = cls(fake_loop(model, list(grads)))
    out = model(None, list(grads))
    method.backward({t: out[t] @ g for t, g in grads.items()})
    grad = model.encoder.theta.grad
    assert grad is not None
    return grad


@needs_torchjd
def test_pcgrad_projects_away_the_conflict() -> None:
    g1, g2 = torch.tensor([2.0, 1.0]), torch.tensor([-2.0, 0.5])
    assert g1 @ g2 < 0  # opposed
    p1 = g1 - (g1 @ g2) / (g2 @ g2) * g2  # g1 projected on g2's normal plane, and vice versa
    p2 = g2 - (g1 @ g2) / (g1 @ g1) * g1
    assert torch.allclose(aggregate(PCGrad, {"a": g1, "b": g2}), p1 + p2, atol=1e-6)
    assert p1 @ p2 >= 0 and p1 @ g2 >= -1e-6 and p2 @ g1 >= -1e-6  # no conflict left


@needs_torchjd
def test_mgda_is_the_min_norm_point_of_the_convex_hull() -> None:
    g1, g2 = torch.tensor([1.0, 0.0, 1.0]), torch.tensor([-1.0, 2.0, 0.5])
    # min over γ in [0, 1] of ‖γ g1 + (1 − γ) g2‖²: γ* = (g2 − g1)·g2 / ‖g1 − g2‖², clipped
    gamma = ((g2 - g1) @ g2 / (g1 - g2).pow(2).sum()).clamp(0, 1)
    assert 0 < gamma < 1
    expected = gamma * g1 + (1 - gamma) * g2
    assert torch.allclose(aggregate(MGDA, {"a": g1, "b": g2}), expected, atol=1e-4)
    # one gradient inside the other's hull side: the hull's min-norm point is the shorter one
    short, long = torch.tensor([1.0, 0.0]), torch.tensor([3.0, 1.0])
    assert torch.allclose(aggregate(MGDA, {"a": short, "b": long}), short, atol=1e-4)


@needs_torchjd
@pytest.mark.parametrize("seed", range(5))
def test_upgrad_conflicts_with_no_task(seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    grads = {t: torch.randn(4, generator=g) for t in ("a", "b", "c")}
    grads["c"] = -grads["a"] + 0.3 * grads["c"]  # make sure some pair conflicts
    d = aggregate(UPGrad, grads)
    assert d.norm() > 0
    for gt in grads.values():
        assert d @ gt >= -1e-4 * d.norm() * gt.norm()  # quadprog's regularisation: 1e-4


@needs_torchjd
@pytest.mark.parametrize("cls", [MGDA, PCGrad, CAGrad, NashMTL, UPGrad])
def test_heads_get_their_own_gradient_and_the_encoder_an_aggregate(cls: Any) -> None:
    torch.manual_seed(0)
    model = toy_model(dim=5, hidden=6)
    tasks = ["main", "helper", "noise"]
    method = cls(fake_loop(model, tasks))
    x, y = torch.randn(32, 5), torch.randint(0, 2, (32,))
    out = model(x, tasks)
    losses = {t: nn.functional.cross_entropy(out[t], y if t != "noise" else 1 - y) for t in tasks}
    heads = {t: torch.autograd.grad(losses[t], model.heads[t].weight, retain_graph=True)[0]
             for t in tasks}  # fmt: skip
    method.backward(losses)
    for t in tasks:
        assert torch.allclose(model.heads[t].weight.grad, heads[t], atol=1e-6), t
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    assert set(method.epoch_info()["aggregation_weights"]) == set(tasks)


def test_without_torchjd_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    model = MultiHeadModel(Theta(2), {"a": nn.Identity()})
    monkeypatch.setitem(sys.modules, "torchjd", None)
    with pytest.raises(ImportError, match=r'pip install "alphavil\[aggregators\]"') as err:
        PCGrad(fake_loop(model, ["a"]))
    assert "\n" not in str(err.value)
    monkeypatch.delitem(sys.modules, "torchjd")
    if find_spec("torchjd") is None:
        return
    monkeypatch.setitem(sys.modules, "cvxpy", None)  # torchjd there, CAGrad's solver not
    with pytest.raises(ImportError, match=r'pip install "alphavil\[aggregators\]"'):
        CAGrad(fake_loop(model, ["a"]))


@needs_torchjd
def test_nashmtl_refuses_batches_without_every_task() -> None:
    model = MultiHeadModel(Theta(2), {"a": nn.Identity(), "b": nn.Identity()})
    method = NashMTL(fake_loop(model, ["a", "b"]))
    out = model(None, ["a"])
    with pytest.raises(ValueError, match="every task"):
        method.backward({"a": out["a"].sum()})


def _method(name: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """``name`` as train.method (the Pareto-set MGDA is ``pareto_mgda``, no clash)."""
    assert name not in POPULATION_METHODS
    return name


def untrained_target_accuracy(tmp_path: Path) -> float:
    """The toy target's dev accuracy at the runner's initialisation (epoch 0)."""
    cfg = toy_config(tmp_path, "train.method=single")
    data, make_model = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    return Trainer(cfg, data, make_model()).target_accuracy()


@pytest.fixture(scope="module")
def untrained_accuracy(tmp_path_factory: pytest.TempPathFactory) -> float:
    return untrained_target_accuracy(tmp_path_factory.mktemp("epoch0"))


@needs_torchjd
@pytest.mark.parametrize("name", AGGREGATORS)
def test_trains_the_toy_problem(
    tmp_path: Path, name: str, untrained_accuracy: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = toy_config(tmp_path, f"train.method={_method(name, monkeypatch)}", "train.threads=1")
    summary = execute(cfg, tmp_path / name, show_progress=False)
    assert summary["status"] == "completed" and summary["epochs_completed"] == 2
    records = read_jsonl(tmp_path / name / "metrics.jsonl")
    assert untrained_accuracy < 0.65  # binary labels: ~chance before training
    assert records[-1]["dev"]["main"]["accuracy"] > untrained_accuracy + 0.15
    assert set(records[-1]["aggregation_weights"]) == {"main", "helper", "noise"}


@needs_torchjd
@pytest.mark.parametrize("name", ["nashmtl", "pcgrad"])  # solver state; global-RNG task order
def test_killed_run_resumes_bit_identical(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, f"train.method={name}")
