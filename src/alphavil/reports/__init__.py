"""Reports from run folders only (they never train): tables, statistics, the leaderboard,
figures and αVIL's use of each task, and the ``alphavil report`` command.

The modules, bottom first: :mod:`~alphavil.reports.labels` (how runs are named and ordered),
:mod:`~alphavil.reports.collect` (completed runs read back from their folders),
:mod:`~alphavil.reports.stats` (per-seed accuracies, paired differences, bootstrap CIs,
Wilcoxon p), :mod:`~alphavil.reports.tables` (Table 1, the paired table, the Figure 3 check,
a run's summary as Markdown), :mod:`~alphavil.reports.figures` (matplotlib figures),
:mod:`~alphavil.reports.alpha_use` (αVIL's α per task), :mod:`~alphavil.reports.write`
(:func:`write_report`: every report file), :mod:`~alphavil.reports.leaderboard` and
:mod:`~alphavil.reports.cli` (``alphavil report``).

The old module paths ``alphavil.report``, ``report_cli``, ``leaderboard``, ``plots``,
``run_labels`` and ``alphavil.alpha_use`` re-export these modules' public names.
"""

from __future__ import annotations

from alphavil.reports.collect import collect_runs
from alphavil.reports.leaderboard import write_leaderboard
from alphavil.reports.stats import bootstrap_ci, paired
from alphavil.reports.tables import format_paired, format_table, table1
from alphavil.reports.write import write_report

__all__ = [
    "bootstrap_ci",
    "collect_runs",
    "format_paired",
    "format_table",
    "paired",
    "table1",
    "write_leaderboard",
    "write_report",
]
