"""Sweeps: the grid and its runs' names, resuming only what is missing, failures recorded,
parallel workers; never reusing a stale run or sharing a folder; stopping cleanly (Ctrl-C,
kill -9). The Ray backend: tests/test_ray_sweep.py."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

import alphavil.sweep.local as sweep_module
from alphavil.cli import main
from alphavil.config import ConfigError
from alphavil.processes import LOCK_FILE, SweepError, sweep_lock
from alphavil.runs import MARKER, STATE_FILE, read_json
from alphavil.sweep import SweepConfig, SweepInterrupted, parse_seeds, plan, run_sweep
from tests.helpers import AS_ROOT, TOY, assert_one_line_error, deny_access

Cli = Callable[..., tuple[int, str]]  # the `cli` fixture (tests/conftest.py)
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _grid(**kw: object) -> SweepConfig:
    """Single-task runs on the target main, seed 0, in this process; ``kw`` changes that."""
    base: dict[str, object] = {
        "methods": ["single"],
        "targets": ["main"],
        "seeds": [0],
        "workers": 0,
    }
    return SweepConfig(**{**base, **kw})  # type: ignore[arg-type]


def _sweep(**kw: object) -> SweepConfig:
    """Single-task and αVIL runs, seeds 0 and 1."""
    return _grid(**{"methods": ["single", "alphavil"], "seeds": [0, 1], **kw})


def _ov(tmp_path: Path, *extra: str) -> list[str]:
    return [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1", *extra]


# --- the grid, resuming, failures, workers --------------------------------------------------


def test_interrupted_sweep_resumes_and_runs_only_missing_runs(tmp_path: Path) -> None:
    overrides = _ov(tmp_path)
    sweep = _sweep()
    jobs = plan(None, overrides, sweep)
    assert [j.name for j in jobs] == [
        "single-main-s0",
        "single-main-s1",
        "alphavil-main-s0",
        "alphavil-main-s1",
    ]
    # simulate an interruption: only the first two runs happened, the third died mid-way
    first = run_sweep(None, overrides, _sweep(methods=["single"]))
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
    results = run_sweep(None, overrides, _sweep())
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
    overrides = _ov(tmp_path)
    results = run_sweep(None, overrides, _sweep(methods=["multitask", "diw"], seeds=[0], workers=2))
    assert sorted(r["name"] for r in results) == ["diw-main-s0", "multitask-s0"]
    assert all(r["ok"] for r in results)
    assert read_json(tmp_path / "diw-main-s0" / "config.json")["train"]["threads"] == 1


def test_sweep_validates_the_grid_before_running(tmp_path: Path) -> None:
    overrides = [*TOY, f"out_dir='{tmp_path}'"]
    with pytest.raises(ConfigError, match=r"sweep.methods: 'best' is not one of"):
        plan(None, overrides, _sweep(methods=["best"]))
    with pytest.raises(ConfigError, match=r"sweep.targets: 'left' is not a task"):
        plan(None, overrides, _sweep(targets=["left"]))
    assert parse_seeds("0-3") == [0, 1, 2, 3] and parse_seeds("2,5") == [2, 5]
    with pytest.raises(ConfigError, match="--seeds"):
        parse_seeds("a-b")


def test_variants_name_and_label_runs_and_seed_order_interleaves(tmp_path: Path) -> None:
    overrides = _ov(tmp_path)
    variants = {
        "fast": ["train.method=single", "train.optimizer={name='SGD', lr=0.2}"],
        "mt": ["train.method=multitask"],
    }
    sweep = _sweep(variants=variants, order="seed", methods=[])
    jobs = plan(None, overrides, sweep)
    assert [j.name for j in jobs] == ["fast-main-s0", "mt-s0", "fast-main-s1", "mt-s1"]
    run_sweep(None, overrides, _sweep(variants=variants, seeds=[0], methods=[]))
    cfg = read_json(tmp_path / "fast-main-s0" / "config.json")
    assert cfg["label"] == "fast" and cfg["train"]["optimizer"]["lr"] == 0.2
    assert read_json(tmp_path / "mt-s0" / "config.json")["label"] == "mt"
    with pytest.raises(ConfigError, match=r"sweep\.variants\.bad: expected a list"):
        plan(None, overrides, _sweep(variants={"bad": "train.method=single"}))
    with pytest.raises(ConfigError, match="name 'a b' must be"):
        plan(None, overrides, _sweep(variants={"a b": []}))


# --- stale runs -----------------------------------------------------------------------------


def test_completed_run_of_another_config_is_refused_then_rerun(
    cli: Cli, tmp_path: Path, empty_config: Path
) -> None:
    assert [r["ok"] for r in run_sweep(None, _ov(tmp_path), _grid(seeds=[0, 1]))] == [True] * 2
    run = tmp_path / "single-main-s0"
    mtime = (run / "summary.json").stat().st_mtime_ns
    changed = _ov(tmp_path, "train.epochs=2")
    with pytest.raises(SweepError) as exc:
        run_sweep(None, changed, _grid(seeds=[0, 1, 2]))
    msg = str(exc.value)
    assert f"{run} was run with a different config (train.epochs: 1 -> 2)" in msg
    assert "so were 1 more runs (single-main-s1); pass --rerun-changed to rerun them" in msg
    assert "\n" not in msg
    assert not (tmp_path / "single-main-s2").exists()  # refused before starting anything
    assert (run / "summary.json").stat().st_mtime_ns == mtime
    # the CLI: one line, exit 2
    argv = ["sweep", str(empty_config), *changed, "--methods", "single", "--seeds", "0"]
    code, err = cli(*argv, "--workers", "0")
    assert_one_line_error(code, err, "train.epochs: 1 -> 2", "--rerun-changed to rerun it")
    # --rerun-changed reruns exactly the changed runs
    assert main([*argv, "--workers", "0", "--rerun-changed"]) == 0
    assert read_json(run / "config.json")["train"]["epochs"] == 2
    assert read_json(tmp_path / "single-main-s1" / "config.json")["train"]["epochs"] == 1
    assert run_sweep(None, changed, _grid()) == []  # now done


def test_completed_run_without_its_config_is_not_reused(tmp_path: Path) -> None:
    run_sweep(None, _ov(tmp_path), _grid())
    (tmp_path / "single-main-s0" / "config.json").unlink()
    with pytest.raises(SweepError, match=r"config\.json missing or unreadable"):
        run_sweep(None, _ov(tmp_path), _grid())
    results = run_sweep(None, _ov(tmp_path), _grid(), rerun_changed=True)
    assert [r["ok"] for r in results] == [True]


def test_editing_the_grid_does_not_make_runs_stale(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("[sweep]\nseeds = [0]\nworkers = 0\n")
    assert (
        main(["sweep", str(cfg), *_ov(tmp_path), "--methods", "single", "--targets", "main"]) == 0
    )
    assert "sweep" not in read_json(tmp_path / "single-main-s0" / "config.json")
    cfg.write_text("[sweep]\nseeds = [0, 1]\nworkers = 0\n")
    jobs = run_sweep(str(cfg), _ov(tmp_path), _grid(seeds=[0, 1]))
    assert [r["name"] for r in jobs] == ["single-main-s1"]


def test_run_from_before_an_option_existed_still_counts(tmp_path: Path) -> None:
    """A config.json written before ``train.save_state`` existed matches its default only."""
    run_sweep(None, _ov(tmp_path), _grid())
    path = tmp_path / "single-main-s0" / "config.json"
    stored = read_json(path)
    del stored["train"]["save_state"]
    path.write_text(json.dumps(stored))
    assert run_sweep(None, _ov(tmp_path), _grid()) == []  # default: the same run
    with pytest.raises(SweepError, match=r"train\.save_state: \(absent\) -> false"):
        run_sweep(None, _ov(tmp_path, "train.save_state=false"), _grid())


def test_options_of_another_method_do_not_make_a_finished_run_stale(tmp_path: Path) -> None:
    """Every config.json records [alphavil] and [diw]; a single-task run reads neither, so
    other αVIL options (a new default) leave it done, while an αVIL run's own do not."""
    run_sweep(None, _ov(tmp_path), _grid())
    assert run_sweep(None, _ov(tmp_path, "alphavil.updates=separate"), _grid()) == []
    assert run_sweep(None, _ov(tmp_path, "diw.lr=0.5"), _grid()) == []
    av = _grid(methods=["alphavil"])
    run_sweep(None, _ov(tmp_path), av)
    with pytest.raises(SweepError, match=r"alphavil\.weight_step: 0\.3 -> 0\.5"):
        run_sweep(None, _ov(tmp_path, "alphavil.weight_step=0.5"), av)


def test_failed_run_in_a_foreign_folder_writes_nothing_there(tmp_path: Path) -> None:
    foreign = tmp_path / "single-main-s0"
    foreign.mkdir()
    (foreign / "notes.txt").write_text("mine")
    (res,) = run_sweep(None, _ov(tmp_path), _grid())
    assert not res["ok"] and "RunExistsError" in res["error"]
    assert sorted(p.name for p in foreign.iterdir()) == ["notes.txt"]


# --- the grid and the folder ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("grid", "needle"),
    [
        ({"seeds": []}, "sweep.seeds: empty"),
        ({"methods": []}, "sweep.methods: empty (and no sweep.variants)"),
    ],
)
def test_empty_grid_is_an_error(tmp_path: Path, grid: dict[str, object], needle: str) -> None:
    with pytest.raises(ConfigError, match=needle.replace("(", r"\(").replace(")", r"\)")):
        run_sweep(None, _ov(tmp_path), _grid(**grid))


def test_empty_grid_from_the_cli(cli: Cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    for table in ("seeds = []", "methods = []"):
        cfg.write_text(f"[sweep]\n{table}\n")
        code, err = cli("sweep", str(cfg), *_ov(tmp_path))
        assert_one_line_error(code, err, "the grid has no runs")
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_sweep_folder_under_a_file(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    code, err = cli("sweep", str(empty_config), *TOY, f"out_dir='{blocker}/runs'", "--workers", "0")
    assert_one_line_error(code, err, f"{blocker} is a file, not a folder")


@pytest.mark.skipif(AS_ROOT, reason="root ignores file permissions")
def test_read_only_sweep_folder(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    out.chmod(0o555)
    try:
        code, err = cli("sweep", str(empty_config), *TOY, f"out_dir='{out}'", "--workers", "0")
        assert_one_line_error(code, err, f"sweep folder {out}: not writable")
    finally:
        out.chmod(0o755)


def test_unwritable_sweep_folder_message(
    cli: Cli, tmp_path: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only case where root cannot be denied: the permission check itself."""
    out = tmp_path / "runs"
    out.mkdir()
    deny_access(monkeypatch, out)
    code, err = cli("sweep", str(empty_config), *TOY, f"out_dir='{out}'", "--workers", "0")
    assert_one_line_error(code, err, f"sweep folder {out}: not writable")
    assert list(out.iterdir()) == []


def test_second_sweep_on_a_folder_is_refused(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    argv = ["sweep", str(empty_config), *_ov(tmp_path), "--methods", "single", "--workers", "0"]
    with sweep_lock(tmp_path):  # another sweep holds the folder
        code, err = cli(*argv)
    assert_one_line_error(code, err, f"another sweep (pid {os.getpid()}) is running in this folder")
    assert not (tmp_path / "single-main-s0").exists()
    # a lock file left behind by a dead sweep does not block: only a held lock counts
    (tmp_path / LOCK_FILE).write_text("999999\n")
    assert main(argv) == 0
    assert (tmp_path / LOCK_FILE).read_text().strip() == str(os.getpid())


# --- Ctrl-C and dead parents ----------------------------------------------------------------


def test_ctrl_c_in_process_sweep(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = sweep_module.run_job
    calls: list[str] = []

    def run_job(*args: object, **kwargs: object) -> dict[str, object]:
        calls.append("x")
        if len(calls) == 2:
            raise KeyboardInterrupt
        return real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(sweep_module, "run_job", run_job)
    with pytest.raises(SweepInterrupted):
        run_sweep(None, _ov(tmp_path), _grid(seeds=[0, 1, 2]))
    err = capsys.readouterr().err
    assert "sweep interrupted: 1 runs finished, 2 will resume next time" in err
    calls.clear()
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    argv = [
        "sweep",
        str(cfg),
        *_ov(tmp_path),
        "--methods",
        "single",
        "--targets",
        "main",
        "--seeds",
        "0-2",
    ]
    assert main([*argv, "--workers", "0"]) == 130  # s1 ran now, s2 was interrupted
    err = capsys.readouterr().err.strip()
    assert err.splitlines()[-1] == "sweep interrupted: 1 runs finished, 1 will resume next time"
    assert "alphavil: error" not in err and "Traceback" not in err


def _sessions(sid: int) -> list[int]:
    """Live (not zombie) processes of session ``sid``."""
    pids = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid and fields[0] not in ("Z", "X"):
            pids.append(int(d.name))
    return pids


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (d / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == pid and b"spawn_main" in cmdline and fields[0] not in ("Z", "X"):
            out.append(int(d.name))
    return out


def _default_sigint() -> None:
    """In the child: Ctrl-C's default action, even when this test runs with SIGINT ignored (a
    job started in the background by a non-interactive shell inherits SIG_IGN, and Python then
    never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_long_sweep(tmp_path: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """A two-worker sweep of two endless runs, started in its own session; returns once both
    runs have finished an epoch."""
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    out = tmp_path / "runs"
    err = tmp_path / "stderr.txt"
    argv = [
        sys.executable,
        "-m",
        "alphavil.cli",
        "sweep",
        str(cfg),
        *TOY,
        f"out_dir='{out}'",
        "train.epochs=100000",
        "--methods",
        "single",
        "--targets",
        "main",
        "--seeds",
        "0-1",
        "--workers",
        "2",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with err.open("wb") as f:
        proc = subprocess.Popen(
            argv,
            stdout=subprocess.DEVNULL,
            stderr=f,
            env=env,
            start_new_session=True,
            preexec_fn=_default_sigint,
        )
    deadline = time.monotonic() + 180
    runs = [out / "single-main-s0", out / "single-main-s1"]
    while not all((r / "metrics.jsonl").exists() for r in runs):
        assert proc.poll() is None, err.read_text()
        assert time.monotonic() < deadline, "the sweep's runs did not start"
        time.sleep(0.2)
    return proc, err


def _wait_gone(sid: int, seconds: float) -> list[int]:
    deadline = time.monotonic() + seconds
    while (left := _sessions(sid)) and time.monotonic() < deadline:
        time.sleep(0.2)
    return left


@linux_only
def test_ctrl_c_stops_a_parallel_sweep_at_once(tmp_path: Path) -> None:
    proc, err = _start_long_sweep(tmp_path)
    try:
        t0 = time.monotonic()
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal's Ctrl-C does: the whole group
        code = proc.wait(timeout=120)
        assert time.monotonic() - t0 < 30  # it did not wait for the (endless) runs
        text = err.read_text()
        assert code == 130, text
        assert "sweep interrupted: 0 runs finished, 2 will resume next time" in text
        assert "Traceback" not in text and "KeyboardInterrupt" not in text, text
        assert _wait_gone(proc.pid, 15) == []  # no worker survives
        for name in ("single-main-s0", "single-main-s1"):  # each can resume
            run = tmp_path / "runs" / name
            assert (run / MARKER).is_file() and (run / STATE_FILE).is_file()
            assert not (run / "summary.json").exists()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@linux_only
def test_workers_exit_when_the_sweep_is_killed(tmp_path: Path) -> None:
    proc, err = _start_long_sweep(tmp_path)
    try:
        workers = _children(proc.pid)
        assert len(workers) == 2, err.read_text()
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        assert _wait_gone(proc.pid, 20) == [], "workers outlived their killed parent"
    finally:
        if _sessions(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
