"""Few-label studies side by side (:mod:`alphavil.fewlabel_compare`): means with the dev-tuned
single-task row, paired differences, the fitted-α table and the bar, on hand-made runs with
known scores; bad folders are one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from alphavil.fewlabel_compare import (
    bar,
    bar_table,
    curve,
    dev_pick,
    main,
    means,
    paired,
)
from tests.test_fewlabel_report import _run


def left_study(tmp_path: Path) -> Path:
    """Three seeds of single-task (two lrs), multitask and αVIL with the coarse task, the
    target "left" named in each run's config (as real runs do)."""
    root = tmp_path / "study" / "runs"
    for s in range(3):
        _run(root, "single", "single", s, dev=80, test=84 + s)
        _run(root, "single-lr0.1", "single", s, dev=90 if s == 0 else 70, test=70)
        _run(root, "coarse.multitask", "multitask", s, dev=90, test=92)
        _run(root, "coarse.alphavil", "alphavil", s, dev=91, test=91 + s)
    _target_left(root)
    return root


@pytest.fixture
def study(tmp_path: Path) -> Path:
    return left_study(tmp_path)


def test_means_pick_single_task_per_seed_on_dev(study: Path) -> None:
    table = means(study, ["multitask", "alphavil"])
    # single-tuned: seed 0 picks lr 0.1 (dev 90, test 70), seeds 1-2 the default lr (85, 86)
    assert "| coarse | 80.33 (3) | 92.00 (3) | 92.00 (3) |" in table
    assert "| random | 80.33 (3) | – | – |" in table


def test_paired_differences_are_by_seed_with_the_dev_difference(study: Path) -> None:
    table = paired([study], ["alphavil"], "multitask")
    assert "| study | coarse | +0.00 [-1.00, +1.00] (1/3); dev +1.00 |" in table


def _target_left(root: Path) -> None:
    for d in root.iterdir():
        cfg = json.loads((d / "config.json").read_text())
        cfg["train"]["target"] = "left"
        (d / "config.json").write_text(json.dumps(cfg))


def test_a_rerun_folder_replaces_its_namesakes_only(study: Path, tmp_path: Path) -> None:
    rerun = tmp_path / "rerun"
    for s in range(3):  # multitask made again: test 92 -> 95 at every seed, dev 90 -> 89
        _run(rerun, "coarse.multitask", "multitask", s, dev=89, test=95)
    _target_left(rerun)
    table = paired([study], ["alphavil"], "multitask", rerun=rerun)
    # alphavil 91, 92, 93 against 95: -3.00 on average, dev 91 - 89
    assert "| study | coarse | -3.00 [-4.00, -2.00] (0/3); dev +2.00 |" in table
    assert paired([study], ["alphavil"], "multitask") != table  # the study itself unchanged
    _run(rerun, "coarse.forkmerge", "forkmerge", 0, dev=90, test=90)
    _target_left(rerun)
    with pytest.raises(ValueError, match=r"lacks: coarse\.forkmerge-s0"):
        paired([study], ["alphavil"], "multitask", rerun=rerun)
    with pytest.raises(ValueError, match="one study"):
        paired([study, study], ["alphavil"], "multitask", rerun=rerun)


def test_the_cli_prints_the_bar_and_refuses_an_empty_folder(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["bar", str(study)]) == 0
    assert (
        "* study, coarse: alphavil 92.00 vs single 80.33, multitask 92.00"
        in capsys.readouterr().out
    )
    (tmp_path / "empty").mkdir()
    assert main(["means", str(tmp_path / "empty"), "--rows", "alphavil"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "no completed runs" in err


def test_curve_averages_a_metrics_value_per_epoch_over_the_seeds(study: Path) -> None:
    for s in range(3):
        recs = [
            {"epoch": e, "alpha": {"left": 1.0 - 0.1 * e - 0.1 * s}, "dev": {"left": {"loss": e}}}
            for e in range(1, 6)
        ]
        path = study / f"coarse.alphavil-s{s}" / "metrics.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    table = curve([study], "coarse.alphavil", ["alpha.left", "dev.left.loss"], every=2)
    # epochs 1, 3, 5; the seeds' mean of 1 - 0.1 e - 0.1 s is 0.9 - 0.1 e
    assert "| study | run label, value (seeds) | e1 | e3 | e5 | all |" in table
    assert "| study | coarse.alphavil alpha.left (3) | 0.80 | 0.60 | 0.40 | 0.60 |" in table
    assert "| study | coarse.alphavil dev.left.loss (3) | 1.00 | 3.00 | 5.00 | 3.00 |" in table
    with pytest.raises(ValueError, match="no completed runs labelled 'nope'"):
        curve([study], "nope", ["alpha.left"])


def test_curve_indexes_lists_by_number(study: Path) -> None:
    """``merge.scores.joint.0``: the joint pass's dev accuracy in each merge; an index past
    the list's end, or into a number, reads as missing."""
    for s in range(3):
        recs = [{"epoch": 1, "merge": {"scores": {"joint": [0.5 + 0.1 * s, -1.0]}}}]
        path = study / f"coarse.alphavil-s{s}" / "metrics.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    table = curve([study], "coarse.alphavil", ["merge.scores.joint.0", "merge.scores.joint.1"])
    assert "| study | coarse.alphavil merge.scores.joint.0 (3) | 0.60 | 0.60 |" in table
    assert "| study | coarse.alphavil merge.scores.joint.1 (3) | -1.00 | -1.00 |" in table
    missing = curve([study], "coarse.alphavil", ["merge.scores.joint.2", "epoch.0"])
    assert "merge.scores.joint.2 (3) | – |" in missing and "epoch.0 (3) | – |" in missing


def test_dev_pick_chooses_per_seed_on_dev_with_ties_to_the_first_row(study: Path) -> None:
    # seed 0: multitask and the tuned single row (lr 0.1) both have dev 90; seeds 1-2: multitask
    out = dev_pick([study], ["multitask", "single-tuned"])
    assert "coarse: pick(multitask, single-tuned) 92.00 vs single 80.33, multitask 92.00" in out
    out = dev_pick([study], ["single-tuned", "multitask"])  # seed 0's tie now goes to test 70
    assert "coarse: pick(single-tuned, multitask) 84.67 vs single 80.33" in out
    assert "random: not enough runs" in out


def _epochs(run: Path, accs: list[tuple[float, float]], passes: int | None = None) -> None:
    """Give a hand-made run per-epoch (dev, test) accuracies and, for αVIL, passes per epoch."""
    recs = [
        {"epoch": e, "dev": {"left": {"accuracy": d}}, "test": {"left": {"accuracy": t}}}
        for e, (d, t) in enumerate(accs, start=1)
    ]
    (run / "metrics.jsonl").write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    if passes is not None:
        cfg = json.loads((run / "config.json").read_text())
        cfg["alphavil"] = {"passes": passes}
        (run / "config.json").write_text(json.dumps(cfg))


def test_every_reselects_each_run_on_a_coarser_evaluation_schedule(study: Path) -> None:
    for s in range(3):
        # one pass per epoch: the best dev epoch is 1 (test 0.80); among epochs 2 and 4, the
        # first of the tied is 2 (test 0.90)
        _epochs(
            study / f"coarse.multitask-s{s}", [(0.9, 0.8), (0.85, 0.9), (0.8, 0.7), (0.85, 1.0)]
        )
        # two passes per epoch: every epoch is on the 2-pass schedule
        _epochs(study / f"coarse.alphavil-s{s}", [(0.5, 0.6), (0.7, 0.95)], passes=2)
    assert "| coarse | 80.33 (3) | 92.00 (3) | 92.00 (3) |" in means(
        study, ["multitask", "alphavil"]
    )
    assert "| coarse | – | 90.00 (3) | 95.00 (3) |" in means(study, ["multitask", "alphavil"], 2)
    assert "+5.00 [+5.00, +5.00] (3/3); dev -15.00" in paired(
        [study], ["alphavil"], "multitask", every=2
    )


def test_the_bar_takes_another_equal_weight_row(study: Path) -> None:
    for s in range(3):  # an equal-weight row 2 points above multitask on every seed
        _run(study, "coarse.multitask-sum", "multitask", s, dev=90, test=94)
    for d in study.glob("coarse.multitask-sum-s*"):
        cfg = json.loads((d / "config.json").read_text())
        cfg["train"]["target"] = "left"
        (d / "config.json").write_text(json.dumps(cfg))
    out = bar([study], "alphavil", "multitask-sum")
    assert "coarse: alphavil 92.00 vs single 80.33, multitask-sum 94.00" in out
    assert "needs >= 94.00: misses" in out
    assert "random: not enough runs" in out


def test_the_bar_table_puts_rows_side_by_side_and_counts_the_cells_met(study: Path) -> None:
    for s in range(2):  # a second row, 1.5 points below multitask on the seeds it has
        _run(study, "coarse.forkmerge", "forkmerge", s, dev=90, test=90.5)
    for d in study.glob("coarse.forkmerge-s*"):
        cfg = json.loads((d / "config.json").read_text())
        cfg["train"]["target"] = "left"
        (d / "config.json").write_text(json.dumps(cfg))
    lines = bar_table([study], ["alphavil", "forkmerge"]).splitlines()
    coarse = next(line for line in lines if "| coarse |" in line)
    # alphavil: 92.00 against multitask's 92.00 (single-tuned 80.33, a gap >= 2), 3 seeds;
    # forkmerge on its own 2 seeds: 90.50 against 92.00
    assert "| 92.00 / 92.00 (3): meets | 90.50 / 92.00 (2): misses by 1.50 |" in coarse
    assert any(line.endswith("| random | – | – |") for line in lines)  # no random runs
    assert lines[-1] == "| cells met |  | 1 of 1 | 0 of 1 |"
    assert main(["bar", str(study), "--rows", "alphavil", "forkmerge"]) == 0


def test_tie_rules_reselect_among_epochs_of_equal_accuracy(study: Path) -> None:
    """Epochs 1, 3 and 4 tie on dev accuracy; the loop's rule keeps epoch 1 (test 0.80), ties
    to the lower dev loss keep epoch 3 (test 0.96), ties to the last epoch 4 (0.70), and a
    strictly better dev accuracy still wins over a lower loss. ``ties = "first"`` leaves the
    summaries as the loop wrote them."""
    rows = [(0.9, 0.5, 0.80), (0.85, 0.1, 0.99), (0.9, 0.3, 0.96), (0.9, 0.6, 0.70)]
    for s in range(3):
        recs = [
            {
                "epoch": e,
                "dev": {"left": {"accuracy": d, "loss": lo}},
                "test": {"left": {"accuracy": t}},
            }
            for e, (d, lo, t) in enumerate(rows, start=1)
        ]
        path = study / f"coarse.multitask-s{s}" / "metrics.jsonl"
        path.write_text("\n".join(json.dumps(r) for r in recs) + "\n")
    assert "| coarse | 80.33 (3) | 92.00 (3) |" in means(study, ["multitask"], ties="first")
    # re-selected runs need their metrics: the hand-made single-task runs have none
    assert "| coarse | – | 96.00 (3) |" in means(study, ["multitask"], ties="loss")
    assert "| coarse | – | 70.00 (3) |" in means(study, ["multitask"], ties="last")
    assert "| coarse | – | 96.00 (3) |" in means(study, ["multitask"], every=3)  # epoch 3 only
    assert main(["means", str(study), "--rows", "multitask", "--ties", "last"]) == 0
    with pytest.raises(SystemExit):
        main(["means", str(study), "--rows", "multitask", "--ties", "newest"])


def test_reruns_beside_each_study_replace_their_namesakes_in_the_bar_and_pairs(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    beside = study.parent / "host_rerun"
    for s in range(3):  # αVIL made again: test 91 + s -> 90 at every seed, dev 91 -> 92
        _run(beside, "coarse.alphavil", "alphavil", s, dev=92, test=90)
    _target_left(beside)
    other = left_study(tmp_path / "second")  # a study without reruns is read as it is
    lines = bar_table([study, other], ["alphavil"], beside="host_rerun").splitlines()
    coarse = [line for line in lines if "| coarse |" in line]
    assert "| 90.00 / 92.00 (3): misses by 2.00 |" in coarse[0]
    assert "| 92.00 / 92.00 (3): meets |" in coarse[1]
    assert bar_table([study], ["alphavil"]) != bar_table([study], ["alphavil"], beside="host_rerun")
    table = paired([study, other], ["alphavil"], "multitask", beside="host_rerun")
    assert "| study | coarse | -2.00 [-2.00, -2.00] (0/3); dev +2.00 |" in table
    assert "| study | coarse | +0.00 [-1.00, +1.00] (1/3); dev +1.00 |" in table  # the second
    assert main(["bar", str(study), "--rerun-beside", "host_rerun"]) == 0
    assert "alphavil 90.00" in capsys.readouterr().out
    # the pick: the rerun αVIL's dev 92 beats multitask's 90 at every seed, so test 90
    out = dev_pick([study], ["multitask", "alphavil"], beside="host_rerun")
    assert "coarse: pick(multitask, alphavil) 90.00" in out
    assert (
        main(
            ["pick", str(study), "--rows", "multitask", "alphavil", "--rerun-beside", "host_rerun"]
        )
        == 0
    )
    assert "pick(multitask, alphavil) 90.00" in capsys.readouterr().out
    assert main(["bar", str(study), "--rerun-beside", "../x"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1 and "folder name" in err
    with pytest.raises(ValueError, match="not both"):
        paired([study], ["alphavil"], "multitask", rerun=beside, beside="host_rerun")


def test_seeds_beside_each_study_add_to_its_runs_in_the_bar_and_pairs(
    study: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    more = study.parent / "seeds3-4"
    for s in (3, 4):  # two more seeds: αVIL 89 against multitask 92, single-task 80
        _run(more, "single", "single", s, dev=80, test=80)
        _run(more, "single-lr0.1", "single", s, dev=70, test=70)
        _run(more, "coarse.multitask", "multitask", s, dev=90, test=92)
        _run(more, "coarse.alphavil", "alphavil", s, dev=91, test=89)
    _target_left(more)
    other = left_study(tmp_path / "second")  # a study without more seeds is read as it is
    lines = bar_table([study, other], ["alphavil"], seeds="seeds3-4").splitlines()
    coarse = [line for line in lines if "| coarse |" in line]
    # (91 + 92 + 93 + 89 + 89) / 5 = 90.80 against multitask's 92 over five seeds
    assert "| 90.80 / 92.00 (5): misses by 1.20 |" in coarse[0]
    assert "| 92.00 / 92.00 (3): meets |" in coarse[1]
    table = paired([study], ["alphavil"], "multitask", seeds="seeds3-4")
    assert "(1/5); dev +1.00 |" in table and "| study | coarse | -1.20 [" in table
    assert main(["bar", str(study), "--seeds-beside", "seeds3-4"]) == 0
    assert "alphavil 90.80" in capsys.readouterr().out
    out = dev_pick([study], ["multitask", "alphavil"], seeds="seeds3-4")
    assert "coarse: pick(multitask, alphavil) 90.80" in out  # αVIL's dev 91 beats 90 at all five
    # both options at once: the rerun replaces seeds 0-2, the more seeds add 3-4
    beside = study.parent / "host_rerun"
    for s in range(3):
        _run(beside, "coarse.alphavil", "alphavil", s, dev=92, test=90)
    _target_left(beside)
    both = bar_table([study], ["alphavil"], beside="host_rerun", seeds="seeds3-4")
    assert "| 89.60 / 92.00 (5): misses by 2.40 |" in both  # (3 * 90 + 2 * 89) / 5
    _run(more, "coarse.alphavil", "alphavil", 0, dev=91, test=91)  # a seed the study has
    _target_left(more)
    assert main(["bar", str(study), "--seeds-beside", "seeds3-4"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "already has: coarse.alphavil-s0" in err
    assert main(["paired", str(study), "--rows", "alphavil", "--seeds-beside", "/x"]) == 2
    assert "--seeds-beside takes a folder name" in capsys.readouterr().err
