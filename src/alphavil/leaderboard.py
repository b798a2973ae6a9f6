"""Old import path of :mod:`alphavil.reports.leaderboard` (the target-task leaderboard); a thin
re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.leaderboard import (
    format_leaderboard,
    leaderboard,
    leaderboard_figure,
    write_leaderboard,
)

__all__ = ["format_leaderboard", "leaderboard", "leaderboard_figure", "write_leaderboard"]
