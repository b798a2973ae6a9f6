"""``data.name = "text"``: the user's CSV/JSON-lines tables on a local Hugging Face model folder.

A tiny random BERT and its tokenizer are saved with ``save_pretrained`` to a temporary folder and
loaded by path (no network). Bad files and keys give one line and exit 2; nothing the user owns
(tables, model folder) is modified.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from pathlib import Path

import pytest
import torch

from alphavil.cli import main
from alphavil.config import POPULATION_METHODS, ConfigError, load_config
from alphavil.datasets import dataset_names
from alphavil.methods import method_names
from alphavil.nlu.encoder import FirstTokenEncoder, MeanTokenEncoder
from alphavil.nlu.text_tables import _split_of_rows, load_text_tasks
from alphavil.runner import execute, load_data

transformers = pytest.importorskip("transformers")

WORDS = "good great fine bad awful poor movie film plot the a is was not very".split()  # noqa: SIM905
ROOT = Path(__file__).resolve().parents[2]


def save_tiny_bert(folder: Path) -> Path:
    """A randomly initialised 1-layer BERT and a word-piece tokenizer, saved for loading by path."""
    special = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    vocab = {w: i for i, w in enumerate(special + WORDS)}
    tokenizer = transformers.BertTokenizer(vocab=vocab)
    config = transformers.BertConfig(
        vocab_size=len(vocab),
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=64,
    )
    torch.manual_seed(0)
    transformers.logging.set_verbosity_error()
    transformers.logging.disable_progress_bar()
    transformers.BertModel(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def write_tables(folder: Path, n: int = 40) -> Path:
    """reviews.csv (two label columns, one partly empty), pairs.jsonl (a text pair) and
    topic_{train,dev,test}.jsonl (separate files)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = random.Random(0)
    with (folder / "reviews.csv").open("w", newline="") as f:
        f.write("id,review,stars,long\n")
        for i in range(n):
            y = rng.randint(0, 2)
            words = [["bad", "awful", "poor"], ["fine", "the", "a"], ["good", "great", "very"]][y]
            text = " ".join(rng.choice(words) for _ in range(3)) + " movie"
            hidden = "" if i % 2 else str(int(i % 4 == 0))  # every other row unlabelled
            f.write(f'{i},"{text}, id{i}",{y},{hidden}\n')
    with (folder / "pairs.jsonl").open("w") as f:
        for i in range(n):
            same = i % 2
            a = rng.choice(WORDS)
            b = a if same else rng.choice(WORDS)
            f.write(json.dumps({"premise": a, "hypothesis": b, "label": "yes" if same else "no"}))
            f.write("\n")
    for split, size in (("train", 20), ("dev", 6), ("test", 6)):
        with (folder / f"topic_{split}.jsonl").open("w") as f:
            for i in range(size):
                f.write(json.dumps({"text": f"{rng.choice(WORDS)} plot", "label": i % 2}) + "\n")
    return folder


TASKS_TOML = """
[[data.tasks]]
name = "stars"
path = "reviews.csv"
text = "review"
label = "stars"

[[data.tasks]]
name = "long"
path = "reviews.csv"
text = "review"
label = "long"

[[data.tasks]]
name = "pair"
path = "pairs.jsonl"
text = ["premise", "hypothesis"]

[[data.tasks]]
name = "topic"
train = "topic_train.jsonl"
dev = "topic_dev.jsonl"
test = "topic_test.jsonl"
"""


def text_toml(extra_data: str = "", tasks: str = TASKS_TOML, train: str = "") -> str:
    return f"""out_dir = "runs"

[data]
name = "text"
hf_path = "model"
max_length = 32
{extra_data}
{tasks}

[train]
target = "stars"
epochs = 1
batch_size = 8
train_fraction = 1.0
threads = 1
optimizer = {{name = "AdamW", lr = 1e-3}}
{train}
"""


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert(tmp_path_factory.mktemp("hf") / "model")


@pytest.fixture
def user(tmp_path: Path, model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The user's folder: tables and a copy of the saved model; the working directory."""
    write_tables(tmp_path)
    (tmp_path / "model").mkdir()
    for f in model_dir.iterdir():
        (tmp_path / "model" / f.name).write_bytes(f.read_bytes())
    (tmp_path / "run.toml").write_text(text_toml())
    monkeypatch.chdir(tmp_path)
    return tmp_path


def fingerprint(folder: Path) -> dict[str, str]:
    """Every file the user owns (outside runs/) and its content hash."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "runs" not in p.relative_to(folder).parts
    }


def test_text_is_a_registered_dataset() -> None:
    assert "text" in dataset_names()


def test_tables_tasks_classes_and_hidden_labels(user: Path) -> None:
    cfg = load_config("run.toml")
    assert [(t.name, t.num_outputs) for t in load_text_tasks(cfg.data) for t in [t.task]] == [
        ("stars", 3),
        ("long", 2),
        ("pair", 2),
        ("topic", 2),
    ]
    data, make_model = load_data(cfg)
    n = {
        t.name: sum(data.num_examples(s, t.name) for s in ("train", "dev", "test"))
        for t in data.tasks
    }
    assert n == {"stars": 40, "long": 20, "pair": 40, "topic": 32}  # long: every other row
    assert [data.num_examples(s, "topic") for s in ("train", "dev", "test")] == [20, 6, 6]
    tt = {t.task.name: t for t in load_text_tasks(cfg.data)}
    assert tt["pair"].classes == ("no", "yes") and tt["stars"].classes == ("0", "1", "2")
    pair = data.examples["pair"]["train"][0]  # type: ignore[attr-defined]
    assert 1 in pair["token_type_ids"]  # a text pair: the second text has token type 1
    inputs, targets = next(data.eval_batches("dev", ["pair"], batch_size=4))
    model = make_model()
    model.eval()
    out = model(inputs, ["pair"])["pair"]
    assert out.shape == (len(targets["pair"]), 2)
    assert set(model.heads) == {"stars", "long", "pair", "topic"}
    assert model.heads["stars"][2].out_features == 3


def test_numeric_labels_sort_as_numbers_and_given_classes_keep_their_order(user: Path) -> None:
    with (user / "num.csv").open("w") as f:
        f.write("text,label\n" + "".join(f"good,{y}\n" for y in [10, 2, 9, 2, 10, 9] * 4))
    tasks = '[[data.tasks]]\nname = "n"\npath = "num.csv"\n'
    cfg = load_config(
        None, ["data.name=text", "train.target=n", "data.tasks=[{name='n', path='num.csv'}]"]
    )
    assert load_text_tasks(cfg.data)[0].classes == ("2", "9", "10")
    (user / "c.toml").write_text(
        text_toml(tasks=tasks + 'classes = ["10", 9, "2", "7"]\n', train="")
    )
    cfg = load_config("c.toml", ["train.target=n"])
    (t,) = load_text_tasks(cfg.data)
    assert t.classes == ("10", "9", "2", "7") and t.task.num_outputs == 4


def test_split_by_seed_is_deterministic_disjoint_and_shared_by_the_tasks_of_a_table(
    user: Path,
) -> None:
    def rows(seed: int) -> dict[str, dict[str, set[str]]]:
        cfg = load_config("run.toml", [f"data.data_seed={seed}"])
        return {
            t.task.name: {s: {x[0] for x in texts} for s, (texts, _) in t.splits.items()}
            for t in load_text_tasks(cfg.data)
        }

    a, b, c = rows(0), rows(0), rows(1)
    assert a == b and a["stars"] != c["stars"]
    stars = a["stars"]
    assert [len(stars[s]) for s in ("train", "dev", "test")] == [32, 4, 4]
    assert not (stars["train"] & stars["dev"]) and not (stars["train"] & stars["test"])
    assert not (stars["dev"] & stars["test"])
    for split in ("train", "dev", "test"):  # a row labelled for both is in the same split
        assert a["long"][split] <= stars[split]
    where = _split_of_rows(10, (0.5, 0.25, 0.25), 3)
    assert where == _split_of_rows(10, (0.5, 0.25, 0.25), 3)
    assert [where.count(s) for s in ("train", "dev", "test")] == [5, 3, 2]


@pytest.mark.parametrize("pooling", ["first", "mean"])
def test_pooling(user: Path, pooling: str) -> None:
    cfg = load_config("run.toml", [f"data.pooling={pooling}"])
    data, make_model = load_data(cfg)
    torch.manual_seed(0)
    model = make_model()
    cls = {"first": FirstTokenEncoder, "mean": MeanTokenEncoder}[pooling]
    assert type(model.encoder) is cls
    model.eval()
    collate = data.collate  # type: ignore[attr-defined]
    short = data.examples["stars"]["train"][0]  # type: ignore[attr-defined]
    long = {"input_ids": short["input_ids"] + [7, 8, 9, 3]}
    long["token_type_ids"] = [0] * len(long["input_ids"])
    alone = model(collate([short]), ["stars"])["stars"][0]
    padded = model(collate([short, long]), ["stars"])["stars"][0]
    assert torch.allclose(alone, padded, atol=1e-5)  # padding is excluded either way
    other = model(
        collate(
            [dict(short, input_ids=short["input_ids"][:1] + [9] * (len(short["input_ids"]) - 1))]
        ),
        ["stars"],
    )
    assert not torch.allclose(other["stars"][0], alone)


@pytest.mark.parametrize("method", [*method_names(), *sorted(POPULATION_METHODS)])
def test_every_method_runs_one_epoch(user: Path, method: str) -> None:
    before = fingerprint(user)
    overrides = [f"train.method={method}", "diw.patience=2", "alphavil.dev_fraction=0.5"]
    try:
        cfg = load_config("run.toml", overrides)
        summary = execute(cfg, user / "runs" / method, show_progress=False)
    except (ConfigError, ValueError) as err:  # population methods may refuse, in one line
        assert method in POPULATION_METHODS, err
        assert "\n" not in str(err)
        return
    assert summary["status"] == "completed"
    assert fingerprint(user) == before
    assert (user / "runs" / method / "summary.json").is_file()


def test_it_runs_under_a_label_budget(user: Path) -> None:
    budget = ["data.budget.target=12", "data.budget.dev=4", "data.budget.aux=16"]
    cfg = load_config("run.toml", ["train.method=alphavil", "alphavil.dev_fraction=0.5", *budget])
    data, _ = load_data(cfg)
    assert data.num_examples("train", "stars") == 12 and data.num_examples("dev", "stars") == 4
    assert data.num_examples("train", "pair") == 16 and data.num_examples("dev", "pair") == 0
    summary = execute(cfg, user / "runs" / "budget", show_progress=False)
    assert summary["status"] == "completed" and list(summary["best"]) == ["stars"]


BAD_TASK = '[[data.tasks]]\nname = "t"\n'
STARS = BAD_TASK + 'path = "reviews.csv"\ntext = "review"\nlabel = "stars"\n'
SEPARATE = 'train = "topic_train.jsonl"\ndev = "empty.jsonl"\ntest = "topic_test.jsonl"\n'
ERRORS = [
    # (what the user wrote, a regex the one-line error matches)
    ({"tasks": STARS.replace('"review"', '"body"')},
     r"reviews\.csv: no column 'body' \(task 't'\); columns: id, review, stars, long"),
    ({"tasks": STARS + "classes = [0, 1]\n"},
     r"reviews\.csv, line \d+: label '2' in 'stars' is not one of task 't''s classes: 0, 1"),
    ({"tasks": STARS, "data": "split = [1.0, 0.0, 0.0]"},
     r"task 't': the dev split has no labelled rows \(reviews\.csv split by data\.split"),
    ({"tasks": BAD_TASK + SEPARATE},
     r"task 't': the dev split has no labelled rows \(empty\.jsonl, label column 'label'\)"),
    ({"tasks": BAD_TASK + 'path = "nope.csv"\n'}, r"nope\.csv: no such file"),
    ({"tasks": BAD_TASK + 'path = "reviews.txt"\n'}, r"unknown table format '\.txt'; use \.csv"),
    ({"tasks": BAD_TASK + 'path = "broken.jsonl"\n'}, r"broken\.jsonl, line 2: not valid JSON"),
    ({"tasks": STARS + 'train = "a.csv"\n'}, r"data\.tasks\[0\]: give either path"),
    ({"tasks": BAD_TASK + 'train = "a.csv"\n'}, r"data\.tasks\[0\]: dev, test missing"),
    ({"tasks": STARS + 'txt = "review"\n'}, r"unknown key 'data\.tasks\[0\]\.txt'"),
    ({"tasks": STARS.replace('"review"', '["a", "b", "c"]')}, r"data\.tasks\[0\]\.text: expected"),
    ({"tasks": BAD_TASK + 'path = "one.csv"\n'}, r"task 't': every label in 'label' is 'x'"),
    ({"tasks": ""}, r"data\.tasks: none; add a \[\[data\.tasks\]\] table"),
    ({"tasks": BAD_TASK + 'path = "latin1.csv"\n'}, r"latin1\.csv: not UTF-8 text"),
    ({"hf": "missing"}, r"data\.hf_path: 'missing' does not exist"),
    ({"hf": "empty_dir"}, r"data\.hf_path: 'empty_dir' has no config\.json"),
    ({"hf": "no_tokenizer"}, r"data\.hf_path: 'no_tokenizer' has no tokenizer files"),
    ({"hf": "no_weights"}, r"data\.hf_path: cannot load a model from 'no_weights': "),
    ({"max_length": "100"}, r"data\.max_length: 100 is more than the model's 64 positions"),
]  # fmt: skip


@pytest.mark.parametrize(("wrote", "message"), ERRORS, ids=[m[:40] for _, m in ERRORS])
def test_bad_input_is_one_line_exit_2_and_nothing_is_written(
    user: Path, capsys: pytest.CaptureFixture[str], wrote: dict[str, str], message: str
) -> None:
    (user / "empty.jsonl").write_text("\n")
    (user / "broken.jsonl").write_text('{"text": "a", "label": 1}\n{"text": "b", label: 1}\n')
    (user / "one.csv").write_text("text,label\n" + "good,x\n" * 10)
    (user / "latin1.csv").write_bytes("text,label\ncaf\xe9,1\n".encode("latin-1"))
    (user / "empty_dir").mkdir()
    (user / "no_tokenizer").mkdir()
    (user / "no_tokenizer" / "config.json").write_text((user / "model" / "config.json").read_text())
    (user / "no_weights").mkdir()
    for name in ("config.json", "tokenizer.json", "tokenizer_config.json"):
        (user / "no_weights" / name).write_bytes((user / "model" / name).read_bytes())
    toml = text_toml(wrote.get("data", ""), wrote.get("tasks", TASKS_TOML))
    toml = toml.replace("max_length = 32", f"max_length = {wrote.get('max_length', 32)}")
    (user / "bad.toml").write_text(
        toml.replace('hf_path = "model"', f'hf_path = "{wrote.get("hf", "model")}"')
    )
    before = fingerprint(user)
    code = main(["run", "bad.toml", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith("alphavil: error: ") and re.search(message, err), err
    assert fingerprint(user) == before
    assert not (user / "runs").exists()


def test_the_docs_config_runs(user: Path) -> None:
    """docs/nlu.md's text-table config and tables, run on the tiny saved model."""
    doc = (ROOT / "docs" / "nlu.md").read_text()
    section = doc[doc.index("## Your own text tables") :]
    blocks = re.findall(r"```(\w+) file=(\S+)\n(.*?)```", section, re.S)
    assert {name for _, name, _ in blocks} >= {"text_tables.toml", "reviews.csv"}
    for _, name, body in blocks:
        (user / name).write_text(body)
    code = main(
        [
            "run",
            "text_tables.toml",
            "data.hf_path=model",
            "data.max_length=32",
            "out_dir=runs",
            "--quiet",
        ]
    )
    assert code == 0
