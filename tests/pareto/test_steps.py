"""The step-function table: every registered population method is a row, the loop names none,
and a row added to the registry runs through the one loop."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
import torch
from pareto_helpers import tiny_data, tiny_model
from torch import Tensor

from alphavil.methods import POPULATION, get_population_method
from alphavil.pareto.mt2o import (
    METHOD_ALIASES,
    METHODS,
    MT2OConfig,
    canonical_method,
    train_population,
)
from alphavil.pareto.population import mtgd_step
from alphavil.pareto.steps import PopulationMethod, StepState

SRC = Path(__file__).resolve().parents[2] / "src" / "alphavil" / "pareto"


@pytest.mark.parametrize("name", sorted(POPULATION))
def test_every_registered_name_is_a_row_named_by_its_current_name(name: str) -> None:
    row = get_population_method(name)
    assert isinstance(row, PopulationMethod)
    assert row.name == canonical_method(name) == METHOD_ALIASES.get(name, name)


def test_methods_are_the_registry_without_old_names() -> None:
    assert METHODS == ("mt2o", "no_transfer", "pmtl", "epo", "pareto_mgda")
    with pytest.raises(KeyError, match="unknown population method 'nope'"):
        get_population_method("nope")


def test_the_population_loop_names_no_method() -> None:
    """train_population dispatches through the table, not on the method's name (its
    signature's default, ``method="mt2o"``, aside)."""
    text = (SRC / "mt2o.py").read_text()
    loop = text[text.index("def train_population(") : text.index("def run_population(")]
    loop = loop[loop.index('"""', loop.index('"""') + 3) :]  # the body, after the docstring
    code = "\n".join(line for line in loop.splitlines() if not line.lstrip().startswith("#"))
    for name in POPULATION:
        assert f'"{name}"' not in code, name


def _plain_sgd(
    state: StepState, inputs: Any, targets: Mapping[str, Tensor], step: int, epoch: int
) -> Tensor:
    """Equal weights, no transfer: the linear scalarisation at λ = (1/2, 1/2)."""
    half = torch.full_like(state.prefs_dev, 0.5)
    return mtgd_step(state.pop, state.optimizer, inputs, targets, half)


EQUAL = PopulationMethod("equal", _plain_sgd, scalarized=True)


def test_a_row_added_to_the_registry_runs_through_the_loop(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(POPULATION, "equal", f"{__name__}:EQUAL")
    kw: dict[str, Any] = {"epochs": 2, "batch_size": 16, "seed": 4}
    kw["optimizer"] = {"name": "SGD", "lr": 0.1}
    mc = MT2OConfig(n_models=3, ref_point=[5.0])
    summary = train_population(tiny_data(), tiny_model, mc, method="equal", **kw)
    assert summary["method"] == "equal" and summary["status"] == "completed"
    assert summary["subproblem"] == "linear" and len(summary["hv_curve"]) == 3
    # identical starts and one loss for all: the K models stay equal, unlike no_transfer's
    losses = summary["final"]["test"]["a"]["loss"]
    assert losses == [losses[0]] * 3
    other = train_population(tiny_data(), tiny_model, mc, method="no_transfer", **kw)
    assert len(set(other["final"]["test"]["a"]["loss"])) == 3
