"""GLUE TSV / SuperGLUE JSONL readers: official layouts and one-line errors for malformed files."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from alphavil.cli import main
from alphavil.nlu.fixtures import write_fixture_data
from alphavil.nlu.readers import (
    HIDDEN,
    TASKS,
    NluFormatError,
    load_from_hub,
    load_task,
    read_file,
    split_path,
)

MRPC_HEAD = "Quality\t#1 ID\t#2 ID\t#1 String\t#2 String"
MRPC_TEST_HEAD = "index\t#1 ID\t#2 ID\t#1 String\t#2 String"
GLUE_HEAD = "index\tsentence1\tsentence2\tlabel"


@pytest.fixture(scope="module")
def fixture_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_fixture_data(tmp_path_factory.mktemp("nlu"), n_train=30, n_eval=9, seed=3)


def test_fixture_files_use_the_official_layout_and_headers(fixture_root: Path) -> None:
    first = {p: p.read_text().splitlines()[0] for p in fixture_root.rglob("*.*")}
    assert first[fixture_root / "MRPC/train.tsv"] == MRPC_HEAD
    assert first[fixture_root / "MRPC/dev.tsv"] == MRPC_HEAD
    assert first[fixture_root / "MRPC/test.tsv"] == MRPC_TEST_HEAD
    for task in ("RTE", "WNLI"):
        assert first[fixture_root / task / "train.tsv"] == GLUE_HEAD
        assert first[fixture_root / task / "test.tsv"] == "index\tsentence1\tsentence2"
    cb = json.loads(first[fixture_root / "CB/val.jsonl"])
    assert list(cb) == ["premise", "hypothesis", "label", "idx"]
    copa = json.loads(first[fixture_root / "COPA/train.jsonl"])
    assert list(copa) == ["premise", "choice1", "choice2", "question", "label", "idx"]
    assert "label" not in json.loads(first[fixture_root / "COPA/test.jsonl"])
    assert sorted(p.name for p in (fixture_root / "CB").iterdir()) == [
        "test.jsonl",
        "train.jsonl",
        "val.jsonl",
    ]


def test_fixture_data_reads_back_with_labels_and_hidden_test(fixture_root: Path) -> None:
    for task in TASKS:
        splits = load_task(fixture_root, task)
        assert [len(splits[s]) for s in ("train", "dev", "test")] == [30, 9, 9]
        assert {e.label for e in splits["test"]} == {HIDDEN}
        classes = 3 if task == "CB" else 2
        assert {e.label for e in splits["train"]} == set(range(classes))
        assert {e.label for e in splits["dev"]} == set(range(classes))
        assert [e.idx for e in splits["test"]] == list(range(9))
    copa = load_task(fixture_root, "COPA")["train"][0]
    assert len(copa.texts) == 4 and copa.texts[3] in ("cause", "effect")


def test_fixture_data_is_deterministic(tmp_path: Path) -> None:
    a = write_fixture_data(tmp_path / "a", seed=5)
    b = write_fixture_data(tmp_path / "b", seed=5)
    files = list(a.rglob("*.*"))
    assert files
    for path in files:
        assert path.read_bytes() == (b / path.relative_to(a)).read_bytes()


def test_label_encodings(tmp_path: Path) -> None:
    rte = tmp_path / "rte.tsv"
    rte.write_text(f"{GLUE_HEAD}\n7\ta\tb\tnot_entailment\n8\tc\td\tentailment\n")
    assert [(e.idx, e.label) for e in read_file(rte, "RTE")] == [(7, 1), (8, 0)]
    cb = tmp_path / "cb.jsonl"
    rows = [
        {"premise": "p", "hypothesis": "h", "label": lab, "idx": i}
        for i, lab in enumerate(["entailment", "contradiction", "neutral"])
    ]
    cb.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert [e.label for e in read_file(cb, "CB")] == [0, 1, 2]


def test_mrpc_header_with_byte_order_mark_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "train.tsv"
    path.write_bytes(f"\ufeff{MRPC_HEAD}\r\n1\t11\t12\tA b.\tB a.\r\n".encode())
    (ex,) = read_file(path, "MRPC")
    assert ex.texts == ("A b.", "B a.") and ex.label == 1 and ex.idx == 0


MALFORMED = [
    # task, file name, content, labelled, expected "line N: problem"
    (
        "RTE",
        "train.tsv",
        "index\tsentence1\tsentence2\n0\ta\tb\n",
        True,
        "line 1: missing column 'label'",
    ),
    (
        "MRPC",
        "dev.tsv",
        "Quality\t#1 ID\t#2 ID\t#1 String\n",
        True,
        "line 1: missing column '#2 String'",
    ),
    (
        "RTE",
        "dev.tsv",
        f"{GLUE_HEAD}\n0\ta\tb\tentailment\n1\ta\tb\tmaybe\n",
        True,
        "line 3: unknown label 'maybe' in 'label'; allowed: 'entailment', 'not_entailment'",
    ),
    (
        "WNLI",
        "train.tsv",
        f"{GLUE_HEAD}\n0\ta\tb\t2\n",
        True,
        "line 2: unknown label '2' in 'label'; allowed: '0', '1'",
    ),
    (
        "RTE",
        "train.tsv",
        f"{GLUE_HEAD}\n0\ta\tentailment\n",
        True,
        "line 2: expected 4 tab-separated fields as in the header, got 3",
    ),
    ("RTE", "train.tsv", "", True, "line 1: empty file"),
    ("CB", "val.jsonl", "\n\n", True, "line 1: empty file"),
    ("RTE", "test.tsv", "index\tsentence1\tsentence2\n", False, "line 2: no examples after"),
    (
        "RTE",
        "test.tsv",
        "index\tsentence1\tsentence2\nx\ta\tb\n",
        False,
        "line 2: index 'x' is not an integer",
    ),
    (
        "CB",
        "train.jsonl",
        '{"premise": "p", "hypothesis": "h", "label": "neutral", "idx": 0}\n'
        '{"premise": "p", "hypothesis": "h", "label": "maybe", "idx": 1}\n',
        True,
        "line 2: unknown label 'maybe' in 'label'; allowed: 'entailment', 'contradiction', "
        "'neutral'",
    ),
    (
        "CB",
        "val.jsonl",
        '{"premise": "p", "label": "neutral", "idx": 0}\n',
        True,
        "line 1: missing field 'hypothesis'",
    ),
    (
        "CB",
        "train.jsonl",
        '{"premise": "p", "hypothesis": "h", "idx": 0}\n',
        True,
        "line 1: missing field 'label'",
    ),
    (
        "CB",
        "train.jsonl",
        '{"premise": "p", "hypothesis": "h", "label": "neutral"\n',
        True,
        "line 1: invalid JSON: Expecting ',' delimiter",
    ),
    ("COPA", "train.jsonl", '["premise"]\n', True, "line 1: expected a JSON object, got list"),
    (
        "COPA",
        "val.jsonl",
        '{"premise": "p", "choice1": "a", "choice2": "b", "question": "why", '
        '"label": 0, "idx": 0}\n',
        True,
        "line 1: unknown question 'why'; allowed: 'cause', 'effect'",
    ),
    (
        "COPA",
        "train.jsonl",
        '{"premise": "p", "choice1": "a", "choice2": "b", "question": '
        '"cause", "label": "1", "idx": 0}\n',
        True,
        "line 1: unknown label '1' in 'label'; allowed: 0, 1",
    ),
    (
        "COPA",
        "test.jsonl",
        '{"premise": "p", "choice1": "a", "choice2": "b", "question": "cause", "idx": "zero"}\n',
        False,
        "line 1: field 'idx' must be an integer, got 'zero'",
    ),
]


@pytest.mark.parametrize(("task", "name", "content", "labelled", "expected"), MALFORMED)
def test_malformed_file_raises_one_line_error_naming_file_and_line(
    tmp_path: Path, task: str, name: str, content: str, labelled: bool, expected: str
) -> None:
    path = tmp_path / name
    path.write_text(content)
    with pytest.raises(NluFormatError) as info:
        read_file(path, task, labelled=labelled)
    message = str(info.value)
    assert message.startswith(f"{path}, ")
    assert expected in message
    assert "\n" not in message
    assert isinstance(info.value, ValueError)


def test_test_split_labels_are_optional_but_train_labels_are_not(fixture_root: Path) -> None:
    path = split_path(fixture_root, "RTE", "test")
    assert all(e.label == HIDDEN for e in read_file(path, "RTE", labelled=False))
    with pytest.raises(NluFormatError, match="line 1: missing column 'label'"):
        read_file(path, "RTE", labelled=True)


def _write_config(tmp_path: Path, data_dir: Path) -> Path:
    cfg = tmp_path / "nlu.toml"
    cfg.write_text(
        f'out_dir = "{tmp_path / "runs"}"\n[data]\nname = "nlu"\ndata_dir = "{data_dir}"\n'
        'encoder = "tiny-roberta"\n[train]\nmethod = "single"\ntarget = "RTE"\nepochs = 1\n'
        "batch_size = 8\nchannels_last = false\n"
    )
    return cfg


def test_cli_exits_with_one_line_error_for_a_malformed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_fixture_data(tmp_path / "data", n_train=6, n_eval=3)
    bad = split_path(root, "WNLI", "dev")
    lines = bad.read_text().splitlines()
    lines[2] = lines[2].rsplit("\t", 1)[0] + "\tentailment"
    bad.write_text("\n".join(lines) + "\n")
    code = main(["run", str(_write_config(tmp_path, root))])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.splitlines() == [
        f"alphavil: error: {bad}, line 3: unknown label 'entailment' in 'label'; allowed: '0', '1'"
    ]
    assert not (tmp_path / "runs").exists()


def test_cli_names_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = write_fixture_data(tmp_path / "data", n_train=6, n_eval=3)
    split_path(root, "CB", "dev").unlink()
    code = main(["run", str(_write_config(tmp_path, root))])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert f"{root / 'CB' / 'val.jsonl'}: no such file" in err


@pytest.mark.skipif(importlib.util.find_spec("datasets") is not None, reason="datasets installed")
def test_hub_loading_without_datasets_says_what_to_install() -> None:
    with pytest.raises(ImportError, match="pip install datasets"):
        load_from_hub("RTE")
