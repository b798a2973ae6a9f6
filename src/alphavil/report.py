"""Old import path of the report code, now the package :mod:`alphavil.reports` (runs from
:mod:`~alphavil.reports.collect`, statistics from :mod:`~alphavil.reports.stats`, tables from
:mod:`~alphavil.reports.tables`, :func:`write_report` from :mod:`~alphavil.reports.write`); a
thin re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.collect import collect_runs
from alphavil.reports.stats import Table, bootstrap_ci, paired
from alphavil.reports.tables import (
    figure3_check,
    format_paired,
    format_summary,
    format_table,
    table1,
)
from alphavil.reports.write import write_report

__all__ = [
    "Table",
    "bootstrap_ci",
    "collect_runs",
    "figure3_check",
    "format_paired",
    "format_summary",
    "format_table",
    "paired",
    "table1",
    "write_report",
]
