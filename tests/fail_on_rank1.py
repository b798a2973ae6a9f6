"""A dataset (for tests/test_distributed.py) whose loading fails on rank 1 only."""

from __future__ import annotations

import os

from alphavil.data.toy import SPEC as TOY
from alphavil.datasets import DatasetSpec


def _build(cfg):  # type: ignore[no-untyped-def]
    if os.environ.get("RANK") == "1":
        raise ValueError("rank 1 cannot read its data (test)")
    return TOY.build(cfg)


SPEC = DatasetSpec(config=TOY.config, tasks=TOY.tasks, build=_build)
