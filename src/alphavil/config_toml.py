"""Config text: TOML files and ``key=value`` overrides, read into raw tables.

Nothing here validates; :func:`alphavil.config.resolve` does. Errors are one-line
:class:`~alphavil.schema.ConfigError` s.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from alphavil.schema import ConfigError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["parse_override", "read_toml", "set_override"]


def parse_override(text: str) -> tuple[list[str], Any]:
    """``"train.epochs=5"`` -> (["train", "epochs"], 5); values are TOML, else bare strings."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or not key.strip() or any(not p.strip() for p in parts):
        raise ConfigError(f"malformed override {text!r}: expected key=value, e.g. train.epochs=10")
    try:
        value = tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        value = raw.strip()
    return [p.strip() for p in parts], value


def set_override(raw: dict[str, Any], parts: list[str], value: Any, text: str) -> None:
    """Set ``raw[parts[0]][parts[1]]... = value`` (tables made as needed); ``text`` is the
    override as written, for the error when a part names a value, not a table."""
    node = raw
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"override {text!r}: '{p}' is a value, not a table")
        node = nxt
    node[parts[-1]] = value


def read_toml(path: str | Path) -> dict[str, Any]:
    """Read a TOML config file, turning I/O and syntax errors into :class:`ConfigError`."""
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"config file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise ConfigError(f"config file {str(path)!r} is a directory, not a TOML file") from None
    except OSError as err:
        raise ConfigError(f"config file {str(path)!r}: {err.strerror or err}") from None
    except UnicodeDecodeError as err:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {err.start}); TOML files must be UTF-8"
        ) from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None
