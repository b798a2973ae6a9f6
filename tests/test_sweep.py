"""Sweeps: resumable, failures recorded, parallel workers."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.config import ConfigError
from alphavil.runs import MARKER, read_json
from alphavil.sweep import SweepConfig, parse_seeds, plan, run_sweep
from tests.helpers import TOY


def _sweep(tmp_path: Path, **kw: object) -> SweepConfig:
    return SweepConfig(
        **{
            "methods": ["single", "alphavil"],
            "targets": ["main"],
            "seeds": [0, 1],
            "workers": 0,
            **kw,
        }
    )  # type: ignore[arg-type]


def test_interrupted_sweep_resumes_and_runs_only_missing_runs(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1"]
    sweep = _sweep(tmp_path)
    jobs = plan(None, overrides, sweep)
    assert [j.name for j in jobs] == [
        "single-main-s0",
        "single-main-s1",
        "alphavil-main-s0",
        "alphavil-main-s1",
    ]
    # simulate an interruption: only the first two runs happened, the third died mid-way
    first = run_sweep(None, overrides, _sweep(tmp_path, methods=["single"]))
    assert [r["name"] for r in first] == ["single-main-s0", "single-main-s1"]
    (tmp_path / "alphavil-main-s0").mkdir()
    (tmp_path / "alphavil-main-s0" / MARKER).write_text("alphavil run directory\n")
    (tmp_path / "alphavil-main-s0" / "metrics.jsonl").write_text('{"epoch": 1}\n')
    mtime = (tmp_path / "single-main-s0" / "summary.json").stat().st_mtime_ns
    second = run_sweep(None, overrides, sweep)
    assert [r["name"] for r in second] == ["alphavil-main-s0", "alphavil-main-s1"]
    assert all(r["ok"] for r in second)
    assert (tmp_path / "single-main-s0" / "summary.json").stat().st_mtime_ns == mtime
    assert run_sweep(None, overrides, sweep) == []


def test_crashed_run_is_recorded_and_the_sweep_finishes(tmp_path: Path) -> None:
    # seed 1 diverges (huge lr via a per-seed override is not possible, so crash all alphavil
    # runs with a NaN-producing alpha optimizer and keep single runs healthy)
    overrides = [
        *TOY,
        f"out_dir='{tmp_path}'",
        "train.epochs=1",
        "alphavil.preset=paper",
        "alphavil.optimizer={name='SGD', lr=1e30}",
    ]
    results = run_sweep(None, overrides, _sweep(tmp_path))
    ok = {r["name"]: r["ok"] for r in results}
    assert ok == {
        "single-main-s0": True,
        "single-main-s1": True,
        "alphavil-main-s0": False,
        "alphavil-main-s1": False,
    }
    err = read_json(tmp_path / "alphavil-main-s0" / "error.json")
    assert "NonFiniteLossError" in err["error"] and "Traceback" in err["traceback"]


def test_parallel_workers_run_every_job(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1"]
    results = run_sweep(
        None, overrides, _sweep(tmp_path, methods=["multitask", "diw"], seeds=[0], workers=2)
    )
    assert sorted(r["name"] for r in results) == ["diw-main-s0", "multitask-s0"]
    assert all(r["ok"] for r in results)
    assert read_json(tmp_path / "diw-main-s0" / "config.json")["train"]["threads"] == 1


def test_sweep_validates_the_grid_before_running(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'"]
    with pytest.raises(ConfigError, match=r"sweep.methods: 'best' is not one of"):
        plan(None, overrides, _sweep(tmp_path, methods=["best"]))
    with pytest.raises(ConfigError, match=r"sweep.targets: 'left' is not a task"):
        plan(None, overrides, _sweep(tmp_path, targets=["left"]))
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("2,5") == [2, 5]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("a-b")


def test_variants_name_and_label_runs_and_seed_order_interleaves(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1"]
    variants = {
        "fast": ["train.method=single", "train.optimizer={name='SGD', lr=0.2}"],
        "mt": ["train.method=multitask"],
    }
    sweep = _sweep(tmp_path, variants=variants, order="seed", methods=[])
    jobs = plan(None, overrides, sweep)
    assert [j.name for j in jobs] == ["fast-main-s0", "mt-s0", "fast-main-s1", "mt-s1"]
    run_sweep(None, overrides, _sweep(tmp_path, variants=variants, seeds=[0], methods=[]))
    cfg = read_json(tmp_path / "fast-main-s0" / "config.json")
    assert cfg["label"] == "fast" and cfg["train"]["optimizer"]["lr"] == 0.2
    assert read_json(tmp_path / "mt-s0" / "config.json")["label"] == "mt"
    with pytest.raises(ConfigError, match=r"sweep\.variants\.bad: expected a list"):
        plan(None, overrides, _sweep(tmp_path, variants={"bad": "train.method=single"}))
    with pytest.raises(ConfigError, match="name 'a b' must be"):
        plan(None, overrides, _sweep(tmp_path, variants={"a b": []}))
