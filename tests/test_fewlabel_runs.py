"""The few-label study's committed runs are the runs their config rows request: a default that
changes must leave every row's committed runs "done" (the rows pin what they ran with), so that
the sweeps resume and the reports still read the configuration they name."""

from __future__ import annotations

from pathlib import Path

import pytest

from alphavil.config import load_config
from alphavil.sweep.plan import SweepConfig, job_config, plan, run_state

ROOT = Path(__file__).resolve().parents[1]
STUDIES = {
    "fewlabel_digits": "digits-n100",
    "fewlabel_digits_n50": "digits-n50",
    "fewlabel_digits_n400": "digits-n400",
    "fewlabel_multifashion": "multifashion-n1000",
    "fewlabel_multimnist": "multimnist-n1000",
    "fewlabel_multimnist_n250": "multimnist-n250",
    "fewlabel_multimnist_n4000": "multimnist-n4000",
}


@pytest.mark.parametrize("name", sorted(STUDIES))
def test_committed_runs_are_what_their_rows_request(name: str) -> None:
    """Seed 0 of every row (every row's first seed is committed where the row has run)."""
    config = str(ROOT / "configs" / f"{name}.toml")
    sweep = load_config(config, []).extra["sweep"]
    assert isinstance(sweep, SweepConfig)
    runs = ROOT / "docs" / "fewlabel" / STUDIES[name] / "runs"
    states = {}
    for job in plan(config, [], sweep):
        if job.name.endswith("-s0") and (runs / job.name).exists():
            cfg = job_config(config, job)
            states[job.name] = run_state(runs / job.name, cfg.to_dict(), cfg)
    assert len(states) >= 10
    assert {k: v for k, v in states.items() if v[0] != "done"} == {}
