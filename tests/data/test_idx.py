"""Tests for the IDX reader and writer."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from alphavil.data.idx import IdxFormatError, read_idx, write_idx

DTYPES = [np.uint8, np.int8, np.int16, np.int32, np.float32, np.float64]


@pytest.mark.parametrize("suffix", ["", ".gz"])
@pytest.mark.parametrize("dtype", DTYPES)
def test_round_trip(tmp_path: Path, dtype: type, suffix: str) -> None:
    rng = np.random.default_rng(0)
    array: np.ndarray = (rng.standard_normal((3, 4, 5)) * 100).astype(dtype)
    path = tmp_path / f"a-idx3{suffix}"
    write_idx(path, array)
    out = read_idx(path)
    assert out.dtype == np.dtype(dtype)
    assert out.dtype.isnative
    np.testing.assert_array_equal(out, array)
    out[0, 0, 0] = 1  # writable


def test_round_trip_1d_and_str_path(tmp_path: Path) -> None:
    array = np.arange(10, dtype=np.uint8)
    write_idx(str(tmp_path / "labels"), array)
    np.testing.assert_array_equal(read_idx(str(tmp_path / "labels")), array)


def test_header_is_big_endian_standard(tmp_path: Path) -> None:
    write_idx(tmp_path / "x", np.zeros((2, 28, 28), dtype=np.uint8))
    data = (tmp_path / "x").read_bytes()
    assert data[:16] == bytes([0, 0, 8, 3]) + struct.pack(">3I", 2, 28, 28)
    assert len(data) == 16 + 2 * 28 * 28
    write_idx(tmp_path / "y", np.array([1], dtype=np.int32))
    assert (tmp_path / "y").read_bytes() == bytes([0, 0, 0x0C, 1, 0, 0, 0, 1, 0, 0, 0, 1])


def test_gzip_detected_by_magic_not_name(tmp_path: Path) -> None:
    array = np.arange(12, dtype=np.int16).reshape(3, 4)
    write_idx(tmp_path / "a.gz", array)
    (tmp_path / "a.gz").rename(tmp_path / "compressed-without-suffix")
    np.testing.assert_array_equal(read_idx(tmp_path / "compressed-without-suffix"), array)
    write_idx(tmp_path / "raw", array)
    (tmp_path / "raw").rename(tmp_path / "raw-named.gz")
    np.testing.assert_array_equal(read_idx(tmp_path / "raw-named.gz"), array)


def _error(path: Path) -> str:
    with pytest.raises(IdxFormatError) as info:
        read_idx(path)
    msg = str(info.value)
    assert path.name in msg
    assert "\n" not in msg
    return msg


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_truncated_data(tmp_path: Path) -> None:
    header = bytes([0, 0, 8, 3]) + struct.pack(">3I", 60000, 28, 28)
    msg = _error(_write(tmp_path, "train-images-idx3-ubyte", header + b"\0" * 1000))
    assert "truncated" in msg
    assert "47040000" in msg
    assert "1000" in msg


def test_truncated_header(tmp_path: Path) -> None:
    assert "truncated" in _error(_write(tmp_path, "short", bytes([0, 0, 8, 3, 0, 0])))
    assert "truncated" in _error(_write(tmp_path, "tiny", b"\0\0"))
    assert "truncated" in _error(_write(tmp_path, "empty", b""))


def test_wrong_magic(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, "bad.idx", struct.pack(">I", 0x12345678) + b"\0" * 8))
    assert "bad magic 0x12345678" in msg
    assert "0x0000" in msg


def test_bad_dtype_code(tmp_path: Path) -> None:
    msg = _error(_write(tmp_path, "bad-dtype", bytes([0, 0, 0x07, 1, 0, 0, 0, 1, 5])))
    assert "0x07" in msg
    assert "0x08" in msg  # names the allowed codes


def test_zero_ndim(tmp_path: Path) -> None:
    assert "ndim" in _error(_write(tmp_path, "ndim0", bytes([0, 0, 8, 0])))


def test_trailing_bytes(tmp_path: Path) -> None:
    write_idx(tmp_path / "ok", np.arange(4, dtype=np.uint8))
    data = (tmp_path / "ok").read_bytes()
    assert "trailing" in _error(_write(tmp_path, "extra", data + b"\1\2\3"))
    gz = gzip.compress(data + b"\0", mtime=0)
    assert "trailing" in _error(_write(tmp_path, "extra.gz", gz))


def test_corrupt_gzip(tmp_path: Path) -> None:
    write_idx(tmp_path / "ok.gz", np.arange(1000, dtype=np.int32))
    good = (tmp_path / "ok.gz").read_bytes()
    assert "gzip" in _error(_write(tmp_path, "cut.gz", good[: len(good) // 2]))
    garbled = good[:12] + bytes(b ^ 0xFF for b in good[12:40]) + good[40:]
    assert "gzip" in _error(_write(tmp_path, "garbled.gz", garbled))
    assert "gzip" in _error(_write(tmp_path, "header-only", b"\x1f\x8b\x08\x00junk"))


def test_write_rejects_unsupported(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dtype"):
        write_idx(tmp_path / "x", np.zeros(3, dtype=np.uint16))
    with pytest.raises(ValueError, match="dimensions"):
        write_idx(tmp_path / "x", np.array(3, dtype=np.uint8))
