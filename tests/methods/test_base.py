"""The method interface: registry, the loop's batch primitive, a loop that names no method."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from alphavil.methods import REGISTRY, get_method, method_names
from alphavil.methods.base import BatchMethod
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from tests.helpers import toy_config


class MeanOfLosses(BatchMethod):
    """Equal weighting written as a batch method: must equal the built-in multitask method."""

    per_target = False

    def backward(self, losses: dict[str, torch.Tensor]) -> float:
        total = None
        for loss in losses.values():
            term = (1.0 / len(losses)) * loss
            total = term if total is None else total + term
        assert total is not None
        total.backward()
        return float(total.detach())


def test_a_batch_method_runs_through_the_loop_like_the_builtin(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = types.ModuleType("mean_method")
    module.MeanOfLosses = MeanOfLosses  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mean_method", module)
    monkeypatch.setitem(REGISTRY, "mean", "mean_method:MeanOfLosses")
    ours = toy_config(tmp_path, "train.method=mean", "train.epochs=2")
    builtin = toy_config(tmp_path, "train.method=multitask", "train.epochs=2")
    execute(ours, tmp_path / "mean", show_progress=False)
    execute(builtin, tmp_path / "mt", show_progress=False)
    a = read_jsonl(tmp_path / "mean" / "metrics.jsonl")
    b = read_jsonl(tmp_path / "mt" / "metrics.jsonl")
    assert [r["dev"] for r in a] == [r["dev"] for r in b]
    assert [r["train_loss"] for r in a] == pytest.approx([r["train_loss"] for r in b], rel=1e-6)


def test_registry_names_every_builtin_and_refuses_unknown() -> None:
    assert {"single", "multitask", "alphavil", "diw"} <= set(method_names())
    assert get_method("single").__name__ == "Single"
    with pytest.raises(KeyError, match="unknown method 'nope'"):
        get_method("nope")


def test_the_training_loop_names_no_method() -> None:
    text = (Path(__file__).parents[2] / "src" / "alphavil" / "training.py").read_text()
    code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    for name in method_names():
        assert f'"{name}"' not in code, name


def test_method_names_do_not_clash_with_population_methods() -> None:
    from alphavil.config import POPULATION_METHODS

    assert not set(REGISTRY) & set(POPULATION_METHODS)


def test_config_json_records_the_options_of_the_method_in_use(tmp_path: Path) -> None:
    """Every option in use is in config.json, set or not, so a later change of a default cannot
    silently relabel a finished run; a run stored before this (no section) still counts as the
    same run when the request keeps the defaults."""
    from alphavil.config_diff import config_differences
    from alphavil.runs import read_json

    for method, section in (("olaux", "olaux"), ("upgrad", "aggregator"), ("cosine", "cosine")):
        cfg = toy_config(tmp_path, f"train.method={method}")
        assert section in cfg.to_dict(), method
    cfg = toy_config(tmp_path, "train.method=olaux", "train.epochs=1")
    execute(cfg, tmp_path / "run", show_progress=False)
    stored = read_json(tmp_path / "run" / "config.json")
    assert stored["olaux"]["lr"] == 1.0 and stored["olaux"]["horizon"] == 5
    old = {k: v for k, v in stored.items() if k != "olaux"}  # written before sections were kept
    assert config_differences(old, cfg.to_dict(), cfg) == []
    other = toy_config(tmp_path, "train.method=olaux", "train.epochs=1", "olaux.lr=0.1")
    assert config_differences(old, other.to_dict(), other) == ["olaux.lr: (absent) -> 0.1"]
