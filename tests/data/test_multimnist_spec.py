"""The ``multimnist`` data spec's ``[data]`` table: its bounds, checked before anything is
loaded (one-line ConfigErrors)."""

from __future__ import annotations

from typing import Any

import pytest

from alphavil.config import ConfigError, build_section
from alphavil.data.multimnist import SEED_MAX
from alphavil.data.multimnist_spec import MultiMnistConfig, build
from tests.data.mnist_fakes import one_line

# every test: no MNIST from the environment, no download (tests/data/conftest.py)
pytestmark = pytest.mark.usefixtures("mnist_isolated")


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
