"""Comparing resolved run configs: which keys differ between a stored run and a request.

One rule for sweeps (is a finished run the requested one?) and ``alphavil run --resume`` (may this
unfinished run be continued?). Not compared: ``out_dir`` (where the folder lives) and ``sweep``
(the grid, not the run). An option missing from a stored config counts as the same when the
requested value is its default: the run was made before that option existed.
"""

from __future__ import annotations

import dataclasses
import json
from typing import TYPE_CHECKING, Any

from alphavil.config import RunConfig, is_compared, option_before

if TYPE_CHECKING:
    from collections.abc import Iterable

_NOT_COMPARED = ("out_dir", "sweep")  # top-level config keys that do not change a run


def not_compared_keys(cfg: RunConfig | None = None) -> frozenset[str]:
    """Dotted keys that do not change what a run computes: the options whose field says so
    (:func:`alphavil.config.is_compared`: where other values came from, output only), in
    ``cfg``'s tables, or in the tables every run records when ``cfg`` is None."""
    if cfg is not None:
        tables: Iterable[tuple[str, Any]] = cfg.tables().items()
    else:
        tables = [(f.name, f.default_factory) for f in dataclasses.fields(RunConfig)]
        tables = [(k, v) for k, v in tables if isinstance(v, type)]
    return frozenset(
        f"{key}.{f.name}"
        for key, obj in tables
        if dataclasses.is_dataclass(obj)
        for f in dataclasses.fields(obj)
        if not is_compared(f)
    )


def plain(config: dict[str, Any]) -> dict[str, Any]:
    """``config`` as JSON gives it back (tuples become lists), less the keys not compared."""
    out: dict[str, Any] = json.loads(json.dumps(config, default=str))
    return {k: v for k, v in out.items() if k not in _NOT_COMPARED}


def flatten(obj: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(obj, dict) and obj:
        out: dict[str, Any] = {}
        for k, v in obj.items():
            out.update(flatten(v, f"{prefix}{k}."))
        return out
    return {prefix[:-1]: obj}


_ABSENT = object()


def differing_keys(
    stored: dict[str, Any],
    requested: dict[str, Any],
    defaults: dict[str, Any] | None = None,
    ignored: frozenset[str] | None = None,
) -> list[str]:
    """Dotted keys whose values differ between two configs (empty: the same config).

    A key missing from ``stored`` whose requested value is the one that reproduces older runs
    (``defaults``: dotted key -> that value, see :func:`alphavil.config.option_before`) is not a
    difference: the run was made before that option existed. Keys in ``ignored`` (default:
    :func:`not_compared_keys`) are never a difference.
    """
    a, b, d = flatten(stored), flatten(requested), defaults or {}
    skip = not_compared_keys() if ignored is None else ignored
    unread = _unread_tables(a.get("train.method"), b.get("train.method"))
    return [
        k
        for k in sorted(set(a) | set(b))
        if k not in skip
        and k.partition(".")[0] not in unread
        and a.get(k, _ABSENT) != b.get(k, _ABSENT)
        and not (k not in a and k in b and k in d and d[k] == b[k])
    ]


def _unread_tables(*methods: Any) -> frozenset[str]:
    """The recorded method tables (``[alphavil]``, ``[diw]``: every config.json holds them) that
    neither run's method reads: their values cannot change the run, so a new αVIL default does
    not make a finished multitask run "changed"."""
    from alphavil.methods import RECORDED, options_section

    read = set()
    for m in methods:
        if isinstance(m, str):
            try:
                read.add(options_section(m))
            except Exception:  # an import-path method that no longer imports: compare all
                return frozenset()
    return frozenset(t for t in RECORDED if t not in read)


def config_defaults(cfg: RunConfig) -> dict[str, Any]:
    """Dotted key -> the value of every option in ``cfg``'s tables that reproduces runs made
    before the option existed (its default unless it says otherwise; JSON-plain)."""
    out: dict[str, Any] = {"label": ""}
    for key, obj in cfg.tables().items():
        if not dataclasses.is_dataclass(obj):
            continue
        table: dict[str, Any] = {}
        for f in dataclasses.fields(obj):
            if f.name.startswith("_"):
                continue
            before = option_before(f)
            if before is not dataclasses.MISSING:
                table[f.name] = before
        out.update(flatten(json.loads(json.dumps({key: table}, default=str))))
    return out


def short(value: Any) -> str:
    text = json.dumps(value) if value is not _ABSENT else "(absent)"
    return text if len(text) <= 40 else text[:37] + "..."


def config_differences(
    stored: dict[str, Any], requested: dict[str, Any], cfg: RunConfig | None = None
) -> list[str]:
    """``["train.epochs: 2 -> 3", ...]`` for the keys that differ (empty: the same run).

    ``cfg`` (the requested :class:`~alphavil.config.RunConfig`) supplies the defaults that
    forgive options added since ``stored`` was written.
    """
    a, b = plain(stored), plain(requested)
    defaults = config_defaults(cfg) if cfg is not None else None
    keys = differing_keys(a, b, defaults, not_compared_keys(cfg))
    fa, fb = flatten(a), flatten(b)
    return [f"{k}: {short(fa.get(k, _ABSENT))} -> {short(fb.get(k, _ABSENT))}" for k in keys]
