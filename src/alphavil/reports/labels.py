"""How reports name and order runs: the paper's method names first, then sweep labels."""

from __future__ import annotations

from collections.abc import Iterable

METHOD_ORDER = ("single", "multitask", "diw", "alphavil")
LABELS = {"single": "Singletask", "multitask": "Multitask", "diw": "DIW", "alphavil": "αVIL"}


def label_order(labels: Iterable[str]) -> list[str]:
    """The paper's methods first (single, multitask, DIW, αVIL), then other labels by name."""
    labels = set(labels)
    known = [m for m in METHOD_ORDER if m in labels]
    return known + sorted(labels - set(known))


def display_name(name: str) -> str:
    """The paper's name of a method (Table 1: "Singletask", "αVIL", ...), else ``name``."""
    return LABELS.get(name, name)
