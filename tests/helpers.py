"""Small builders shared by tests."""

from __future__ import annotations

from pathlib import Path

from alphavil.config import RunConfig, load_config

TOY = [
    "data.name=toy",
    "train.target=main",
    "train.epochs=2",
    "train.batch_size=64",
    "train.channels_last=false",
    "train.optimizer={name='SGD', lr=0.1, momentum=0.9}",
]


def toy_config(tmp_path: Path, *overrides: str) -> RunConfig:
    """A toy-problem config writing runs under ``tmp_path``."""
    return load_config(None, [*TOY, f"out_dir={str(tmp_path)!r}", *overrides])
