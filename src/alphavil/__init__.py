"""alphavil: target-task-oriented multitask learning (αVIL, DIW, baselines) and MT2O.

αVIL: Kourdis, Gordon-Hall & Gorinski, "αVIL: Learning to Leverage Auxiliary Tasks for
Multitask Learning", arXiv 2405.07769.
"""

from alphavil.alpha import (
    AlphaFit,
    autograd_value_and_grad,
    fit_alpha,
    target_loss,
    target_loss_and_grad,
    target_loss_value,
    update_weights,
)
from alphavil.alpha_box import solve_alpha_box
from alphavil.alpha_exact import (
    grid_check,
    solve_alpha,
    solve_alpha_newton,
    start_candidates,
    target_loss_grad_hess,
)
from alphavil.alpha_greedy import greedy_merge, merge_candidates, target_score_value
from alphavil.deltas import delta, mix, restore, snapshot, stack_deltas
from alphavil.models.multihead import MultiHeadModel
from alphavil.target_branch import (
    blend_states,
    branch_objective,
    branch_starts,
    full_alphas,
    with_branch,
)
from alphavil.task_shares import ShareAdam, ShareSGD, share_deltas, share_optimizer
from alphavil.task_weights import update_weights_average, update_weights_relative
from alphavil.tasks import Task

__version__ = "0.1.0"

__all__ = [
    "AlphaFit",
    "MultiHeadModel",
    "ShareAdam",
    "ShareSGD",
    "Task",
    "__version__",
    "autograd_value_and_grad",
    "blend_states",
    "branch_objective",
    "branch_starts",
    "delta",
    "fit_alpha",
    "full_alphas",
    "greedy_merge",
    "grid_check",
    "merge_candidates",
    "mix",
    "restore",
    "share_deltas",
    "share_optimizer",
    "snapshot",
    "solve_alpha",
    "solve_alpha_box",
    "solve_alpha_newton",
    "stack_deltas",
    "start_candidates",
    "target_loss",
    "target_loss_and_grad",
    "target_loss_grad_hess",
    "target_loss_value",
    "target_score_value",
    "update_weights",
    "update_weights_average",
    "update_weights_relative",
    "with_branch",
]
