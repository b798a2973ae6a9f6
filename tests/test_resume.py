"""Killed runs resume after their last whole epoch and end bit-identical to uninterrupted ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import torch

from alphavil.runner import RunExistsError, execute
from alphavil.runs import MARKER, load_checkpoint, read_json, read_jsonl
from alphavil.training import Trainer
from tests.helpers import TOY, toy_config

METHODS = {
    "single": [],
    "multitask": [],
    "alphavil": [],
    "alphavil-lbfgs": ["train.method=alphavil", "alphavil.alpha_solver=lbfgs",
                       "alphavil.weight_rule=relative", "alphavil.dev_fraction=0.5"],
    "diw": ["diw.rho=0.5"],
    "alphavil-fresh": ["train.method=alphavil", "alphavil.task_optimizer=fresh"],
    "alphavil-newton": ["train.method=alphavil", "alphavil.alpha_solver=newton",
                        "alphavil.alpha_bounds=[]"],
}  # fmt: skip


@pytest.fixture(autouse=True)
def _threads():  # type: ignore[no-untyped-def]
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


def _overrides(name: str) -> list[str]:
    extra = METHODS[name]
    method = name if not extra or not extra[0].startswith("train.method") else ""
    head = [f"train.method={method}"] if method else []
    return [*head, *extra, "train.epochs=4", "train.threads=1",
            "train.optimizer={name='Adam', lr=0.01}"]  # fmt: skip


def _strip(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    def clean(obj: Any) -> Any:
        if isinstance(obj, dict):
            return {k: clean(v) for k, v in obj.items() if not k.startswith("seconds")}
        return obj

    return [clean(r) for r in records]


def _assert_same_run(a: Path, b: Path) -> None:
    assert _strip(read_jsonl(a / "metrics.jsonl")) == _strip(read_jsonl(b / "metrics.jsonl"))
    sa, sb = read_json(a / "summary.json"), read_json(b / "summary.json")
    for key in ("best", "final_weights", "status", "epochs_completed"):
        assert sa[key] == sb[key], key
    pts = sorted(p.name for p in a.glob("*.pt"))
    assert pts == sorted(p.name for p in b.glob("*.pt"))
    for name in pts:
        ca, cb = load_checkpoint(a / name), load_checkpoint(b / name)
        ma, mb = ca["model"], cb["model"]
        assert set(ma) == set(mb)
        for k in ma:
            assert torch.equal(ma[k], mb[k]), (name, k)


class _Killed(Exception):
    pass


@pytest.mark.parametrize("name", list(METHODS))
def test_interrupted_run_resumes_bit_identical(
    tmp_path: Path, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cfg = toy_config(tmp_path, *_overrides(name))
    execute(cfg, tmp_path / "full", show_progress=False)
    # die during epoch 3's evaluation: epochs 1-2 and their state are on disk
    real = Trainer.evaluate
    calls = {"n": 0}

    def dying(self: Trainer, split: str, *args: Any, **kw: Any) -> Any:
        if split == "test":
            calls["n"] += 1
            if calls["n"] == 3:
                raise _Killed
        return real(self, split, *args, **kw)

    monkeypatch.setattr(Trainer, "evaluate", dying)
    with pytest.raises(_Killed):
        execute(cfg, tmp_path / "killed", show_progress=False)
    monkeypatch.setattr(Trainer, "evaluate", real)
    assert len(read_jsonl(tmp_path / "killed" / "metrics.jsonl")) == 2
    assert load_checkpoint(tmp_path / "killed" / "state.pt")["epoch"] == 2
    summary = execute(cfg, tmp_path / "killed", resume=True, show_progress=False)
    assert summary["resumed_after_epoch"] == 2
    _assert_same_run(tmp_path / "full", tmp_path / "killed")


def test_sigkill_mid_epoch_then_resume_is_bit_identical(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'", "train.method=alphavil", "train.epochs=12",
                 "train.threads=1", "data.n_train=4096", "name=run"]  # fmt: skip
    execute(toy_config(tmp_path, *overrides[len(TOY) :], "name=full"), tmp_path / "full",
            show_progress=False)  # fmt: skip
    (tmp_path / "empty.toml").write_text("")
    cmd = [sys.executable, "-m", "alphavil.cli", "run", str(tmp_path / "empty.toml"), *overrides]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([*cmd, "--quiet"], env=env, cwd=Path(__file__).parents[1])
    metrics, state = tmp_path / "run" / "metrics.jsonl", tmp_path / "run" / "state.pt"

    def inside_a_later_epoch() -> bool:
        # epoch k logs its metrics, then saves its state: a state newer than the metrics of
        # >= 3 epochs means epoch k's writes are done and the run is inside epoch k + 1
        if not (metrics.exists() and state.exists()) or len(read_jsonl(metrics)) < 3:
            return False
        return state.stat().st_mtime_ns >= metrics.stat().st_mtime_ns

    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None and not inside_a_later_epoch():
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = len(read_jsonl(metrics))
    assert 3 <= done < 12, "the kill must land mid-run"
    cfg = toy_config(tmp_path, *overrides[len(TOY) :])
    summary = execute(cfg, tmp_path / "run", resume=True, show_progress=False)
    assert summary["resumed_after_epoch"] >= 2
    _assert_same_run(tmp_path / "full", tmp_path / "run")


def test_resume_of_a_finished_run_returns_it_and_other_configs_are_refused(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=single")
    first = execute(cfg, tmp_path / "r", show_progress=False)
    assert execute(cfg, tmp_path / "r", resume=True, show_progress=False) == first
    other = toy_config(tmp_path, "train.method=single", "train.epochs=3")
    with pytest.raises(RunExistsError, match=r"another config \(train\.epochs: 2 -> 3\)"):
        execute(other, tmp_path / "r", resume=True, show_progress=False)
    with pytest.raises(RunExistsError, match="already holds a finished run"):
        execute(other, tmp_path / "r", show_progress=False)
    execute(other, tmp_path / "r", overwrite=True, show_progress=False)
    assert read_json(tmp_path / "r" / "summary.json")["epochs_completed"] == 3


@pytest.mark.parametrize("content", ["config.json", "metrics.jsonl", "notes.txt"])
def test_folders_without_the_marker_are_never_deleted(tmp_path: Path, content: str) -> None:
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / content).write_text("{}")
    cfg = toy_config(tmp_path, "train.method=single")
    for kw in ({}, {"overwrite": True}, {"resume": True}):
        with pytest.raises(RunExistsError, match="was not created by alphavil"):
            execute(cfg, folder, show_progress=False, **kw)  # type: ignore[arg-type]
    assert (folder / content).read_text() == "{}" and sorted(os.listdir(folder)) == [content]
    empty = tmp_path / "empty"
    empty.mkdir()
    execute(cfg, empty, show_progress=False)
    assert (empty / MARKER).is_file()


def test_run_dir_that_is_a_file_is_refused(tmp_path: Path) -> None:
    target = tmp_path / "file"
    target.write_text("keep me")
    with pytest.raises(RunExistsError, match="not a directory"):
        execute(toy_config(tmp_path, "train.method=single"), target, show_progress=False)
    assert target.read_text() == "keep me"
