"""Du et al. 2018 gradient-similarity gating (``train.method = "cosine"``)."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import io
import math
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from alphavil.data.batching import SeparateInputData
from alphavil.methods import SECTIONS
from alphavil.methods.cosine import Cosine, CosineConfig, cosine_backward
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from alphavil.tasks import Task
from tests.helpers import assert_resumes_bit_identical, toy_config

# L_t = h_t · ⟨c_t, s⟩ at s = (1, 1), h_t = 1: ∇_s L_t = c_t, ∇_{h_t} L_t = ⟨c_t, s⟩
C = {"main": [1.0, 0.0], "aligned": [1.0, 1.0], "opposed": [-1.0, 0.5]}


class Bilinear(nn.Module):
    """A shared vector s and one scalar head per task: gradients known in closed form."""

    def __init__(self) -> None:
        super().__init__()
        self.s = nn.Parameter(torch.ones(2))
        self.heads = nn.ParameterDict({t: nn.Parameter(torch.ones(())) for t in C})

    def losses(self, tasks: list[str] | None = None) -> dict[str, Tensor]:
        return {t: self.heads[t] * (torch.tensor(C[t]) @ self.s) for t in tasks or C}


def fake_loop(model: nn.Module, data: Any = None, **extra: Any) -> Any:
    return SimpleNamespace(
        model=model, target="main", tasks=list(C), cfg=SimpleNamespace(extra=extra),
        weights={}, data=data, optimizer=torch.optim.SGD(model.parameters(), lr=0.1),
    )  # fmt: skip


def test_an_opposed_auxiliary_gradient_is_dropped_and_an_aligned_one_kept() -> None:
    model = Bilinear()
    info = cosine_backward(model, model.losses(), "main")
    assert info["aligned"] == pytest.approx((1 / math.sqrt(2), 1.0))
    assert info["opposed"] == pytest.approx((-1 / math.sqrt(1.25), 0.0))
    assert model.s.grad is not None
    assert model.s.grad.tolist() == [2.0, 1.0]  # c_main + c_aligned; c_opposed dropped
    # every head gets its own task's gradient ⟨c_t, s⟩, the opposed task's too
    heads = {t: h.grad.item() for t, h in model.heads.items()}  # type: ignore[union-attr]
    assert heads == {"main": 1.0, "aligned": 2.0, "opposed": -0.5}


def test_weighted_variant_scales_by_the_cosine() -> None:
    model = Bilinear()
    method = Cosine(fake_loop(model, cosine=CosineConfig(variant="weighted")))
    method.backward(model.losses())
    c = 1 / math.sqrt(2)
    assert model.s.grad is not None
    assert model.s.grad.tolist() == pytest.approx([1 + c, c])
    assert method.epoch_info()["aux_weights"] == pytest.approx({"aligned": c, "opposed": 0.0})


def test_one_task_batches_use_the_targets_latest_gradient() -> None:
    model = Bilinear()
    data = SeparateInputData([Task(t, 2) for t in C], {t: {} for t in C}, {t: {} for t in C}, list)
    method = Cosine(fake_loop(model, data))
    method.backward(model.losses(["aligned"]))  # no target gradient yet: skipped
    assert all(p.grad is None for p in model.parameters())
    method.backward(model.losses(["main"]))
    for aux, shared in (("aligned", [1.0, 1.0]), ("opposed", None)):  # cos > 0, cos < 0
        model.zero_grad(set_to_none=True)
        method.backward(model.losses([aux]))
        assert (model.s.grad if shared is None else model.s.grad.tolist()) == shared
        assert model.heads[aux].grad is not None
    assert method.state_dict()["reference"][0].tolist() == [1.0, 0.0]


def test_cosine_trains_the_toy_problem(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=cosine", "train.epochs=3")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed" and summary["target"] == "main"
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert records[-1]["dev"]["main"]["accuracy"] > 0.8
    for r in records:
        assert set(r["aux_weights"]) == {"helper", "noise"}
        assert all(0.0 <= w <= 1.0 for w in r["aux_weights"].values())
        assert r["weights"] == {"main": 1.0, **r["aux_weights"]}
        assert all(-1.0 <= c <= 1.0 for c in r["aux_cosine"].values())


killed_and_resumed = assert_resumes_bit_identical  # used by the olaux/autolambda tests


@pytest.mark.parametrize("variant", ["unweighted", "weighted"])
def test_cosine_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, variant: str
) -> None:
    killed_and_resumed(tmp_path, monkeypatch, "train.method=cosine", f"cosine.variant={variant}")


DOC = Path(__file__).resolve().parents[2] / "docs" / "target_aware_methods.md"


def test_the_docs_python_example_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert blocks, "docs/target_aware_methods.md has no python example"
    out, namespace = io.StringIO(), {}  # type: ignore[var-annotated]
    with contextlib.redirect_stdout(out):
        for block in blocks:
            exec(compile(block, str(DOC), "exec"), namespace)
    lines = out.getvalue().splitlines()
    assert [line.split()[0] for line in lines] == ["cosine"] * 3 + ["autolambda"] * 3
    assert namespace["lam"][0] > 1.0  # Auto-Lambda raised the target's own weight


def test_the_docs_name_every_option() -> None:
    text = DOC.read_text()
    for section in ("cosine", "olaux", "autolambda"):
        module, name = SECTIONS[section].split(":")
        for f in dataclasses.fields(getattr(importlib.import_module(module), name)):
            assert f"{section}.{f.name}" in text, f"{section}.{f.name}"
