"""Readers for the five NLU tasks of the αVIL paper (§4.2) in their distributed formats.

Layout under a data root, as the GLUE download script and the SuperGLUE zip files unpack::

    <root>/MRPC/{train,dev,test}.tsv     GLUE: Quality  #1 ID  #2 ID  #1 String  #2 String
    <root>/RTE/{train,dev,test}.tsv      GLUE: index  sentence1  sentence2  label
    <root>/WNLI/{train,dev,test}.tsv     GLUE: index  sentence1  sentence2  label
    <root>/CB/{train,val,test}.jsonl     SuperGLUE: premise, hypothesis, label, idx
    <root>/COPA/{train,val,test}.jsonl   SuperGLUE: premise, choice1, choice2, question, label, idx

GLUE TSVs are read unquoted (split on tabs, as GLUE's own loaders do; the MRPC header may start
with a byte-order mark). Labels become class indices in the order of :data:`FORMATS`; the official
test files have no labels, which become ``-1`` (:data:`HIDDEN`). A malformed file raises
:class:`NluFormatError` with a one-line message naming the file, the line and the problem.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from alphavil.config import ConfigError

TASKS = ("CB", "COPA", "MRPC", "RTE", "WNLI")
SPLITS = ("train", "dev", "test")
HIDDEN = -1  # label of an example whose label the benchmark keeps secret
COPA_QUESTIONS = ("cause", "effect")


class NluFormatError(ConfigError):
    """A malformed data file; ``str(err)`` is ``"<file>, line <n>: <problem>"`` on one line.

    A ``ValueError`` (through :class:`~alphavil.config.ConfigError`, so the ``alphavil`` CLI
    reports it as one line and exits with status 2, like any other bad input).
    """

    def __init__(self, path: str | Path, line: int, problem: str) -> None:
        self.path, self.line = str(path), line
        self.problem = " ".join(problem.split())  # one line, whatever the problem text holds
        super().__init__(f"{self.path}, line {line}: {self.problem}")


@dataclass(frozen=True)
class Example:
    """One example: its benchmark id, its text fields (in :attr:`TaskFormat.text_fields` order)
    and its class index (:data:`HIDDEN` if unknown)."""

    idx: int
    texts: tuple[str, ...]
    label: int


@dataclass(frozen=True)
class TaskFormat:
    """How a task's files look: benchmark, text columns, label column and label values.

    ``labels`` lists the label values as written in the files, in class-index order; the same
    strings/values are written back in submission files (:mod:`alphavil.nlu.predict`).
    """

    name: str
    benchmark: Literal["glue", "superglue"]
    text_fields: tuple[str, ...]
    label_field: str
    labels: tuple[str | int, ...]
    index_field: str

    @property
    def num_classes(self) -> int:
        """Size of the task's classifier head (paper §4.2: 3 for CB, 2 for the others)."""
        return len(self.labels)


FORMATS: dict[str, TaskFormat] = {
    "CB": TaskFormat(
        "CB",
        "superglue",
        ("premise", "hypothesis"),
        "label",
        ("entailment", "contradiction", "neutral"),
        "idx",
    ),
    "COPA": TaskFormat(
        "COPA", "superglue", ("premise", "choice1", "choice2", "question"), "label", (0, 1), "idx"
    ),
    "MRPC": TaskFormat("MRPC", "glue", ("#1 String", "#2 String"), "Quality", ("0", "1"), "index"),
    "RTE": TaskFormat(
        "RTE",
        "glue",
        ("sentence1", "sentence2"),
        "label",
        ("entailment", "not_entailment"),
        "index",
    ),
    "WNLI": TaskFormat("WNLI", "glue", ("sentence1", "sentence2"), "label", ("0", "1"), "index"),
}
FILE_NAMES = {
    "glue": {"train": "train.tsv", "dev": "dev.tsv", "test": "test.tsv"},
    "superglue": {"train": "train.jsonl", "dev": "val.jsonl", "test": "test.jsonl"},
}
# Dataset-hub copies (field names as in the hub; labels already class indices, test labels -1).
HUB = {
    "CB": ("aps/super_glue", "cb"),
    "COPA": ("aps/super_glue", "copa"),
    "MRPC": ("nyu-mll/glue", "mrpc"),
    "RTE": ("nyu-mll/glue", "rte"),
    "WNLI": ("nyu-mll/glue", "wnli"),
}
_HUB_TEXTS = {
    "MRPC": ("sentence1", "sentence2"),
    "RTE": ("sentence1", "sentence2"),
    "WNLI": ("sentence1", "sentence2"),
}


def task_format(task: str) -> TaskFormat:
    """The format of ``task`` (one of :data:`TASKS`); ``KeyError`` naming them otherwise."""
    if task not in FORMATS:
        raise KeyError(f"unknown NLU task {task!r}; allowed: {', '.join(TASKS)}")
    return FORMATS[task]


def split_path(root: str | Path, task: str, split: str) -> Path:
    """Where ``split`` of ``task`` lives under ``root`` (SuperGLUE calls dev ``val.jsonl``)."""
    fmt = task_format(task)
    return Path(root) / task / FILE_NAMES[fmt.benchmark][split]


def read_split(root: str | Path, task: str, split: str) -> list[Example]:
    """Read one split of one task from the distributed layout under ``root``."""
    path = split_path(root, task, split)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path}: no such file; expected <data_dir>/{task}/{path.name} "
            f"as distributed with {task_format(task).benchmark.upper()} (see docs/nlu.md)"
        )
    return read_file(path, task, labelled=split != "test")


def load_task(root: str | Path, task: str) -> dict[str, list[Example]]:
    """Train, dev and test examples of ``task`` from ``root``."""
    return {split: read_split(root, task, split) for split in SPLITS}


def read_file(path: str | Path, task: str, *, labelled: bool = True) -> list[Example]:
    """Read one file of ``task``; ``labelled=False`` (test files) makes the label optional."""
    fmt = task_format(task)
    try:
        text = Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as err:
        line = err.object[: err.start].count(b"\n") + 1
        raise NluFormatError(path, line, f"not UTF-8 text ({err.reason})") from None
    if not text.strip():
        raise NluFormatError(path, 1, "empty file")
    lines = [ln.rstrip("\r") for ln in text.split("\n")]
    reader = _read_tsv if fmt.benchmark == "glue" else _read_jsonl
    return reader(Path(path), lines, fmt, labelled)


def _label(path: Path, line: int, fmt: TaskFormat, value: Any, labelled: bool) -> int:
    if not labelled and value in (HIDDEN, str(HIDDEN)) and not isinstance(value, bool):
        return HIDDEN  # hub exports write hidden test labels as -1
    if isinstance(value, bool) or value not in fmt.labels:
        allowed = ", ".join(repr(v) for v in fmt.labels)
        raise NluFormatError(
            path, line, f"unknown label {value!r} in {fmt.label_field!r}; allowed: {allowed}"
        )
    return fmt.labels.index(value)


def _read_tsv(path: Path, lines: list[str], fmt: TaskFormat, labelled: bool) -> list[Example]:
    header = lines[0].split("\t")
    col = {name.strip(): i for i, name in enumerate(header)}
    needed = [*fmt.text_fields, *([fmt.label_field] if labelled else [])]
    for name in needed:
        if name not in col:
            raise NluFormatError(path, 1, f"missing column {name!r}; the header has {header}")
    has_label = fmt.label_field in col
    examples: list[Example] = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) != len(header):
            raise NluFormatError(
                path,
                n,
                f"expected {len(header)} tab-separated fields as in the header, got {len(fields)}",
            )
        label = HIDDEN
        if has_label:
            label = _label(path, n, fmt, fields[col[fmt.label_field]].strip(), labelled)
        idx = len(examples)
        if fmt.index_field in col:
            raw = fields[col[fmt.index_field]].strip()
            if not raw.isdigit():
                raise NluFormatError(path, n, f"{fmt.index_field} {raw!r} is not an integer")
            idx = int(raw)
        examples.append(Example(idx, tuple(fields[col[f]] for f in fmt.text_fields), label))
    if not examples:
        raise NluFormatError(path, 2, "no examples after the header")
    return examples


def _read_jsonl(path: Path, lines: list[str], fmt: TaskFormat, labelled: bool) -> list[Example]:
    examples: list[Example] = []
    for n, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as err:
            problem = f"invalid JSON: {err.msg} at column {err.colno}"
            raise NluFormatError(path, n, problem) from None
        if not isinstance(obj, dict):
            raise NluFormatError(path, n, f"expected a JSON object, got {type(obj).__name__}")
        examples.append(_json_example(path, n, fmt, obj, labelled, len(examples)))
    return examples


def _json_example(
    path: Path, n: int, fmt: TaskFormat, obj: dict[str, Any], labelled: bool, position: int
) -> Example:
    texts = []
    for name in fmt.text_fields:
        if name not in obj:
            raise NluFormatError(path, n, f"missing field {name!r}")
        if not isinstance(obj[name], str):
            raise NluFormatError(path, n, f"field {name!r} must be a string, got {obj[name]!r}")
        texts.append(obj[name])
    if fmt.name == "COPA" and obj["question"] not in COPA_QUESTIONS:
        raise NluFormatError(
            path, n, f"unknown question {obj['question']!r}; allowed: 'cause', 'effect'"
        )
    if fmt.label_field in obj:
        label = _label(path, n, fmt, obj[fmt.label_field], labelled)
    elif labelled:
        raise NluFormatError(path, n, f"missing field {fmt.label_field!r}")
    else:
        label = HIDDEN
    idx = obj.get(fmt.index_field, position)
    if isinstance(idx, bool) or not isinstance(idx, int):
        raise NluFormatError(path, n, f"field {fmt.index_field!r} must be an integer, got {idx!r}")
    return Example(idx, tuple(texts), label)


def load_from_hub(task: str) -> dict[str, list[Example]]:
    """Train, dev (``validation``) and test of ``task`` from the dataset hub (needs network).

    Uses the optional ``datasets`` package (``pip install datasets``), imported only here.
    """
    fmt = task_format(task)
    try:
        import datasets
    except ImportError:
        raise ImportError(
            "data.hub = true needs the optional 'datasets' package: pip install datasets"
        ) from None
    repo, name = HUB[task]
    dataset = datasets.load_dataset(repo, name)
    fields = _HUB_TEXTS.get(task, fmt.text_fields)
    out: dict[str, list[Example]] = {}
    for split, hub_split in zip(SPLITS, ("train", "validation", "test"), strict=True):
        out[split] = [
            Example(int(row["idx"]), tuple(str(row[f]) for f in fields), int(row["label"]))
            for row in dataset[hub_split]
        ]
    return out
