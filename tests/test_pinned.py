"""tests.helpers.assert_pinned: the golden-metrics comparison fails where it should on any host."""

from __future__ import annotations

import pytest

import tests.helpers as helpers
from tests.helpers import assert_pinned

GOLDEN = {"dev": {"main": {"loss": 0.5180640697479248, "accuracy": 0.85}}, "alpha": [1.0, 0.25]}


@pytest.mark.parametrize("host", ["Intel(R) Xeon(R) Processor", "AMD EPYC"])
def test_equal_metrics_pass_and_a_changed_one_fails(
    host: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "cpu_model", lambda: host)
    assert_pinned(GOLDEN, GOLDEN, ())
    changed = {"dev": {"main": {"loss": 0.5180640697479248 * (1 + 1e-4), "accuracy": 0.85}}}
    with pytest.raises(AssertionError):
        assert_pinned({**GOLDEN, **changed}, GOLDEN, ())
    with pytest.raises(AssertionError):
        assert_pinned({**GOLDEN, "alpha": [1.0]}, GOLDEN, ())
    with pytest.raises(AssertionError):
        assert_pinned({"dev": GOLDEN["dev"]}, GOLDEN, ())


def test_only_the_pinning_host_asks_for_the_last_bit(monkeypatch: pytest.MonkeyPatch) -> None:
    noisy = {"dev": {"main": {"loss": 0.5180640697479248 * (1 + 2e-7), "accuracy": 0.85}}}
    new = {**GOLDEN, **noisy}
    monkeypatch.setattr(helpers, "cpu_model", lambda: "AMD EPYC")
    assert_pinned(new, GOLDEN, ())
    monkeypatch.setattr(helpers, "cpu_model", lambda: "Intel(R) Xeon(R) Processor @ 2.80GHz")
    with pytest.raises(AssertionError):
        assert_pinned(new, GOLDEN, ())
