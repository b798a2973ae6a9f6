"""The ``data.name = "text"`` dataset: your own text classification tables on any local Hugging
Face encoder (one head per task, the heads of :func:`alphavil.nlu.encoder.nlu_model`).

Example ``[data]`` table (``docs/nlu.md``, "Your own text tables")::

    [data]
    name = "text"
    hf_path = "models/my-bert"     # a local folder written by save_pretrained (model + tokenizer)
    max_length = 128               # tokens per (truncated) text or text pair
    pooling = "first"              # heads read the first token ("first") or the token mean ("mean")
    split = [0.8, 0.1, 0.1]        # train/dev/test fractions of a table given by `path`
    data_seed = 0                  # seeds that split

    [[data.tasks]]
    name = "sentiment"
    path = "reviews.csv"           # .csv, .tsv or .jsonl; relative paths from the working directory
    text = "review"                # a column, or two for a text pair: ["premise", "hypothesis"]
    label = "stars"
    # classes = ["1", "2", "3"]    # optional: then a label outside them is an error

    [[data.tasks]]
    name = "topic"
    train = "topic_train.jsonl"    # or three files instead of `path`
    dev = "topic_dev.jsonl"
    test = "topic_test.jsonl"

Several tasks may read one table, each its own label column: a row whose label is empty or
missing is not labelled for that task, so each task keeps only its labelled rows. A table given by
``path`` is split by rows once, whatever task reads it, so a row is in the same split for every
task (no test text is trained on by another task). Classes are the sorted distinct labels
(numerically when every label is an integer) unless ``classes`` lists them.

Nothing is fetched (``local_files_only``) and nothing is written next to the tables or the model.
Every problem is a one-line :class:`~alphavil.config.ConfigError` naming the key or the file
(and line), raised before a run folder is made: the tables are read when the config is resolved
(``tasks`` needs the classes), the model and tokenizer when the data is built.
"""

from __future__ import annotations

import copy
import logging
import random
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from alphavil.config import ConfigError, bounded, choice
from alphavil.data.batching import SPLITS, SeparateInputData
from alphavil.data.table_reader import Table, missing, read_table
from alphavil.datasets import DatasetSpec
from alphavil.nlu.local_model import load_local, model_folder, tokenise
from alphavil.tasks import Task

logger = logging.getLogger("alphavil")

TASK_KEYS = ("name", "path", "train", "dev", "test", "text", "label", "classes")


@dataclass
class TextDataConfig:
    """The ``[data]`` table of a text-table run (module docstring)."""

    # A local Hugging Face model folder (config.json, weights, tokenizer files) as written by
    # save_pretrained; loaded with AutoModel/AutoTokenizer and local_files_only=True.
    hf_path: str = ""
    max_length: int = bounded(128, 8, 8192)  # tokens per (truncated) text or text pair
    pooling: str = choice("first", "first", "mean")  # what the heads read
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train/dev/test
    data_seed: int = bounded(0, 0, 2**32 - 1)  # seeds the split of tables given by `path`
    tasks: list[dict] = field(default_factory=list)  # [[data.tasks]] tables


@dataclass(frozen=True)
class TaskTable:
    """One validated ``[[data.tasks]]`` entry."""

    name: str
    files: dict[str, str]  # {"all": path} or {"train": ..., "dev": ..., "test": ...}
    text: tuple[str, ...]  # one column, or two for a text pair
    label: str
    classes: tuple[str, ...] | None


@dataclass
class TextTask:
    """A task's examples: split -> (texts per row, label index per row), and its classes."""

    task: Task
    classes: tuple[str, ...]
    splits: dict[str, tuple[list[tuple[str, ...]], list[int]]]


# ---------------------------------------------------------------- config entries


def _task_table(i: int, entry: Any, seen: set[str]) -> TaskTable:
    key = f"data.tasks[{i}]"
    if not isinstance(entry, dict):
        raise ConfigError(f"{key}: expected a table, got {type(entry).__name__} {entry!r}")
    for k in entry:
        if k not in TASK_KEYS:
            raise ConfigError(f"unknown key '{key}.{k}'; allowed: {', '.join(TASK_KEYS)}")
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{key}.name: missing; every task needs a name (a non-empty string)")
    if name in seen:
        raise ConfigError(f"{key}.name: task {name!r} is listed twice")
    seen.add(name)
    for k in ("path", "train", "dev", "test", "label"):
        if k in entry and (not isinstance(entry[k], str) or not entry[k]):
            raise ConfigError(f"{key}.{k}: expected a non-empty string, got {entry[k]!r}")
    given = [k for k in ("train", "dev", "test") if k in entry]
    if "path" in entry and given:
        raise ConfigError(
            f"{key}: give either path (split by data.split) or train, dev and test, not both"
        )
    if "path" in entry:
        files = {"all": entry["path"]}
    elif len(given) == 3:
        files = {k: entry[k] for k in SPLITS}
    elif given:
        missing = [k for k in SPLITS if k not in entry]
        raise ConfigError(f"{key}: {', '.join(missing)} missing; give train, dev and test files")
    else:
        raise ConfigError(f"{key}.path: missing; a .csv, .tsv or .jsonl table (or train/dev/test)")
    text = entry.get("text", "text")
    texts = (text,) if isinstance(text, str) else text
    if not (
        isinstance(texts, (list, tuple))
        and len(texts) in (1, 2)
        and all(isinstance(t, str) and t for t in texts)
    ):
        raise ConfigError(
            f"{key}.text: expected a column name or two for a text pair, got {text!r}"
        )
    classes = entry.get("classes")
    if classes is not None:
        ok = isinstance(classes, list) and all(
            isinstance(c, (str, int)) and not isinstance(c, bool) for c in classes
        )
        if not ok:
            raise ConfigError(f"{key}.classes: expected a list of labels, got {classes!r}")
        classes = tuple(str(c) for c in classes)
        if len(set(classes)) != len(classes) or len(classes) < 2:
            raise ConfigError(f"{key}.classes: needs two or more distinct labels, got {classes}")
    return TaskTable(name, files, tuple(texts), entry.get("label", "label"), classes)


def _split_fractions(split: Sequence[float]) -> tuple[float, float, float]:
    if len(split) != 3 or any(f < 0 for f in split) or abs(sum(split) - 1.0) > 1e-6:
        raise ConfigError(
            f"data.split: expected three train/dev/test fractions >= 0 summing to 1, got "
            f"{list(split)}"
        )
    return split[0], split[1], split[2]


# ---------------------------------------------------------------- rows of the tables


def _split_of_rows(n: int, fractions: tuple[float, float, float], seed: int) -> list[str]:
    """Each row's split: a seeded random permutation cut by the fractions (deterministic)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    b1 = round(fractions[0] * n)
    b2 = max(b1, round((fractions[0] + fractions[1]) * n))
    out = [""] * n
    for rank, row in enumerate(order):
        out[row] = "train" if rank < b1 else "dev" if rank < b2 else "test"
    return out


def _numeric_key(labels: set[str]) -> Callable[[str], Any]:
    if all(re.fullmatch(r"-?\d+", x) for x in labels):
        return int
    return str


def _task_rows(
    spec: TaskTable, table: Table, rows: list[tuple[int, dict[str, Any]]]
) -> list[tuple[int, tuple[str, ...], str]]:
    """(line, texts, label) of the rows labelled for ``spec``."""
    for column in (*spec.text, spec.label):
        if table.columns and column not in table.columns:  # no columns: no rows either
            raise ConfigError(
                f"{table.path}: no column {column!r} (task {spec.name!r}); columns: "
                f"{', '.join(table.columns) or '(none)'}"
            )
    out = []
    for line, row in rows:
        label = row.get(spec.label)
        if missing(label):
            continue  # not labelled for this task
        texts = []
        for column in spec.text:
            value = row.get(column)
            if value is None:
                raise ConfigError(
                    f"{table.path}, line {line}: no value in text column {column!r} "
                    f"(task {spec.name!r})"
                )
            texts.append(value if isinstance(value, str) else str(value))
        out.append((line, tuple(texts), str(label).strip()))
    return out


def load_text_tasks(cfg: TextDataConfig) -> list[TextTask]:
    """Read, split and check every ``[[data.tasks]]`` table (one-line ConfigError otherwise)."""
    if not cfg.tasks:
        raise ConfigError(
            "data.tasks: none; add a [[data.tasks]] table (name, path, text, label) per task"
        )
    seen: set[str] = set()
    specs = [_task_table(i, e, seen) for i, e in enumerate(cfg.tasks)]
    fractions = None
    out = []
    for spec in specs:
        by_split: dict[str, list[tuple[int, tuple[str, ...], str]]] = {}
        if "all" in spec.files:
            fractions = fractions or _split_fractions(cfg.split)
            table = read_table(spec.files["all"])
            where = _split_of_rows(len(table.rows), fractions, cfg.data_seed)
            for split in SPLITS:
                rows = [r for r, s in zip(table.rows, where, strict=True) if s == split]
                by_split[split] = _task_rows(spec, table, rows)
        else:
            for split in SPLITS:
                table = read_table(spec.files[split])
                by_split[split] = _task_rows(spec, table, table.rows)
        for split in SPLITS:
            if not by_split[split]:
                source = (
                    f"{spec.files['all']} split by data.split = {list(cfg.split)}"
                    if "all" in spec.files
                    else spec.files[split]
                )
                raise ConfigError(
                    f"task {spec.name!r}: the {split} split has no labelled rows "
                    f"({source}, label column {spec.label!r})"
                )
        labels = {lab for rows in by_split.values() for _, _, lab in rows}
        if spec.classes is not None:
            classes = spec.classes
            for split in SPLITS:
                path = spec.files.get(split, spec.files.get("all", ""))
                for line, _, lab in by_split[split]:
                    if lab not in classes:
                        raise ConfigError(
                            f"{path}, line {line}: label {lab!r} in {spec.label!r} is not one "
                            f"of task {spec.name!r}'s classes: {', '.join(classes)}"
                        )
        else:
            classes = tuple(sorted(labels, key=_numeric_key(labels)))
            if len(classes) < 2:
                raise ConfigError(
                    f"task {spec.name!r}: every label in {spec.label!r} is {classes[0]!r}; a "
                    "classification task needs two or more classes (or list them in classes)"
                )
        index = {c: i for i, c in enumerate(classes)}
        splits = {
            s: ([texts for _, texts, _ in rows], [index[lab] for _, _, lab in rows])
            for s, rows in by_split.items()
        }
        out.append(TextTask(Task(spec.name, len(classes)), classes, splits))
    return out


# ---------------------------------------------------------------- the dataset spec


def tasks(cfg: TextDataConfig) -> list[Task]:
    """The configured tasks; reads the tables (classes come from the labels)."""
    return [t.task for t in load_text_tasks(cfg)]


def build(cfg: TextDataConfig) -> tuple[SeparateInputData, Callable[..., nn.Module]]:
    """Read and tokenise the tables once; load the model once; return the data (every training
    step a batch of every task, ``data.stream = "joint"``, so every method runs) and a factory
    for a fresh model: a copy of the loaded encoder with newly initialised heads."""
    from alphavil.nlu.data import PadCollate
    from alphavil.nlu.encoder import nlu_model

    text_tasks = load_text_tasks(cfg)
    folder = model_folder(cfg.hf_path)
    tokenizer, encoder = load_local(folder)
    positions = getattr(getattr(encoder, "config", None), "max_position_embeddings", None)
    if isinstance(positions, int) and cfg.max_length > positions:
        raise ConfigError(
            f"data.max_length: {cfg.max_length} is more than the model's {positions} positions"
        )
    start = time.perf_counter()
    examples: dict[str, dict[str, list[dict]]] = {}
    labels: dict[str, dict[str, Tensor]] = {}
    for t in text_tasks:
        examples[t.task.name], labels[t.task.name] = {}, {}
        for split, (texts, ys) in t.splits.items():
            examples[t.task.name][split] = tokenise(tokenizer, texts, cfg.max_length)
            labels[t.task.name][split] = torch.tensor(ys, dtype=torch.long)
    logger.info(
        "text tables tokenised in %.1f s; train/dev/test rows per task %s; classes %s",
        time.perf_counter() - start,
        {t: [len(examples[t][s]) for s in SPLITS] for t in examples},
        {t.task.name: list(t.classes) for t in text_tasks},
    )
    pad = tokenizer.pad_token_id
    if pad is None:
        pad = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    data = SeparateInputData(
        [t.task for t in text_tasks], examples, labels, PadCollate(int(pad)), stream="joint"
    )
    own = [t.task for t in text_tasks]

    def make_model(tasks: Sequence[Task] = own) -> nn.Module:
        return nlu_model(copy.deepcopy(encoder), tasks, cfg.pooling)

    return data, make_model


SPEC = DatasetSpec(config=TextDataConfig, tasks=tasks, build=build)
