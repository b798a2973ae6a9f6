"""Old import path of :mod:`alphavil.reports.cli` (``alphavil report``); a thin re-export kept
so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.cli import add_command, cmd_report, parse_tuned

__all__ = ["add_command", "cmd_report", "parse_tuned"]
