"""Old import path of :mod:`alphavil.reports.alpha_use` (αVIL's per-epoch α, read back from
runs); a thin re-export kept so that existing imports keep working."""

from __future__ import annotations

from alphavil.reports.alpha_use import alpha_use, format_alpha_use

__all__ = ["alpha_use", "format_alpha_use"]
