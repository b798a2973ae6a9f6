"""Old import path of :mod:`alphavil.reports.labels` (how reports name and order runs); a thin
re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.labels import LABELS, METHOD_ORDER, display_name, label_order

__all__ = ["LABELS", "METHOD_ORDER", "display_name", "label_order"]
