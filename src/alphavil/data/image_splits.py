"""The train and test splits of a 10-class dataset of 28x28 grey images, and their checks."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from alphavil.data.errors import DataUnavailableError

Counts = tuple[int, int] | None


@dataclass(frozen=True, eq=False)
class ImageSplits:
    """Train and test split of a 10-class dataset of 28x28 grey images."""

    train_images: np.ndarray  # uint8 (N, 28, 28)
    train_labels: np.ndarray  # int64 (N,), values 0..9
    test_images: np.ndarray  # uint8 (M, 28, 28)
    test_labels: np.ndarray  # int64 (M,), values 0..9
    source: str  # where the data came from, human-readable


def image_split_problem(
    images: np.ndarray, labels: np.ndarray, label_cols: int | None = None
) -> str | None:
    """What is wrong with one split, or ``None``.

    Expected: uint8 images ``(N, 28, 28)`` and int64 labels in 0..9 of shape ``(N,)``, or
    ``(N, label_cols)`` if ``label_cols`` is given.
    """
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != (28, 28):
        return f"images {images.dtype}{images.shape}, expected uint8 (N, 28, 28)"
    want = (len(images),) if label_cols is None else (len(images), label_cols)
    if labels.shape != want:
        return f"labels shape {labels.shape}, expected {want}"
    if labels.dtype != np.int64:
        return f"labels {labels.dtype}, expected int64"
    if labels.size and (labels.min() < 0 or labels.max() > 9):
        return f"labels in {labels.min()}..{labels.max()}, expected 0..9"
    return None


def splits_problem(s: ImageSplits, counts: Counts) -> str | None:
    """What is wrong with either split of ``s`` (or its size, against ``counts``), or ``None``."""
    for i, split in enumerate(("train", "test")):
        images, labels = getattr(s, f"{split}_images"), getattr(s, f"{split}_labels")
        problem = image_split_problem(images, labels)
        if problem is None and counts is not None and len(images) != counts[i]:
            problem = f"{len(images)} examples, expected {counts[i]}"
        if problem:
            return f"bad {split} split: {problem}"
    return None


def validate_splits(s: ImageSplits, counts: Counts) -> ImageSplits:
    """``s`` if :func:`splits_problem` finds nothing, else :class:`DataUnavailableError`."""
    problem = splits_problem(s, counts)
    if problem:
        raise DataUnavailableError(f"{s.source}: {problem}")
    return s


def make_splits(images: list[np.ndarray], labels: list[np.ndarray], source: str) -> ImageSplits:
    """:class:`ImageSplits` of ``[train, test]`` images and labels (labels made int64)."""
    as_lab = [np.asarray(y).astype(np.int64) for y in labels]
    return ImageSplits(images[0], as_lab[0], images[1], as_lab[1], source)
