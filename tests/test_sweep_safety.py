"""Sweeps never reuse a stale run, never share a folder, and stop cleanly (Ctrl-C, kill -9)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import alphavil.sweep.local as sweep_module
from alphavil.cli import main
from alphavil.config import ConfigError
from alphavil.processes import LOCK_FILE, SweepError, sweep_lock
from alphavil.runs import MARKER, STATE_FILE, read_json
from alphavil.sweep import SweepConfig, SweepInterrupted, run_sweep
from tests.helpers import TOY

ROOT = os.geteuid() == 0  # root ignores file permissions
linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses /proc")


def _grid(**kw: object) -> SweepConfig:
    base: dict[str, object] = {
        "methods": ["single"],
        "targets": ["main"],
        "seeds": [0],
        "workers": 0,
    }
    return SweepConfig(**{**base, **kw})  # type: ignore[arg-type]


def _ov(tmp_path: Path, *extra: str) -> list[str]:
    return [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1", *extra]


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("alphavil: error: ") and "Traceback" not in err, err
    for needle in needles:
        assert needle in err, err


# --- stale runs -----------------------------------------------------------------------------


def test_completed_run_of_another_config_is_refused_then_rerun(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
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
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    argv = ["sweep", str(cfg), *changed, "--methods", "single", "--seeds", "0", "--workers", "0"]
    capsys.readouterr()
    code, err = main(argv), capsys.readouterr().err.strip()
    _one_line_error(code, err, "train.epochs: 1 -> 2", "--rerun-changed to rerun it")
    # --rerun-changed reruns exactly the changed runs
    assert main([*argv, "--rerun-changed"]) == 0
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
    with pytest.raises(SweepError, match=r"alphavil\.updates: \"joint\" -> \"separate\""):
        run_sweep(None, _ov(tmp_path, "alphavil.updates=separate"), av)


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


def test_empty_grid_from_the_cli(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    for table in ("seeds = []", "methods = []"):
        cfg.write_text(f"[sweep]\n{table}\n")
        code, err = main(["sweep", str(cfg), *_ov(tmp_path)]), capsys.readouterr().err.strip()
        _one_line_error(code, err, "the grid has no runs")
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]


def test_sweep_folder_under_a_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    code = main(["sweep", str(cfg), *TOY, f"out_dir='{blocker}/runs'", "--workers", "0"])
    _one_line_error(code, capsys.readouterr().err.strip(), f"{blocker} is a file, not a folder")


@pytest.mark.skipif(ROOT, reason="root ignores file permissions")
def test_read_only_sweep_folder(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    out = tmp_path / "runs"
    out.mkdir()
    out.chmod(0o555)
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    try:
        code = main(["sweep", str(cfg), *TOY, f"out_dir='{out}'", "--workers", "0"])
        _one_line_error(code, capsys.readouterr().err.strip(), f"sweep folder {out}: not writable")
    finally:
        out.chmod(0o755)


def test_unwritable_sweep_folder_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only case where root cannot be denied: the permission check itself."""
    out = tmp_path / "runs"
    out.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == out else real_access(p, mode)
    )
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    code = main(["sweep", str(cfg), *TOY, f"out_dir='{out}'", "--workers", "0"])
    _one_line_error(code, capsys.readouterr().err.strip(), f"sweep folder {out}: not writable")
    assert list(out.iterdir()) == []


def test_second_sweep_on_a_folder_is_refused(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    argv = ["sweep", str(cfg), *_ov(tmp_path), "--methods", "single", "--workers", "0"]
    with sweep_lock(tmp_path):  # another sweep holds the folder
        code, err = main(argv), capsys.readouterr().err.strip()
    _one_line_error(code, err, f"another sweep (pid {os.getpid()}) is running in this folder")
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
