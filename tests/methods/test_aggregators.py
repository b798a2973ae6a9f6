"""TorchJD aggregator methods: known two-gradient answers, heads get their own gradient, the
missing-install error, training through the runner, exact resume of the stateful ones."""

from __future__ import annotations

import sys
import warnings
from importlib.util import find_spec
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from hypothesis import assume, given, settings
from hypothesis import strategies as st
from torch import nn

from alphavil.config import POPULATION_METHODS
from alphavil.data.toy import toy_model
from alphavil.methods.aggregators import (
    MGDA,
    AggregatorConfig,
    CAGrad,
    NashMTL,
    PCGrad,
    UPGrad,
)
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
@pytest.mark.parametrize("name", AGGREGATORS)  # Nash: solver state; PCGrad: global-RNG order
def test_killed_run_resumes_bit_identical(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, f"train.method={name}")


# ------------------------------------------------ the wrappers against TorchJD, properties
# Each wrapper must give what its ``torchjd.aggregation`` aggregator gives on the Jacobian
# directly (with the options the config names), so a wrapper building another aggregator, or
# passing another option, is caught. The Jacobians are scaled up so Nash-MTL's clipping
# (max_norm = 1) is active.
jacobians = st.builds(
    lambda seed, rows, cols, scale: (
        scale
        * torch.randn(
            rows, cols, generator=torch.Generator().manual_seed(seed), dtype=torch.float64
        )
    ),
    st.integers(0, 2**31 - 1),
    st.integers(2, 4),
    st.integers(2, 6),
    st.sampled_from([0.1, 1.0, 10.0]),
)
SETTINGS = settings(max_examples=20, deadline=None, derandomize=True)


def wrapped(cls: Any, jac: torch.Tensor, **config: Any) -> torch.Tensor:
    """What the wrapper ``cls`` gives the shared parameters for Jacobian ``jac`` (rows = tasks)."""
    grads = {f"t{i}": row for i, row in enumerate(jac)}
    model = MultiHeadModel(Theta(jac.shape[1]).double(), {t: nn.Identity() for t in grads})
    extra = {"aggregator": AggregatorConfig(**config)} if config else {}
    method = cls(fake_loop(model, list(grads), **extra))
    out = model(None, list(grads))
    with warnings.catch_warnings():
        quiet_solvers()
        method.backward({t: out[t] @ g for t, g in grads.items()})
    grad = model.encoder.theta.grad
    assert grad is not None
    return grad


def direct(aggregator: Any, jac: torch.Tensor) -> torch.Tensor:
    with warnings.catch_warnings():
        quiet_solvers()
        return aggregator(jac)


def quiet_solvers() -> None:
    """cvxpy's notes on Nash-MTL's problem (not DPP; inaccurate on rank-deficient Jacobians,
    where the wrapper and TorchJD solve the same problem alike)."""
    for note in (".*not DPP", "Solution may be inaccurate"):
        warnings.filterwarnings("ignore", message=note, category=UserWarning)


def references() -> dict[Any, Any]:
    """The TorchJD aggregator each wrapper must equal, at the config defaults."""
    from torchjd import aggregation as a

    return {
        MGDA: lambda n: a.MGDA(),
        CAGrad: lambda n: a.CAGrad(c=0.4),
        NashMTL: lambda n: a.NashMTL(
            n_tasks=n, max_norm=1.0, update_weights_every=1, optim_niter=20
        ),
        UPGrad: lambda n: a.UPGrad(),
    }


@needs_torchjd
@pytest.mark.parametrize("cls", [MGDA, CAGrad, NashMTL, UPGrad])
@SETTINGS
@given(jac=jacobians)
def test_wrapper_equals_torchjd_on_the_jacobian(cls: Any, jac: torch.Tensor) -> None:
    expected = direct(references()[cls](jac.shape[0]), jac)
    torch.testing.assert_close(wrapped(cls, jac), expected, rtol=1e-6, atol=1e-8)


@needs_torchjd
@SETTINGS
@given(jac=jacobians, seed=st.integers(0, 1000))
def test_pcgrad_equals_torchjd_with_the_same_random_order(jac: torch.Tensor, seed: int) -> None:
    from torchjd.aggregation import PCGrad as Reference

    torch.manual_seed(seed)
    expected = direct(Reference(), jac)
    torch.manual_seed(seed)
    torch.testing.assert_close(wrapped(PCGrad, jac), expected, rtol=1e-6, atol=1e-8)


@needs_torchjd
@pytest.mark.parametrize(
    ("cls", "config", "reference"),
    [
        (CAGrad, {"cagrad_c": 0.9}, lambda a, n: a.CAGrad(c=0.9)),
        (NashMTL, {"nash_max_norm": 0.3}, lambda a, n: a.NashMTL(n_tasks=n, max_norm=0.3)),
    ],
)
def test_wrapper_passes_its_options_to_torchjd(cls: Any, config: Any, reference: Any) -> None:
    from torchjd import aggregation

    jac = 5 * torch.randn(3, 4, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = direct(reference(aggregation, 3), jac)
    torch.testing.assert_close(wrapped(cls, jac, **config), expected, rtol=1e-6, atol=1e-8)
    default = wrapped(cls, jac)
    assert not torch.allclose(default, expected), "setup: the option must change the result"


@needs_torchjd
@SETTINGS
@given(jac=jacobians)
def test_upgrad_is_non_conflicting(jac: torch.Tensor) -> None:
    # (TorchJD's MGDA is iterative: where 0 is in the hull it stops near, not at, 0)
    d = wrapped(UPGrad, jac)
    # quadprog's regularisation (1e-4 on the Gramian) leaves an error of the Jacobian's scale
    assert (jac @ d >= -1e-3 * jac.norm(dim=1) * jac.norm()).all()


@needs_torchjd
@pytest.mark.parametrize("cls", [MGDA, CAGrad, NashMTL, UPGrad])
@SETTINGS
@given(jac=jacobians, seed=st.integers(0, 1000))
def test_aggregate_does_not_depend_on_the_task_order(
    cls: Any, jac: torch.Tensor, seed: int
) -> None:
    # Nash-MTL's bargaining solution assumes linearly independent task gradients (Navon et al.,
    # 2022); with more tasks than dimensions its iterative solver stops at points that depend on
    # the task order (3 tasks in 2 dimensions, seen on an AMD EPYC host, not on an Intel Xeon)
    assume(cls is not NashMTL or jac.shape[0] <= jac.shape[1])
    perm = torch.randperm(jac.shape[0], generator=torch.Generator().manual_seed(seed))
    torch.testing.assert_close(wrapped(cls, jac[perm]), wrapped(cls, jac), rtol=1e-4, atol=1e-6)


@needs_torchjd
@pytest.mark.parametrize("cls", [MGDA, CAGrad, UPGrad])  # Nash-MTL clips: not homogeneous
@SETTINGS
@given(jac=jacobians, factor=st.sampled_from([0.5, 3.0, 20.0]))
def test_aggregate_scales_with_the_jacobian(cls: Any, jac: torch.Tensor, factor: float) -> None:
    torch.testing.assert_close(
        wrapped(cls, factor * jac), factor * wrapped(cls, jac), rtol=1e-4, atol=1e-6
    )
