"""The configs shipped inside the package (``alphavil/configs/*.toml``) and config name lookup.

``alphavil run quickstart`` works from any folder of an installed ``alphavil``: a config
argument that names an existing file is that file (a path always wins); otherwise a bare name
(``quickstart`` or ``quickstart.toml``, no folder) is the built-in config of that name; anything
else is a :class:`~alphavil.config.ConfigError` that lists the built-in names. The repository's
``configs/`` folder is a link to the same files. Each config's first comment line is its
one-line description (``alphavil configs``).
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

__all__ = ["builtin_config_dir", "builtin_configs", "describe", "find_config"]


def builtin_config_dir() -> Path:
    """The folder of the built-in configs (inside the installed package)."""
    root = files("alphavil") / "configs"
    if not isinstance(root, Path):  # a zipped install: no real files to open
        raise OSError(f"built-in configs are not plain files here ({root}); reinstall alphavil")
    return root


def builtin_configs() -> dict[str, Path]:
    """Built-in config name (file name without ``.toml``) -> its file, sorted by name."""
    folder = builtin_config_dir()
    return {p.stem: p for p in sorted(folder.glob("*.toml"))} if folder.is_dir() else {}


def describe(path: Path) -> str:
    """The first comment line of a config file (its one-line description), or ''."""
    with open(path, encoding="utf-8") as f:
        for line in f:
            text = line.strip()
            if text.startswith("#"):
                return text.lstrip("#").strip()
            if text:
                return ""
    return ""


def find_config(config: str | Path) -> Path:
    """The file for a config argument: an existing path, else a built-in config's name.

    Raises:
        ConfigError: neither a file nor a built-in name (the message lists the built-in
            names), or a folder.
    """
    from alphavil.config import ConfigError

    path = Path(config)
    if path.exists():
        return path
    text = str(config)
    builtin = builtin_configs()
    is_bare = os.sep not in text and "/" not in text
    name = text.removesuffix(".toml")
    if is_bare and name in builtin:
        return builtin[name]
    names = ", ".join(builtin) or "none found"
    hint = ""
    if not is_bare and path.name.removesuffix(".toml") in builtin:
        hint = f"; the built-in one is `{path.name.removesuffix('.toml')}`"
    raise ConfigError(
        f"config file {text!r} does not exist and is not a built-in config name{hint} "
        f"(built-in: {names}; `alphavil configs` describes them)"
    )
