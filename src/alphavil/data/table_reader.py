"""The one reader of CSV, TSV and JSON-lines tables (``data.name = "files"`` and ``"text"``).

A ``.csv`` or ``.tsv`` file has a header line naming the columns (cells stripped); a ``.jsonl``
(or ``.ndjson``) file holds one JSON object a line. Blank lines are skipped; every row keeps its
line number for error messages. A cell that is empty, absent or a JSON ``null`` is missing
(:func:`missing`): in a label column, "not labelled for this task". Read-only, UTF-8 (a BOM is
allowed), and cached by path, size and modification time. Every problem is a one-line
:class:`~alphavil.schema.ConfigError` naming the file (and line); the two datasets word a few of
them differently (:class:`Wording`).
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alphavil.schema import ConfigError

FORMATS = {".csv": ",", ".tsv": "\t", ".jsonl": None, ".ndjson": None}


@dataclass(frozen=True)
class Wording:
    """How a dataset words a malformed table (``{path}``, ``{line}``, ``{msg}`` filled in)."""

    at_line: str = "{path}, line {line}"
    bad_json: str = "not valid JSON ({msg})"
    no_header: str = "{path}: empty; expected a header line naming the columns"


@dataclass
class Table:
    """A read table: its columns and its rows with their line numbers."""

    path: str
    columns: list[str]
    rows: list[tuple[int, dict[str, Any]]]


_CACHE: dict[tuple[str, int, int], Table] = {}


def missing(value: Any) -> bool:
    """Whether a cell holds nothing: absent or ``null`` (``None``), or blank text."""
    return value is None or (isinstance(value, str) and not value.strip())


def read_table(path: str, wording: Wording = Wording()) -> Table:
    """A ``.csv``/``.tsv`` (header line, :mod:`csv`) or ``.jsonl`` (one object a line) table.

    ``path`` is named in the errors as given. Read-only; cached by path, size and modification
    time (a config's tasks and the data builder read the same tables).
    """
    p = Path(path).expanduser()
    suffix = p.suffix.lower()
    if suffix not in FORMATS:
        raise ConfigError(
            f"{path}: unknown table format {suffix or '(no extension)'!r}; use .csv, .tsv or .jsonl"
        )
    try:
        stat = p.stat()
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except OSError as err:
        raise ConfigError(f"{path}: {err.strerror or err}") from None
    if not p.is_file():
        raise ConfigError(f"{path}: not a file")
    key = (str(p.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _CACHE:
        try:
            text = p.read_bytes().decode("utf-8-sig")
        except UnicodeDecodeError as err:
            raise ConfigError(f"{path}: not UTF-8 text (byte {err.start})") from None
        except OSError as err:
            raise ConfigError(f"{path}: {err.strerror or err}") from None
        delimiter = FORMATS[suffix]
        if delimiter is None:
            _CACHE[key] = _parse_jsonl(text, path, wording)
        else:
            _CACHE[key] = _parse_csv(text, path, delimiter, wording)
    return _CACHE[key]


def _parse_csv(text: str, path: str, delimiter: str, wording: Wording) -> Table:
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        header = next(reader, None)
        if not header:
            raise ConfigError(wording.no_header.format(path=path))
        columns = [c.strip() for c in header]
        rows = []
        for values in reader:
            if not any(v.strip() for v in values):
                continue  # blank line
            rows.append((reader.line_num, dict(zip(columns, values, strict=False))))
    except csv.Error as err:
        raise ConfigError(
            f"{wording.at_line.format(path=path, line=reader.line_num)}: {err}"
        ) from None
    return Table(path, columns, rows)


def _parse_jsonl(text: str, path: str, wording: Wording) -> Table:
    columns: dict[str, None] = {}
    rows = []
    for n, line in enumerate(io.StringIO(text, newline=None), 1):
        if not line.strip():
            continue
        at = wording.at_line.format(path=path, line=n)
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise ConfigError(f"{at}: {wording.bad_json.format(msg=err.msg)}") from None
        if not isinstance(row, dict):
            raise ConfigError(f"{at}: expected a JSON object, got {type(row).__name__}")
        columns.update(dict.fromkeys(row))
        rows.append((n, row))
    return Table(path, list(columns), rows)
