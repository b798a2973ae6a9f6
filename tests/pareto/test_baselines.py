"""EPO and MGDA baselines: weights against closed forms, and where their runs end."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from alphavil.pareto.baselines import epo_preferences, epo_weights, mgda_weights
from alphavil.pareto.mt2o import MT2OConfig, train_population
from alphavil.pareto.problems import SPEC, SyntheticConfig
from alphavil.pareto.weights import evenly_spaced

pytest.importorskip("scipy")


def test_mgda_weights_closed_form_for_two_gradients() -> None:
    """min_c ‖c g1 + (1−c) g2‖: c = clip((g2 − g1)·g2 / ‖g1 − g2‖², 0, 1)."""
    g = torch.Generator().manual_seed(0)
    jac = torch.randn(6, 2, 5, generator=g, dtype=torch.float64)
    jac[0, 1] = -jac[0, 0]  # opposite gradients: c = 1/2, zero direction
    w = mgda_weights(jac)
    for k in range(6):
        g1, g2 = jac[k]
        c = float(((g2 - g1) @ g2) / ((g1 - g2) @ (g1 - g2)))
        assert w[k, 0].item() == pytest.approx(min(max(c, 0.0), 1.0), abs=1e-6)
    assert float((w[0] @ jac[0]).norm()) < 1e-9


def test_epo_preferences_are_positive_and_on_the_simplex() -> None:
    r = epo_preferences(evenly_spaced(5))
    assert (r > 0).all()
    torch.testing.assert_close(r.sum(1), torch.ones(5, dtype=torch.float64))


def test_epo_balances_towards_its_ray() -> None:
    """Orthogonal unit gradients, equal preference, L1 > L2: balance mode weights only L1."""
    jac = torch.eye(2, dtype=torch.float64)[None]
    prefs = torch.tensor([[0.5, 0.5]], dtype=torch.float64)
    w, modes = epo_weights(jac, torch.tensor([[2.0, 1.0]], dtype=torch.float64), prefs)
    assert modes == ["balance"]
    torch.testing.assert_close(w[0], torch.tensor([1.0, 0.0], dtype=torch.float64))
    # on the ray (r ⊙ L uniform) EPO descends: both losses non-increasing, all weight used
    w, modes = epo_weights(jac, torch.tensor([[1.0, 1.0]], dtype=torch.float64), prefs)
    assert modes == ["descent"]
    assert (jac[0] @ (w[0] @ jac[0]) >= -1e-12).all() and w[0].sum() == pytest.approx(1.0)


def test_epo_and_mgda_runs_end_on_the_convex_front() -> None:
    data, make_model = SPEC.build(SyntheticConfig(problem="convex", dim=10, steps_per_epoch=10))
    for method in ("epo", "pareto_mgda"):
        summary = train_population(
            data,
            make_model,
            MT2OConfig(n_models=3, ref_point=[1.1]),
            method=method,
            epochs=20,
            batch_size=1,
            optimizer={"name": "SGD", "lr": 0.5},
            eval_batch_size=1,
        )
        test = summary["final"]["test"]
        f = np.array([test["f1"]["loss"], test["f2"]["loss"]]).T
        np.testing.assert_allclose(np.sqrt(f).sum(1), 1.0, atol=1e-3)  # Pareto optimal
        if method == "epo":  # EPO: on each model's ray r_1 f_1 = r_2 f_2
            r = epo_preferences(evenly_spaced(3)).numpy()
            np.testing.assert_allclose(r[:, 0] * f[:, 0], r[:, 1] * f[:, 1], atol=2e-3)
        else:
            assert summary["init"] == "independent"
