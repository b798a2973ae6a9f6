from __future__ import annotations

import pytest
import torch

from alphavil.pareto.transfer import TransferSchedule, mix, neighbourhoods, transfer_matrix
from alphavil.pareto.weights import das_dennis, evenly_spaced

PREF_SETS = [evenly_spaced(5), evenly_spaced(11), das_dennis(3, 4)]


@pytest.mark.parametrize("prefs", PREF_SETS)
@pytest.mark.parametrize("beta", [0.0, 0.01, 0.3, 1.0])
@pytest.mark.parametrize("t", [1, 2, 4])
@pytest.mark.parametrize("coefficients", ["cosine", "uniform"])
def test_transfer_matrix_is_row_stochastic_and_local(
    prefs: torch.Tensor, beta: float, t: int, coefficients: str
) -> None:
    m = transfer_matrix(prefs, beta, t, coefficients=coefficients)
    k = len(prefs)
    assert m.shape == (k, k)
    assert (m >= 0).all()
    torch.testing.assert_close(m.sum(1), torch.ones(k, dtype=torch.float64))
    torch.testing.assert_close(m.diagonal(), torch.full((k,), 1 - beta, dtype=torch.float64))
    allowed = torch.zeros(k, k, dtype=torch.bool)
    allowed.scatter_(1, neighbourhoods(prefs, t), True)
    off = m.clone().fill_diagonal_(0)
    assert (off[~allowed] == 0).all()  # no mass outside the neighbourhood
    if beta > 0 and coefficients == "uniform":
        assert (off[allowed] > 0).all()


def test_neighbourhoods_are_the_nearest_vectors() -> None:
    nb = neighbourhoods(evenly_spaced(5), 2)
    assert nb.tolist() == [[1, 2], [0, 2], [1, 3], [2, 4], [3, 2]]
    assert neighbourhoods(evenly_spaced(3), 10).shape == (3, 2)  # capped at K - 1


def test_cosine_coefficients_and_zero_cosine_fallback() -> None:
    prefs = evenly_spaced(5)
    m = transfer_matrix(prefs, 0.1, 2)
    unit = prefs / prefs.norm(dim=1, keepdim=True)
    cos = unit @ unit.T
    expected = 0.1 * cos[2, [1, 3]] / cos[2, [1, 3]].sum()
    torch.testing.assert_close(m[2, [1, 3]], expected)
    two = transfer_matrix(evenly_spaced(2), 0.2, 1)  # extremes are orthogonal: uniform fallback
    torch.testing.assert_close(two, torch.tensor([[0.8, 0.2], [0.2, 0.8]], dtype=torch.float64))


def test_mix_is_the_matrix_product_per_model() -> None:
    params = torch.randn(4, 3, 2, dtype=torch.float64)
    m = transfer_matrix(evenly_spaced(4), 0.3, 2)
    out = mix(params, m)
    for k in range(4):
        torch.testing.assert_close(out[k], sum(m[k, j] * params[j] for j in range(4)))
    torch.testing.assert_close(mix(params, torch.eye(4, dtype=torch.float64)), params)
    with pytest.raises(ValueError, match="mixing"):
        mix(params, torch.eye(3))


def test_schedule_decays_and_period() -> None:
    s = TransferSchedule(beta=0.2, period=3, decay="linear", decay_start=0.5, decay_end=0.75)
    assert s.strength(0, 100) == 0.2
    assert s.strength(50, 100) == 0.2
    assert s.strength(60, 100) == pytest.approx(0.2 * (1 - 10 / 25))
    assert s.strength(75, 100) == 0.0
    assert s.strength(99, 100) == 0.0
    c = TransferSchedule(beta=0.2, decay="cosine", decay_start=0.0, decay_end=1.0)
    assert c.strength(50, 100) == pytest.approx(0.1)
    assert TransferSchedule(beta=0.2).strength(99, 100) == 0.2
    assert [s.applies(i) for i in range(4)] == [True, False, False, True]
    with pytest.raises(ValueError, match="decay_start"):
        TransferSchedule(decay_start=0.8, decay_end=0.5)
    with pytest.raises(ValueError, match="beta"):
        transfer_matrix(evenly_spaced(3), 1.5, 1)
