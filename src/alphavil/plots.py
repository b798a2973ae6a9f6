"""Old import path of :mod:`alphavil.reports.figures` (report figures); a thin re-export kept
so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.figures import alpha_weight_figure, dev_curve_figure, pyplot, save_figure

__all__ = ["alpha_weight_figure", "dev_curve_figure", "pyplot", "save_figure"]
