"""Sweeps on Ray (``alphavil sweep --backend ray``): the same runs and reports as the process
pool, resume after an interruption, Ctrl-C, and a clear error where Ray is missing.

The Ray tests share one local Ray (2 CPUs, started by the module-scoped fixture the way the
backend starts one) because starting Ray takes 10-20 s; they skip where ray is not installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil.cli import main
from alphavil.ray_backend import gpus_for
from alphavil.runs import read_json
from alphavil.sweep import SweepConfig, SweepError, SweepInterrupted, run_sweep
from tests.helpers import TOY

RAY_MISSING = 'ray is not installed (pip install "alphavil[ray]"); the Ray backend is not tested'


@pytest.fixture(scope="module")
def ray_cluster() -> Iterator[Any]:
    """One local Ray with 2 CPUs for the module (what `--backend ray --workers 2` starts)."""
    ray = pytest.importorskip("ray", reason=RAY_MISSING)
    from alphavil.ray_backend import init_ray

    started = init_ray(None, num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def _ov(out: Path, *extra: str) -> list[str]:
    return [*TOY, f"out_dir='{out}'", "train.epochs=2", *extra]


def _strip_seconds(obj: Any) -> Any:
    """``obj`` without keys starting with "seconds" (wall-clock times), recursively."""
    if isinstance(obj, dict):
        return {k: _strip_seconds(v) for k, v in obj.items() if not k.startswith("seconds")}
    if isinstance(obj, list):
        return [_strip_seconds(v) for v in obj]
    return obj


def _run_contents(run: Path) -> dict[str, Any]:
    """What must agree between two executions of a run: file names, metrics, summary, config
    (without out_dir) and saved predictions."""
    files = sorted(p.name for p in run.iterdir())
    config = read_json(run / "config.json")
    config.pop("out_dir")
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    probs = {p.name: np.load(p).tolist() for p in sorted(run.glob("*.npy"))}
    return {
        "files": files,
        "config": config,
        "metrics": _strip_seconds(metrics),
        "summary": _strip_seconds(read_json(run / "summary.json")),
        "probs": probs,
    }


def test_ray_sweep_matches_the_process_pool(
    ray_cluster: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    grid = ["--methods", "single,multitask,diw,alphavil", "--targets", "main", "--seeds", "0"]
    tables = {}
    for backend in ("local", "ray"):
        out = tmp_path / backend
        argv = ["sweep", str(cfg), *_ov(out), *grid, "--workers", "2", "--backend", backend]
        assert main(argv) == 0
        captured = capsys.readouterr()
        assert "FAILED" not in captured.err
        tables[backend] = captured.out
        assert main(["report", str(out), "--out", str(tmp_path / f"report-{backend}")]) == 0
        capsys.readouterr()
    assert "on a local Ray with 2 CPUs" in captured.err  # the Ray sweep's first line
    assert tables["ray"] == tables["local"]
    runs = sorted(p.name for p in (tmp_path / "local").iterdir() if p.is_dir())
    assert runs == ["alphavil-main-s0", "diw-main-s0", "multitask-s0", "single-main-s0"]
    assert sorted(p.name for p in (tmp_path / "ray").iterdir()) == sorted(
        p.name for p in (tmp_path / "local").iterdir()
    )
    for run in runs:
        assert _run_contents(tmp_path / "ray" / run) == _run_contents(tmp_path / "local" / run), run
    for name in ("table1.md", "table1.csv", "paired.md", "paired.csv", "figure3_check.md"):
        local = (tmp_path / "report-local" / name).read_text()
        assert (tmp_path / "report-ray" / name).read_text() == local, name


class _CtrlCOnFirstRun:
    """A sweep log that raises KeyboardInterrupt (what Ctrl-C does) on the first finished run."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def write(self, text: str) -> None:
        self.lines.append(text)
        if text.startswith("[1/") and not any("interrupted" in x for x in self.lines):
            raise KeyboardInterrupt

    def flush(self) -> None:
        pass


def test_ctrl_c_cancels_ray_tasks_and_the_sweep_resumes_only_missing_runs(
    ray_cluster: Any, tmp_path: Path
) -> None:
    # one short and one long configuration per seed; seed order: short-s0 and long-s0 start
    # together, short-s0 ends first, Ctrl-C then cancels long-s0 (running) and seed 1's runs
    variants = {
        "short": ["train.method=single", "train.epochs=1"],
        "long": ["train.method=multitask", "train.epochs=200"],
    }
    sweep = SweepConfig(
        methods=[], targets=["main"], seeds=[0, 1], workers=2, variants=variants, order="seed"
    )
    overrides = _ov(tmp_path)
    log = _CtrlCOnFirstRun()
    with pytest.raises(SweepInterrupted):
        run_sweep(None, overrides, sweep, log=log, backend="ray")
    text = "".join(log.lines)
    assert "short-main-s0 ok" in text
    assert "sweep interrupted: 1 runs finished, 3 will resume next time" in text

    def progress() -> dict[str, int]:
        return {
            p.name: len((p / "metrics.jsonl").read_text().splitlines())
            for p in tmp_path.iterdir()
            if (p / "metrics.jsonl").is_file()
        }

    def completed() -> set[str]:
        return {
            p.parent.name
            for p in tmp_path.glob("*/summary.json")
            if read_json(p)["status"] == "completed"
        }

    def tasks_ended() -> bool:  # every cancelled task has ended and given its CPUs back
        total = ray_cluster.cluster_resources().get("CPU", 0)
        return bool(ray_cluster.available_resources().get("CPU", 0) >= total)

    before = progress()
    deadline = time.monotonic() + 60
    while not tasks_ended() and time.monotonic() < deadline:
        time.sleep(0.1)
    assert tasks_ended(), "cancelled Ray tasks still hold their CPUs 60 s after the sweep"
    assert progress() == before  # and they wrote nothing after the sweep returned
    done = completed()
    # runs that ended within the cancel grace period (possible on a loaded machine) stay done;
    # everything else resumes
    assert "short-main-s0" in done
    mtimes = {n: (tmp_path / n / "summary.json").stat().st_mtime_ns for n in done}
    results = run_sweep(None, overrides, sweep, log=sys.stderr, backend="ray")
    names = {"short-main-s0", "long-s0", "short-main-s1", "long-s1"}
    assert {r["name"] for r in results} == names - done
    assert all(r["ok"] for r in results)
    assert completed() == names
    assert all((tmp_path / n / "summary.json").stat().st_mtime_ns == t for n, t in mtimes.items())
    # long-s0 continued from its last saved epoch (the one logged, or the one before if it was
    # stopped between logging an epoch and saving its state)
    if "long-s0" not in done:
        k = before.get("long-s0", 0)
        resumed = read_json(tmp_path / "long-s0" / "summary.json")["resumed_after_epoch"]
        assert resumed in (k, k - 1) or (k <= 1 and resumed is None)
    assert run_sweep(None, overrides, sweep, log=sys.stderr, backend="ray") == []


def test_a_run_that_fails_on_ray_is_recorded(ray_cluster: Any, tmp_path: Path) -> None:
    overrides = _ov(
        tmp_path,
        "train.epochs=1",
        "alphavil.preset=paper",
        "alphavil.optimizer={name='SGD', lr=1e30}",
    )
    sweep = SweepConfig(methods=["single", "alphavil"], targets=["main"], seeds=[0], workers=2)
    results = run_sweep(None, overrides, sweep, log=sys.stderr, backend="ray")
    assert {r["name"]: r["ok"] for r in results} == {
        "single-main-s0": True,
        "alphavil-main-s0": False,
    }
    err = read_json(tmp_path / "alphavil-main-s0" / "error.json")
    assert "NonFiniteLossError" in err["error"] and "Traceback" in err["traceback"]


def test_sweep_on_an_existing_cluster_by_address(ray_cluster: Any, tmp_path: Path) -> None:
    # another process (the CLI) joins the module's Ray as a cluster, as `--address` does
    address = ray_cluster.get_runtime_context().gcs_address
    argv = [sys.executable, "-m", "alphavil.cli", "sweep", "/dev/null", *_ov(tmp_path)]
    argv += ["--methods", "single,multitask", "--targets", "main", "--seeds", "0"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [*argv, "--backend", "ray", "--address", address],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"to run on the Ray cluster at {address}" in proc.stderr
    assert f"sweep: Ray at {address}: 2 CPUs" in proc.stderr
    assert {p.parent.name for p in tmp_path.glob("*/summary.json")} == {
        "single-main-s0",
        "multitask-s0",
    }


# --- without Ray -----------------------------------------------------------------------------


def test_backend_ray_without_ray_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` raises ImportError
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    argv = ["sweep", str(cfg), *_ov(tmp_path), "--methods", "single", "--backend", "ray"]
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err == (
        "alphavil: error: --backend ray needs Ray, which is not installed here: "
        'pip install "alphavil[ray]"'
    )
    assert [p.name for p in tmp_path.iterdir()] == ["c.toml"]  # nothing started


def test_address_needs_the_ray_backend(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    argv = ["sweep", str(cfg), *_ov(tmp_path), "--methods", "single", "--address", "auto"]
    assert main(argv) == 2
    assert "--address is the Ray cluster to use; it needs --backend ray" in capsys.readouterr().err


def test_gpu_requests() -> None:
    assert gpus_for("cpu", 4) == 0
    assert gpus_for("auto", 0) == 0 and gpus_for("auto", 2) == 1
    assert gpus_for("cuda", 0) == 1 and gpus_for("cuda:0", 1) == 1
    with pytest.raises(SweepError, match="sees only the one GPU"):
        gpus_for("cuda:1", 2)
