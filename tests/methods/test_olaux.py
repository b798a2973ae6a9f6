"""OL-AUX (Lin et al. 2019) online auxiliary weights (``train.method = "olaux"``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
import torch
from torch import Tensor, nn

from alphavil.methods.olaux import OLAux, OLAuxConfig
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import toy_config
from tests.methods.test_cosine import Bilinear, C, fake_loop, killed_and_resumed


def test_weight_update_equals_the_closed_form_on_known_gradients() -> None:
    model = Bilinear()  # constant gradients: ∇_s L_t = c_t, heads ⟨c_t, s⟩
    method = OLAux(fake_loop(model, olaux=OLAuxConfig(horizon=3, lr=0.5)))
    alpha, beta, n = 0.1, 0.5, 3  # fake_loop's SGD lr, β, N
    dots = {t: sum(a * b for a, b in zip(C["main"], C[t], strict=True)) for t in C}
    for step in range(1, 2 * n + 1):
        model.zero_grad(set_to_none=True)
        w = dict(method.w)
        method.backward(model.losses())  # no optimiser step: the gradients stay the same
        expected = [
            sum((1.0 if t == "main" else w[t]) * C[t][k] for t in C) for k in range(2)
        ]  # the step used the weights from before any update in this call
        assert model.s.grad is not None
        assert model.s.grad.tolist() == pytest.approx(expected)
        assert model.heads["opposed"].grad.item() == pytest.approx(w["opposed"] * -0.5)  # type: ignore[union-attr]
        k = step // n  # updates so far: w_t = 1 + k · β · α · N · ⟨c_main, c_t⟩
        for t in ("aligned", "opposed"):
            assert method.w[t] == pytest.approx(1.0 + k * beta * alpha * n * dots[t])
    assert method.w["aligned"] > 1.0 > method.w["opposed"]
    assert method.loop.weights == {"main": 1.0, **method.w}


class Quadratic(nn.Module):
    """Shared point s and losses ‖s − u_t‖²: "aligned" pulls towards the target's optimum,
    "opposed" away from it."""

    U: ClassVar = {"main": [1.0, 0.0], "aligned": [1.2, 0.1], "opposed": [-1.0, 0.0]}

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.zeros(2))

    def losses(self) -> dict[str, Tensor]:
        return {t: ((self.s - torch.tensor(u)) ** 2).sum() for t, u in self.U.items()}


def train_quadratic(**options: float | bool) -> list[dict[str, float]]:
    """40 SGD steps of OL-AUX on :class:`Quadratic` (N = 5); the weights after every step."""
    model = Quadratic()
    loop = fake_loop(model, olaux=OLAuxConfig(horizon=5, **options))  # type: ignore[arg-type]
    loop.tasks = list(Quadratic.U)
    method = OLAux(loop)
    history = []
    for _ in range(40):
        loop.optimizer.zero_grad(set_to_none=True)
        method.backward(model.losses())
        loop.optimizer.step()
        history.append(dict(method.w))
    return history


def test_aligned_weight_rises_and_opposed_falls_while_training() -> None:
    history = train_quadratic(lr=0.2)
    first, last = history[4], history[-1]  # after the first update, at the end
    assert last["aligned"] > first["aligned"] > 1.0
    assert 1.0 > first["opposed"] > last["opposed"]
    clipped = train_quadratic(lr=1.0, nonnegative=True)  # the first update would go below 0
    assert clipped[4]["opposed"] == 0.0 and min(h["opposed"] for h in clipped) == 0.0


def test_olaux_trains_the_toy_problem(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=olaux", "train.epochs=3")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["dev"]["main"]["accuracy"] > 0.8
    # 8 batches per epoch, N = 5: updates after batches 5, 10, 15, 20
    assert [r["weight_updates"] for r in records] == [1, 2, 1]
    for r in records:
        assert r["weights"] == {"main": 1.0, **r["aux_weights"]}
    assert records[-1]["aux_weights"] != {"helper": 1.0, "noise": 1.0}


def test_olaux_resumes_bit_identical(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # N = 3 does not divide the 8 batches of an epoch: the horizon's sums cross the resume
    killed_and_resumed(tmp_path, monkeypatch, "train.method=olaux", "olaux.horizon=3")
