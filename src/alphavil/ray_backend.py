"""Old import path of :mod:`alphavil.sweep.ray` (``alphavil sweep --backend ray``); a thin
re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.sweep.ray import (
    INSTALL_HINT,
    gpus_for,
    init_ray,
    ray_session,
    require_ray,
    run_jobs,
    run_on_node,
)

__all__ = [
    "INSTALL_HINT",
    "gpus_for",
    "init_ray",
    "ray_session",
    "require_ray",
    "run_jobs",
    "run_on_node",
]
