"""Shared test settings (deterministic CPU torch, --runslow, ALPHAVIL_REQUIRE_MNIST) and the
fixtures of the CLI and sweep tests (``cli``, ``empty_config``)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import torch

from alphavil.cli import main
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


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """``cli(*argv)`` runs ``alphavil ARGV`` in this process; returns (exit code, stderr
    stripped). What was printed before the call is dropped."""

    def run(*argv: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main(list(argv))
        return code, capsys.readouterr().err.strip()

    return run


@pytest.fixture
def empty_config(tmp_path: Path) -> Path:
    """An empty config file (``tmp_path / "c.toml"``): every setting from the overrides."""
    path = tmp_path / "c.toml"
    path.write_text("")
    return path


@pytest.fixture
def one_thread() -> Iterator[None]:
    """Restores torch's thread count after a run config that sets ``train.threads``."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)
