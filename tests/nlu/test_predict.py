"""Submission files (GLUE TSV, SuperGLUE JSONL) and ensembles from run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from alphavil.nlu.fixtures import write_fixture_data
from alphavil.nlu.predict import ensemble, main, run_probs, write_predictions
from alphavil.runs import write_json

N = 4  # test examples per task in the fixture


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return write_fixture_data(tmp_path / "data", n_train=6, n_eval=N)


def fake_run(
    path: Path, method: str, target: str, probs: dict[str, list[list[float]]], data_dir: Path
) -> Path:
    write_json(
        path / "config.json",
        {
            "data": {"name": "nlu", "data_dir": str(data_dir), "hub": False},
            "train": {"method": method, "target": target},
        },
    )
    for task, p in probs.items():
        np.save(path / f"test_probs_{task}.npy", np.asarray(p, dtype=np.float32))
    return path


def one_hot(labels: list[int], k: int = 2) -> list[list[float]]:
    return np.eye(k)[labels].tolist()


def test_glue_files_have_index_prediction_rows_with_the_task_labels(
    root: Path, tmp_path: Path
) -> None:
    probs = {
        "RTE": one_hot([0, 1, 1, 0]),
        "MRPC": one_hot([1, 0, 0, 1]),
        "WNLI": one_hot([0, 0, 1, 1]),
    }
    run = fake_run(tmp_path / "run", "multitask", "RTE", probs, root)
    written = write_predictions([run], tmp_path / "out")
    assert written["RTE"].name == "RTE.tsv"
    assert written["RTE"].read_text() == (
        "index\tprediction\n0\tentailment\n1\tnot_entailment\n2\tnot_entailment\n3\tentailment\n"
    )
    assert written["MRPC"].read_text().splitlines() == [
        "index\tprediction",
        "0\t1",
        "1\t0",
        "2\t0",
        "3\t1",
    ]
    assert written["WNLI"].read_text().splitlines()[1:] == ["0\t0", "1\t0", "2\t1", "3\t1"]


def test_glue_index_comes_from_the_test_file(tmp_path: Path) -> None:
    data = tmp_path / "data"
    (data / "RTE").mkdir(parents=True)
    (data / "RTE" / "test.tsv").write_text("index\tsentence1\tsentence2\n7\ta\tb\n3\tc\td\n")
    run = fake_run(tmp_path / "run", "single", "RTE", {"RTE": one_hot([1, 0])}, data)
    written = write_predictions([run], tmp_path / "out")
    assert written["RTE"].read_text() == "index\tprediction\n7\tnot_entailment\n3\tentailment\n"


def test_superglue_files_are_idx_label_json_lines(root: Path, tmp_path: Path) -> None:
    probs = {"CB": one_hot([2, 0, 1, 2], k=3), "COPA": one_hot([1, 1, 0, 1])}
    run = fake_run(tmp_path / "run", "multitask", "CB", probs, root)
    written = write_predictions([run], tmp_path / "out")
    cb = [json.loads(line) for line in written["CB"].read_text().splitlines()]
    assert cb == [
        {"idx": 0, "label": "neutral"},
        {"idx": 1, "label": "entailment"},
        {"idx": 2, "label": "contradiction"},
        {"idx": 3, "label": "neutral"},
    ]
    copa = [
        json.loads(line)
        for line in (tmp_path / "out" / "COPA.jsonl").read_text().split("\n")
        if line
    ]
    assert copa == [{"idx": i, "label": y} for i, y in enumerate([1, 1, 0, 1])]


def test_ensemble_averages_probabilities_over_runs(root: Path, tmp_path: Path) -> None:
    a = [[0.9, 0.1], [0.4, 0.6], [0.6, 0.4], [0.5, 0.5]]
    b = [[0.2, 0.8], [0.45, 0.55], [0.0, 1.0], [0.7, 0.3]]
    runs = [
        fake_run(tmp_path / f"r{i}", "alphavil", "RTE", {"RTE": p}, root)
        for i, p in enumerate([a, b])
    ]
    mean, members = ensemble(runs)
    np.testing.assert_allclose(mean["RTE"], (np.array(a) + np.array(b)) / 2, rtol=1e-6)
    assert members == {"RTE": [str(r) for r in runs]}
    written = write_predictions(runs, tmp_path / "out")
    labels = [line.split("\t")[1] for line in written["RTE"].read_text().splitlines()[1:]]
    assert labels == ["entailment", "not_entailment", "not_entailment", "entailment"]
    manifest = json.loads((tmp_path / "out" / "ensemble.json").read_text())
    assert manifest["members"]["RTE"] == [str(r) for r in runs]


def test_target_runs_contribute_only_their_target_unless_asked(root: Path, tmp_path: Path) -> None:
    probs = {t: one_hot([0, 1, 0, 1]) for t in ("RTE", "MRPC")}
    run = fake_run(tmp_path / "run", "diw", "MRPC", probs, root)
    assert sorted(run_probs(run)) == ["MRPC"]
    assert sorted(run_probs(run, all_tasks=True)) == ["MRPC", "RTE"]
    assert sorted(write_predictions([run], tmp_path / "out")) == ["MRPC"]


def test_mixed_methods_and_mismatched_rows_are_refused(root: Path, tmp_path: Path) -> None:
    r1 = fake_run(tmp_path / "a", "alphavil", "RTE", {"RTE": one_hot([0] * N)}, root)
    r2 = fake_run(tmp_path / "b", "diw", "RTE", {"RTE": one_hot([0] * N)}, root)
    with pytest.raises(ValueError, match="mix methods"):
        ensemble([r1, r2])
    r3 = fake_run(tmp_path / "c", "alphavil", "RTE", {"RTE": one_hot([0] * (N + 1))}, root)
    with pytest.raises(ValueError, match="shape"):
        ensemble([r1, r3])
    with pytest.raises(ValueError, match=f"RTE: {N + 1} rows of test probabilities but {N} test"):
        write_predictions([r3], tmp_path / "out")
    with pytest.raises(ValueError, match=r"no test_probs_<TASK>\.npy files"):
        write_predictions([fake_run(tmp_path / "d", "single", "CB", {}, root)], tmp_path / "o")


def test_data_dir_argument_overrides_the_runs_config(root: Path, tmp_path: Path) -> None:
    run = fake_run(
        tmp_path / "run", "single", "WNLI", {"WNLI": one_hot([1] * N)}, tmp_path / "moved"
    )
    with pytest.raises(FileNotFoundError, match="no such file"):
        write_predictions([run], tmp_path / "out")
    written = write_predictions([run], tmp_path / "out", data_dir=root)
    assert written["WNLI"].read_text().count("\t1\n") == N


def test_module_cli_writes_files_and_reports_errors_on_one_line(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    run = fake_run(tmp_path / "run", "single", "CB", {"CB": one_hot([0, 1, 2, 0], k=3)}, root)
    assert main([str(run), "--out", str(tmp_path / "out")]) == 0
    assert capsys.readouterr().out.strip() == f"CB: {tmp_path / 'out' / 'CB.jsonl'}"
    assert main([str(run), "--out", str(tmp_path / "o2"), "--data-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "CB/test.jsonl: no such file" in err
