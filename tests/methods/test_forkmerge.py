"""ForkMerge (Jiang et al. 2023): greedy λ merge of branches on nested task sets
(``train.method = "forkmerge"``)."""

from __future__ import annotations

import copy
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

from alphavil.config import ConfigError
from alphavil.deltas import snapshot
from alphavil.methods.forkmerge import ForkMerge, resolve_branches, score_key
from alphavil.methods.merging import greedy_lambdas, merge_states
from alphavil.models.multihead import MultiHeadModel
from alphavil.runner import execute, load_data
from alphavil.runs import load_checkpoint, read_jsonl
from alphavil.training import TaskScore, Trainer
from tests.helpers import assert_resumes_bit_identical, toy_config

GRID = [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]


def test_greedy_search_finds_the_known_lambdas_and_never_scores_a_zero() -> None:
    # branch i is the number x_i; a merge is Σλx/Σλ; the score is how close it gets to 0.25
    x = [0.0, 1.0, 10.0]
    scored: list[list[float]] = []

    def score(lambdas: list[float]) -> tuple[float]:
        scored.append(lambdas)
        merged = sum(lam * v for lam, v in zip(lambdas, x, strict=False)) / sum(lambdas)
        return (-((merged - 0.25) ** 2),)

    lambdas, chosen, key, calls = greedy_lambdas(3, score, GRID, first=(-(0.25**2),))
    # branch 1: λ = a · 1 puts the merge at a / (1 + a): a = 0.4 (2/7) is the closest to 1/4;
    # branch 2: λ = a · mean(1, 0.4) pulls towards 10: a = 0 (kept out)
    assert lambdas == pytest.approx([1.0, 0.4, 0.0])
    assert chosen == [0.4, 0.0]
    assert key == pytest.approx((-((2 / 7 - 0.25) ** 2),))
    assert calls == len(scored) == 10  # 5 grid points per later branch; a = 0 reuses the score
    assert all(lam[-1] != 0 for lam in scored)
    assert scored[5] == pytest.approx([1.0, 0.4, 0.2 * 0.7])  # a · mean(λ so far)
    # without a known first score it is scored; a grid without 0 always adds the branch
    lambdas, chosen, _, calls = greedy_lambdas(2, score, [0.5, 1.0])
    assert (lambdas, chosen, calls) == ([1.0, 0.5], [0.5], 3)
    # one branch: λ = 1, nothing scored
    assert greedy_lambdas(1, score, GRID, first=(0.0,)) == ([1.0], [], (0.0,), 0)


def _bn_model() -> MultiHeadModel:
    encoder = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU())
    return MultiHeadModel(encoder, {"a": nn.Linear(6, 2), "b": nn.Linear(6, 3)})


def test_merge_is_the_lambda_weighted_mean_of_every_tensor_buffers_included() -> None:
    g = torch.Generator().manual_seed(0)
    model = _bn_model()
    states = []
    for count in (10, 20, 40):
        s = {k: v + torch.randn(v.shape, generator=g) if v.is_floating_point() else v.clone()
             for k, v in snapshot(model).items()}  # fmt: skip
        s["encoder.1.num_batches_tracked"] = torch.tensor(count)
        states.append(s)
    merged = merge_states(states, [1.0, 0.5, 0.0])
    assert set(merged) == set(model.state_dict())  # parameters, running stats, counter
    for k, v in merged.items():
        if v.is_floating_point():
            assert torch.allclose(v, (states[0][k] + 0.5 * states[1][k]) / 1.5, atol=1e-6), k
    assert "encoder.1.running_var" in merged and "heads.b.bias" in merged
    counter = merged["encoder.1.num_batches_tracked"]
    assert counter.dtype == torch.long and int(counter) == 13  # (10 + 0.5·20) / 1.5, rounded
    alone = merge_states(states, [0.0, 0.0, 2.0])  # one branch: its state exactly
    assert all(torch.equal(alone[k], states[2][k]) for k in alone)
    with pytest.raises(ValueError, match="positive sum"):
        merge_states(states, [0.0, 0.0, 0.0])


def test_branches_resolve_minus_one_clip_and_deduplicate() -> None:
    assert resolve_branches([0, 1, -1], 2) == [0, 1, 2]
    assert resolve_branches([0, 1, -1], 1) == [0, 1]
    assert resolve_branches([0, 1, -1], 0) == [0]  # one task: single-task training
    assert resolve_branches([5, 3, -1], 2) == [2]


def test_score_keys_rank_by_accuracy_then_loss_or_by_loss() -> None:
    assert score_key(TaskScore(0.3, 0.9, 10), "accuracy") == (0.9, -0.3)
    assert score_key(TaskScore(0.3, 0.9, 10), "loss") == (-0.3,)
    assert score_key(TaskScore(0.3, None, 10), "accuracy") == (-0.3, -0.3)  # regression
    assert score_key(TaskScore(float("nan"), 0.5, 10), "accuracy") == (0.5, -math.inf)
    assert (0.9, -0.2) > (0.9, -0.3) > (0.8, -0.1)  # ties in accuracy: the lower loss wins


def _fit(tmp_path: Path, *overrides: str, model: nn.Module | None = None) -> Trainer:
    cfg = toy_config(tmp_path, "train.method=forkmerge", *overrides)
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    trainer = Trainer(cfg, data, model if model is not None else make_model())
    trainer.records = []  # type: ignore[attr-defined]
    real = trainer.method.epoch

    def epoch() -> dict[str, Any]:
        info = real()
        trainer.records.append(copy.deepcopy(info))  # type: ignore[attr-defined]
        return info

    trainer.method.epoch = epoch  # type: ignore[method-assign]
    trainer.fit()
    return trainer


def _toy_bn_model() -> MultiHeadModel:
    encoder = nn.Sequential(nn.Linear(16, 32), nn.BatchNorm1d(32), nn.ReLU())
    return MultiHeadModel(encoder, {t: nn.Linear(32, 2) for t in ("main", "helper", "noise")})


@pytest.mark.parametrize("batch_norm", [False, True], ids=["mlp", "batch-norm"])
def test_an_epoch_trains_every_branch_and_a_merge_reaches_every_branch(
    tmp_path: Path, batch_norm: bool
) -> None:
    # epoch 1 prunes (pairs main+helper, main+noise) and merges them; the branches main,
    # main+top1, main+helper+noise train epochs 2-4; merges after epoch 3 (Δt = 2) and 4 (last)
    trainer = _fit(tmp_path, "train.epochs=4", "forkmerge.merge_every=2",
                   model=_toy_bn_model() if batch_norm else None)  # fmt: skip
    method = trainer.method
    assert isinstance(method, ForkMerge)
    recs: list[dict[str, Any]] = trainer.records  # type: ignore[attr-defined]
    assert [r["phase"] for r in recs] == ["prune", "branches", "branches", "branches"]
    assert ["merge" in r for r in recs] == [True, False, True, True]
    assert set(recs[0]["branches"]) == {"main+helper", "main+noise"}
    ranking = recs[0]["pruning"]["ranking"]  # the branches take the auxiliaries in rank order
    assert list(recs[1]["branches"]) == ["main", f"main+{ranking[0]}", "+".join(["main", *ranking])]
    assert recs[0]["merge"]["dev_passes"] == 5 and recs[2]["merge"]["dev_passes"] == 10
    for r, epochs in ((recs[2], {2, 3}), (recs[3], {4})):
        m = r["merge"]
        assert m["lambda"][m["order"][0]] == 1.0 and r["shown"] == "merged"
        assert set(m["best_epoch"].values()) <= epochs  # the interval's best states merged
    # between merges the loop shows the branch with the best target dev score
    shown = recs[1]["shown"]
    assert recs[1]["branches"][shown]["dev"]["accuracy"] == max(
        b["dev"]["accuracy"] for b in recs[1]["branches"].values()
    )
    # the last epoch merged: the model and every branch hold the same θ, buffers included
    final = snapshot(trainer.model)
    for b in method.branches:
        assert b.state.keys() == final.keys() and b.best_state is None
        assert all(torch.equal(b.state[k], final[k]) for k in final), b.label
    if batch_norm:
        assert final["encoder.1.num_batches_tracked"].dtype == torch.long
        # 8 batches an epoch: 8 (pruning) + 8 or 16 (the best of epochs 2-3, λ-mixed) + 8
        assert 3 * 8 <= int(final["encoder.1.num_batches_tracked"]) <= 4 * 8
        assert not torch.equal(final["encoder.1.running_var"], torch.ones(32))


def test_the_merge_is_written_to_the_model_the_loop_evaluates(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=forkmerge", "train.epochs=3",
                     "forkmerge.merge_every=1", "train.threads=1")  # fmt: skip
    execute(cfg, tmp_path / "run", show_progress=False)
    for r in read_jsonl(tmp_path / "run" / "metrics.jsonl"):
        assert r["dev"]["main"] == r["merge"]["dev"]
        best = max(r["branches"].values(), key=lambda b: (b["dev"]["accuracy"], -b["dev"]["loss"]))
        assert r["merge"]["dev"]["accuracy"] >= best["dev"]["accuracy"]  # a = 0 is a candidate


def test_pruning_ranks_a_helpful_auxiliary_above_a_random_label_one(tmp_path: Path) -> None:
    # helper = the target's own labels; noise = random labels competing for 8 hidden units
    # (helper first by 2-11 dev points on seeds 0-7)
    trainer = _fit(tmp_path, "train.epochs=2", "forkmerge.prune_epochs=2",
                   "data.relatedness=1.0", "data.hidden=8")  # fmt: skip
    recs = trainer.records  # type: ignore[attr-defined]
    assert "pruning" not in recs[0] and recs[0]["ranking"] is None
    assert recs[1]["pruning"]["ranking"] == ["helper", "noise"]
    dev = recs[1]["pruning"]["dev"]
    assert dev["helper"]["accuracy"] > dev["noise"]["accuracy"]


def test_one_task_is_single_task_training(tmp_path: Path) -> None:
    common = ["train.tasks=['main']", "train.epochs=3", "train.threads=1"]
    execute(toy_config(tmp_path, "train.method=single", *common), tmp_path / "single",
            show_progress=False)  # fmt: skip
    fm = toy_config(tmp_path, "train.method=forkmerge", *common, "forkmerge.merge_every=2",
                    "forkmerge.restore_best=false")  # fmt: skip
    execute(fm, tmp_path / "fm", show_progress=False)
    a, b = (read_jsonl(tmp_path / n / "metrics.jsonl") for n in ("single", "fm"))
    assert [(r["dev"], r["test"]) for r in a] == [(r["dev"], r["test"]) for r in b]
    assert [list(r["branches"]) for r in b] == [["main"]] * 3
    ma, mb = (load_checkpoint(tmp_path / n / "state.pt")["model"] for n in ("single", "fm"))
    assert all(torch.equal(ma[k], mb[k]) for k in ma)
    # with restore_best the one branch goes back to its interval's best state at each merge
    best = toy_config(tmp_path, "train.method=forkmerge", *common, "forkmerge.merge_every=2")
    execute(best, tmp_path / "best", show_progress=False)
    recs = read_jsonl(tmp_path / "best" / "metrics.jsonl")
    assert [r["merge"]["dev_passes"] for r in recs if "merge" in r] == [0, 0]  # epochs 2, 3
    assert recs[1]["dev"]["main"] == max(
        (r["branches"]["main"]["dev"] for r in recs[:2]), key=lambda d: (d["accuracy"], -d["loss"])
    )


@pytest.mark.parametrize(
    "overrides",
    [
        ["forkmerge.merge_every=2"],  # resumes after the pruning merge
        # no pruning needed; resumes mid-interval (best-of-interval states, optimiser moments)
        ["forkmerge.branches=[0, -1]", "forkmerge.merge_every=2", "forkmerge.metric=loss",
         "train.optimizer={name='Adam', lr=0.01}"],
    ],
    ids=["after-pruning", "mid-interval"],
)  # fmt: skip
def test_forkmerge_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, overrides: list[str]
) -> None:
    assert_resumes_bit_identical(tmp_path, monkeypatch, "train.method=forkmerge", *overrides)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("forkmerge.branches=[]", "forkmerge.branches: needs at least one k"),
        ("forkmerge.branches=[0, -2]", "forkmerge.branches: each k must be >= 0 or -1"),
        ("forkmerge.branches=1", "forkmerge.branches: expected list"),
        ("forkmerge.merge_every=0", "forkmerge.merge_every: must be >= 1"),
        ("forkmerge.prune_epochs=-1", "forkmerge.prune_epochs: must be >= 0"),
        ("forkmerge.lambda_grid=[]", "forkmerge.lambda_grid: needs at least one value"),
        ("forkmerge.lambda_grid=[0, -0.5]", "forkmerge.lambda_grid: values must be >= 0"),
        ("forkmerge.metric=f1", "forkmerge.metric: 'f1' is not one of accuracy, loss"),
        ("forkmerge.aux_loss=max", "forkmerge.aux_loss: 'max' is not one of sum, mean"),
        ("forkmerge.restore=true", "unknown key 'forkmerge.restore'"),
    ],
)
def test_bad_options_are_one_line_errors(tmp_path: Path, override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        toy_config(tmp_path, "train.method=forkmerge", override)
    assert message in str(err.value) and "\n" not in str(err.value)
