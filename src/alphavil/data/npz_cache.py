"""The verified ``.npz`` cache of the image datasets (MNIST, Fashion-MNIST, MultiMNIST).

Caches are written by :func:`write_npz_cache` and read back only through
:func:`read_npz_cache`, which verifies them (sha256 sidecar and contents) and deletes and
rebuilds a corrupt one after a one-line warning.
"""

from __future__ import annotations

import hashlib
import io
import logging
import os
import re
import stat
import zipfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from alphavil.data.errors import CacheCorruptError, DataUnavailableError, one_line
from alphavil.runs import atomic_write

logger = logging.getLogger("alphavil")

CHECKSUM_SUFFIX = ".sha256"
_HEX64 = re.compile(r"[0-9a-f]{64}")
_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # fixed member timestamp: same arrays -> same file bytes
_CACHE_HINT = "choose another cache dir (data.cache_dir, --cache-dir or $ALPHAVIL_CACHE)"
T = TypeVar("T")


def default_cache_dir() -> Path:
    """Return ``$ALPHAVIL_CACHE`` if set, else ``~/.cache/alphavil``."""
    env = os.environ.get("ALPHAVIL_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "alphavil"


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
        raise CacheCorruptError(f"not a readable .npz ({one_line(exc)})") from exc


def _remove_cache(path: Path) -> None:
    for p in (checksum_path(path), path):  # sidecar first: a cache left alone is still checked
        try:
            p.unlink(missing_ok=True)
        except OSError as exc:
            raise DataUnavailableError(
                f"{p}: corrupt cache file cannot be deleted ({one_line(exc)}); delete it by "
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
        logger.warning("could not write cache %s: %s", path, one_line(exc))
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
            f"{path}: cannot access the cache file ({one_line(exc)}); {_CACHE_HINT}"
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
        logger.warning("cache %s is corrupt (%s); deleting and rebuilding it", path, one_line(exc))
        _remove_cache(path)
        return None
    if recorded is None:  # written by an older version: record the checksum of what we checked
        try:
            _write_checksum(path, digest)
        except OSError as exc:
            logger.info("could not record the checksum of %s: %s", path, one_line(exc))
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
