"""The CLI: every subcommand turns bad input into one line ``alphavil: error: ...`` and exit 2
(a diverged run exits 1, Ctrl-C 130), and a good command writes what it says."""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from alphavil.cli import main
from alphavil.config import ConfigError, load_config, parse_override
from alphavil.runs import read_json
from tests.helpers import AS_ROOT, TOY, assert_one_line_error, deny_access

Cli = Callable[..., tuple[int, str]]  # the `cli` fixture (tests/conftest.py)


def _toy(tmp_path: Path) -> list[str]:
    return [*TOY, f"out_dir='{tmp_path}'", "train.epochs=1"]


# --- config files ---------------------------------------------------------------------------


def test_missing_config_file(cli: Cli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.toml"
    for cmd in ("run", "sweep"):
        code, err = cli(cmd, str(missing))
        assert_one_line_error(code, err, str(missing), "does not exist")


def test_config_path_is_a_directory(cli: Cli, tmp_path: Path) -> None:
    code, err = cli("run", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path), "is a directory")


def test_config_file_that_is_not_utf8(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "latin1.toml"
    bad.write_bytes('name = "caf\xe9"\n'.encode("latin-1"))
    code, err = cli("run", str(bad))
    assert_one_line_error(code, err, str(bad), "not UTF-8")


def test_invalid_toml_file(cli: Cli, tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    code, err = cli("run", str(bad))
    assert_one_line_error(code, err, "invalid TOML")


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "train..epochs=3", "  =1"])
def test_malformed_override_is_rejected(cli: Cli, bad: str) -> None:
    with pytest.raises(ConfigError, match="malformed override"):
        parse_override(bad)
    code, err = cli("run", "missing.toml", bad)
    assert code == 2 and "malformed override" in err


def test_override_values_are_typed() -> None:
    assert parse_override("train.epochs=5") == (["train", "epochs"], 5)
    assert parse_override("train.method=diw") == (["train", "method"], "diw")
    assert parse_override("alphavil.rho=0.25") == (["alphavil", "rho"], 0.25)
    cfg = load_config(None, [*TOY, "train.tasks=['main', 'noise']", "train.optimizer.lr=0.3"])
    assert cfg.train.tasks == ["main", "noise"]
    assert cfg.train.optimizer == {"name": "SGD", "lr": 0.3, "momentum": 0.9}


# --- config values --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "needle"),
    [
        (
            "train.method=magic",
            "train.method: 'magic' is not one of single, multitask, alphavil, diw",
        ),
        ("train.target=middle", "train.target: 'middle' is not a task; tasks: main, helper, noise"),
        ("train.epochs=-3", "train.epochs: must be >= 1, got -3"),
        ("train.epochs=ten", "train.epochs: expected int, got str 'ten'"),
        ("train.epoch=3", "unknown key 'train.epoch'; allowed: method, target"),
        ("alphavil.rho=0", "alphavil.rho: must be > 0.0, got 0.0"),
        (
            "train.optimizer={name='Nope', lr=1.0}",
            "train.optimizer.name: 'Nope' is not a torch.optim",
        ),
        (
            "train.optimizer={name='SGD', lr=0.1, betas=[0.9, 0.9]}",
            "unknown key 'train.optimizer.betas'",
        ),
        ("data.name=cifar", "data.name: unknown dataset 'cifar'; allowed:"),
        ("train.tasks=['main', 'other']", "train.tasks: ['other'] are not tasks"),
        ("bogus=1", "unknown key 'bogus'; allowed: name, out_dir, label, data"),
        ("train.tasks=['main', 'main']", "train.tasks: ['main', 'main'] lists a task twice"),
        ("alphavil.rho=nan", "alphavil.rho: must be a finite number, got nan"),
        ("diw.lr=inf", "diw.lr: must be a finite number, got inf"),
        ("train.device=foo", "train.device: 'foo' is not a device"),
        ("alphavil.optimizer={name='LBFGS', lr=0.1}", "alphavil.optimizer.name: LBFGS is not"),
        ("train.optimizer={name='Adam', lr=0.1, betas=[0.9]}", "train.optimizer: Adam("),
        ("train.optimizer={name='SGD', lr=0.1, differentiable=true}", "must be false"),
        ("train.method=ls", "mt2o.n_models:"),
        ("mt2o.scalarization='ls'", "mt2o.scalarization 'ls' was renamed: use 'linear'"),
        ("mt2o.scalarization=tch", "mt2o.scalarization 'tch' was renamed: use 'tchebycheff'"),
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
def test_bad_config_exits_2_with_one_line_message(
    cli: Cli, tmp_path: Path, empty_config: Path, override: str, needle: str
) -> None:
    code, err = cli("run", str(empty_config), *_toy(tmp_path), override)
    assert_one_line_error(code, err, needle)
    assert not [p for p in tmp_path.iterdir() if p.is_dir()]  # nothing was started


def test_population_config_checks_exit_2(cli: Cli, tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "toy"\n')
    for override, needle in [
        ("train.tasks=['main']", "a Pareto front needs at least 2 tasks"),
        ("mt2o.ref_point=[1.0, 2.0, 3.0]", "mt2o.ref_point has 3 values"),
        ("mt2o.ideal=[0, 0, 0]", "mt2o.ideal has 3 values"),
    ]:
        two = [] if "tasks" in override else ["train.tasks=['main', 'noise']"]
        code, err = cli("run", str(cfg), "train.method=mt2o", *two, override)
        assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    # integers are accepted where floats are expected
    ok = load_config(
        str(cfg), ["train.method=mt2o", "train.tasks=['main', 'noise']", "mt2o.ref_point=[2, 2]"]
    )
    assert ok.extra["mt2o"].ref_point == [2.0, 2.0]


def test_cuda_only_where_available(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    cfg = str(empty_config)
    if torch.cuda.is_available():
        n = torch.cuda.device_count()
        code, err = cli("run", cfg, *_toy(tmp_path), f"train.device='cuda:{n}'")
        assert_one_line_error(code, err, f"has {n} CUDA device(s)")
    else:
        code, err = cli("run", cfg, *_toy(tmp_path), "train.device='cuda'")
        assert_one_line_error(code, err, "train.device: 'cuda'", "no CUDA")


def test_largest_seed_runs(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    args = ["run", str(empty_config), *_toy(tmp_path), "train.seed=4294967294", "name=big"]
    code, err = cli(*args, "--quiet")
    assert code == 0, err
    assert read_json(tmp_path / "big" / "config.json")["train"]["seed"] == 4294967294


# --- runs and their folders -----------------------------------------------------------------


def test_run_writes_a_complete_run_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, empty_config: Path
) -> None:
    argv = ["run", str(empty_config), *TOY, f"out_dir='{tmp_path}'", "name=r1", "--quiet"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "| main |" in out
    run = tmp_path / "r1"
    names = {p.name for p in run.iterdir()}
    assert {"config.json", "env.json", "metrics.jsonl", "summary.json", "best_main.pt"} <= names
    assert json.loads((run / "config.json").read_text())["train"]["method"] == "alphavil"
    env = json.loads((run / "env.json").read_text())
    assert env["cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert "cpu_model" in env  # the CPU decides the last digits of a run's numbers
    # a finished run is not overwritten by accident
    assert main(argv) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def test_run_refuses_to_delete_a_folder_that_is_not_a_run(
    cli: Cli, tmp_path: Path, empty_config: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    code, err = cli("run", str(empty_config), *TOY, "--run-dir", str(precious), "--quiet")
    assert code == 2 and "not created by alphavil" in err and len(err.splitlines()) == 1
    assert (precious / "thesis.tex").read_text() == "x"


def test_run_dir_that_is_a_file(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    target = tmp_path / "a_file"
    target.write_text("keep me")
    code, err = cli("run", str(empty_config), *_toy(tmp_path), "--run-dir", str(target))
    assert_one_line_error(code, err, f"--run-dir {target}: exists and is not a folder")
    assert target.read_text() == "keep me"


def test_run_dir_under_a_file(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    target = blocker / "sub" / "run"
    code, err = cli("run", str(empty_config), *_toy(tmp_path), "--run-dir", str(target))
    assert_one_line_error(code, err, f"{blocker} is a file, not a folder")


def test_out_dir_under_a_file(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    blocker = tmp_path / "a_file"
    blocker.write_text("keep me")
    code, err = cli("run", str(empty_config), *TOY, f"out_dir='{blocker}/runs'")
    assert_one_line_error(code, err, "run directory", f"{blocker} is a file")


@pytest.mark.skipif(AS_ROOT, reason="root ignores file permissions")
def test_run_dir_read_only(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        code, err = cli("run", str(empty_config), *_toy(tmp_path), "--run-dir", f"{locked}/r")
        assert_one_line_error(code, err, "not writable", str(locked))
    finally:
        locked.chmod(0o755)


def test_run_dir_not_writable_message(
    cli: Cli, tmp_path: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The read-only case where root cannot be denied: the permission check itself."""
    locked = tmp_path / "locked"
    locked.mkdir()
    deny_access(monkeypatch, locked)
    code, err = cli("run", str(empty_config), *_toy(tmp_path), "--run-dir", f"{locked}/r")
    assert_one_line_error(code, err, f"--run-dir {locked}/r: not writable ({locked})")
    assert not (locked / "r").exists()


def test_disk_full_is_one_line(
    cli: Cli, tmp_path: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alphavil.runner

    target = tmp_path / "r" / "metrics.jsonl"

    def full(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))

    monkeypatch.setattr(alphavil.runner, "execute", full)
    code, err = cli("run", str(empty_config), *_toy(tmp_path), "--quiet")
    assert_one_line_error(code, err, f"{target}: No space left on device")

    def full_no_name(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(alphavil.runner, "execute", full_no_name)
    code, err = cli("run", str(empty_config), *_toy(tmp_path), "--quiet")
    assert_one_line_error(code, err, "disk full")


def test_a_full_disk_while_saving_the_state_is_one_line_and_keeps_what_was_written(
    cli: Cli, tmp_path: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
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
    code, err = cli("run", str(empty_config), *args)
    state = tmp_path / "r" / "state.pt"
    assert_one_line_error(code, err, f"{state}: could not write the checkpoint (disk full?)",
                          "PytorchStreamWriter failed writing file data/0")  # fmt: skip
    monkeypatch.setattr(alphavil.runs.torch, "save", real)
    assert load_checkpoint(state)["epoch"] == 1  # the previous state, whole
    assert [r["epoch"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")] == [1, 2]
    assert not list((tmp_path / "r").glob(".*.tmp"))
    code, err = cli("run", str(empty_config), *args, "--resume")  # disk freed: resume
    assert code == 0, err
    assert [r["epoch"] for r in read_jsonl(tmp_path / "r" / "metrics.jsonl")] == [1, 2, 3]


def test_diverged_run_exits_1_and_ctrl_c_130(
    cli: Cli, tmp_path: Path, empty_config: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = ["run", str(empty_config), *_toy(tmp_path), "--quiet", "name=diverged"]
    paper = "alphavil.preset=paper"
    code, err = cli(*args, paper, "alphavil.optimizer={name='SGD', lr=1e30}")
    assert code == 1 and "run stopped" in err and len(err.splitlines()) == 1, err

    import alphavil.runner

    def interrupt(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(alphavil.runner, "execute", interrupt)
    code, err = cli(*args)
    assert code == 130 and err == "alphavil: error: interrupted; finished files are kept"


def test_verbose_adds_the_traceback_after_the_line(cli: Cli, tmp_path: Path) -> None:
    code, err = cli("-v", "run", str(tmp_path))
    assert code == 2
    lines = err.splitlines()
    assert lines[0].startswith("alphavil: error: ") and "is a directory" in lines[0]
    assert "Traceback" in err


# --- report, sweep flags, nlu-predict, plot-pareto, data ------------------------------------


def _fake_run(root: Path, name: str = "r") -> Path:
    run = root / name
    run.mkdir(parents=True)
    (run / "summary.json").write_text(json.dumps({"status": "completed", "best": {}}))
    (run / "config.json").write_text(json.dumps({"train": {"method": "single", "seed": 0}}))
    return run


def test_report_and_sweep_flag_errors(cli: Cli, tmp_path: Path, empty_config: Path) -> None:
    code, err = cli("report", str(tmp_path / "missing"))
    assert code == 2 and "no completed runs" in err
    base = ["sweep", str(empty_config), *TOY, f"out_dir='{tmp_path}'"]
    for flags, needle in [
        (["--workers", "-1"], "--workers must be >= 0"),
        (["--seeds", "3-1"], "--seeds '3-1'"),
        (["--methods", "single,single"], "sweep.methods: ['single', 'single']"),
    ]:
        code, err = cli(*base, *flags)
        assert code == 2 and needle in err, err


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
    cli: Cli, tmp_path: Path, file: str, content: str | bytes | None, needle: str
) -> None:
    run = _fake_run(tmp_path)
    if content is None:
        (run / file).unlink()
    elif isinstance(content, bytes):
        (run / file).write_bytes(content)
    else:
        (run / file).write_text(content)
    code, err = cli("report", str(tmp_path))
    assert_one_line_error(code, err, str(run / file), needle)


def test_report_out_is_an_existing_file(cli: Cli, tmp_path: Path) -> None:
    _fake_run(tmp_path / "runs")
    out = tmp_path / "report.txt"
    out.write_text("keep me")
    code, err = cli("report", str(tmp_path / "runs"), "--out", str(out))
    assert_one_line_error(code, err, f"--out {out}: exists and is not a folder")
    assert out.read_text() == "keep me"


def test_nlu_predict_out_is_an_existing_file(cli: Cli, tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "runs")
    out = tmp_path / "preds"
    out.write_text("keep me")
    code, err = cli("nlu-predict", str(run), "--out", str(out))
    assert_one_line_error(code, err, f"--out {out}: exists and is not a folder")
    assert out.read_text() == "keep me"


def test_nlu_predict_broken_config(cli: Cli, tmp_path: Path) -> None:
    run = _fake_run(tmp_path / "runs")
    (run / "config.json").write_text("{oops")
    code, err = cli("nlu-predict", str(run), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, f"{run / 'config.json'}: not valid JSON")
    (run / "config.json").unlink()
    code, err = cli("nlu-predict", str(run), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, str(run / "config.json"), "No such file")


def test_plot_pareto_bad_data_key_error(
    cli: Cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import alphavil.pareto.plots

    def broken(*args: object, **kwargs: object) -> None:
        raise KeyError("hypervolume")

    monkeypatch.setattr(alphavil.pareto.plots, "plot_pareto", broken)
    code, err = cli("plot-pareto", str(tmp_path), "--out", str(tmp_path / "o"))
    assert_one_line_error(code, err, "missing key 'hypervolume'")


def test_data_unavailable_exits_2(cli: Cli, monkeypatch: pytest.MonkeyPatch) -> None:
    import alphavil.data.multimnist
    from alphavil.data.mnist import DataUnavailableError

    def offline(*args: object, **kwargs: object) -> None:
        raise DataUnavailableError("MNIST: not in /x and the download failed:\n  no network")

    monkeypatch.setattr(alphavil.data.multimnist, "load_multi_dataset", offline)
    code, err = cli("data", "--kind", "mnist")
    assert_one_line_error(code, err, "MNIST: not in /x and the download failed: no network")


# --- argument order -------------------------------------------------------------------------


def test_options_between_config_and_overrides(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, empty_config: Path
) -> None:
    cfg = empty_config
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
