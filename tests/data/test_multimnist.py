"""The MultiMNIST generator, its verified cache and its arguments (synthetic sources; real MNIST
only if present)."""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from alphavil.data import multimnist
from alphavil.data.mnist import (
    DataUnavailableError,
    ImageSplits,
    checksum_path,
    default_cache_dir,
    write_npz_cache,
)
from alphavil.data.multimnist import (
    SEED_MAX,
    MultiSplits,
    compose_pairs,
    load_multi_dataset,
    make_multi_dataset,
)
from tests.data.mnist_fakes import (
    DAMAGE,
    MULTI_COUNTS,
    WHY,
    assert_one_rebuild_warning,
    assert_sidecar_matches,
    fake_splits,
    one_line,
    warnings_of,
)

REPO_CACHE = Path(__file__).resolve().parents[2] / "cache"


def src_index(i: int) -> int:
    """Canvas row/col (36) sampled by output row/col i (28), PIL/scipy nearest."""
    return math.floor((i + 0.5) * 36 / 28)


def out_index(canvas_i: int) -> int | None:
    """Output row/col showing canvas row/col ``canvas_i``, or None if nearest drops it."""
    hits = [i for i in range(28) if src_index(i) == canvas_i]
    return hits[0] if hits else None


def reference_compose(left: np.ndarray, right: np.ndarray, off: tuple[int, int]) -> np.ndarray:
    """Independent reference: loop canvas, torch nearest-exact resize."""
    canvas = np.zeros((len(left), 36, 36), dtype=np.uint8)
    for n in range(len(left)):
        canvas[n, :28, :28] = left[n]
        r, c = off
        canvas[n, r : r + 28, c : c + 28] = np.maximum(canvas[n, r : r + 28, c : c + 28], right[n])
    t = torch.from_numpy(canvas).float()[:, None]
    return F.interpolate(t, size=(28, 28), mode="nearest-exact")[:, 0].round().byte().numpy()


def random_images(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 28, 28), dtype=np.uint8)


def test_compose_shapes_and_validation() -> None:
    a, b = random_images(5, 0), random_images(5, 1)
    out = compose_pairs(a, b)
    assert out.shape == (5, 28, 28) and out.dtype == np.uint8 and out.flags.c_contiguous
    with pytest.raises(ValueError, match="sener_koltun, shifted"):
        compose_pairs(a, b, variant="bogus")
    with pytest.raises(ValueError, match="rng"):
        compose_pairs(a, b, variant="shifted")
    with pytest.raises(ValueError, match="uint8"):
        compose_pairs(a.astype(np.float32), b)
    with pytest.raises(ValueError, match="length"):
        compose_pairs(a, b[:3])


def test_sener_koltun_matches_reference() -> None:
    a, b = random_images(50, 0), random_images(50, 1)
    np.testing.assert_array_equal(compose_pairs(a, b), reference_compose(a, b, (6, 6)))


@pytest.mark.parametrize("which", ["left", "right"])
def test_sener_koltun_single_pixel_geometry(which: str) -> None:
    shift = 0 if which == "left" else 6
    pixels = np.zeros((28 * 28, 28, 28), dtype=np.uint8)
    pixels[np.arange(28 * 28), np.arange(28 * 28) // 28, np.arange(28 * 28) % 28] = 255
    empty = np.zeros_like(pixels)
    out = compose_pairs(pixels, empty) if which == "left" else compose_pairs(empty, pixels)
    for r in range(28):
        for c in range(28):
            expected = np.zeros((28, 28), dtype=np.uint8)
            i, j = out_index(r + shift), out_index(c + shift)
            if i is not None and j is not None:
                expected[i, j] = 255
            np.testing.assert_array_equal(out[r * 28 + c], expected, err_msg=f"{which} {r},{c}")
    # The corner cases spelled out: left (0,0) stays at (0,0); right (27,27) -> canvas 33 is
    # dropped by 36->28 nearest; right (26,26) -> canvas 32 -> output 25.
    assert out_index(0) == 0 and out_index(33) is None and out_index(32) == 25


def test_pixelwise_max_in_overlap() -> None:
    left = np.full((1, 28, 28), 100, dtype=np.uint8)
    right = np.full((1, 28, 28), 200, dtype=np.uint8)
    right[0, :, :14] = 50
    out = compose_pairs(left, right)[0]
    canvas = np.zeros((36, 36), dtype=np.uint8)
    canvas[:28, :28] = 100
    canvas[6:34, 6:34] = np.maximum(canvas[6:34, 6:34], right[0])
    idx = [src_index(i) for i in range(28)]
    np.testing.assert_array_equal(out, canvas[np.ix_(idx, idx)])
    assert out[10, 10] == 100 and out[25, 25] == 200 and out[27, 27] == 0


def _lit(mask_1d: np.ndarray, start: int) -> bool:
    expected = np.array([start <= src_index(i) < start + 28 for i in range(28)])
    return bool(np.array_equal(mask_1d, expected))


@pytest.mark.parametrize("which", ["left", "right"])
def test_shifted_offsets_in_range(which: str) -> None:
    full, empty = np.full((300, 28, 28), 255, np.uint8), np.zeros((300, 28, 28), np.uint8)
    args = (full, empty) if which == "left" else (empty, full)
    out = compose_pairs(*args, variant="shifted", rng=np.random.default_rng(0))
    base = 0 if which == "left" else 4
    seen = set()
    for img in out:
        rows, cols = img.any(axis=1), img.any(axis=0)
        a = [s for s in range(base, base + 5) if _lit(rows, s)]
        b = [s for s in range(base, base + 5) if _lit(cols, s)]
        assert a and b, "digit placed outside the allowed 0..4 px shift"
        seen.add((tuple(a), tuple(b)))
    assert len(seen) >= 9  # offsets vary


def test_shifted_deterministic_per_seed() -> None:
    a, b = random_images(40, 0), random_images(40, 1)

    def run(seed: int) -> np.ndarray:
        return compose_pairs(a, b, variant="shifted", rng=np.random.default_rng(seed))

    np.testing.assert_array_equal(run(3), run(3))
    assert not np.array_equal(run(3), run(4))


def encoded_source(n_train: int, n_test: int, label_base: int, seed: int) -> ImageSplits:
    """Images encoding their own label (constant value), split and index.

    Value = label_base + label (+20 for test). Pixel (0,1) = index % 256 and (1,0) = index // 256
    on the left; (24,25) = index % 256 on the right; both regions are never overlapped.
    """
    rng = np.random.default_rng(seed)
    parts: list[np.ndarray] = []
    for n, bump in ((n_train, 0), (n_test, 20)):
        y = rng.integers(0, 10, n).astype(np.int64)
        x = np.broadcast_to((label_base + bump + y).astype(np.uint8)[:, None, None], (n, 28, 28))
        x = x.copy()
        x[:, 0, 1], x[:, 1, 0], x[:, 24, 25] = np.arange(n) % 256, np.arange(n) // 256, np.arange(n)
        parts += [x, y]
    return ImageSplits(parts[0], parts[1], parts[2], parts[3], source=f"encoded{label_base}")


def decode(ms: MultiSplits, split: str) -> tuple[np.ndarray, ...]:
    x = getattr(ms, f"{split}_images")
    left_val = x[:, 0, 0].astype(int)
    left_idx = x[:, 0, 1].astype(int) + 256 * x[:, 1, 0].astype(int)
    r, c = out_index(24 + 6), out_index(25 + 6)  # right pixel (24, 25)
    rr = out_index(22 + 6)  # right pixel (22, 22): only the value, never overlapped
    return left_val, left_idx, x[:, rr, rr].astype(int), x[:, r, c].astype(int)


@pytest.mark.parametrize("two_sources", [False, True])
def test_make_multi_dataset_labels_and_splits(two_sources: bool) -> None:
    left = encoded_source(200, 40, 10, seed=0)
    right = encoded_source(200, 40, 50, seed=1) if two_sources else None
    rbase = 50 if two_sources else 10
    ms = make_multi_dataset(left, right, data_seed=7, dev_size=50)
    assert ms.train_images.shape == (150, 28, 28) and ms.dev_images.shape == (50, 28, 28)
    assert ms.test_images.shape == (40, 28, 28) and ms.test_labels.shape == (40, 2)
    assert ms.train_labels.dtype == np.int64 and ms.dev_labels.shape == (50, 2)
    ids = []
    for split, bump, src in (("train", 0, "train"), ("dev", 0, "train"), ("test", 20, "test")):
        lval, lidx, rval, ridx = decode(ms, split)
        labels = getattr(ms, f"{split}_labels")
        np.testing.assert_array_equal(lval, 10 + bump + labels[:, 0])
        np.testing.assert_array_equal(labels[:, 0], getattr(left, f"{src}_labels")[lidx])
        # partner from the same split of the right source, label matches the placed image
        np.testing.assert_array_equal(rval, rbase + bump + labels[:, 1])
        right_labels = getattr(right or left, f"{src}_labels")
        np.testing.assert_array_equal(labels[:, 1], right_labels[ridx])
        ids.append(lidx)
    assert len(set(ids[0]) & set(ids[1])) == 0
    assert sorted([*ids[0], *ids[1]]) == list(range(200))  # every train image is a left once
    assert sorted(ids[2]) == list(range(40))
    assert len(set(decode(ms, "train")[3])) < 150  # partners drawn with replacement
    assert ms.meta == {
        "kind": "custom",
        "variant": "sener_koltun",
        "data_seed": 7,
        "dev_size": 50,
        "left_source": "encoded10",
        "right_source": "encoded50" if two_sources else "encoded10",
    }


def _arrays(ms: MultiSplits) -> list[np.ndarray]:
    return [getattr(ms, k) for k in multimnist._FIELDS]


def test_make_multi_dataset_determinism() -> None:
    src = encoded_source(100, 20, 10, seed=0)
    a, b = (
        make_multi_dataset(src, data_seed=1, dev_size=20),
        make_multi_dataset(src, data_seed=1, dev_size=20),
    )
    for x, y in zip(_arrays(a), _arrays(b), strict=True):
        np.testing.assert_array_equal(x, y)
    c = make_multi_dataset(src, data_seed=2, dev_size=20)
    assert not np.array_equal(a.train_images, c.train_images)
    assert not np.array_equal(a.test_labels, c.test_labels)
    # the partners and the dev split do not depend on the variant
    d = make_multi_dataset(src, variant="shifted", data_seed=1, dev_size=20)
    for k in ("train_labels", "dev_labels", "test_labels"):
        np.testing.assert_array_equal(getattr(a, k), getattr(d, k))
    assert not np.array_equal(a.train_images, d.train_images)
    with pytest.raises(ValueError, match="dev_size"):
        make_multi_dataset(src, dev_size=100)
    with pytest.raises(ValueError, match="allowed"):
        make_multi_dataset(src, variant="nope")


def test_load_multi_dataset_caches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    counts = (100, 20)

    def fake_mnist(
        data_dir: object, cache_dir: object, *, download: bool = True, expected_counts: object
    ) -> ImageSplits:
        assert expected_counts == counts
        calls.append("mnist")
        return encoded_source(100, 20, 10, seed=0)

    def fake_fashion(
        data_dir: object, cache_dir: object, *, expected_counts: object
    ) -> ImageSplits:
        assert expected_counts == counts
        calls.append("fashion")
        return encoded_source(100, 20, 50, seed=1)

    monkeypatch.setattr(multimnist, "load_mnist", fake_mnist)
    monkeypatch.setattr(multimnist, "load_fashion_mnist", fake_fashion)

    def load(kind: str) -> MultiSplits:
        return load_multi_dataset(
            kind, data_seed=3, dev_size=30, cache_dir=tmp_path, expected_counts=counts
        )

    ms = load("fashion_mnist")
    assert calls == ["mnist", "fashion"]
    path = tmp_path / "multi_fashion_mnist_sener_koltun_seed3_dev30.npz"
    sidecar = path.name + ".sha256"
    assert path.is_file() and sorted(p.name for p in tmp_path.iterdir()) == [path.name, sidecar]
    assert ms.meta["kind"] == "fashion_mnist" and ms.meta["right_source"] == "encoded50"
    again = load("fashion_mnist")
    assert calls == ["mnist", "fashion"]  # served from the cache
    for x, y in zip(_arrays(ms), _arrays(again), strict=True):
        assert x.dtype == y.dtype
        np.testing.assert_array_equal(x, y)
    assert again.meta == ms.meta
    load("fashion")
    assert calls[2:] == ["fashion"]
    with pytest.raises(ValueError, match="mnist, fashion, fashion_mnist"):
        load_multi_dataset("cifar", cache_dir=tmp_path)


# ---------------------------------------------------------------- the cache and its arguments
# (synthetic sources: the `sources` fixture, tests/data/conftest.py; no MNIST from the
# environment, no download)


def assert_same_multi(a: MultiSplits, b: MultiSplits) -> None:
    for k in multimnist._FIELDS:
        x, y = getattr(a, k), getattr(b, k)
        assert x.dtype == y.dtype and np.array_equal(x, y), k


def load_multi(cache: Path, **kw: Any) -> MultiSplits:
    args: dict[str, Any] = {"data_seed": 1, "dev_size": 8, "expected_counts": MULTI_COUNTS}
    return load_multi_dataset("fashion_mnist", cache_dir=cache, **{**args, **kw})


MULTI_NAME = "multi_fashion_mnist_sener_koltun_seed1_dev8.npz"


@pytest.mark.usefixtures("mnist_isolated")
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


@pytest.mark.usefixtures("mnist_isolated")
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


@pytest.mark.usefixtures("mnist_isolated")
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


@pytest.mark.usefixtures("mnist_isolated")
def test_multi_cache_path_that_is_a_directory_is_an_error(
    tmp_path: Path, sources: list[str]
) -> None:
    (tmp_path / MULTI_NAME).mkdir()
    with pytest.raises(DataUnavailableError) as info:
        load_multi(tmp_path)
    assert "cache path is a directory" in one_line(info)
    assert sources == [] and (tmp_path / MULTI_NAME).is_dir()


@pytest.mark.usefixtures("mnist_isolated")
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


@pytest.mark.usefixtures("mnist_isolated")
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


REAL_CACHE = next(
    (d for d in (default_cache_dir(), REPO_CACHE) if (d / "mnist.npz").is_file()), None
)


@pytest.mark.needs_mnist
@pytest.mark.skipif(REAL_CACHE is None, reason="no cached real MNIST (mnist.npz) found")
def test_real_multimnist(tmp_path: Path) -> None:
    assert REAL_CACHE is not None
    os.symlink(REAL_CACHE / "mnist.npz", tmp_path / "mnist.npz")
    ms = load_multi_dataset("mnist", cache_dir=tmp_path, download=False)
    assert ms.train_images.shape == (50000, 28, 28) and ms.dev_images.shape == (10000, 28, 28)
    assert ms.test_images.shape == (10000, 28, 28)
    left = np.concatenate([ms.train_labels[:, 0], ms.dev_labels[:, 0]])
    assert np.bincount(left)[0] == 5923  # every MNIST training digit is a left digit once
