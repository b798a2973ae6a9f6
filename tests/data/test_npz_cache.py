"""The verified ``.npz`` cache (MNIST's, through ``load_mnist``): a sha256 sidecar, the
contents checked on every read, a damaged or wrong cache deleted with one warning and rebuilt
byte for byte, an old cache used as it is; one-line errors where it cannot be fixed (synthetic
data). MultiMNIST's cache: test_multimnist.py."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from alphavil import runs
from alphavil.data import mnist
from alphavil.data.mnist import (
    DataUnavailableError,
    ImageSplits,
    checksum_path,
    load_mnist,
    npz_bytes,
    read_npz_cache,
    write_npz_cache,
)
from tests.data.mnist_fakes import (
    COUNTS,
    DAMAGE,
    WHY,
    assert_one_rebuild_warning,
    assert_same_splits,
    assert_sidecar_matches,
    fake_splits,
    one_line,
    warnings_of,
    write_idx_dir,
)

# every test: no MNIST from the environment, no download (tests/data/conftest.py)
pytestmark = pytest.mark.usefixtures("mnist_isolated")


@pytest.fixture
def idx(tmp_path: Path) -> tuple[ImageSplits, Path]:
    s = fake_splits()
    return s, write_idx_dir(tmp_path / "idx", s)


def test_corrupt_cache_is_replaced(tmp_path: Path) -> None:
    s = fake_splits()
    (tmp_path / "c").mkdir()
    (tmp_path / "c" / "mnist.npz").write_bytes(b"garbage")
    data = write_idx_dir(tmp_path / "idx", s)
    assert_same_splits(load_mnist(data, tmp_path / "c", download=False, expected_counts=None), s)
    with np.load(tmp_path / "c" / "mnist.npz") as z:
        np.testing.assert_array_equal(z["train_images"], s.train_images)


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "legacy"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_mnist_damaged_cache_is_rebuilt(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    idx: tuple[ImageSplits, Path],
    damage: str,
    sidecar: bool,
) -> None:
    s, data = idx
    cache = tmp_path / "c"
    load_mnist(data, cache, download=False, expected_counts=COUNTS)
    path = cache / "mnist.npz"
    good = path.read_bytes()
    assert_sidecar_matches(path)
    if not sidecar:
        checksum_path(path).unlink()
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_mnist(data, cache, download=False, expected_counts=COUNTS)
    assert_one_rebuild_warning(caplog, path, WHY[sidecar] if damage != "empty" else "")
    assert_same_splits(again, s)
    assert "cached" not in again.source  # rebuilt from the IDX files
    assert path.read_bytes() == good  # the rebuild is byte-identical
    assert_sidecar_matches(path)
    caplog.clear()
    assert "cached" in load_mnist(data, cache, download=False, expected_counts=COUNTS).source
    assert warnings_of(caplog) == []


def _bad_label(a: dict[str, np.ndarray]) -> None:
    a["train_labels"][3] = 10


def _negative_label(a: dict[str, np.ndarray]) -> None:
    a["test_labels"][0] = -1


def _wrong_image_shape(a: dict[str, np.ndarray]) -> None:
    a["test_images"] = np.ascontiguousarray(a["test_images"][:, :, :27])


def _images_not_uint8(a: dict[str, np.ndarray]) -> None:
    a["train_images"] = a["train_images"].astype(np.int16)


def _labels_not_int64(a: dict[str, np.ndarray]) -> None:
    a["train_labels"] = a["train_labels"].astype(np.float64)


def _length_mismatch(a: dict[str, np.ndarray]) -> None:
    a["train_labels"] = a["train_labels"][:-1]


def _wrong_count(a: dict[str, np.ndarray]) -> None:
    a["train_images"], a["train_labels"] = a["train_images"][:-1], a["train_labels"][:-1]


def _missing_array(a: dict[str, np.ndarray]) -> None:
    del a["test_labels"]


def _source_not_string(a: dict[str, np.ndarray]) -> None:
    a["source"] = np.arange(3)


BAD_MNIST: dict[str, tuple[Callable[[dict[str, np.ndarray]], None], str]] = {
    "label 10": (_bad_label, "bad train split: labels in 0..10, expected 0..9"),
    "label -1": (_negative_label, "bad test split: labels in -1..9, expected 0..9"),
    "image shape": (_wrong_image_shape, "images uint8(10, 28, 27), expected uint8 (N, 28, 28)"),
    "image dtype": (_images_not_uint8, "images int16(30, 28, 28)"),
    "label dtype": (_labels_not_int64, "labels float64, expected int64"),
    "N mismatch": (_length_mismatch, "labels shape (29,), expected (30,)"),
    "count": (_wrong_count, "bad train split: 29 examples, expected 30"),
    "missing": (_missing_array, "missing arrays test_labels"),
    "source": (_source_not_string, "source is int64(3,), expected a string"),
}


@pytest.mark.parametrize("bad", list(BAD_MNIST))
def test_mnist_cache_with_bad_contents_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, idx: tuple[ImageSplits, Path], bad: str
) -> None:
    """A cache whose hash is right (the sidecar matches) but whose contents are wrong."""
    s, data = idx
    cache = tmp_path / "c"
    load_mnist(data, cache, download=False, expected_counts=COUNTS)
    path = cache / "mnist.npz"
    with np.load(path) as z:
        arrays = dict(z)
    change, why = BAD_MNIST[bad]
    change(arrays)
    assert write_npz_cache(path, arrays)
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_mnist(data, cache, download=False, expected_counts=COUNTS)
    assert_one_rebuild_warning(caplog, path, why)
    assert_same_splits(again, s)
    with np.load(path) as z:
        assert np.array_equal(z["train_labels"], s.train_labels)
    assert_sidecar_matches(path)


def test_mnist_pickled_cache_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, idx: tuple[ImageSplits, Path]
) -> None:
    s, data = idx
    path = tmp_path / "c" / "mnist.npz"
    path.parent.mkdir()
    objects = np.array([{"not": "an array"}], dtype=object)
    np.savez(path, source=objects, **{k: getattr(s, k) for k in mnist._KEYS})
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_mnist(data, path.parent, download=False, expected_counts=COUNTS)
    assert_one_rebuild_warning(caplog, path, "not a readable .npz")
    assert_same_splits(again, s)


def test_legacy_cache_is_checked_and_gets_a_sidecar(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache from an older version (np.savez_compressed, no sidecar) is used as it is."""
    s = fake_splits()
    path = tmp_path / "mnist.npz"
    arrays = {k: getattr(s, k) for k in mnist._KEYS}
    np.savez_compressed(path, source=np.array("old version"), **arrays)
    before = path.read_bytes()
    with caplog.at_level(logging.INFO, logger="alphavil"):
        got = load_mnist(tmp_path / "absent", tmp_path, download=False, expected_counts=COUNTS)
    assert warnings_of(caplog) == []
    assert_same_splits(got, s)
    assert got.source == f"old version, cached in {path}"
    assert path.read_bytes() == before  # not rewritten
    assert_sidecar_matches(path)


@pytest.mark.parametrize(
    "text",
    [b"", b"not a checksum\n", b"0" * 64 + b"  other.npz\n", b"\xff" * 70],
    ids=["empty", "garbage", "other file", "binary"],
)
def test_malformed_sidecar_means_rebuild(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, idx: tuple[ImageSplits, Path], text: bytes
) -> None:
    s, data = idx
    load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    path = tmp_path / "mnist.npz"
    checksum_path(path).write_bytes(text)
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    assert_one_rebuild_warning(caplog, path, "malformed checksum file mnist.npz.sha256")
    assert_same_splits(again, s)
    assert_sidecar_matches(path)


def test_sidecar_of_another_cache_means_rebuild(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, idx: tuple[ImageSplits, Path]
) -> None:
    s, data = idx
    load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    path = tmp_path / "mnist.npz"
    digest = hashlib.sha256(b"another file").hexdigest()
    checksum_path(path).write_text(f"{digest}  mnist.npz\n")
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        assert_same_splits(load_mnist(data, tmp_path, download=False, expected_counts=COUNTS), s)
    assert_one_rebuild_warning(caplog, path, "sha256 mismatch")


def test_unreadable_cache_is_rebuilt(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    idx: tuple[ImageSplits, Path],
) -> None:
    """An unreadable cache file (here: permission denied) is deleted and rebuilt."""
    s, data = idx
    load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    path = tmp_path / "mnist.npz"
    read_bytes = Path.read_bytes
    denied: list[Path] = []

    def deny_once(self: Path) -> bytes:
        if self == path and not denied:
            denied.append(self)
            raise PermissionError(13, "Permission denied", str(self))
        return read_bytes(self)

    monkeypatch.setattr(Path, "read_bytes", deny_once)
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    assert denied == [path]
    assert_one_rebuild_warning(caplog, path, "PermissionError: [Errno 13] Permission denied")
    assert_same_splits(again, s)
    assert "cached" not in again.source
    assert_sidecar_matches(path)


def test_cache_path_that_is_a_directory_is_an_error(
    tmp_path: Path, idx: tuple[ImageSplits, Path]
) -> None:
    """A directory where the cache file should be is not ours: a one-line error, kept."""
    _, data = idx
    (tmp_path / "mnist.npz").mkdir()
    (tmp_path / "mnist.npz" / "keep.txt").write_text("user data")
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    msg = one_line(info)
    assert f"{tmp_path / 'mnist.npz'}: cache path is a directory" in msg
    assert "another cache dir" in msg
    assert (tmp_path / "mnist.npz" / "keep.txt").read_text() == "user data"


def test_corrupt_cache_that_cannot_be_deleted_is_an_error(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, idx: tuple[ImageSplits, Path]
) -> None:
    _, data = idx
    load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    path = tmp_path / "mnist.npz"
    side = checksum_path(path)
    side.unlink()
    side.mkdir()  # unreadable as a checksum, and unlink() cannot remove it
    with (
        caplog.at_level(logging.WARNING, logger="alphavil"),
        pytest.raises(DataUnavailableError) as info,
    ):
        load_mnist(data, tmp_path, download=False, expected_counts=COUNTS)
    msg = one_line(info)
    assert f"{side}: corrupt cache file cannot be deleted" in msg and "delete it by hand" in msg
    assert path.is_file() and side.is_dir()  # the sidecar is removed first: nothing was deleted


def test_every_bit_flip_is_detected_or_harmless(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Flip each bit of a small cache in turn: it is rebuilt, or its arrays are intact."""
    monkeypatch.setattr(runs.os, "fsync", lambda fd: None)  # speed: sidecars of intact files
    rng = np.random.default_rng(0)
    images = np.zeros((5, 28, 28), np.uint8)
    images[:, 10:14, 10:14] = rng.integers(0, 256, (5, 4, 4), dtype=np.uint8)
    arrays = {
        "source": np.array("fuzz"),
        "train_images": images[:3],
        "train_labels": np.array([1, 2, 3], np.int64),
        "test_images": images[3:],
        "test_labels": np.array([9, 0], np.int64),
    }
    path = tmp_path / "mnist.npz"
    good = npz_bytes(arrays)

    def parse(a: dict[str, np.ndarray]) -> ImageSplits:
        return mnist._parse_cached(a, path, (3, 2))

    caught = 0
    caplog.set_level(logging.CRITICAL, logger="alphavil")
    sidecar_line = f"{hashlib.sha256(good).hexdigest()}  mnist.npz\n"
    for i in range(len(good)):
        # Without a sidecar (an old cache) the zip CRCs, zip headers and contents checks
        # must catch it; with one (every 17th byte: it is just a hash compare) the hash must.
        for sidecar in (False, True) if i % 17 == 0 else (False,):
            damaged = bytearray(good)
            damaged[i] ^= 1 << (i % 8)
            path.write_bytes(bytes(damaged))
            checksum_path(path).unlink(missing_ok=True)
            if sidecar:
                checksum_path(path).write_text(sidecar_line)
            got = read_npz_cache(path, parse)
            if got is None:
                assert not path.exists()
                caught += not sidecar
            else:
                assert not sidecar, f"byte {i}: a hash mismatch went unnoticed"
                for k in mnist._KEYS:
                    assert np.array_equal(getattr(got, k), arrays[k]), f"byte {i}: {k} changed"
    assert caught > len(good) // 2  # most flips are caught by the zip CRCs / headers
    for n in range(0, len(good), 3):  # truncations are caught, even without a sidecar
        path.write_bytes(good[:n])
        checksum_path(path).unlink(missing_ok=True)
        assert read_npz_cache(path, parse) is None, n
