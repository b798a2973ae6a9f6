"""Fixtures shared by the data tests: no MNIST from the environment (``mnist_isolated``),
fake MNIST / Fashion sources for MultiMNIST (``sources``)."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.data import mnist, mnist_download, multimnist
from alphavil.data.mnist import ImageSplits
from tests.data.mnist_fakes import MULTI_COUNTS, fake_splits


@pytest.fixture
def mnist_isolated(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No MNIST/Fashion folders or cache from the environment, no system Fashion-MNIST, and no
    download (a test that would download fails)."""
    for var in ("ALPHAVIL_MNIST_DIR", "ALPHAVIL_FASHION_DIR", "ALPHAVIL_CACHE"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(mnist, "FASHION_SYSTEM_DIR", tmp_path / "no-system-fashion")

    def no_network(dest: Path) -> None:
        raise AssertionError("tests must not download")

    monkeypatch.setattr(mnist_download, "_pip_download", no_network)


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
