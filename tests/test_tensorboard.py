"""TensorBoard output: a run's tb/ events and `alphavil tensorboard` exports equal metrics.jsonl."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from alphavil.cli import main
from alphavil.config import ConfigError
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from alphavil.tensorboard import SUBDIR, require, scalars
from tests.helpers import assert_resumes_bit_identical, toy_config

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (
    EventAccumulator,
)


def _events(folder: Path) -> dict[str, list[tuple[int, float]]]:
    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
    acc.Reload()
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in acc.Tags()["scalars"]}


def _expected(run: Path) -> dict[str, list[tuple[int, float]]]:
    out: dict[str, list[tuple[int, float]]] = {}
    for rec in read_jsonl(run / "metrics.jsonl"):
        for tag, value in scalars(rec).items():
            out.setdefault(tag, []).append((rec["epoch"], value))
    return out


def _assert_equal(events: dict, expected: dict) -> None:
    assert set(events) == set(expected)
    for tag, points in expected.items():
        assert [s for s, _ in events[tag]] == [s for s, _ in points], tag
        assert [v for _, v in events[tag]] == pytest.approx([v for _, v in points], rel=1e-6), tag


def test_scalars_of_a_record() -> None:
    rec = {
        "epoch": 3,
        "dev": {"a": {"loss": 0.5, "accuracy": None}},
        "weights": {"a": 1.0, "b": 0.25},
        "alpha": {"a": 1.5},
        "alpha_fit": {"passes": 7, "start": [1.0, 1.0], "converged": True},
        "alpha_dev_loss": [0.3, 0.2],
        "seconds": 2.0,
    }
    assert scalars(rec) == {
        "dev/a/loss": 0.5,
        "weights/a": 1.0,
        "weights/b": 0.25,
        "alpha/a": 1.5,
        "alpha_fit/passes": 7.0,
        "seconds": 2.0,
    }


def test_a_run_writes_the_metrics_as_events(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=alphavil", "train.tensorboard=true")
    execute(cfg, tmp_path / "run", show_progress=False)
    expected = _expected(tmp_path / "run")
    for tag in ("dev/main/loss", "test/main/accuracy", "weights/main", "alpha/main", "seconds"):
        assert tag in expected
    assert any(t.startswith("alpha_fit/") for t in expected)
    _assert_equal(_events(tmp_path / "run" / SUBDIR), expected)


def test_a_resumed_run_keeps_one_event_per_epoch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, "train.tensorboard=true")
    events = _events(tmp_path / "killed" / SUBDIR)
    assert [s for s, _ in events["dev/main/loss"]] == [1, 2, 3]
    _assert_equal(events, _expected(tmp_path / "killed"))


def test_export_writes_only_under_out(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = toy_config(tmp_path / "runs", "train.method=multitask")
    execute(cfg, tmp_path / "runs" / "mt", show_progress=False)
    before = sorted((tmp_path / "runs").rglob("*"))
    out = tmp_path / "tb"
    assert main(["tensorboard", str(tmp_path / "runs"), "--out", str(out)]) == 0
    assert capsys.readouterr().out.strip() == str(out / "mt")
    _assert_equal(_events(out / "mt"), _expected(tmp_path / "runs" / "mt"))
    assert sorted((tmp_path / "runs").rglob("*")) == before  # the run is not touched
    # a second export asks first; --overwrite replaces its event files
    assert main(["tensorboard", str(tmp_path / "runs" / "mt"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--overwrite" in err
    assert main(["tensorboard", str(tmp_path / "runs/mt"), "--out", str(out), "--overwrite"]) == 0
    assert len(list((out / "mt").iterdir())) == 1
    _assert_equal(_events(out / "mt"), _expected(tmp_path / "runs" / "mt"))
    assert main(["tensorboard", str(tmp_path / "nope"), "--out", str(out)]) == 2


def test_missing_tensorboard_is_one_line_before_anything_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", None)
    with pytest.raises(ConfigError, match=r"alphavil\[tensorboard\]"):
        require()
    config = tmp_path / "toy.toml"
    config.write_text('[data]\nname = "toy"\n[train]\ntarget = "main"\nepochs = 1\n')
    args = [str(config), "train.tensorboard=true"]
    code = main(["run", "--quiet", "--run-dir", str(tmp_path / "run"), *args])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "pip install" in err, err
    assert not (tmp_path / "run").exists()
