"""Fake MNIST-like data, and damage done to cache files, for the image-data tests."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alphavil.data import mnist
from alphavil.data.idx import write_idx
from alphavil.data.mnist import ImageSplits, checksum_path

COUNTS = (30, 10)  # train, test examples of fake_splits()
MULTI_COUNTS = (40, 10)  # the fake MNIST / Fashion sources of the MultiMNIST tests


def fake_splits(n_train: int = 30, n_test: int = 10, seed: int = 0) -> ImageSplits:
    rng = np.random.default_rng(seed)
    return ImageSplits(
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.int64),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.int64),
        "fake",
    )


def write_idx_dir(d: Path, s: ImageSplits, gz: tuple[bool, ...] = (True,) * 4) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    arrays = (s.train_images, s.train_labels, s.test_images, s.test_labels)
    for name, array, z in zip(mnist.IDX_NAMES, arrays, gz, strict=True):
        data = array.astype(np.uint8)
        write_idx(d / (name + (".gz" if z else "")), data)
    return d


def assert_same_splits(a: ImageSplits, b: ImageSplits) -> None:
    for k in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype, k
        np.testing.assert_array_equal(x, y, err_msg=k)


def one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


def warnings_of(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == "alphavil" and r.levelno >= logging.WARNING
    ]


def assert_one_rebuild_warning(caplog: pytest.LogCaptureFixture, path: Path, why: str) -> None:
    [msg] = warnings_of(caplog)
    assert "\n" not in msg
    assert f"cache {path} is corrupt" in msg and "deleting and rebuilding it" in msg
    assert why in msg, msg


def assert_sidecar_matches(path: Path) -> None:
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert checksum_path(path).read_text() == f"{digest}  {path.name}\n"


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01
    path.write_bytes(bytes(data))


def truncate_half(path: Path) -> None:
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])


def empty(path: Path) -> None:
    path.write_bytes(b"")


DAMAGE: dict[str, Callable[[Path], None]] = {
    "byte flip": flip_middle_byte,
    "truncated": truncate_half,
    "empty": empty,
}
# With a sidecar the hash catches every damage; without one the contents must.
WHY = {True: "sha256 mismatch", False: "not a readable .npz"}
