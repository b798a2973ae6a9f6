"""αVIL's options (the ``[alphavil]`` table), its presets and its cross-key checks.

Kept apart from :mod:`alphavil.methods.alphavil` (which imports the training loop) so that the
config layer can load them without an import cycle. Registered in
:data:`alphavil.methods.SECTIONS`; every run config records the table (:data:`alphavil.methods.
RECORDED`), so ``cfg.alphavil.<option>`` is always there.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from alphavil.schema import ConfigError, _opt, bounded, choice
from alphavil.task_weights import WEIGHT_RULES

if TYPE_CHECKING:
    from alphavil.config import RunConfig


# `alphavil.preset = "paper"`: the paper's settings (§4.1) for every [alphavil] key the table does
# not set. The defaults are the configuration measured best on few target labels (docs/fewlabel).
ALPHAVIL_PRESETS: dict[str, dict[str, Any]] = {
    "default": {},
    "paper": {
        "alpha_solver": "sgd",
        "weight_rule": "additive",
        "alpha_bounds": [],
        "updates": "separate",
        "target_alpha": "fit",
        "target_branch": False,
        "merge": "fit",
        "loss_scale": "mean",
        "fit_every": 1,
        "second_scale": "none",
    },
}


@dataclass
class AlphaVILConfig:
    """αVIL (Algorithm 1) settings: the measured-best defaults (docs/fewlabel); the paper's §4.1
    settings with ``preset = "paper"``."""

    # "default" or "paper": the values of the keys this table does not set (ALPHAVIL_PRESETS)
    preset: str = choice("default", *ALPHAVIL_PRESETS, compared=False)

    rho: float = bounded(1.0, 0.0, 1.0, lo_open=True)  # ratio of each task's data per epoch
    # Lines 3-6: "separate" = each task's update from the same θ on its own data (the paper);
    # "joint" = one pass of multitask steps (every task's loss w_t/Σw · L_t in each step, as
    # data.stream gives them), δ_t = task t's share of that update (alphavil.task_shares; SGD),
    # so α = 1 is the multitask step.
    updates: str = choice("joint", "separate", "joint", before="separate")
    # "fit": α_target is fitted with the rest; "one": the target's own update is always taken
    # whole and only the auxiliary α are fitted (alpha_solver = "lbfgs" with alpha_bounds).
    target_alpha: str = choice("one", "fit", "one", before="fit")
    # Joint updates only: also train the target alone over the joint pass's batches from the
    # same θ, and let the fit trade the target's joint share for that update (c in [0, 1]:
    # θ + (1 − c) δ_target + c δ_alone + Σ α_a δ_a; alphavil.target_branch).
    # Default with joint updates and the box fit; off (and refused) with separate updates or a
    # fitted target α.
    target_branch: bool = field(default=True, metadata={"before": False})
    # The branch's loss: "share" = w_target/Σw times the target's loss, the scale the target has
    # in the joint pass, so that the branch differs from the target's joint share only by the
    # auxiliary tasks' company; "full" = the target's loss alone (single-task training's step).
    branch_scale: str = choice("share", "full", "share", before="full")
    # Each task's loss scale in the updates (lines 3-6; alphavil.task_weights.loss_scales):
    # "mean" = w_t / Σw (the paper: T equal weights give the target 1/T of a single-task step);
    # "target" = w_t / w_target (the target at single-task scale, each auxiliary task added at
    # its weight relative to the target's: the weighted sum other MTL methods step on).
    loss_scale: str = choice("target", "mean", "target", before="mean")
    # Target branch only: also fit the step's length s in [0, 1] apart from its mix, writing
    # θ + s((1 − c) δ_target + c δ_alone + Σ α_a δ_a) with the weights moving on α_a, so that a
    # task is not cut to shorten the step (alphavil.target_branch.scaled_branch_objective).
    step_scale: bool = False
    # Target branch only: "fit" = the step is as long as its mix makes it (the paper); "multitask"
    # = every candidate step is stretched or shrunk to the multitask step's length (over the
    # parameters the target's update moves), so line 9 chooses the step's direction and not its
    # length (alphavil.target_branch.normalized_branch_objective).
    step_length: str = choice("fit", "fit", "multitask")
    # Joint updates only: passes of joint steps (and of the target branch) between two α fits,
    # so that the fit weighs each task's update over several passes (ForkMerge's merge interval,
    # Jiang et al. 2023) rather than one; a loop epoch is then `passes` passes (scale
    # train.epochs by 1/passes to keep the budget).
    passes: int = bounded(1, 1)
    # Joint updates only: the same interval kept in loop epochs, so that train.epochs still
    # counts passes: each epoch is one pass of the joint updates (and of the target branch),
    # continuing from the last, and lines 8-11 run every fit_every-th epoch and at the last
    # (alphavil.methods.alphavil_interval); between fits the model stays where the last fit
    # wrote it. fit_every = k with train.epochs = k·E fits as passes = k with E epochs.
    fit_every: int = bounded(5, 1, before=1)
    # passes or fit_every >= 2 only: the joint pass and the target branch each bring to line 9
    # their state at the end of the pass with the best target dev score (accuracy, ties to the
    # lower loss) of the interval, not at its last (ForkMerge's restore_best); costs a dev pass
    # per pass.
    restore_best: bool = False
    # Line 10's factors: an exponential average of the fitted ones with this step, starting at
    # the multitask step (α = 1, c = 0), so that a noisy fit on a small dev set is averaged over
    # epochs before it is acted on; 1 = the fit itself (the paper). The weights (line 11) move
    # on the fitted α as before.
    write_step: float = bounded(1.0, 0.0, 1.0, lo_open=True)
    # Line 9 on a small dev set: 0 = off; K >= 2 = shrink the fit toward the multitask step
    # (α = 1, c = 0) by the strength in shrink_grid that minimises the held-out dev loss of fits
    # made without each of K dev folds (alphavil.alpha_shrink); the shrunk factors are the fit's
    # answer (written, and what the weights move on). Costs K more fits per epoch.
    shrink_folds: int = bounded(0, 0)
    shrink_grid: list[float] = field(default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0])
    # "min": the strength of least held-out loss; "one_se": the smallest within one standard
    # error (over the folds) of it, so the fit must beat its own noise to leave multitask.
    shrink_rule: str = choice("min", "min", "one_se")
    # Line 9's dev loss: "plain" = the target's dev loss at θ + Σ α δ (the paper); "calibrated"
    # = that loss after temperature scaling, the temperature re-fitted at every α, so that a
    # step which only makes the network more confident is not cut (alphavil.dev_calibration;
    # classification targets, alpha_solver "lbfgs" or "sgd").
    # "zero_one" = the target's dev error rate, over a grid of fit_grid points per fit variable
    # (the target branch's c and each α_aux in [0, 1]), the least error and among equal errors
    # the point nearest the multitask step (alphavil.alpha_zero_one; classification targets).
    fit_loss: str = choice("plain", "plain", "calibrated", "zero_one")
    fit_grid: int = bounded(5, 2)
    # Line 9's search: "fit" = the fit above; "greedy" = ForkMerge's merge (Jiang et al. 2023)
    # of whole updates (the joint pass, the target alone, the target with each one auxiliary):
    # ranked by the target's dev accuracy (ties: lower loss), the best kept whole, each next
    # added at λ = a · mean(λ so far) with a from merge_grid where it raises that score
    # (alphavil.alpha_greedy; target branch, plain dev loss).
    merge: str = choice("greedy", "fit", "greedy", before="fit")
    merge_grid: list[float] = field(default_factory=lambda: [0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    # The greedy merge's dev-noise margin z: the best-ranked update goes before the joint pass
    # only where the dev examples right only at it (g) and only at the joint pass (l) satisfy
    # g - l > z sqrt(g + l), McNemar's test (alphavil.alpha_margin; classification targets);
    # 0 = off, the ranking alone (ForkMerge).
    merge_margin: float = bounded(0.0, 0.0)
    # The greedy merge only: "none", or a second joint pass at this loss scale ("target" or
    # "mean", not loss_scale's) over the same batches from θ, whose whole update (and pair
    # updates) the merge may also take, so that the dev set picks the joint step's scale at
    # every fit (alphavil.second_scale). Costs one more pass per pass. "none" where a table
    # leaves it unset and sets what it needs otherwise (another merge, loss_scale = "mean",
    # write_step < 1, the grid diagnostic).
    second_scale: str = choice("mean", "none", "target", "mean", before="none")
    steps: int = bounded(10, 0)  # s, α tuning steps
    optimizer: dict[str, Any] = _opt("SGD", 0.005, momentum=0.5)  # noqa: RUF009 - returns a field()
    dev_fraction: float = bounded(1.0, 0.0, 1.0, lo_open=True)  # of the target dev set for α
    weight_floor: float = bounded(1e-6, 0.0, lo_open=True)
    # Model optimiser state for the task updates: one persistent optimiser per task, or a fresh
    # one for every update. The paper is silent; see alphavil.training.
    task_optimizer: str = choice("per_task", "per_task", "fresh")
    # Line 9: "sgd" = `steps` steps of `optimizer` (the paper); "lbfgs" / "newton" = solve for
    # the argmin (alphavil.alpha_exact), stopping when a step gains less than `solver_tol` or
    # after `solver_passes` gradient (L-BFGS) or gradient+Hessian (Newton) dev passes.
    alpha_solver: str = choice("lbfgs", "sgd", "lbfgs", "newton", before="sgd")
    # "lbfgs" only: α kept in the box [lo, hi]^T (SciPy's L-BFGS-B, alphavil.alpha_box); []
    # = unbounded. The default [0, 1] takes each task's update in part or not at all.
    alpha_bounds: list[float] = field(default_factory=lambda: [0.0, 1.0], metadata={"before": []})
    solver_tol: float = bounded(1e-6, 0.0)
    solver_passes: int = bounded(30, 1)
    # α's starting point: "sum" = 1 (θ + Σ δ_t), "mean" = 1/T (the average update).
    alpha_start: str = choice("sum", "sum", "mean")
    # Line 11: "additive" = w_t + α_t − 1 (the paper); "relative" = w_t + α_t/α_target − 1 with
    # the target's weight fixed and auxiliary weights capped at weight_cap × the target's
    # (alphavil.task_weights).
    # "average" = w_t moves a step `weight_step` towards clip(α_t/α_target, 0, weight_cap) × the
    # target's weight (an exponential average of the evidence; never stuck at the floor).
    # "fixed" = line 11 off: the weights stay, each epoch's α acts only through line 10.
    weight_rule: str = choice("average", *WEIGHT_RULES, before="additive")
    weight_cap: float = bounded(1.0, 0.0, lo_open=True)
    weight_step: float = bounded(0.3, 0.0, 1.0, lo_open=True)
    # Under torchrun: collect the task deltas in parallel (task i on rank i mod W) instead of
    # sharding every batch over the ranks (alphavil.methods.alphavil.AlphaVIL.collect_deltas)
    parallel_deltas: bool = False
    # Diagnostic, off by default: for T <= 3, also evaluate the α objective on a grid of
    # grid_points^T points over grid_range and log the gap of the fit to the grid's best.
    grid_points: int = bounded(0, 0)
    grid_range: list[float] = field(default_factory=lambda: [-0.5, 1.5])

    @classmethod
    def prepare(cls, table: Any) -> Any:
        """Config hook: the raw table with its preset's values filled in
        (:func:`with_alphavil_preset`)."""
        return with_alphavil_preset(table)

    def check(self, cfg: RunConfig, tasks: list[str]) -> None:
        """Config hook: the checks across keys (bounds, solver, grid) and, when the run is αVIL
        with joint updates, that ``train.optimizer`` splits into task shares."""
        check_alphavil(self, tasks)
        if cfg.train.method == "alphavil" and self.updates == "joint":
            check_share_optimizer(cfg.train.optimizer)


def with_alphavil_preset(table: Any) -> Any:
    """The ``[alphavil]`` table with its preset's values for the keys it does not set. A table
    that picks a solver other than L-BFGS and says nothing of bounds gets none (bounds are an
    L-BFGS option)."""
    if not isinstance(table, dict):
        return table
    name = table.get("preset", "default")
    if name not in ALPHAVIL_PRESETS:
        raise ConfigError(
            f"alphavil.preset: {name!r} is not one of {', '.join(map(repr, ALPHAVIL_PRESETS))}"
        )
    out = {**ALPHAVIL_PRESETS[name], **table}
    if out.get("alpha_solver", "lbfgs") != "lbfgs" and "alpha_bounds" not in table:
        out["alpha_bounds"] = []
    if "target_alpha" not in table and out.get("alpha_bounds") == []:
        out["target_alpha"] = "fit"  # a fixed target α is a box option
    if "target_branch" not in table and (
        out.get("updates", "joint") != "joint" or out.get("target_alpha", "one") != "one"
    ):
        out["target_branch"] = False  # an option of joint updates with the target whole
    if out.get("target_branch", True) is False and "branch_scale" not in table:
        out["branch_scale"] = "full"  # inert without a branch: as runs before the option
    if "merge" not in out and not _greedy_fits(out):
        out["merge"] = "fit"  # the greedy merge is an option of the branch's plain fit
    if "fit_every" not in out and (
        out.get("updates", "joint") != "joint" or out.get("passes", 1) > 1
    ):
        out["fit_every"] = 1  # an interval of one-pass epochs of joint updates
    if "loss_scale" not in out and out.get("weight_rule") == "additive":
        out["loss_scale"] = "mean"  # the target's weight may reach the floor
    if "second_scale" not in out and not (
        out.get("merge", "greedy") == "greedy"
        and out.get("loss_scale", "target") != "mean"
        and out.get("write_step", 1.0) >= 1
        and not out.get("grid_points", 0)
    ):
        out["second_scale"] = "none"  # the second joint pass is an option of the greedy merge
    return out


def _greedy_fits(table: dict[str, Any]) -> bool:
    """Whether a table (preset applied, or a built config's fields) leaves line 9 to the greedy
    merge's terms: the target branch with the plain dev loss, the step as long as its mix, no
    shrinkage (what ``merge = "greedy"`` needs, and where it is the default)."""
    return (
        table.get("target_branch", True) is not False
        and table.get("fit_loss", "plain") == "plain"
        and table.get("step_length", "fit") == "fit"
        and not table.get("step_scale", False)
        and not table.get("shrink_folds", 0)
    )


def check_share_optimizer(spec: dict[str, Any]) -> None:
    """αVIL's joint updates split each optimiser step into task shares (alphavil.task_shares)."""
    from alphavil.task_shares import share_optimizer

    try:
        share_optimizer(spec, [torch.zeros(1)], 1, 0)
    except (TypeError, ValueError) as err:
        raise ConfigError(
            f"alphavil.updates = 'joint': {err}; or set alphavil.updates = 'separate'"
        ) from None


def check_alphavil(av: AlphaVILConfig, tasks: list[str]) -> None:
    """The ``[alphavil]`` rules that span keys (and the task count); one-line ConfigErrors."""
    bounds = av.alpha_bounds
    if bounds and (len(bounds) != 2 or not bounds[0] < bounds[1]):
        raise ConfigError(
            f"alphavil.alpha_bounds: expected [] or [lo, hi] with lo < hi, got {bounds}"
        )
    if bounds and av.alpha_solver != "lbfgs":
        raise ConfigError(
            f"alphavil.alpha_bounds: bounds are for alpha_solver = 'lbfgs', got "
            f"{av.alpha_solver!r}; set alpha_bounds = [] or alpha_solver = 'lbfgs'"
        )
    if av.parallel_deltas and av.updates == "joint":
        raise ConfigError(
            "alphavil.parallel_deltas: runs separate task updates on separate ranks; joint "
            "updates are one pass; set alphavil.updates = 'separate' or parallel_deltas = false"
        )
    if av.target_alpha == "one" and not (av.alpha_solver == "lbfgs" and bounds):
        raise ConfigError(
            "alphavil.target_alpha: 'one' is an option of the box fit (alpha_solver = 'lbfgs' "
            f"with alpha_bounds), got alpha_solver = {av.alpha_solver!r}, alpha_bounds = "
            f"{bounds}; set target_alpha = 'fit'"
        )
    if av.target_branch and (av.updates != "joint" or av.target_alpha != "one"):
        raise ConfigError(
            "alphavil.target_branch: an option of joint updates with the box fit "
            f"(updates = 'joint', target_alpha = 'one'), got updates = {av.updates!r}, "
            f"target_alpha = {av.target_alpha!r}; set target_branch = false"
        )
    if av.step_scale and not (av.target_branch and av.write_step == 1):
        raise ConfigError(
            "alphavil.step_scale: an option of the target branch with the fit written as it "
            f"is, got target_branch = {av.target_branch}, write_step = {av.write_step:g}; set "
            "step_scale = false"
        )
    if av.step_length == "multitask" and not (
        av.target_branch
        and av.write_step == 1
        and not (av.step_scale or av.shrink_folds or av.grid_points)
    ):
        raise ConfigError(
            "alphavil.step_length: 'multitask' is an option of the target branch with the fit "
            f"written as it is, got target_branch = {av.target_branch}, write_step = "
            f"{av.write_step:g}, step_scale = {av.step_scale}, shrink_folds = {av.shrink_folds}, "
            f"grid_points = {av.grid_points}; set step_length = 'fit'"
        )
    if av.passes > 1 and av.updates != "joint":
        raise ConfigError(
            f"alphavil.passes: several passes per fit are an option of joint updates, got "
            f"passes = {av.passes} with updates = {av.updates!r}; set passes = 1 or "
            "updates = 'joint'"
        )
    if av.fit_every > 1 and (av.updates != "joint" or av.passes > 1):
        raise ConfigError(
            "alphavil.fit_every: an interval of one-pass loop epochs of joint updates, got "
            f"updates = {av.updates!r}, passes = {av.passes}; set updates = 'joint' and "
            "passes = 1, or fit_every = 1"
        )
    if av.restore_best and av.passes < 2 and av.fit_every < 2:
        raise ConfigError(
            "alphavil.restore_best: keeps the best of several joint passes, got passes = "
            f"{av.passes}, fit_every = {av.fit_every}; set alphavil.passes >= 2 (or "
            "fit_every >= 2) or restore_best = false"
        )
    if av.fit_loss == "calibrated" and av.alpha_solver == "newton":
        raise ConfigError(
            "alphavil.fit_loss: 'calibrated' has no Hessian for alpha_solver = 'newton'; use "
            "alpha_solver = 'lbfgs' or 'sgd', or fit_loss = 'plain'"
        )
    if av.fit_loss == "zero_one" and not (
        av.target_branch
        and av.step_length == "fit"
        and not (av.step_scale or av.shrink_folds)
        and av.fit_grid ** len(tasks) <= 4096
    ):
        raise ConfigError(
            "alphavil.fit_loss: 'zero_one' is a grid search over the target branch's fit "
            f"variables, got target_branch = {av.target_branch}, step_length = "
            f"{av.step_length!r}, step_scale = {av.step_scale}, shrink_folds = "
            f"{av.shrink_folds}, fit_grid ** tasks = {av.fit_grid ** len(tasks)} (at most "
            "4096 dev passes); set fit_loss = 'plain'"
        )
    if av.merge == "greedy" and not _greedy_fits(vars(av)):
        raise ConfigError(
            "alphavil.merge: 'greedy' merges whole updates with the target branch, got "
            f"target_branch = {av.target_branch}, fit_loss = {av.fit_loss!r}, step_length = "
            f"{av.step_length!r}, step_scale = {av.step_scale}, shrink_folds = "
            f"{av.shrink_folds}; set merge = 'fit'"
        )
    if av.merge_margin and av.merge != "greedy":
        raise ConfigError(
            f"alphavil.merge_margin: a margin of the greedy merge, got merge = {av.merge!r}; "
            "set merge = 'greedy' or merge_margin = 0"
        )
    if not av.merge_grid or not all(isinstance(a, int | float) and a >= 0 for a in av.merge_grid):
        raise ConfigError(
            f"alphavil.merge_grid: expected a non-empty list of values >= 0, got {av.merge_grid}"
        )
    if av.second_scale != "none" and not (
        av.merge == "greedy"
        and av.second_scale != av.loss_scale
        and av.write_step == 1
        and not av.grid_points
    ):
        raise ConfigError(
            "alphavil.second_scale: a second joint pass for the greedy merge at a loss scale "
            f"other than loss_scale, got merge = {av.merge!r}, loss_scale = {av.loss_scale!r}, "
            f"second_scale = {av.second_scale!r}, write_step = {av.write_step:g}, grid_points = "
            f"{av.grid_points}; set merge = 'greedy', write_step = 1, grid_points = 0, or "
            "second_scale = 'none'"
        )
    if av.loss_scale == "target" and av.weight_rule == "additive":
        raise ConfigError(
            "alphavil.loss_scale: 'target' divides by the target's weight, which the additive "
            "rule can drive to the floor; use weight_rule = 'average', 'relative' or 'fixed', "
            "or loss_scale = 'mean'"
        )
    if av.shrink_folds == 1:
        raise ConfigError("alphavil.shrink_folds: must be 0 (off) or >= 2 folds, got 1")
    grid = av.shrink_grid
    if not grid or not all(isinstance(g, int | float) and 0 <= g <= 1 for g in grid):
        raise ConfigError(
            f"alphavil.shrink_grid: expected a non-empty list of strengths in [0, 1], got {grid}"
        )
    if av.shrink_folds and av.step_scale:
        raise ConfigError(
            "alphavil.shrink_folds: not an option with step_scale (the step's length is not "
            "shrunk); set shrink_folds = 0 or step_scale = false"
        )
    lo_hi = av.grid_range
    if len(lo_hi) != 2 or not lo_hi[0] < lo_hi[1]:
        raise ConfigError(f"alphavil.grid_range: expected [lo, hi] with lo < hi, got {lo_hi}")
    if av.grid_points == 1:
        raise ConfigError("alphavil.grid_points: must be 0 (off) or >= 2, got 1")
    if av.grid_points and len(tasks) > 3:
        raise ConfigError(
            f"alphavil.grid_points: the grid diagnostic is for <= 3 tasks, got {len(tasks)}; "
            "set it to 0 or restrict train.tasks"
        )
