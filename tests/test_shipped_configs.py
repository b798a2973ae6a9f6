"""Every config the project ships loads, and every sweep in one plans its whole grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.config import load_config
from alphavil.sweep import SweepConfig, plan

CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.toml"))


def test_the_project_ships_configs() -> None:
    assert len(CONFIGS) >= 10


@pytest.mark.parametrize("path", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_config_loads_and_its_sweep_plans(path: Path) -> None:
    # a GPU config (the paper's NLU study) is checked as a CPU run where there is no GPU
    gpu_only = 'device = "cuda"' in path.read_text() and not torch.cuda.is_available()
    overrides = ["train.device=cpu"] if gpu_only else []
    cfg = load_config(path, overrides)
    sweep = cfg.extra.get("sweep")
    if sweep is None:
        return
    assert isinstance(sweep, SweepConfig)
    jobs = plan(str(path), overrides, sweep)
    variants = len(sweep.variants) or len(sweep.methods)
    assert len(jobs) >= variants * len(sweep.seeds)  # per-target methods run once per target
    assert len({j.name for j in jobs}) == len(jobs)  # no two runs share a folder
