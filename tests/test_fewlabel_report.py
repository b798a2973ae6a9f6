"""The few-label report: label kinds, the dev-tuned single-task row, paired differences, the
αVIL check and the information test, from hand-made run folders with known scores."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphavil.fewlabel_report import main, scores, split_label, verdict
from alphavil.report import collect_runs


def _run(root: Path, label: str, method: str, seed: int, dev: float, test: float) -> None:
    d = root / f"{label}-s{seed}"
    d.mkdir(parents=True)
    config = {
        "label": label,
        "train": {"method": method, "seed": seed},
        "data": {"budget": {"target": 1000}},
    }
    best = {"left": {"dev_accuracy": dev / 100, "test_accuracy": test / 100, "epoch": 3}}
    summary = {"status": "completed", "target": "left", "best": best, "seconds": 10.0}
    (d / "config.json").write_text(json.dumps(config))
    (d / "summary.json").write_text(json.dumps(summary))
    # epoch 4's record: the test accuracy is test / 2 (the learning-speed table)
    rec = {"epoch": 4, "test": {"left": {"accuracy": test / 200}}}
    (d / "metrics.jsonl").write_text(json.dumps({"epoch": 3}) + "\n" + json.dumps(rec) + "\n")


@pytest.fixture
def study(tmp_path: Path) -> Path:
    for s in range(3):
        _run(tmp_path, "single", "single", s, dev=80, test=84 + s)
        _run(tmp_path, "single-lr0.1", "single", s, dev=90 if s == 0 else 70, test=70)
        for kind, mt, av in (("coarse", 92, 91 + s), ("random", 87, 85)):
            _run(tmp_path, f"{kind}.multitask", "multitask", s, dev=90, test=mt)
            _run(tmp_path, f"{kind}.alphavil", "alphavil", s, dev=90, test=av)
    return tmp_path


def test_labels_split_into_kind_and_configuration() -> None:
    assert split_label("coarse.alphavil-paper") == ("coarse", "alphavil-paper")
    assert split_label("single-lr0.025") == ("target alone", "single-lr0.025")
    assert split_label("alphavil-T1") == ("target alone", "alphavil-T1")


def test_scores_pick_single_by_dev_and_check_alphavil(study: Path) -> None:
    table = scores(collect_runs(study), "left")
    tuned = table["target alone"]["single-tuned"]
    assert [tuned[s]["test"] for s in range(3)] == pytest.approx([70, 85, 86])  # seed 0: lr0.1
    assert table["coarse"]["alphavil"][2]["test"] == pytest.approx(93)
    # coarse: alphavil 92 vs the better of single-tuned (80.33) and multitask (92): meets
    assert "meets" in verdict(table, "coarse")
    # random: 85 vs multitask 87, a gap of >= 2 to single-tuned: must reach 87, misses
    assert "misses" in verdict(table, "random") and "needs >= 87.00" in verdict(table, "random")


def test_the_check_compares_the_seeds_all_three_share(study: Path, tmp_path: Path) -> None:
    # an extra multitask seed far above the rest must not move the bar of the shared seeds
    _run(study, "coarse.multitask", "multitask", 7, dev=90, test=99)
    table = scores(collect_runs(study), "left")
    assert "needs >= 92.00: meets" in verdict(table, "coarse")
    assert "the 3 seeds all three have" in verdict(table, "coarse")


def test_report_file_has_paired_rows_and_the_information_test(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    assert main([str(study), "--out", str(out)]) == 0
    text = (out / "report.md").read_text()
    assert "### Auxiliary kind: coarse" in text and "### Auxiliary kind: random" in text
    # coarse.alphavil − random.alphavil: 6, 7, 8 points
    assert "| alphavil | +7.00 [+6.00, +8.00] (3/3) |" in text
    # alphavil − multitask on coarse: -1, 0, +1
    assert "| alphavil | 3 | 92.00 ± 1.00 | 90.00 |" in text  # and its mean dev accuracy
    assert "| single-tuned | 3 | 80.33 ± 8.96 | 83.33 |" in text  # seed 0 picked lr0.1 on dev
    assert json.loads((out / "scores.json").read_text())["coarse"]["multitask"]["0"]["test"] == 92
    # after epoch 4: coarse αVIL (91 + s) / 2 over s = 0, 1, 2
    assert "| coarse | alphavil | 3 | 46.0 |" in text


def test_an_empty_folder_is_a_one_line_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main([str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("alphavil: error:") and len(err.splitlines()) == 1


def test_gain_figure_is_drawn_from_study_folders(study: Path, tmp_path: Path) -> None:
    out = tmp_path / "fig"
    assert main([str(study), "--out", str(out), "--figure", str(study)]) == 0
    png = out / "gain_vs_budget.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_figure_keeps_configurations_measured_at_two_budgets(
    study: Path, tmp_path: Path
) -> None:
    from alphavil.fewlabel_figure import gain_points

    small = tmp_path / "n250"
    for s in range(3):
        _run(small, "single", "single", s, dev=80, test=60)
        _run(small, "coarse.alphavil", "alphavil", s, dev=90, test=80)
        _run(small, "coarse.pcgrad", "pcgrad", s, dev=90, test=81)  # one budget only
    for d in small.iterdir():
        cfg = json.loads((d / "config.json").read_text())
        cfg["data"]["budget"]["target"] = 250
        (d / "config.json").write_text(json.dumps(cfg))
    points = gain_points([collect_runs(small), collect_runs(study)], "left")
    assert set(points["coarse"]) == {"alphavil"}  # multitask and pcgrad have one budget each
    assert [n for n, _ in points["coarse"]["alphavil"]] == [250, 1000]
    assert points["coarse"]["alphavil"][0][1]["mean"] == pytest.approx(20.0)
    alone = gain_points([collect_runs(small)], "left")  # one budget: every configuration
    assert set(alone["coarse"]) == {"alphavil", "pcgrad"}


def test_figure_styles_differ_for_every_configuration_and_rows_filter(
    study: Path, tmp_path: Path
) -> None:
    from alphavil.fewlabel_figure import gain_figure, styles

    assert gain_figure([collect_runs(study)], "left", tmp_path / "x.png", ["nope"]) is None
    assert not (tmp_path / "x.png").exists()
    look = styles([f"m{i}" for i in range(25)])
    assert len({tuple(v.values()) for v in look.values()}) == 25  # no two lines look alike
    out = tmp_path / "fig"
    args = [str(study), "--out", str(out), "--figure", str(study)]
    assert main([*args, "--figure-rows", "alphavil"]) == 0
    assert (out / "gain_vs_budget.png").exists()
