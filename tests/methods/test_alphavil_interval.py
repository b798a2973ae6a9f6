"""``alphavil.fit_every``: one pass of joint updates (and of the target branch) per loop epoch,
lines 8-11 every k-th epoch; the fits, writes and weights are those of ``alphavil.passes = k``
over 1/k the loop epochs, and between fits the loop evaluates the written model."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alphavil.config import ConfigError
from alphavil.runner import execute
from alphavil.runs import read_json, read_jsonl
from tests.helpers import TOY_BUDGET, assert_resumes_bit_identical, toy_config

pytestmark = pytest.mark.usefixtures("one_thread")

AV = ("train.method=alphavil", "train.threads=1", *TOY_BUDGET)
FIT_KEYS = (
    *("alpha", "weights", "dev", "test", "target_alone", "merge", "best_pass", "alpha_fit"),
    "second_scale_share",
)


def run(tmp_path: Path, name: str, *overrides: str) -> list[dict[str, Any]]:
    execute(toy_config(tmp_path, *AV, *overrides), tmp_path / name, show_progress=False)
    return read_jsonl(tmp_path / name / "metrics.jsonl")


@pytest.mark.parametrize(
    "option",
    [
        (),  # the default box fit
        ("alphavil.merge=greedy", "alphavil.loss_scale=target"),
        ("alphavil.restore_best=true",),
        ("alphavil.target_branch=false",),
        ("alphavil.merge=greedy", "alphavil.loss_scale=target", "alphavil.second_scale=mean"),
        (
            "alphavil.merge=greedy",
            "alphavil.loss_scale=target",
            "alphavil.second_scale=mean",
            "alphavil.restore_best=true",
        ),
    ],
)
def test_fits_as_several_passes_per_epoch(tmp_path: Path, option: tuple[str, ...]) -> None:
    """fit_every = 3 over 6 epochs fits, writes and moves the weights exactly as passes = 3
    over 2 epochs: the records of epochs 3 and 6 equal those of epochs 1 and 2, bit for bit."""
    every = run(tmp_path, "every", *option, "alphavil.fit_every=3", "train.epochs=6")
    passes = run(tmp_path, "passes", *option, "alphavil.passes=3", "train.epochs=2")
    assert len(every) == 6 and len(passes) == 2
    for got, want in zip([every[2], every[5]], passes, strict=True):
        keys = [k for k in FIT_KEYS if k in want]
        assert {"alpha", "weights", "dev", "test"} <= set(keys)
        assert {k: got.get(k) for k in keys} == {k: want[k] for k in keys}
    a = read_json(tmp_path / "every" / "summary.json")
    b = read_json(tmp_path / "passes" / "summary.json")
    assert a["final_weights"] == b["final_weights"]
    best_a, best_b = a["best"]["main"], b["best"]["main"]
    assert best_a.pop("epoch") == 3 * best_b.pop("epoch")  # the fit's epoch, first of equals
    assert best_a == best_b


def test_between_fits_the_loop_evaluates_the_written_model(tmp_path: Path) -> None:
    """Epochs inside an interval record their pass and no α; the model the loop evaluates is
    the last fit's (the initial one before the first), so its dev and test repeat."""
    recs = run(tmp_path, "r", "alphavil.fit_every=3", "train.epochs=6")
    assert [r.get("fit_interval") for r in recs] == [
        {"pass": 1, "of": 3},
        {"pass": 2, "of": 3},
        None,
        {"pass": 1, "of": 3},
        {"pass": 2, "of": 3},
        None,
    ]
    assert all(("alpha" in r) == (r["epoch"] % 3 == 0) for r in recs)
    assert recs[0]["dev"] == recs[1]["dev"] and recs[0]["test"] == recs[1]["test"]
    assert recs[3]["dev"] == recs[2]["dev"] == recs[4]["dev"]
    assert recs[3]["weights"] == recs[2]["weights"] == recs[4]["weights"]
    assert all(set(r["task_train_loss"]) == {"main", "helper", "noise"} for r in recs)


def test_the_last_epoch_closes_a_short_interval(tmp_path: Path) -> None:
    """With train.epochs not a multiple of fit_every the last epoch fits what it has: epochs 3
    and 4 of four fit, the second over one pass, as passes = 1 would from there."""
    recs = run(tmp_path, "r", "alphavil.fit_every=3", "train.epochs=4")
    assert ["alpha" in r for r in recs] == [False, False, True, True]
    assert "fit_interval" not in recs[3]


def test_a_run_killed_inside_an_interval_resumes_bit_identical(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed after epoch 1 of a 2-epoch interval (the trajectories and shares in the state)."""
    assert_resumes_bit_identical(
        tmp_path, monkeypatch, *AV, "alphavil.fit_every=2", "alphavil.restore_best=true"
    )


@pytest.mark.parametrize(
    ("overrides", "says"),
    [
        (("alphavil.updates=separate", "alphavil.target_branch=false"), "updates = 'separate'"),
        (("alphavil.passes=2",), "passes = 2"),
        (("alphavil.fit_every=0",), "fit_every"),
    ],
)
def test_refused_outside_one_pass_joint_updates(
    tmp_path: Path, overrides: tuple[str, ...], says: str
) -> None:
    with pytest.raises(ConfigError, match=r"^alphavil\.fit_every") as err:
        toy_config(tmp_path, "train.method=alphavil", "alphavil.fit_every=2", *overrides)
    assert says in str(err.value) and "\n" not in str(err.value)


def test_restore_best_is_allowed_with_an_interval(tmp_path: Path) -> None:
    cfg = toy_config(tmp_path, "train.method=alphavil", "alphavil.fit_every=2",
                     "alphavil.restore_best=true")  # fmt: skip
    assert cfg.alphavil.restore_best and cfg.alphavil.fit_every == 2
