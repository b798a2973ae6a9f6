"""The training loop: method invariants, bookkeeping, divergence."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from alphavil.runner import execute
from alphavil.runs import read_json, read_jsonl
from alphavil.training import NonFiniteLossError, Trainer
from tests.helpers import toy_config


def _trained_params(cfg) -> dict[str, torch.Tensor]:  # type: ignore[no-untyped-def]
    from alphavil.datasets import get_dataset

    data, make_model = get_dataset(cfg.data_name).build(cfg.data)
    torch.manual_seed(cfg.train.seed)
    model = make_model()
    Trainer(cfg, data, model).fit()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_alphavil_with_only_the_target_and_no_alpha_steps_equals_single_task(
    tmp_path: Path,
) -> None:
    single = _trained_params(toy_config(tmp_path, "train.method=single", "train.epochs=3"))
    avil = _trained_params(
        toy_config(
            tmp_path,
            "train.method=alphavil",
            "train.epochs=3",
            "train.tasks=['main']",
            "alphavil.steps=0",
        )
    )
    for k in single:
        torch.testing.assert_close(avil[k], single[k], rtol=0, atol=1e-6, msg=k)
    assert any(
        not torch.equal(
            single[k],
            _trained_params(toy_config(tmp_path, "train.method=multitask", "train.epochs=3"))[k],
        )
        for k in single
    )


def test_alphavil_records_alpha_and_weights_every_epoch_and_keeps_the_floor(tmp_path: Path) -> None:
    # A huge α learning rate drives some α far below 0, so the clamp must act.
    cfg = toy_config(
        tmp_path,
        "train.method=alphavil",
        "train.epochs=3",
        "alphavil.preset=paper",
        "alphavil.optimizer={name='SGD', lr=50.0}",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert [r["epoch"] for r in records] == [1, 2, 3]
    for r in records:
        assert set(r["alpha"]) == set(r["weights"]) == {"main", "helper", "noise"}
        assert len(r["alpha_dev_loss"]) == 10
        assert min(r["weights"].values()) >= 1e-6
    assert min(min(r["weights"].values()) for r in records) == pytest.approx(1e-6)


def test_best_snapshot_is_chosen_on_dev_and_reports_test_there(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=multitask", "train.epochs=4")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    for task in ("main", "helper", "noise"):
        dev = [r["dev"][task]["accuracy"] for r in records]
        best_epoch = dev.index(max(dev)) + 1  # first epoch reaching the maximum
        assert summary["best"][task]["epoch"] == best_epoch
        assert (
            summary["best"][task]["test_accuracy"]
            == records[best_epoch - 1]["test"][task]["accuracy"]
        )
        ckpt = torch.load(tmp_path / "run" / f"best_{task}.pt", weights_only=True)
        assert ckpt["epoch"] == best_epoch
        assert (tmp_path / "run" / f"test_probs_{task}.npy").exists()


def test_single_task_trains_and_evaluates_only_the_target_head(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=single")
    from alphavil.datasets import get_dataset

    data, make_model = get_dataset("toy").build(cfg.data)
    model = make_model()
    heads_before = {
        k: v.clone()
        for k, v in model.state_dict().items()
        if "heads.main" not in k and k.startswith("heads.")
    }
    summary = Trainer(cfg, data, model).fit()
    assert set(summary["best"]) == {"main"}
    for k, v in heads_before.items():
        assert torch.equal(model.state_dict()[k], v)


def test_nan_loss_stops_the_run_and_keeps_what_was_written(tmp_path: Path) -> None:
    cfg = toy_config(
        tmp_path,
        "train.method=multitask",
        "train.epochs=50",
        "train.optimizer={name='SGD', lr=1e12, momentum=0.9}",
    )
    with pytest.raises(NonFiniteLossError, match="loss is"):
        execute(cfg, tmp_path / "run", show_progress=False)
    summary = read_json(tmp_path / "run" / "summary.json")
    assert summary["status"] == "diverged"
    assert "lower the learning rate" in summary["error"]
    assert read_json(tmp_path / "run" / "config.json")["train"]["epochs"] == 50
    assert not list((tmp_path / "run").glob(".*.tmp"))


def test_diw_lowers_the_weight_of_a_harmful_random_label_task(tmp_path: Path) -> None:
    # main = target; helper = a related auxiliary task; noise = random labels (harmful)
    cfg = toy_config(tmp_path, "train.method=diw", "train.epochs=3", "data.n_train=1024")
    summary = execute(cfg, tmp_path / "run", show_progress=False)
    w = summary["final_weights"]
    assert set(w) == {"main", "helper", "noise"}
    assert w["noise"] < 1.0  # started at 1: the random-label task lost weight
    assert w["noise"] < w["main"]
    records = read_jsonl(tmp_path / "run" / "metrics.jsonl")
    assert len(records) == 3
    for r in records:
        assert 1 <= len(r["tries"]) <= 10
        assert min(r["weights"].values()) >= 1e-6
        # the loop stops at the first try beating the previous target accuracy (several tries
        # and the update formula: tests/methods/test_diw.py)
        *failed, last = r["tries"]
        assert all(t["target_dev"] <= r["previous_target_dev"] for t in failed)
        assert r["improved"] == (last["target_dev"] > r["previous_target_dev"])
        assert r["improved"] or len(r["tries"]) == 10
        assert r["weights"] == last["weights"]


def test_diw_keeps_the_last_try_when_no_try_improves(tmp_path: Path) -> None:
    # A zero learning rate cannot improve on the previous accuracy: all tries fail.
    cfg = toy_config(
        tmp_path,
        "train.method=diw",
        "train.epochs=2",
        "diw.patience=3",
        "train.optimizer={name='SGD', lr=0.0}",
    )
    execute(cfg, tmp_path / "run", show_progress=False)
    r = read_jsonl(tmp_path / "run" / "metrics.jsonl")[-1]
    assert len(r["tries"]) == 3 and not r["improved"]
    assert r["weights"] == r["tries"][-1]["weights"]
