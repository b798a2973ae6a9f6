"""Reading and writing IDX files (the MNIST file format), raw or gzip-compressed.

An IDX file is a big-endian header (two zero bytes, a dtype code, the number of
dimensions ``ndim``, then ``ndim`` unsigned 32-bit sizes) followed by the data in
row-major order.
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np

__all__ = ["IdxFormatError", "read_idx", "write_idx"]

_GZIP_MAGIC = b"\x1f\x8b"

# IDX dtype code -> big-endian numpy dtype.
_CODE_TO_DTYPE: dict[int, np.dtype] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}
_EXPECTED_CODES = ", ".join(f"0x{c:02X} ({d.name})" for c, d in _CODE_TO_DTYPE.items())


class IdxFormatError(ValueError):
    """Raised when a file is not a well-formed IDX file."""


def _decompress(name: str, raw: bytes) -> bytes:
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as exc:
        msg = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise IdxFormatError(
            f"{name}: corrupt gzip data ({msg}); expected a valid gzip stream of an IDX file"
        ) from exc


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read an IDX file into a native-endian numpy array.

    Gzip compression is detected from the magic bytes ``1f 8b``, not from the file name.

    Args:
        path: The IDX file, raw or gzip-compressed.

    Returns:
        A writable array with the shape and dtype given by the header.

    Raises:
        IdxFormatError: If the file is corrupt, truncated, has trailing bytes or an
            unknown header.
        OSError: If the file cannot be read at all.
    """
    name = os.fspath(path)
    data = Path(path).read_bytes()
    if data[:2] == _GZIP_MAGIC:
        data = _decompress(name, data)
    if len(data) < 4:
        raise IdxFormatError(
            f"{name}: truncated: {len(data)} bytes, an IDX header needs at least 4"
        )
    magic = struct.unpack(">I", data[:4])[0]
    if data[0] != 0 or data[1] != 0:
        raise IdxFormatError(
            f"{name}: bad magic 0x{magic:08X}; an IDX file starts with 0x0000 then a dtype "
            "code and ndim"
        )
    code, ndim = data[2], data[3]
    if code not in _CODE_TO_DTYPE:
        raise IdxFormatError(
            f"{name}: unknown dtype code 0x{code:02X} in magic 0x{magic:08X}; expected one of "
            f"{_EXPECTED_CODES}"
        )
    if ndim == 0:
        raise IdxFormatError(f"{name}: ndim is 0 in magic 0x{magic:08X}; expected at least 1")
    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise IdxFormatError(
            f"{name}: truncated: header declares {ndim} dims ({header_len} header bytes), "
            f"file has {len(data)} bytes"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _CODE_TO_DTYPE[code]
    expected = math.prod(shape) * dtype.itemsize  # exact: np.prod could overflow int64
    actual = len(data) - header_len
    if actual < expected:
        raise IdxFormatError(
            f"{name}: truncated: header says {expected} bytes of data for shape {shape}, "
            f"file has {actual}"
        )
    if actual > expected:
        raise IdxFormatError(
            f"{name}: {actual - expected} trailing bytes after the data; header says "
            f"{expected} bytes of data for shape {shape}"
        )
    array = np.frombuffer(data, dtype=dtype, count=expected // dtype.itemsize, offset=header_len)
    return array.astype(dtype.newbyteorder("="), copy=True).reshape(shape)


def write_idx(path: str | os.PathLike[str], array: np.ndarray) -> None:
    """Write an array as an IDX file; gzip-compressed if the path ends with ``.gz``.

    Args:
        path: Destination file.
        array: An array of dtype uint8, int8, int16, int32, float32 or float64 with
            1 to 255 dimensions.

    Raises:
        ValueError: If the dtype or number of dimensions cannot be stored in IDX.
    """
    array = np.asarray(array)
    codes = {d.newbyteorder("="): c for c, d in _CODE_TO_DTYPE.items()}
    native = array.dtype.newbyteorder("=")
    if native not in codes:
        raise ValueError(f"IDX cannot store dtype {array.dtype}; expected one of {_EXPECTED_CODES}")
    if not 1 <= array.ndim <= 255:
        raise ValueError(f"IDX needs 1 to 255 dimensions, got {array.ndim}")
    if any(s >= 2**32 for s in array.shape):
        raise ValueError(f"IDX dimensions must be < 2**32, got shape {array.shape}")
    code = codes[native]
    header = bytes([0, 0, code, array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    payload = header + np.ascontiguousarray(array, dtype=_CODE_TO_DTYPE[code]).tobytes()
    if os.fspath(path).endswith(".gz"):
        with gzip.GzipFile(path, "wb", mtime=0) as f:
            f.write(payload)
    else:
        Path(path).write_bytes(payload)
