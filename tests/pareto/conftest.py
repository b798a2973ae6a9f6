"""Pareto tests run torch single-threaded: their tensors are tiny, and on a loaded 2-core
machine every multi-threaded op can wait tens of milliseconds for a descheduled worker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
