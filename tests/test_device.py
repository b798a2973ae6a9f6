"""GPU readiness on a CPU machine: ``train.device = "auto"``, bf16 autocast, the GPU benchmark's
smoke mode. (Nothing here needs a GPU; nothing here shows that a GPU run works.)"""

from __future__ import annotations

import runpy
from pathlib import Path
from typing import Any

import pytest
import torch

from alphavil.config import ConfigError, _check_device, resolve_device
from alphavil.runner import execute, load_data
from alphavil.runs import read_json
from alphavil.training import Trainer
from tests.helpers import toy_config

ROOT = Path(__file__).resolve().parent.parent
no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-GPU behaviour")


def test_auto_device_is_kept_in_the_config_and_resolved_at_use(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = toy_config(tmp_path, "train.device=auto", "train.epochs=1")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    assert summary["status"] == "completed"
    assert read_json(tmp_path / "run" / "config.json")["train"]["device"] == "auto"
    data, make_model = load_data(cfg)
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert Trainer(cfg, data, make_model()).device.type == expected
    _check_device("auto")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == torch.device("cuda")
    assert resolve_device("cpu") == torch.device("cpu")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == torch.device("cpu")


@no_cuda
def test_cuda_without_a_gpu_points_at_auto(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no CUDA; use cpu \(or auto"):
        toy_config(tmp_path, "train.device=cuda")


def test_autocast_option_is_validated(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"train\.autocast: 'fp16' is not one of off, bf16"):
        toy_config(tmp_path, "train.autocast=fp16")


def _fit(tmp_path: Path, method: str, autocast: str) -> tuple[dict[str, Any], set[torch.dtype]]:
    """Two toy epochs of ``method``; returns the summary and the dtypes of the model's outputs."""
    cfg = toy_config(tmp_path, f"train.method={method}", f"train.autocast={autocast}")
    data, make_model = load_data(cfg)
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(cfg, data, make_model())
    dtypes: set[torch.dtype] = set()

    def hook(_module: Any, _inputs: Any, output: Any) -> None:
        dtypes.update(v.dtype for v in output.values())

    trainer.model.register_forward_hook(hook)
    return trainer.fit(), dtypes


@pytest.mark.parametrize("method", ["multitask", "alphavil", "uncertainty"])
def test_bf16_autocast_runs_and_changes_the_metrics_only_slightly(
    tmp_path: Path, method: str
) -> None:
    # multitask: train_steps; alphavil: train_steps per task (its α fit stays float32);
    # uncertainty: train_with. Evaluation runs under autocast too.
    off, off_dtypes = _fit(tmp_path, method, "off")
    bf16, bf16_dtypes = _fit(tmp_path, method, "bf16")
    assert off_dtypes == {torch.float32}
    # αVIL's α fit evaluates the model functionally outside the loop's passes, in float32
    assert bf16_dtypes == (
        {torch.bfloat16, torch.float32} if method == "alphavil" else {torch.bfloat16}
    )
    assert off["status"] == bf16["status"] == "completed"
    differs = False
    for task, best in off["best"].items():
        other = bf16["best"][task]
        assert abs(other["dev_loss"] - best["dev_loss"]) < 0.05, (task, best, other)
        assert abs(other["dev_accuracy"] - best["dev_accuracy"]) <= 0.05, (task, best, other)
        differs |= other["dev_loss"] != best["dev_loss"]
    assert differs  # bf16 did change the arithmetic


def _bench() -> dict[str, Any]:
    return runpy.run_path(str(ROOT / "benchmarks" / "bench_gpu.py"), run_name="bench_gpu")


def test_gpu_benchmark_cpu_smoke(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("transformers", reason="the NLU part needs transformers (nlu extra)")
    bench = _bench()
    args = ["--cpu-smoke", "--epochs", "1", "--autocast", "off,bf16", "--nlu-methods", "alphavil"]
    assert bench["main"](args) == 0
    out = capsys.readouterr().out
    for name in ("single", "multitask", "diw", "alphavil-sgd", "alphavil-lbfgs"):
        assert f"multimnist {name:15s} off " in out and f"multimnist {name:15s} bf16 " in out
    assert "nlu        alphavil        bf16 train" in out
    assert "bench_gpu: 12 timings" in out


@no_cuda
def test_gpu_benchmark_without_a_gpu_says_so_in_one_line(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _bench()["main"]([]) == 0
    out = capsys.readouterr().out
    assert out.count("\n") == 1 and out.startswith("bench_gpu: no CUDA GPU here")
