from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pareto_helpers import tiny_data, tiny_model

from alphavil.pareto.mt2o import MT2OConfig, train_population
from alphavil.pareto.plots import epochs_table, load_runs, main, plot_pareto
from alphavil.runs import RunWriter

pytest.importorskip("matplotlib")


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # module-scoped: set up before the autouse one-thread fixture
    for method in ("mt2o", "ls"):
        for seed in (0, 1):
            run = RunWriter(root / f"{method}-s{seed}")
            mc = MT2OConfig(n_models=3, ref_point=[3.0])
            run.write_config(
                {"data": {"name": "tiny"}, "train": {"method": method}, "mt2o": {"beta": mc.beta}}
            )
            train_population(
                tiny_data(),
                tiny_model,
                mc,
                method=method,
                epochs=3,
                batch_size=16,
                optimizer={"name": "SGD", "lr": 0.2},
                seed=seed,
                run=run,
                save_checkpoints=False,
            )
    torch.set_num_threads(threads)
    return root


def test_plot_pareto_writes_figures_and_table(runs_dir: Path, tmp_path: Path) -> None:
    files = plot_pareto([runs_dir], tmp_path)
    names = {f.name for f in files}
    assert {
        "hv_epoch.png",
        "front_loss.png",
        "front_accuracy.png",
        "epochs_to_95.md",
        "epochs_to_95.csv",
    } <= names
    for f in files:
        assert f.stat().st_size > 0
        if f.suffix == ".png":
            assert f.read_bytes()[:4] == b"\x89PNG" and f.stat().st_size < 200_000
    table = (tmp_path / "epochs_to_95.md").read_text()
    assert table.startswith("| method | seeds |") and "| no_transfer | 2 |" in table


def test_epochs_table_rows(runs_dir: Path) -> None:
    rows = epochs_table(load_runs([runs_dir]))
    assert [r["method"] for r in rows] == ["mt2o", "no_transfer"]
    best = max(rows, key=lambda r: r["final_hv_mean"])
    assert best["reached_best"] >= 1
    for r in rows:
        assert 0 <= r["epochs_to_95_own"] <= 3


def test_cli_entry_and_errors(
    runs_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(runs_dir / "ls-s0"), "--out", str(tmp_path)]) == 0
    assert "hv_epoch.png" in capsys.readouterr().out
    with pytest.raises(ValueError, match="no completed population runs"):
        load_runs([tmp_path])


def test_grouping_keeps_distinct_configs_apart(tmp_path: Path) -> None:
    """Runs that differ in anything but the seed (lr, scalarisation) are separate groups;
    seeds of one config form one group; old `ls` runs are labelled no_transfer."""
    combos = [
        ("mt2o", 0.1, "linear"),
        ("mt2o", 0.3, "linear"),
        ("ls", 0.1, "linear"),
        ("no_transfer", 0.1, "tchebycheff"),
    ]
    for method, lr, scal in combos:
        for seed in (0, 1):
            run = RunWriter(tmp_path / f"{method}-{lr}-{scal}-s{seed}")
            mc = MT2OConfig(n_models=2, ref_point=[3.0], scalarization=scal)
            run.write_config(
                {
                    "name": f"{method}-s{seed}",
                    "train": {"method": method, "seed": seed, "optimizer": {"lr": lr}},
                    "mt2o": {"beta": mc.beta, "scalarization": scal},
                }
            )
            train_population(
                tiny_data(n_train=16),
                tiny_model,
                mc,
                method=method,
                epochs=1,
                batch_size=16,
                optimizer={"name": "SGD", "lr": lr},
                seed=seed,
                run=run,
                save_checkpoints=False,
            )
    rows = epochs_table(load_runs([tmp_path]))
    assert [(r["method"], r["seeds"]) for r in rows] == [
        ("mt2o mt2o.scalarization=linear train.optimizer.lr=0.1", 2),
        ("mt2o mt2o.scalarization=linear train.optimizer.lr=0.3", 2),
        ("no_transfer mt2o.scalarization=linear train.optimizer.lr=0.1", 2),
        ("no_transfer mt2o.scalarization=tchebycheff train.optimizer.lr=0.1", 2),
    ]
