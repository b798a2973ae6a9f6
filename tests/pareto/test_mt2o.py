from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from pareto_helpers import TASKS, tiny_data, tiny_model

from alphavil.pareto.hypervolume import hypervolume
from alphavil.pareto.mt2o import MT2OConfig, epochs_to_fraction, train_population
from alphavil.pareto.problems import SPEC, SyntheticConfig, convex_front, convex_optimum
from alphavil.pareto.weights import evenly_spaced
from alphavil.runs import RunWriter, load_checkpoint
from alphavil.training import NonFiniteLossError

SGD = {"name": "SGD", "lr": 0.1, "momentum": 0.9}


def _independent_run(k: int, n_models: int, epochs: int, seed: int) -> dict[str, torch.Tensor]:
    """Model k trained alone on λ^k's linear scalarisation, on the trainer's batch order."""
    data = tiny_data()
    torch.manual_seed(seed)
    model = [tiny_model() for _ in range(n_models)][k]  # the trainer's k-th initialisation
    pref = evenly_spaced(n_models)[k]
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    g = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for x, y in data.train_batches(["a", "b"], batch_size=16, generator=g):
            opt.zero_grad()
            out = model(x)
            sum(pref[i] * t.loss(out[t.name], y[t.name]) for i, t in enumerate(TASKS)).backward()
            opt.step()
    return dict(model.named_parameters())


def test_transfer_off_equals_k_independent_runs(tmp_path: Path) -> None:
    mc = MT2OConfig(n_models=3, beta=0.3, ref_point=[5.0], init="independent")
    train_population(
        tiny_data(),
        tiny_model,
        mc,
        method="ls",
        epochs=2,
        batch_size=16,
        optimizer=SGD,
        seed=7,
        run=RunWriter(tmp_path),
    )
    stacked = load_checkpoint(tmp_path / "population.pt")["population"]["params"]
    for k in range(3):
        for name, p in _independent_run(k, 3, epochs=2, seed=7).items():
            torch.testing.assert_close(stacked[name][k], p.detach(), rtol=0, atol=1e-6)
    # and with transfer the models do differ from the independent runs
    train_population(
        tiny_data(),
        tiny_model,
        mc,
        method="mt2o",
        epochs=2,
        batch_size=16,
        optimizer=SGD,
        seed=7,
        run=RunWriter(tmp_path / "on"),
    )
    mixed = load_checkpoint(tmp_path / "on" / "population.pt")["population"]["params"]
    assert not torch.allclose(mixed["encoder.0.weight"], stacked["encoder.0.weight"])


@pytest.mark.parametrize("method", ["mt2o", "no_transfer", "ls", "pmtl", "epo", "pareto_mgda"])
def test_run_directory_is_written(tmp_path: Path, method: str) -> None:
    run = RunWriter(tmp_path)
    run.write_config({"train": {"method": method}})
    summary = train_population(
        tiny_data(),
        tiny_model,
        MT2OConfig(n_models=3, ref_point=[5.0]),
        method=method,
        epochs=2,
        batch_size=16,
        optimizer=SGD,
        run=run,
    )
    for name in ("config.json", "metrics.jsonl", "summary.json", "population.pt"):
        assert (tmp_path / name).is_file()
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [0, 1, 2]
    last = records[-1]
    assert set(last["test"]) == {"a", "b"}
    assert len(last["test"]["a"]["loss"]) == 3 and len(last["test"]["b"]["accuracy"]) == 3
    points = np.array([last["test"]["a"]["loss"], last["test"]["b"]["loss"]]).T
    assert last["hv"]["test"] == pytest.approx(hypervolume(points, [5.0, 5.0]))
    saved = json.loads((tmp_path / "summary.json").read_text())
    assert saved["status"] == "completed" and saved["method_requested"] == method
    assert saved["method"] == ("no_transfer" if method == "ls" else method)
    assert len(last["scalarized"]["test"]) == 3
    assert saved["ref_point"] == [5.0, 5.0] and saved["hv_curve"] == summary["hv_curve"]
    assert saved["prefs"] == evenly_spaced(3).tolist()


def test_convex_problem_reaches_the_analytic_optima(tmp_path: Path) -> None:
    """Acceptance: each solution within 1e-3 of its LS optimum; HV within 1% of the optima's."""
    data, make_model = SPEC.build(SyntheticConfig(problem="convex", dim=20, steps_per_epoch=10))
    mc = MT2OConfig(
        n_models=5, beta=0.1, decay="linear", decay_start=0.2, decay_end=0.5, ref_point=[1.1]
    )
    summary = train_population(
        data,
        make_model,
        mc,
        method="mt2o",
        epochs=20,
        batch_size=1,
        optimizer={"name": "SGD", "lr": 0.5},
        seed=0,
        eval_batch_size=1,
        run=RunWriter(tmp_path),
    )
    prefs = evenly_spaced(5)
    x = load_checkpoint(tmp_path / "population.pt")["population"]["params"]["x"]
    dist = (x.double() - convex_optimum(prefs, 20)).norm(dim=1)
    assert (dist < 1e-3).all(), dist
    test = summary["final"]["test"]
    points = np.array([test["f1"]["loss"], test["f2"]["loss"]]).T
    np.testing.assert_allclose(points, convex_front(prefs).numpy(), atol=1e-6)
    hv_opt = hypervolume(convex_front(prefs).numpy(), [1.1, 1.1])
    assert summary["hv_test"] == pytest.approx(hv_opt, rel=0.01)


def test_errors_are_clear() -> None:
    with pytest.raises(ValueError, match="ref_point has 3 values"):
        train_population(
            tiny_data(), tiny_model, MT2OConfig(ref_point=[1.0, 2.0, 3.0]), epochs=1, batch_size=16
        )
    with pytest.raises(ValueError, match="unknown population method"):
        train_population(tiny_data(), tiny_model, MT2OConfig(), method="nope")
    with pytest.raises(ValueError, match="couple"):
        train_population(
            tiny_data(), tiny_model, MT2OConfig(), optimizer={"name": "LBFGS", "lr": 1.0}
        )


def test_config_errors_name_the_key() -> None:
    from alphavil.config import ConfigError, load_config

    with pytest.raises(ConfigError, match="decay_start"):
        load_config(
            None,
            [
                "data.name=synthetic",
                "train.method=mt2o",
                "mt2o.decay_start=0.9",
                "mt2o.decay_end=0.5",
            ],
        )
    with pytest.raises(ConfigError, match="ref_point"):
        MT2OConfig(ref_point=[])


def test_divergence_is_reported(tmp_path: Path) -> None:
    data = tiny_data()
    data.inputs["train"][5, 0] = float("nan")
    with pytest.raises(NonFiniteLossError, match="non-finite training loss"):
        train_population(
            data,
            tiny_model,
            MT2OConfig(n_models=2),
            epochs=2,
            batch_size=16,
            run=RunWriter(tmp_path),
        )
    assert json.loads((tmp_path / "summary.json").read_text())["status"] == "diverged"


def test_epochs_to_fraction() -> None:
    assert epochs_to_fraction([0.0, 0.5, 0.96, 1.0]) == 2
    assert epochs_to_fraction([0.0, 0.5, 0.96, 1.0], target=2.0) is None
    assert epochs_to_fraction([]) is None


CONFIGS = sorted((Path(__file__).parents[2] / "configs").glob("mt2o_*.toml"))


@pytest.mark.parametrize("path", CONFIGS, ids=lambda p: p.stem)
def test_configs_validate(path: Path) -> None:
    from alphavil.config import load_config

    cfg = load_config(path)
    assert cfg.train.method == "mt2o" and isinstance(cfg.extra["mt2o"], MT2OConfig)


def test_alphavil_run_dispatches_to_the_population_trainer(tmp_path: Path) -> None:
    from alphavil.config import load_config
    from alphavil.runner import execute

    path = Path(__file__).parents[2] / "configs" / "mt2o_synthetic_convex.toml"
    cfg = load_config(path, ["train.epochs=4", f"out_dir={str(tmp_path)!r}"])
    summary = execute(cfg, show_progress=False)
    run_dir = tmp_path / "synthetic-mt2o-s0"
    assert json.loads((run_dir / "config.json").read_text())["mt2o"]["beta"] == 0.1
    assert json.loads((run_dir / "summary.json").read_text())["hv_curve"] == summary["hv_curve"]
    assert len(summary["hv_curve"]) == 5


def test_tchebycheff_smoothing_reaches_the_training_step(tmp_path: Path) -> None:
    finals = []
    for smooth in (0.0, 1.0):
        mc = MT2OConfig(n_models=3, scalarization="tchebycheff", smooth=smooth, ref_point=[5.0])
        out = tmp_path / f"s{smooth}"
        train_population(
            tiny_data(),
            tiny_model,
            mc,
            method="ls",
            epochs=1,
            batch_size=16,
            optimizer=SGD,
            seed=3,
            run=RunWriter(out),
        )
        finals.append(load_checkpoint(out / "population.pt")["population"]["params"])
    assert not torch.allclose(finals[0]["encoder.0.weight"], finals[1]["encoder.0.weight"])


def test_ls_is_the_old_name_of_no_transfer() -> None:
    kw = {"epochs": 2, "batch_size": 16, "optimizer": SGD, "seed": 1}
    old = train_population(tiny_data(), tiny_model, MT2OConfig(n_models=3), method="ls", **kw)
    new = train_population(
        tiny_data(), tiny_model, MT2OConfig(n_models=3), method="no_transfer", **kw
    )
    assert old["hv_curve"] == new["hv_curve"] and old["method"] == new["method"] == "no_transfer"


@pytest.mark.parametrize(("old", "new"), [("ls", "linear"), ("tch", "tchebycheff")])
def test_an_old_scalarization_name_is_refused_with_the_new_one(old: str, new: str) -> None:
    """The old names ls and tch are gone: one line naming the new value, from a config, an
    override or Python."""
    from alphavil.config import ConfigError, load_config

    message = f"^mt2o.scalarization '{old}' was renamed: use '{new}'$"
    with pytest.raises(ConfigError, match=message):
        MT2OConfig(scalarization=old)
    overrides = ["data.name=synthetic", "train.method=mt2o", f"mt2o.scalarization='{old}'"]
    with pytest.raises(ConfigError, match=message):
        load_config(None, overrides)
    assert load_config(None, [*overrides[:2], f"mt2o.scalarization='{new}'"])


def test_front_metrics_are_recorded_for_synthetic_problems(tmp_path: Path) -> None:
    pytest.importorskip("moocore")
    from alphavil.config import load_config
    from alphavil.runner import execute

    path = Path(__file__).parents[2] / "configs" / "mt2o_synthetic_convex.toml"
    cfg = load_config(
        path, ["train.epochs=30", "train.method=no_transfer", f"out_dir={str(tmp_path)!r}"]
    )
    summary = execute(cfg, show_progress=False)
    assert len(summary["igd_plus_curve"]) == 31 and summary["subproblem"] == "linear"
    assert summary["igd_plus_curve"][-1] < summary["igd_plus_curve"][0]
    assert max(summary["subproblem_distance_curve"][-1]) < 1e-3  # each model at its optimum
    assert summary["init"] == "identical"
