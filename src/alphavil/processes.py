"""Old import path of :mod:`alphavil.sweep.workers` (the sweep folder lock, writable-folder
checks and worker processes); a thin re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.sweep.workers import (
    LOCK_FILE,
    SweepError,
    check_writable_dir,
    init_worker,
    one_line,
    sigint_ignored,
    stop_workers,
    sweep_lock,
)

__all__ = [
    "LOCK_FILE",
    "SweepError",
    "check_writable_dir",
    "init_worker",
    "one_line",
    "sigint_ignored",
    "stop_workers",
    "sweep_lock",
]
