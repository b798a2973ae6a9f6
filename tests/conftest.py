"""Shared test settings: deterministic CPU torch, --runslow, ALPHAVIL_REQUIRE_MNIST."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from tests.helpers import mnist_required


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="run slow tests")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow; pass --runslow")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(autouse=True)
def _deterministic() -> None:
    torch.manual_seed(0)
    torch.use_deterministic_algorithms(True)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """With ALPHAVIL_REQUIRE_MNIST=1 (CI, after ``alphavil data``) a ``needs_mnist`` test that
    skips fails instead: missing data must not pass silently. Slow tests still skip."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    slow_skip = "slow" in item.keywords and not item.config.getoption("--runslow")
    if mnist_required() and report.skipped and "needs_mnist" in item.keywords and not slow_skip:
        report.outcome = "failed"
        report.longrepr = (
            f"needs_mnist test skipped with ALPHAVIL_REQUIRE_MNIST set: {report.longrepr}"
        )
