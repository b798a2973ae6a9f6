"""αVIL options in the training loop: the paper path is pinned, the new solvers and weight rules."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from torch import nn

from alphavil.alpha import target_loss_and_grad, target_loss_value
from alphavil.config import ConfigError, load_config
from alphavil.deltas import snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute
from alphavil.runs import read_jsonl
from alphavil.task_weights import (
    all_at_floor,
    update_weights_average,
    update_weights_relative,
)
from alphavil.tasks import Task
from tests.helpers import BOX_FIT, assert_pinned, toy_config

GOLDEN = Path(__file__).parent / "golden" / "toy_metrics_v0.json"
UNBOUNDED_LBFGS = ("alphavil.alpha_solver=lbfgs", "alphavil.alpha_bounds=[]")  # solve_alpha


@pytest.mark.parametrize("method", ["alphavil", "diw", "single", "multitask"])
def test_paper_path_reproduces_the_pinned_metrics(
    tmp_path: Path, method: str, one_thread: None
) -> None:
    # Metrics written by the code before the α-solver options existed (commit 80f301b).
    golden = json.loads(GOLDEN.read_text())[method]
    cfg = toy_config(
        tmp_path,
        f"train.method={method}",
        "train.epochs=3",
        "train.threads=1",
        "alphavil.preset=paper",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == len(golden)
    for new, old in zip(records, golden, strict=True):
        for key, value in old.items():
            assert_pinned(new[key], value, (method, new["epoch"], key))


@pytest.mark.parametrize("solver", ["lbfgs", "newton"])
def test_exact_solvers_record_their_cost_and_never_end_above_the_start(
    tmp_path: Path, solver: str
) -> None:
    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        *BOX_FIT,
        "train.epochs=3",
        f"alphavil.alpha_solver={solver}",
        "alphavil.alpha_bounds=[]",  # unbounded, to be compared with the grid over [-1, 3]
        "alphavil.grid_points=5",
        "alphavil.grid_range=[-1, 3]",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    for rec in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        fit = rec["alpha_fit"]
        assert 1 <= fit["passes"] <= 30 and fit["forward_passes"] >= 3
        assert fit["objective_end"] <= fit["objective_start"] + 1e-7
        assert rec["alpha_grid"]["gap"] <= 1e-6  # at least as good as a coarse grid
        assert len(fit["start"]) == 3


def test_sgd_records_objective_before_and_after(tmp_path: Path) -> None:
    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        "train.epochs=1",
        "alphavil.alpha_start=mean",
        "alphavil.preset=paper",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    (rec,) = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    fit = rec["alpha_fit"]
    assert fit["passes"] == 10 and fit["forward_passes"] == 1
    assert fit["start"] == pytest.approx([1 / 3] * 3)
    assert fit["objective_start"] == pytest.approx(rec["alpha_dev_loss"][0])
    assert fit["objective_end"] is not None


@pytest.mark.parametrize("rule", ["relative", "average"])
def test_weight_rules_in_the_loop_read_alpha_relative_to_the_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rule: str
) -> None:
    # The fit takes half of the target's update, 40% of the helper's and 5% of the random-label
    # task's: the mix is 1 : 0.8 : 0.1 whatever the step scale (on the toy problem the free fit
    # floors both auxiliary tasks at once, and in the box [0, 1] α_t* sits at 1, so neither tells
    # a rule dividing by α_t* from one that does not).
    def mix(fit):  # type: ignore[no-untyped-def]
        fit.alphas = torch.tensor([0.5, 0.4, 0.05], dtype=torch.float64)  # main, helper, noise

    _override_alpha(monkeypatch, mix)
    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        *BOX_FIT,
        "train.epochs=2",
        *UNBOUNDED_LBFGS,  # the solver _override_alpha wraps
        f"alphavil.weight_rule={rule}",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    weights = {"main": 1.0, "helper": 1.0, "noise": 1.0}
    for rec in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        ratio = {"main": 1.0, "helper": 0.8, "noise": 0.1}
        if rule == "relative":  # w_t + (α_t / α_t* − 1), in [1e-6, w_t*]
            expected = {t: min(max(w + ratio[t] - 1.0, 1e-6), 1.0) for t, w in weights.items()}
        else:  # (1 − η) w_t + η α_t / α_t*, η = 0.3
            expected = {t: 0.7 * w + 0.3 * ratio[t] for t, w in weights.items()}
        assert rec["weights"] == pytest.approx(expected, rel=1e-9), rec["epoch"]
        weights = rec["weights"]
    assert weights["main"] == 1.0 > weights["helper"] > weights["noise"]


def test_relative_rule_maths() -> None:
    w = torch.tensor([1.0, 0.5, 0.8], dtype=torch.float64)
    new = update_weights_relative(w, torch.tensor([0.5, 0.5, 0.1], dtype=torch.float64), 0)
    # ratios 1, 1, 0.2 -> aux: 0.5 + 0 = 0.5, 0.8 - 0.8 = 1e-6 floor; target unchanged
    torch.testing.assert_close(new, torch.tensor([1.0, 0.5, 1e-6], dtype=torch.float64))
    capped = update_weights_relative(w, torch.tensor([0.5, 2.0, 0.5], dtype=torch.float64), 0)
    assert capped[1] == 1.0  # capped at the target's weight
    assert torch.equal(update_weights_relative(w, torch.tensor([-0.2, 3.0, 1.0]).double(), 0), w)
    with pytest.raises(ValueError, match="out of range"):
        update_weights_relative(w, w, 3)
    assert all_at_floor(torch.full((2,), 1e-6), 1e-6) and not all_at_floor(w, 1e-6)


def test_all_weights_at_the_floor_logs_a_warning(tmp_path: Path) -> None:
    # α = 0 for every task (a huge α lr sends it far below 1) drives every weight to the floor.
    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        "train.epochs=2",
        "train.tasks=['main', 'helper']",
        "alphavil.optimizer={name='SGD', lr=50.0}",
        "alphavil.preset=paper",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    recs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    floored = [r for r in recs if all(v <= 1e-6 for v in r["weights"].values())]
    assert floored, "setup: expected the weights at the floor"
    for r in floored:
        assert "every task weight is at the floor" in r["warnings"][0]


def test_alpha_objective_is_evaluated_in_eval_mode_and_restores_modes() -> None:
    torch.manual_seed(0)
    encoder = nn.Sequential(nn.Linear(4, 8), nn.BatchNorm1d(8), nn.ReLU(), nn.Dropout(0.5))
    model = MultiHeadModel(encoder, {"a": nn.Linear(8, 2)}).double()
    model.train()
    model.heads.eval()  # a mixed state that must come back as it was
    theta = snapshot(model)
    floats = {k: v for k, v in theta.items() if v.is_floating_point()}
    deltas = stack_deltas([{k: 0.1 * torch.randn_like(v) for k, v in floats.items()}])
    x, y = torch.randn(32, 4, dtype=torch.float64), torch.randint(0, 2, (32,))
    running = model.encoder[1].running_mean.clone()
    vg = target_loss_and_grad(model, theta, deltas, [(x, {"a": y})], Task("a", 2))
    value = target_loss_value(model, theta, deltas, [(x, {"a": y})], Task("a", 2))
    a = torch.tensor([0.7], dtype=torch.float64)
    first, second = vg(a), vg(a)
    assert torch.equal(first[0], second[0]) and torch.equal(first[1], second[1])
    assert value(a) == pytest.approx(float(first[0]), rel=1e-12)
    assert model.training and model.encoder.training and not model.heads.training
    assert torch.equal(model.encoder[1].running_mean, running)
    noisy = target_loss_and_grad(
        model, theta, deltas, [(x, {"a": y})], Task("a", 2), eval_mode=False
    )
    assert not torch.equal(noisy(a)[0], noisy(a)[0])  # dropout on: two draws differ


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("alphavil.alpha_solver=adam", "alphavil.alpha_solver: 'adam' is not one of sgd, lbfgs"),
        ("alphavil.grid_points=1", "alphavil.grid_points: must be 0 (off) or >= 2"),
        ("alphavil.grid_range=[1, 0]", "alphavil.grid_range: expected [lo, hi] with lo < hi"),
        ("alphavil.weight_rule=max", "alphavil.weight_rule: 'max' is not one of additive"),
        ("alphavil.solver_passes=0", "alphavil.solver_passes: must be >= 1"),
        ("alphavil.alpha_start=1", "alphavil.alpha_start: expected str"),
    ],
)
def test_bad_alphavil_options_are_one_line_errors(
    tmp_path: Path, override: str, message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        toy_config(tmp_path, override)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_grid_diagnostic_refuses_more_than_three_tasks(tmp_path: Path) -> None:
    from alphavil.config import load_config

    with pytest.raises(ConfigError, match="grid diagnostic is for <= 3 tasks"):
        load_config(None, ["data.name=nlu", "train.target=RTE", "alphavil.grid_points=3"])


@pytest.mark.slow
@pytest.mark.needs_mnist
def test_exact_solver_reaches_the_grid_argmin_on_multimnist_epochs_1_to_3(tmp_path: Path) -> None:
    # Acceptance check of the exact solver (seed 0, all 50k training images, target left).
    from alphavil.config import load_config
    from tests.data.test_mnist import REAL_CACHE

    if REAL_CACHE is None:
        pytest.skip("real MNIST not cached (run `alphavil data`)")
    cfg = load_config(
        "configs/multimnist_paper.toml",
        [
            f"data.cache_dir='{REAL_CACHE}'",
            f"out_dir='{tmp_path}'",
            "train.epochs=3",
            "alphavil.alpha_solver=lbfgs",
            "alphavil.weight_rule=relative",
            "alphavil.dev_fraction=0.2",
            "alphavil.grid_points=11",  # resolution 0.2 on [-0.5, 1.5]^2
            "train.save_checkpoints=false",
            "train.save_predictions=false",
        ],
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    for rec in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert rec["alpha_grid"]["gap"] <= 1e-6, rec["epoch"]  # at or below the grid's best


# --------------------------------------------------- batch norm, non-finite probes, state
def test_relative_rule_is_continuous_where_the_target_scale_crosses_min_scale() -> None:
    """Just above min_scale the ratios α_t / α_t* are huge: the move is ramped in, so a tiny
    change of α_t* cannot throw a weight from unchanged to the cap or the floor."""
    w = torch.tensor([1.0, 0.5, 0.5], dtype=torch.float64)
    for aux in (0.5, -0.5):
        below = update_weights_relative(w, torch.tensor([0.999e-3, aux, 0.0]).double(), 0)
        above = update_weights_relative(w, torch.tensor([1.001e-3, aux, 0.0]).double(), 0)
        assert torch.equal(below, w)
        assert float((above - below).abs().max()) < 0.5  # was a jump to 1.0 (cap) / 1e-6 (floor)
    far = update_weights_relative(w, torch.tensor([0.5, 0.5, 0.0]).double(), 0)
    torch.testing.assert_close(far, torch.tensor([1.0, 0.5, 1e-6], dtype=torch.float64))


def _override_alpha(monkeypatch: pytest.MonkeyPatch, change) -> None:  # type: ignore[no-untyped-def]
    import alphavil.methods.alphavil_fit as method

    real = method.solve_alpha

    def solve(*args, **kw):  # type: ignore[no-untyped-def]
        fit = real(*args, **kw)
        change(fit)
        return fit

    monkeypatch.setattr(method, "solve_alpha", solve)


def test_a_rejected_task_update_leaves_no_optimiser_state_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphavil.training import Trainer

    def reject_noise(fit):  # type: ignore[no-untyped-def]
        fit.alphas = torch.tensor([1.0, 0.5, -0.2], dtype=torch.float64)  # main, helper, noise

    _override_alpha(monkeypatch, reject_noise)
    seen: list[tuple[str, int]] = []
    real = Trainer.task_optimizer

    def spy(self, task: str, policy: str):  # type: ignore[no-untyped-def]
        opt = real(self, task, policy)
        seen.append((task, len(opt.state)))
        return opt

    monkeypatch.setattr(Trainer, "task_optimizer", spy)
    cfg = toy_config(
        tmp_path, "train.method=alphavil", "alphavil.updates=separate", *UNBOUNDED_LBFGS
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    epoch2 = dict(seen[3:6])
    assert epoch2["main"] > 0 and epoch2["helper"] > 0  # momentum kept
    assert epoch2["noise"] == 0  # momentum of the rejected update forgotten


def test_a_non_finite_probe_does_not_abort_a_run_whose_alpha_is_finite(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _override_alpha(monkeypatch, lambda fit: fit.losses.append(float("nan")))
    cfg = toy_config(tmp_path, "train.method=alphavil", *UNBOUNDED_LBFGS)
    execute(cfg, tmp_path / "run", show_progress=False)
    assert len(read_jsonl(tmp_path / "run" / "metrics.jsonl")) == 2


def test_a_non_finite_alpha_fit_names_its_cause(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from alphavil.training import NonFiniteLossError

    def lost(fit):  # type: ignore[no-untyped-def]
        fit.final_loss = float("nan")

    _override_alpha(monkeypatch, lost)
    cfg = toy_config(tmp_path, "train.method=alphavil", *UNBOUNDED_LBFGS)
    with pytest.raises(NonFiniteLossError, match="finite at alpha = 0") as err:
        execute(cfg, tmp_path / "run", show_progress=False)
    assert "alphavil.optimizer.lr" not in str(err.value)  # not the knob of the paper's steps


@pytest.mark.parametrize("rule", ["additive", "relative", "average"])
@pytest.mark.parametrize("solver", ["sgd", "lbfgs", "lbfgs-unbounded", "newton"])
def test_alphavil_trains_a_batch_norm_cnn_without_nan(
    tmp_path: Path, solver: str, rule: str
) -> None:
    """A small CNN with batch norm and dropout (an import-path dataset), every solver and weight
    rule: finite throughout, and the α objective never ends above its start."""
    cfg = toy_config(
        tmp_path,
        "data.name='tests.bn_data:SPEC'",
        "data.n_train=256",
        "data.n_dev=64",
        "data.n_test=64",
        "train.method=alphavil",
        *BOX_FIT,
        "train.epochs=3",
        f"alphavil.alpha_solver={solver.removesuffix('-unbounded')}",
        f"alphavil.weight_rule={rule}",
        *(["alphavil.alpha_bounds=[]"] if solver.endswith("-unbounded") else []),
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    recs = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(recs) == 3
    for r in recs:
        assert all(isinstance(v, float) for v in r["alpha"].values())
        assert all(isinstance(s["loss"], float) for s in r["dev"].values())
        fit = r["alpha_fit"]
        assert isinstance(fit["objective_end"], float)
        assert fit["objective_end"] <= fit["objective_start"] + 1e-12


def test_a_diverging_paper_fit_stops_the_run_naming_the_alpha_learning_rate(
    tmp_path: Path,
) -> None:
    from alphavil.training import NonFiniteLossError

    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        "alphavil.preset=paper",
        "alphavil.optimizer={name='SGD', lr=1e30}",
    )
    with pytest.raises(NonFiniteLossError, match="alpha steps diverged") as err:
        execute(cfg, tmp_path / "run", show_progress=False)
    assert "alphavil.optimizer.lr" in str(err.value)


def test_average_rule_maths() -> None:
    w = torch.tensor([1.0, 0.5, 0.2], dtype=torch.float64)
    a = torch.tensor([0.5, 0.25, 2.0], dtype=torch.float64)  # ratios 1, 0.5, 4 (capped at 1)
    new = update_weights_average(w, a, 0, step=0.3)
    assert new.tolist() == pytest.approx([1.0, 0.7 * 0.5 + 0.3 * 0.5, 0.7 * 0.2 + 0.3 * 1.0])
    assert update_weights_average(w, torch.tensor([0.0, 1, 1]), 0).tolist() == w.tolist()
    negative = update_weights_average(w, torch.tensor([1.0, -3.0, 0.0]), 0, step=1.0, floor=1e-6)
    assert negative.tolist() == [1.0, 1e-6, 1e-6]  # ratios clipped at 0, then the floor
    with pytest.raises(ValueError, match="step"):
        update_weights_average(w, a, 0, step=0.0)


def test_average_rule_is_never_stuck_at_the_floor() -> None:
    """The additive and relative rules leave a weight at the floor unless one epoch's α says
    more than the target's; the average rule climbs back geometrically: 1 − 0.7^k."""
    w = torch.tensor([1.0, 1e-6], dtype=torch.float64)
    alphas = torch.tensor([0.8, 0.8], dtype=torch.float64)  # the task's update taken in full
    assert update_weights_relative(w, torch.tensor([0.8, 0.7]), 0)[1] == 1e-6
    for _ in range(5):
        w = update_weights_average(w, alphas, 0, step=0.3)
    assert float(w[1]) == pytest.approx(1 - 0.7**5, abs=1e-6)


def test_the_recorded_tables_are_registered_options_with_hooks() -> None:
    """αVIL's and DIW's tables come from the registry like every method's, sit right after
    [train] in config.json, and αVIL's preset and checks run through the generic hooks."""
    import dataclasses

    from alphavil.config import RunConfig
    from alphavil.methods import RECORDED, SECTIONS
    from alphavil.methods.alphavil_options import AlphaVILConfig
    from alphavil.methods.diw_options import DIWConfig

    assert RECORDED == ("alphavil", "diw")
    assert SECTIONS["alphavil"].endswith(":AlphaVILConfig")
    assert SECTIONS["diw"].endswith(":DIWConfig")
    names = [f.name for f in dataclasses.fields(RunConfig)]
    assert names[names.index("train") + 1 : names.index("train") + 3] == list(RECORDED)
    cfg = load_config(None, ["train.method=multitask", "olaux.lr=0.2"])
    assert list(cfg.to_dict())[3:] == ["data", "train", "alphavil", "diw", "olaux"]
    assert isinstance(cfg.alphavil, AlphaVILConfig) and isinstance(cfg.diw, DIWConfig)
    assert AlphaVILConfig.prepare({"preset": "paper"})["alpha_solver"] == "sgd"
    with pytest.raises(ConfigError, match=r"alphavil\.grid_points"):
        load_config(None, ["train.method=multitask", "alphavil.grid_points=1"])
