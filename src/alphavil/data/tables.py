"""CSV and JSON-lines tables for ``data.name = "files"``: feature columns and label columns.

A ``.csv`` file has a header row; a ``.jsonl`` (or ``.ndjson``) file holds one JSON object a
line; both are read by :mod:`alphavil.data.table_reader` (the reader of ``data.name = "text"``
too). An empty cell, a missing key or a JSON ``null`` in a label column means "not labelled for
this task". Only reads: nothing is written next to the tables.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.config import ConfigError
from alphavil.data import table_reader

CSV = (".csv",)
JSONL = (".jsonl", ".ndjson")
WORDING = table_reader.Wording(
    at_line="{path} line {line}",
    bad_json="invalid JSON ({msg})",
    no_header="{path}: empty CSV file (no header row)",
)


def read_table(path: Path, where: str) -> list[dict[str, Any]]:
    """The rows of a CSV or JSON-lines file, as dicts (CSV values are strings), read by
    :func:`alphavil.data.table_reader.read_table`."""
    if not path.exists():
        raise ConfigError(f"{where}: table {str(path)!r} does not exist")
    if not path.is_file():
        raise ConfigError(f"{where}: {str(path)!r} is not a file")
    if path.suffix.lower() not in CSV + JSONL:
        raise ConfigError(f"{where}: {str(path)!r} is neither .csv nor .jsonl")
    return [row for _, row in table_reader.read_table(str(path), WORDING).rows]


def _line(path: Path, i: int) -> str:
    """Where row ``i`` is (counting data rows from 1, after any CSV header)."""
    return f"{path} row {i + 1}"


def check_columns(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> None:
    """One-line error naming the first of ``columns`` that the table lacks."""
    have: dict[str, None] = {}
    for row in rows:
        have.update(dict.fromkeys(row))
    if not rows:
        return
    for c in columns:
        if c not in have:
            raise ConfigError(f"{path}: no column {c!r}; it has {list(have)}")


def label_of(row: dict[str, Any], column: str) -> str | None:
    """The row's label as text, or None where it is missing (empty, absent or null)."""
    value = row.get(column)
    if table_reader.missing(value):
        return None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if isinstance(value, str) else json.dumps(value)


def features(path: Path, rows: Sequence[dict[str, Any]], columns: Sequence[str]) -> Tensor:
    """``(len(rows), len(columns))`` float32 feature matrix; a cell that is not a finite
    number is one error naming its file, line and column."""
    out = np.empty((len(rows), len(columns)), dtype=np.float32)
    for i, row in enumerate(rows):
        for j, c in enumerate(columns):
            value = row.get(c)
            try:
                x = float(value)  # type: ignore[arg-type]
            except (TypeError, ValueError):
                x = math.nan
            if isinstance(value, bool) or not math.isfinite(x):
                raise ConfigError(f"{_line(path, i)}: column {c!r} is not a number: {value!r}")
            out[i, j] = x
    return torch.from_numpy(out)
