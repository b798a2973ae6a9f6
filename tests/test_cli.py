"""CLI and config validation: bad input exits 2 with a one-line message naming the problem."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from alphavil.cli import main
from alphavil.config import ConfigError, load_config, parse_override
from tests.helpers import TOY


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    err = capsys.readouterr().err.strip()
    return code, err


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
    ],
)
def test_bad_config_exits_2_with_one_line_message(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, override: str, needle: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "toy"\n[train]\ntarget = "main"\n')
    code, err = _run(capsys, "run", str(cfg), override, f"out_dir='{tmp_path}'")
    assert code == 2
    assert needle in err
    assert len(err.splitlines()) == 1
    assert not list(tmp_path.glob("toy-*"))  # nothing was started


@pytest.mark.parametrize("bad", ["train.epochs", "=3", "train..epochs=3", "  =1"])
def test_malformed_override_is_rejected(capsys: pytest.CaptureFixture[str], bad: str) -> None:
    with pytest.raises(ConfigError, match="malformed override"):
        parse_override(bad)
    code, err = _run(capsys, "run", "missing.toml", bad)
    assert code == 2 and "malformed override" in err


def test_missing_and_invalid_toml_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(capsys, "run", str(tmp_path / "nope.toml"))
    assert code == 2 and "does not exist" in err
    bad = tmp_path / "bad.toml"
    bad.write_text("[train\nepochs = 3")
    code, err = _run(capsys, "run", str(bad))
    assert code == 2 and "invalid TOML" in err


def test_override_values_are_typed() -> None:
    assert parse_override("train.epochs=5") == (["train", "epochs"], 5)
    assert parse_override("train.method=diw") == (["train", "method"], "diw")
    assert parse_override("alphavil.rho=0.25") == (["alphavil", "rho"], 0.25)
    cfg = load_config(None, [*TOY, "train.tasks=['main', 'noise']", "train.optimizer.lr=0.3"])
    assert cfg.train.tasks == ["main", "noise"]
    assert cfg.train.optimizer == {"name": "SGD", "lr": 0.3, "momentum": 0.9}


def test_run_writes_a_complete_run_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    assert main(["run", str(cfg), *TOY, f"out_dir='{tmp_path}'", "name=r1", "--quiet"]) == 0
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
    assert main(["run", str(cfg), *TOY, f"out_dir='{tmp_path}'", "name=r1", "--quiet"]) == 2
    assert "already holds a finished run" in capsys.readouterr().err


def test_population_config_checks_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text('[data]\nname = "toy"\n')
    for override, needle in [
        ("train.tasks=['main']", "a Pareto front needs at least 2 tasks"),
        ("mt2o.ref_point=[1.0, 2.0, 3.0]", "mt2o.ref_point has 3 values"),
        ("mt2o.ideal=[0, 0, 0]", "mt2o.ideal has 3 values"),
    ]:
        two = [] if "tasks" in override else ["train.tasks=['main', 'noise']"]
        code, err = _run(capsys, "run", str(cfg), "train.method=mt2o", *two, override)
        assert code == 2 and needle in err and len(err.splitlines()) == 1, err
    # integers are accepted where floats are expected
    ok = load_config(
        str(cfg), ["train.method=mt2o", "train.tasks=['main', 'noise']", "mt2o.ref_point=[2, 2]"]
    )
    assert ok.extra["mt2o"].ref_point == [2.0, 2.0]


def test_run_refuses_to_delete_a_folder_that_is_not_a_run(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("x")
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    code, err = _run(capsys, "run", str(cfg), *TOY, "--run-dir", str(precious), "--quiet")
    assert code == 2 and "not created by alphavil" in err and len(err.splitlines()) == 1
    assert (precious / "thesis.tex").read_text() == "x"


def test_report_and_sweep_flag_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, err = _run(capsys, "report", str(tmp_path / "missing"))
    assert code == 2 and "no completed runs" in err
    cfg = tmp_path / "c.toml"
    cfg.write_text("")
    base = ["sweep", str(cfg), *TOY, f"out_dir='{tmp_path}'"]
    for flags, needle in [
        (["--workers", "-1"], "--workers must be >= 0"),
        (["--seeds", "3-1"], "--seeds '3-1'"),
        (["--methods", "single,single"], "sweep.methods: ['single', 'single']"),
    ]:
        code, err = _run(capsys, *base, *flags)
        assert code == 2 and needle in err, err
