"""αVIL's defaults and the paper preset: what the default is, how keys left unset follow the
options that exclude it, that runs made before a default changed are the paper preset's or
the previous default's, and that the shipped paper configs pin the preset."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.config import ConfigError, load_config
from alphavil.config_diff import config_defaults, differing_keys, plain
from tests.helpers import toy_config


def test_default_is_the_bounded_fit_with_averaged_weights_and_paper_is_one_option_away(
    tmp_path: Path,
) -> None:
    av = toy_config(tmp_path).alphavil
    assert (av.preset, av.alpha_solver, av.alpha_bounds, av.weight_rule) == (
        "default", "lbfgs", [0.0, 1.0], "average"
    )  # fmt: skip
    paper = toy_config(tmp_path, "alphavil.preset=paper").alphavil
    assert (paper.alpha_solver, paper.alpha_bounds, paper.weight_rule, paper.steps) == (
        "sgd", [], "additive", 10
    )  # fmt: skip
    mixed = toy_config(tmp_path, "alphavil.preset=paper", "alphavil.alpha_solver=lbfgs").alphavil
    assert (mixed.alpha_solver, mixed.alpha_bounds, mixed.weight_rule) == ("lbfgs", [], "additive")
    newton = toy_config(tmp_path, "alphavil.alpha_solver=newton").alphavil
    assert newton.alpha_bounds == []  # bounds are an L-BFGS option: not carried to Newton


def test_the_default_merges_greedily_every_five_epochs_at_the_targets_scale(
    tmp_path: Path,
) -> None:
    """The default (docs/fewlabel, tenth round): the greedy merge with the target branch,
    the target at single-task scale, line 9 every five one-pass epochs; the paper preset has
    none of it."""
    av = toy_config(tmp_path).alphavil
    assert (av.merge, av.loss_scale, av.fit_every, av.passes, av.target_branch) == (
        "greedy", "target", 5, 1, True
    )  # fmt: skip
    paper = toy_config(tmp_path, "alphavil.preset=paper").alphavil
    assert (paper.merge, paper.loss_scale, paper.fit_every) == ("fit", "mean", 1)


def test_the_default_merge_also_holds_the_mean_scale_joint_pass(tmp_path: Path) -> None:
    """The default (docs/fewlabel, thirteenth round): the greedy merge's candidates include a
    second joint pass at the mean loss scale; the paper preset has none."""
    assert toy_config(tmp_path).alphavil.second_scale == "mean"
    assert toy_config(tmp_path, "alphavil.preset=paper").alphavil.second_scale == "none"


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        (["alphavil.merge=fit"], "none"),
        (["alphavil.target_branch=false"], "none"),  # the box fit, so no greedy merge
        (["alphavil.loss_scale=mean"], "none"),  # the second pass would be the first
        (["alphavil.weight_rule=additive"], "none"),  # which sets loss_scale = "mean"
        (["alphavil.write_step=0.5"], "none"),
        (["alphavil.grid_points=3"], "none"),
        (["alphavil.passes=5", "train.epochs=6"], "mean"),
        (["alphavil.merge_margin=1"], "mean"),
        (["alphavil.loss_scale=mean", "alphavil.second_scale=target"], "target"),
    ],
)
def test_the_second_scale_follows_the_options_that_exclude_it(
    tmp_path: Path, overrides: list[str], want: str
) -> None:
    assert toy_config(tmp_path, "train.method=alphavil", *overrides).alphavil.second_scale == want


def test_runs_made_before_the_second_scale_default_are_the_tenth_rounds_default(
    tmp_path: Path,
) -> None:
    """A stored config from before ``second_scale`` existed (the tenth round's default) is the
    same run as a request with ``second_scale = "none"``, and not the current default."""
    before = toy_config(tmp_path, "train.method=alphavil", "alphavil.second_scale=none")
    stored = plain(before.to_dict())
    del stored["alphavil"]["second_scale"]
    assert differing_keys(stored, plain(before.to_dict()), config_defaults(before)) == []
    new = toy_config(tmp_path, "train.method=alphavil")
    assert differing_keys(stored, plain(new.to_dict()), config_defaults(new)) == [
        "alphavil.second_scale"
    ]


@pytest.mark.parametrize(
    ("overrides", "want"),
    [
        # the greedy merge needs the branch's plain fit: an option that leaves it takes the box fit
        (["alphavil.target_branch=false"], ("fit", "target", 5)),
        (["alphavil.fit_loss=calibrated"], ("fit", "target", 5)),
        (["alphavil.fit_loss=zero_one"], ("fit", "target", 5)),
        (["alphavil.step_scale=true"], ("fit", "target", 5)),
        (["alphavil.step_length=multitask"], ("fit", "target", 5)),
        (["alphavil.shrink_folds=5"], ("fit", "target", 5)),
        (["alphavil.alpha_solver=sgd"], ("fit", "target", 5)),  # no box: α_target fitted
        # the interval is one of one-pass joint epochs
        (["alphavil.passes=5", "train.epochs=6"], ("greedy", "target", 1)),
        (["alphavil.updates=separate"], ("fit", "target", 1)),
        # the additive rule may floor the target's weight, which the target's scale divides by
        (["alphavil.weight_rule=additive"], ("greedy", "mean", 5)),
        # what the table sets wins
        (["alphavil.merge=fit", "alphavil.fit_every=2"], ("fit", "target", 2)),
    ],
)
def test_keys_left_unset_follow_the_options_that_exclude_the_default(
    tmp_path: Path, overrides: list[str], want: tuple[str, str, int]
) -> None:
    av = toy_config(tmp_path, "train.method=alphavil", *overrides).alphavil
    assert (av.merge, av.loss_scale, av.fit_every) == want


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["alphavil.preset=fast"], "alphavil.preset: 'fast' is not one of 'default', 'paper'"),
        (["alphavil.alpha_bounds=[1, 0]"], "alphavil.alpha_bounds: expected [] or [lo, hi]"),
        (["alphavil.alpha_solver=newton", "alphavil.alpha_bounds=[0, 1]"], "are for alpha_solver"),
        (["alphavil.weight_step=0"], "alphavil.weight_step"),
    ],
)
def test_bad_preset_and_bounds_are_one_line_errors(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    with pytest.raises(ConfigError) as err:
        toy_config(tmp_path, *overrides)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_runs_made_before_the_new_defaults_are_the_paper_preset_not_the_default(
    tmp_path: Path,
) -> None:
    """A stored config from before `preset`, `alpha_bounds` and the new defaults existed (it
    records sgd / additive and no bounds) is the same run as a request with preset = "paper",
    and a different run from the new default."""
    paper = toy_config(tmp_path, "train.method=alphavil", "alphavil.preset=paper")
    stored = plain(paper.to_dict())
    for key in (
        "preset", "alpha_bounds", "weight_step", "updates", "target_alpha", "target_branch",
        "branch_scale", "loss_scale", "merge", "fit_every", "second_scale",
    ):  # fmt: skip
        del stored["alphavil"][key]
    assert differing_keys(stored, plain(paper.to_dict()), config_defaults(paper)) == []
    new = toy_config(tmp_path, "train.method=alphavil")
    diff = differing_keys(stored, plain(new.to_dict()), config_defaults(new))
    assert diff == [
        "alphavil.alpha_bounds",
        "alphavil.alpha_solver",
        "alphavil.branch_scale",
        "alphavil.fit_every",
        "alphavil.loss_scale",
        "alphavil.merge",
        "alphavil.second_scale",
        "alphavil.target_alpha",
        "alphavil.target_branch",
        "alphavil.updates",
        "alphavil.weight_rule",
    ]


def test_shipped_paper_configs_pin_the_paper_preset() -> None:
    root = Path(__file__).parents[1] / "configs"
    for name in ("multimnist_paper", "multimnist_cpu", "multimnist_full", "benchmark_multimnist"):
        cfg = load_config(root / f"{name}.toml", [])
        assert cfg.alphavil.preset == "paper", name
        assert cfg.alphavil.alpha_bounds == []
        if name != "multimnist_full":  # its αVIL variants set the exact solver themselves
            assert (cfg.alphavil.alpha_solver, cfg.alphavil.weight_rule) == ("sgd", "additive")
