"""The data errors: a dataset that cannot be had, and a cache file that fails verification."""

from __future__ import annotations


class DataUnavailableError(RuntimeError):
    """Raised when a dataset cannot be found, downloaded or verified."""


class CacheCorruptError(ValueError):
    """A cache file failed verification (:func:`~alphavil.data.npz_cache.read_npz_cache` deletes
    it; callers rebuild)."""


def one_line(exc: BaseException) -> str:
    """``exc`` in one line for a message: its type and first line (a :class:`CacheCorruptError`
    without its type)."""
    lines = str(exc).strip().splitlines()
    if isinstance(exc, CacheCorruptError) and lines:
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__
