"""Image folders for ``data.name = "files"``: one sub-folder per class, PNG or JPEG files.

Read through Pillow (``pip install "alphavil[images]"``), converted to grayscale (1 channel) or
RGB (3), resized to ``(height, width)`` and scaled to [0, 1]. Only reads: nothing is written
next to the images.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.config import ConfigError

EXTENSIONS = (".png", ".jpg", ".jpeg")


def _pillow() -> Any:
    try:
        from PIL import Image
    except ImportError:
        raise ConfigError(
            'image folders (data.tasks kind = "images") need Pillow: pip install "alphavil[images]"'
        ) from None
    return Image


def _folder(path: Path, where: str) -> Path:
    if not path.exists():
        raise ConfigError(f"{where}: folder {str(path)!r} does not exist")
    if not path.is_dir():
        raise ConfigError(f"{where}: {str(path)!r} is not a folder (one sub-folder per class)")
    return path


def class_folders(path: Path, where: str) -> list[str]:
    """The sorted class sub-folder names of ``path`` (hidden ones skipped)."""
    names = sorted(
        p.name for p in _folder(path, where).iterdir() if p.is_dir() and not p.name.startswith(".")
    )
    if not names:
        raise ConfigError(f"{where}: {str(path)!r} has no class sub-folders (one per class)")
    return names


def list_images(path: Path, classes: Sequence[str], where: str) -> tuple[list[Path], list[int]]:
    """Every image file of ``path``'s class sub-folders and its class index, in sorted order.

    Raises:
        ConfigError: a sub-folder is not one of ``classes``.
    """
    index = {c: i for i, c in enumerate(classes)}
    files: list[Path] = []
    labels: list[int] = []
    for name in class_folders(path, where):
        if name not in index:
            raise ConfigError(
                f"{where}: class folder {str(path / name)!r} is not one of the classes "
                f"{list(classes)}"
            )
        for f in sorted((path / name).iterdir()):
            if f.is_file() and f.suffix.lower() in EXTENSIONS and not f.name.startswith("."):
                files.append(f)
                labels.append(index[name])
    return files, labels


def load_images(files: Sequence[Path], size: Sequence[int], channels: int) -> Tensor:
    """``(N, channels, height, width)`` float32 in [0, 1]; a file Pillow cannot read is one
    :class:`ConfigError` naming it."""
    image = _pillow()
    height, width = size
    mode = "L" if channels == 1 else "RGB"
    out = np.empty((len(files), channels, height, width), dtype=np.float32)
    for i, f in enumerate(files):
        try:
            with image.open(f) as im:
                arr = np.asarray(im.convert(mode).resize((width, height)), dtype=np.float32)
        except (OSError, ValueError, SyntaxError) as err:  # UnidentifiedImageError is an OSError
            reason = str(err).splitlines()[0] if str(err) else type(err).__name__
            raise ConfigError(f"{f}: unreadable image ({reason})") from None
        out[i] = arr[None] if channels == 1 else arr.transpose(2, 0, 1)
    return torch.from_numpy(out / 255.0)
