"""Report figures: what they are titled and what their axes show."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from alphavil.reports import figures as plots
from alphavil.runs import write_jsonl


def _run(root: Path, name: str, label: str, dev: list[float]) -> dict[str, Any]:
    recs = [
        {
            "epoch": e + 1,
            "dev": {"left": {"accuracy": a}},
            "alpha": {"left": 1.0, "right": 0.5},
            "weights": {"left": 1.0, "right": 0.5},
        }
        for e, a in enumerate(dev)
    ]
    write_jsonl(root / name / "metrics.jsonl", recs)
    summary = {"tasks": ["left", "right"]}
    return {"path": root / name, "method": "alphavil", "label": label, "target": "left",
            "summary": summary}  # fmt: skip


@pytest.fixture
def figures(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    saved: list[Any] = []

    def keep(fig: Any, path: Path) -> Path:
        saved.append(fig)
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    return saved


def test_figure3_is_titled_with_the_configuration_not_a_task(
    tmp_path: Path, figures: list[Any]
) -> None:
    runs = [_run(tmp_path, "a", "exact-rel", [0.9, 0.95])]
    plots.alpha_weight_figure(runs, "left", tmp_path / "f.png", "exact-rel")
    title = figures[0]._suptitle.get_text()
    assert title.startswith("exact-rel, target left: mean over 1 seeds"), title
    legend = [t.get_text() for t in figures[0].axes[0].get_legend().get_texts()]
    assert legend == ["left (target)", "right"]


def test_dev_curves_clip_a_slow_start_and_say_so(tmp_path: Path, figures: list[Any]) -> None:
    runs = [
        _run(tmp_path, "a", "steady", [0.95, 0.96, 0.97]),
        _run(tmp_path, "b", "slow", [0.60, 0.90, 0.96]),
    ]
    plots.dev_curve_figure(runs, "left", tmp_path / "d.png")
    ax = figures[0].axes[0]
    assert ax.get_ylim()[0] == pytest.approx(97.0 - 5.0)
    assert "clipped 5 points" in ax.get_title()


def test_dev_curves_within_the_span_are_not_clipped(tmp_path: Path, figures: list[Any]) -> None:
    runs = [_run(tmp_path, "a", "steady", [0.95, 0.96]), _run(tmp_path, "b", "x", [0.94, 0.95])]
    plots.dev_curve_figure(runs, "left", tmp_path / "d.png")
    ax = figures[0].axes[0]
    assert ax.get_ylim()[0] < 94.0 and ax.get_title() == ""
