"""Every subcommand turns bad input into one line ``alphavil: error: ...`` and exit 2."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import pytest

from alphavil.cli import main
from alphavil.runs import read_json
from tests.helpers import TOY

ROOT = os.geteuid() == 0  # root ignores file permissions


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


def _one_line_error(code: int, err: str, *needles: str) -> None:
    assert code == 2, err
    assert len(err.splitlines()) == 1, err
    assert err.startswith("alphavil: error: "), err
    assert "Traceback" not in err
    for needle in needles:
        assert needle in err, err


@pytest.fixture
def cfg(tmp_path: Path) -> Path:
    path = tmp_path / "c.toml"
    path.write_text("")
    return path


def _toy(tmp_path: Path) -> list[str]:
    return [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1"]


# --- config files ---------------------------------------------------------------------------


def test_missing_config_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    for cmd in ("run", "sweep"):
        code, err = _run(capsys, cmd, str(missing))
        _one_line_error(code, err, str(missing), "does not exist")


def test_config_path_is_a_directory(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(capsys, "run", str(tmp_path))
    _one_line_error(code, err, str(tmp_path), "is a directory")


def test_config_file_that_is_not_utf8(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    code, err = _run(capsys, "run", str(bad))
    _one_line_error(code, err, str(bad), "not UTF-8")


# --- config values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        ("train.optimizer.lr=nan", "train.optimizer.lr: must be finite, got nan"),
        ("train.optimizer.lr=inf", "train.optimizer.lr: must be finite, got inf"),
        ("alphavil.optimizer={name='SGD', lr=-inf}", "alphavil.optimizer.lr: must be finite"),
        ("train.optimizer={name='SGD', lr=0.1, momentum=nan}", "train.optimizer.momentum"),
        (
            "train.optimizer={name='Adam', lr=0.1, betas=[0.9, inf]}",
            "train.optimizer.betas: must hold finite numbers",
        ),
        ("train.device='mps'", "train.device: 'mps' is not supported; allowed: cpu"),
        ("train.device='meta'", "train.device: 'meta' is not supported; allowed: cpu"),
        ("train.device='foo'", "train.device: 'foo' is not a device; allowed: cpu"),
        ("train.seed=-1", "train.seed: must be >= 0, got -1"),
        ("train.seed=4294967295", "train.seed: must be <= 4294967294, got 4294967295"),
        ("train.seed=4294967296", "train.seed: must be <= 4294967294, got 4294967296"),
    ],
)
def test_bad_values_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path, override: str, needle: str
) -> None:
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), override)
    _one_line_error(code, err, needle)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing was started


def test_cuda_only_where_available(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path
) -> None:
    import torch

    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), f"train.device='cuda:{n}'")
        _one_line_error(code, err, f"has {n} CUDA device(s)")
    else:
        code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "train.device='cuda'")
        _one_line_error(code, err, "train.device: 'cuda'", "no CUDA")


def test_largest_seed_runs(capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path) -> None:
    args = ["run", str(cfg), *_toy(tmp_path), "train.seed=4294967294", "name=big", "--quiet"]
    assert main(args) == 0, capsys.readouterr().err
    assert read_json(tmp_path / "big" / "config.json")["train"]["seed"] == 4294967294


# --- run directories ------------------------------------------------------------------------


def test_run_dir_that_is_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path
) -> None:
    target = tmp_path / "a_file"
    target.write_text("keep me")
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--run-dir", str(target))
    _one_line_error(code, err, f"--run-dir {target}: exists and is not a folder")
    assert target.read_text() == "keep me"


def test_run_dir_under_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    target = blocker / "sub" / "run"
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--run-dir", str(target))
    _one_line_error(code, err, f"{blocker} is a file, not a folder")


def test_out_dir_under_a_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path
) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    code, err = _run(capsys, "run", str(cfg), *TOY, f"out_dir='{blocker}/runs'")
    _one_line_error(code, err, "run directory", f"{blocker} is a file")


@pytest.mark.skipif(ROOT, reason="root ignores file permissions")
def test_run_dir_read_only(capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--run-dir", f"{locked}/r")
        _one_line_error(code, err, "not writable", str(locked))
    finally:
        locked.chmod(0o755)


def test_run_dir_not_writable_message(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cfg: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The read-only case where root cannot be denied: the permission check itself."""
    locked = tmp_path / "locked"
    locked.mkdir()
    real_access = os.access
    monkeypatch.setattr(
        os, "access", lambda p, mode: False if Path(p) == locked else real_access(p, mode)
    )
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--run-dir", f"{locked}/r")
    _one_line_error(code, err, f"--run-dir {locked}/r: not writable ({locked})")
    assert not (locked / "r").exists()


def test_disk_full_is_one_line(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cfg: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import alphavil.runner

    target = tmp_path / "r" / "metrics.jsonl"

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(alphavil.runner, "execute", full)
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--quiet")
    _one_line_error(code, err, f"{target}: No space left on device")

    def full_no_name(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(alphavil.runner, "execute", full_no_name)
    code, err = _run(capsys, "run", str(cfg), *_toy(tmp_path), "--quiet")
    _one_line_error(code, err, "disk full")


def test_a_full_disk_while_saving_the_state_is_one_line_and_keeps_what_was_written(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cfg: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import torch

    import alphavil.runs
    from alphavil.runs import load_checkpoint, read_jsonl

    real = torch.save

    def full_at_epoch_2(obj: object, f: object, *args: object, **kwargs: object) -> None:
        if isinstance(obj, dict) and obj.get("epoch") == 2:
            f.write(b"PK\x03\x04 half a zip")  # type: ignore[attr-defined]
            # what torch's zip writer raises when a write fails (ENOSPC)
            raise RuntimeError(
                "[enforce fail at inline_container.cc:626] . unexpected pos 64 vs 0\n"
                "PytorchStreamWriter failed writing file data/0: file write failed"
            )
        real(obj, f, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(alphavil.runs.torch, "save", full_at_epoch_2)
    args = [*_toy(tmp_path), "train.epochs=3", "train.save_checkpoints=false", "name=r", "--quiet"]
    code, err = _run(capsys, "run", str(cfg), *args)
    state = tmp_path / "r" / "state.pt"
    _one_line_error(code, err, f"{state}: could not write the checkpoint (disk full?)",
                    "PytorchStreamWriter failed writing file data/0")  # fmt: skip
    monkeypatch.setattr(alphavil.runs.torch, "save", real)
    assert load_checkpoint(state)["epoch"] == 1  # the previous state, whole
    assert [r["epoch"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")] == [1, 2]
    assert not list((tmp_path / "r").glob(".*.tmp"))
    code, err = _run(capsys, "run", str(cfg), *args, "--resume")  # disk freed: resume
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")] == [1, 2, 3]


def test_diverged_run_exits_1_and_ctrl_c_130(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    cfg: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    args = ["run", str(cfg), *_toy(tmp_path), "--quiet", "name=diverged"]
    paper = "alphavil.preset=paper"
    code, err = _run(capsys, *args, paper, "alphavil.optimizer={name='SGD', lr=1e30}")
    assert code == 1 and "run stopped" in err and len(err.splitlines()) == 1, err

    import alphavil.runner

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(alphavil.runner, "execute", interrupt)
    code, err = _run(capsys, *args)
    assert code == 130 and err == "alphavil: error: interrupted; finished files are kept"


def test_verbose_adds_the_traceback_after_the_line(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code, err = _run(capsys, "-v", "run", str(tmp_path))
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("alphavil: error: ") and "is a directory" in lines[0]
    assert "Traceback" in err


# --- report ---------------------------------------------------------------------------------


def _fake_run(root: Path, name: str = "r") -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "completed", "best": {}}))
    (run / "config.json").write_text(json.dumps({"train": {"method": "single", "seed": 0}}))
    return run


@pytest.mark.parametrize(
    ("file", "content", "needle"),
    [
        ("summary.json", "{not json", "summary.json: not valid JSON"),
        ("summary.json", "[1, 2]", "summary.json: expected a JSON object, got list"),
        ("summary.json", b"\xff\xfe{}", "summary.json: not UTF-8"),
        ("config.json", None, "config.json: missing"),
        ("config.json", "[]", "config.json: expected a JSON object, got list"),
        ("config.json", "{}", "config.json: no train.method and train.seed"),
    ],
)
def test_report_on_broken_run_files(
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    file: str,
    content: str | bytes | None,
    needle: str,
) -> None:
    run = _fake_run(tmp_path)
    if content is None:
        (run / file).unlink()
    elif isinstance(content, bytes):
        (run / file).write_bytes(content)
    else:
        (run / file).write_text(content)
    code, err = _run(capsys, "report", str(tmp_path))
    _one_line_error(code, err, str(run / file), needle)


def test_report_out_is_an_existing_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    _fake_run(tmp_path / "runs")
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    code, err = _run(capsys, "report", str(tmp_path / "runs"), "--out", str(out))
    _one_line_error(code, err, f"--out {out}: exists and is not a folder")
    assert out.read_text() == "keep me"


# --- nlu-predict, plot-pareto, data ---------------------------------------------------------


def test_nlu_predict_out_is_an_existing_file(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    run = _fake_run(tmp_path / "runs")
    out = tmp_path / "preds"
    out.write_text("keep me")
    code, err = _run(capsys, "nlu-predict", str(run), "--out", str(out))
    _one_line_error(code, err, f"--out {out}: exists and is not a folder")
    assert out.read_text() == "keep me"


def test_nlu_predict_broken_config(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "runs")
    (run / "config.json").write_text("{oops")
    code, err = _run(capsys, "nlu-predict", str(run), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, f"{run / 'config.json'}: not valid JSON")
    (run / "config.json").unlink()
    code, err = _run(capsys, "nlu-predict", str(run), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, str(run / "config.json"), "No such file")


def test_plot_pareto_bad_data_key_error(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alphavil.pareto.plots

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("hypervolume")

    monkeypatch.setattr(alphavil.pareto.plots, "plot_pareto", broken)
    code, err = _run(capsys, "plot-pareto", str(tmp_path), "--out", str(tmp_path / "o"))
    _one_line_error(code, err, "missing key 'hypervolume'")


def test_data_unavailable_exits_2(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import alphavil.data.multimnist
    from alphavil.data.mnist import DataUnavailableError

    def offline(*args: object, **kwargs: object) -> None:
        raise DataUnavailableError("MNIST: not in /x and the download failed:\n  no network")

    monkeypatch.setattr(alphavil.data.multimnist, "load_multi_dataset", offline)
    code, err = _run(capsys, "data", "--kind", "mnist")
    _one_line_error(code, err, "MNIST: not in /x and the download failed: no network")


# --- argument order -------------------------------------------------------------------------


def test_options_between_config_and_overrides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, cfg: Path
) -> None:
    code = main(["run", str(cfg), "data.name=toy", "--quiet", *_toy(tmp_path)[1:], "name=mixed"])
    assert code == 0, capsys.readouterr().err
    assert read_json(tmp_path / "mixed" / "config.json")["train"]["epochs"] == 1
    with pytest.raises(SystemExit) as exc:
        main(["run", str(cfg), "--quiet", "train.epochs=1", "--bogus"])
    assert exc.value.code == 2
    assert "unrecognized arguments" in capsys.readouterr().err
    sweep = ["sweep", str(cfg), "--workers", "0", *_toy(tmp_path), "--seeds", "0"]
    assert main([*sweep, "--methods", "single", "train.batch_size=32"]) == 0
    stored = read_json(tmp_path / "single-main-s0" / "config.json")
    assert stored["train"]["batch_size"] == 32
