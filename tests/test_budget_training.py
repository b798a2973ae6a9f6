"""Training under a label budget: every method runs (or refuses in one line), nothing reads the
dataset's own dev split, methods that combine per-task gradients see every task in every step
(shared inputs and joint steps alike), tasks without dev data get no snapshot, resume is exact."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import torch

from alphavil.config import POPULATION_METHODS, ConfigError
from alphavil.data.batching import JointBatch, SharedInputData
from alphavil.data.toy import TASKS, ToyConfig, make_toy, toy_model
from alphavil.datasets import DatasetSpec
from alphavil.methods import get_method, method_names
from alphavil.methods.base import BatchMethod
from alphavil.runner import execute, load_data
from alphavil.runs import read_jsonl
from alphavil.training import NonFiniteLossError, Trainer
from tests.helpers import assert_resumes_bit_identical, toy_config

DEV = 16
BUDGET = ["data.budget.target=64", f"data.budget.dev={DEV}", "data.budget.aux=200",
          "train.batch_size=32", "train.threads=1"]  # fmt: skip
POISONED = ["data.name='tests.test_budget_training:POISONED_SPEC'"]
NEEDS_ALL = [m for m in method_names() if get_method(m).needs_all_tasks_per_step]


@dataclass
class PoisonedConfig(ToyConfig):
    """The toy problem whose own dev split is NaN inputs with out-of-range labels."""


def _poisoned(cfg: PoisonedConfig) -> tuple[SharedInputData, Any]:
    data = make_toy(cfg)
    data.inputs["dev"] = torch.full_like(data.inputs["dev"], math.nan)
    data.targets["dev"] = {t: torch.full_like(y, 99) for t, y in data.targets["dev"].items()}
    return data, lambda tasks: toy_model(cfg.dim, cfg.hidden, tasks)


POISONED_SPEC = DatasetSpec(PoisonedConfig, lambda cfg: list(TASKS), _poisoned)


def test_the_poison_is_detected_without_a_budget(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, *POISONED, "train.method=single", "train.epochs=1")
    with pytest.raises((NonFiniteLossError, IndexError)):
        execute(cfg, tmp_path / "run", show_progress=False)


@pytest.mark.parametrize("method", method_names())
def test_every_method_trains_under_a_budget_reading_only_the_small_dev(
    tmp_path: Path, method: str
) -> None:
    cfg = toy_config(tmp_path, *POISONED, *BUDGET, f"train.method={method}", "train.epochs=2",
                     "diw.patience=2", "alphavil.dev_fraction=0.5")  # fmt: skip
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    assert list(summary["best"]) == ["main"]  # auxiliary tasks have no dev data: no snapshot
    best = summary["best"]["main"]
    assert (best["dev_accuracy"] * DEV) == pytest.approx(round(best["dev_accuracy"] * DEV))
    for record in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert list(record["dev"]) == ["main"]
        assert list(record["test"]) == ["main"]  # no snapshot for the others: no test pass


@pytest.mark.parametrize("method", sorted(POPULATION_METHODS))
def test_population_methods_refuse_a_budget(tmp_path: Path, method: str) -> None:
    with pytest.raises(ConfigError, match="does not run under a label budget"):
        toy_config(tmp_path, *BUDGET, f"train.method={method}")


def _count_tasks(monkeypatch: pytest.MonkeyPatch, method: str) -> list[int]:
    """Per step: how many task losses the method's backward gets (and, for a TorchJD
    aggregator, how many rows its Jacobian has: the same)."""
    seen: list[int] = []
    cls = get_method(method)
    real = cls.backward

    def backward(self: BatchMethod, losses: dict[str, torch.Tensor]) -> float:
        seen.append(len(losses))
        jac_to_grad = getattr(self, "jac_to_grad", None)
        if jac_to_grad is not None and not getattr(jac_to_grad, "counted", False):

            def counted(params: list[torch.Tensor], aggregator: Any) -> Any:
                seen.append(-int(params[0].jac.shape[0]))  # type: ignore[attr-defined]
                return jac_to_grad(params, aggregator)

            counted.counted = True  # type: ignore[attr-defined]
            self.jac_to_grad = counted  # type: ignore[attr-defined]
        return float(real(self, losses))

    monkeypatch.setattr(cls, "backward", backward)
    return seen


@pytest.mark.parametrize("layout", ["shared", "joint"])
@pytest.mark.parametrize("method", NEEDS_ALL)
def test_methods_combining_task_gradients_see_every_task_in_every_step(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str, layout: str
) -> None:
    seen = _count_tasks(monkeypatch, method)
    budget = BUDGET if layout == "joint" else ["train.threads=1"]
    cfg = toy_config(tmp_path, *budget, f"train.method={method}", "train.epochs=1")
    execute(cfg, tmp_path / "run", show_progress=False)
    steps = [n for n in seen if n > 0]
    assert len(steps) == (math.ceil(200 / 32) if layout == "joint" else math.ceil(512 / 64))
    assert set(steps) == {3}
    if method in ("mgda", "pcgrad", "cagrad", "nashmtl", "upgrad"):
        assert [-n for n in seen if n < 0] == [3] * len(steps)  # T rows of the Jacobian


@pytest.mark.parametrize("method", NEEDS_ALL)
def test_they_refuse_a_stream_of_one_task_steps_before_making_a_folder(
    tmp_path: Path, method: str
) -> None:
    cfg = toy_config(tmp_path, *BUDGET, f"train.method={method}", "data.stream=interleaved")
    with pytest.raises(ConfigError, match=r'set data\.stream = "joint"') as err:
        execute(cfg, tmp_path / "run", show_progress=False)
    assert "\n" not in str(err.value) and not (tmp_path / "run").exists()


def test_a_joint_step_is_one_forward_pass_with_each_tasks_loss_on_its_own_rows(
    tmp_path: Path,
) -> None:
    cfg = toy_config(tmp_path, *BUDGET, "train.method=multitask")
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    loop = Trainer(cfg, data, make_model())
    step = next(iter(loop.train_stream(loop.tasks, 1.0)))
    assert isinstance(step, JointBatch)
    calls = []
    loop.model.register_forward_hook(lambda *a: calls.append(1))
    outputs, targets, _ = loop.forward(step)
    assert len(calls) == 1 and list(outputs) == ["main", "helper", "noise"]
    for t, rows in step.rows.items():
        alone = loop.model(step.inputs[rows], [t])[t]
        assert torch.allclose(outputs[t], alone) and len(targets[t]) == len(alone)


@pytest.mark.parametrize("method", ["alphavil", "pcgrad"])
def test_a_killed_budget_run_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, method: str
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, *BUDGET, f"train.method={method}")
