"""Your own files by config (``data.name = "files"``): image folders and CSV / JSON-lines tables.

Each ``[[data.tasks]]`` entry is one classification task read from its own source:

* ``kind = "images"``: a folder with one sub-folder per class (:mod:`alphavil.data.images`);
* ``kind = "table"``: a ``.csv`` or ``.jsonl`` table, ``features`` columns in and a ``label``
  column out (:mod:`alphavil.data.tables`). Several tasks may read one table, each its own label
  column; a missing label means "not labelled for this task".

A source is either ``path`` (split into train / dev / test by ``data.split`` fractions, drawn
from ``data_seed``; the same rows for every task reading the same table) or the three files
``train``, ``dev`` and ``test``. A task's classes are its ``classes`` list, else the sorted class
sub-folder names or distinct labels of its training source (numbers sorted as numbers); a label
outside them is an error. Relative paths are read from the current directory. Tasks that all
read one table, with every label present, share their inputs (one forward pass serves all
tasks); otherwise each task keeps its own examples. Every problem with the files is one
:class:`~alphavil.config.ConfigError` line (``alphavil: error: ...``, exit 2), and nothing is
ever written next to them.
"""

from __future__ import annotations

import logging
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from alphavil.config import ConfigError, bounded, build_section, choice
from alphavil.data import images, tables
from alphavil.data.batching import SPLITS, MultiTaskData, SeparateInputData, SharedInputData
from alphavil.datasets import DatasetSpec
from alphavil.models.image_encoders import LeNet, small_cnn
from alphavil.models.multihead import MultiHeadModel
from alphavil.tasks import Task

log = logging.getLogger(__name__)

KINDS = ("images", "table")
MODELS = ("auto", "lenet", "cnn", "mlp")


@dataclass
class FileTask:
    """One ``[[data.tasks]]`` entry."""

    name: str = ""
    kind: str = choice("images", *KINDS)
    path: str = ""  # one source, split by data.split; or train, dev and test below
    train: str = ""
    dev: str = ""
    test: str = ""
    features: list[str] = field(default_factory=list)  # table: the input columns
    label: str = ""  # table: the label column ("" = the task's name)
    classes: list[str] = field(default_factory=list)  # the classes in order ([] = found)

    @property
    def label_column(self) -> str:
        return self.label or self.name

    def sources(self) -> dict[str, Path]:
        """split -> file or folder (only ``"all"`` for one source to split)."""
        if self.path:
            return {"all": Path(self.path)}
        return {s: Path(getattr(self, s)) for s in SPLITS}


@dataclass
class FilesConfig:
    """``[data]`` table for ``name = "files"``."""

    tasks: Any = field(default_factory=list)  # [[data.tasks]]: a list of FileTask tables
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # train, dev, test
    data_seed: int = bounded(0, 0, 2**32 - 1)  # draws the split of `path` sources
    image_size: list[int] = field(default_factory=lambda: [28, 28])  # height, width
    channels: int = bounded(1, 1, 3)  # 1 = grayscale, 3 = RGB
    model: str = choice("auto", *MODELS)  # auto: cnn for images, mlp for tables
    hidden: int = bounded(64, 1)  # width of the shared layer (mlp, cnn)
    standardize: bool = True  # tables: scale features by their training mean and std

    def __post_init__(self) -> None:
        if len(self.split) != 3 or any(f < 0 for f in self.split) or sum(self.split) <= 0:
            raise ConfigError(
                f"data.split: expected three fractions [train, dev, test] >= 0, got {self.split}"
            )
        if len(self.image_size) != 2 or any(s < 1 for s in self.image_size):
            raise ConfigError(
                f"data.image_size: expected [height, width] >= 1, got {self.image_size}"
            )
        if self.channels == 2:
            raise ConfigError("data.channels: 1 (grayscale) or 3 (RGB), got 2")


def file_tasks(cfg: FilesConfig) -> list[FileTask]:
    """The validated ``[[data.tasks]]`` entries (no file is read)."""
    if not cfg.tasks or not isinstance(cfg.tasks, list):
        raise ConfigError(
            'data.tasks: data.name = "files" needs [[data.tasks]] tables, e.g. '
            'name = "species", kind = "images", path = "photos"'
        )
    out: list[FileTask] = []
    for i, table in enumerate(cfg.tasks):
        where = f"data.tasks[{i}]"
        entry: FileTask = build_section(FileTask, table, where)
        if not entry.name:
            raise ConfigError(f"{where}: needs a name")
        try:
            Task(entry.name, 1)
        except ValueError as err:
            raise ConfigError(f"{where}: {err}") from None
        if entry.name in [t.name for t in out]:
            raise ConfigError(f"{where}: task {entry.name!r} is named twice")
        split_files = [s for s in SPLITS if getattr(entry, s)]
        if bool(entry.path) == bool(split_files) or (split_files and len(split_files) < 3):
            raise ConfigError(
                f"{where} ({entry.name}): give path (split by data.split) or all of train, dev "
                "and test"
            )
        if entry.kind == "table" and not entry.features:
            raise ConfigError(f"{where} ({entry.name}): a table task needs features = [columns]")
        if entry.kind == "images" and (entry.features or entry.label):
            raise ConfigError(f"{where} ({entry.name}): features and label are for tables")
        if len(set(entry.classes)) != len(entry.classes):
            raise ConfigError(f"{where} ({entry.name}): classes has duplicates")
        out.append(entry)
    kinds = {t.kind for t in out}
    if len(kinds) > 1:
        raise ConfigError(
            "data.tasks: image and table tasks cannot share one model; use one kind per run"
        )
    model = cfg.model
    if (model == "mlp" and "images" in kinds) or (model in ("lenet", "cnn") and "table" in kinds):
        raise ConfigError(
            f"data.model: {model!r} does not read {kinds.pop()}; use lenet or cnn for images, "
            "mlp for tables"
        )
    if "table" in kinds and len({len(t.features) for t in out}) > 1:
        raise ConfigError(
            "data.tasks: table tasks share one MLP, so they need the same number of features; "
            f"got {[len(t.features) for t in out]}"
        )
    return out


# ---------------------------------------------------------------------------------------------
# Reading (tables are read once per process and file version)

_TABLES: dict[tuple[str, int, int], list[dict[str, Any]]] = {}


def _rows(path: Path, where: str) -> list[dict[str, Any]]:
    try:
        st = path.stat()
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
    except OSError:
        return tables.read_table(path, where)  # the one-line error
    if key not in _TABLES:
        _TABLES.clear()
        _TABLES[key] = tables.read_table(path, where)
    return _TABLES[key]


def _sort_labels(labels: set[str]) -> list[str]:
    try:
        return sorted(labels, key=float)
    except ValueError:
        return sorted(labels)


def _where(i: int, t: FileTask) -> str:
    return f"data.tasks[{i}] ({t.name})"


def task_classes(cfg: FilesConfig) -> dict[str, list[str]]:
    """Task name -> its classes, in label order (reads folder names and label columns)."""
    out = {}
    for i, t in enumerate(file_tasks(cfg)):
        src = t.sources()
        first = src.get("all", src.get("train"))
        assert first is not None
        if t.classes:
            out[t.name] = list(t.classes)
        elif t.kind == "images":
            out[t.name] = images.class_folders(first, _where(i, t))
        else:
            rows = _rows(first, _where(i, t))
            tables.check_columns(first, rows, [t.label_column])
            found = {tables.label_of(r, t.label_column) for r in rows}
            found.discard(None)
            if not found:
                raise ConfigError(f"{first}: column {t.label_column!r} has no labels")
            out[t.name] = _sort_labels(found)  # type: ignore[arg-type]
        if len(out[t.name]) < 2:
            raise ConfigError(f"{_where(i, t)}: needs at least 2 classes, got {out[t.name]}")
    return out


def tasks(cfg: FilesConfig) -> list[Task]:
    return [Task(name, len(classes)) for name, classes in task_classes(cfg).items()]


def split_rows(n: int, fractions: Sequence[float], seed: int, key: str) -> dict[str, Tensor]:
    """A random split of ``range(n)`` into train / dev / test by ``fractions`` (normalised),
    fixed per (seed, key); dev and test are rounded, train is the rest."""
    total = sum(fractions)
    n_dev, n_test = (round(f / total * n) for f in fractions[1:])
    rng = np.random.default_rng(np.random.SeedSequence([seed, zlib.crc32(key.encode())]))
    perm = torch.from_numpy(rng.permutation(n))
    return {
        "dev": perm[:n_dev].sort().values,
        "test": perm[n_dev : n_dev + n_test].sort().values,
        "train": perm[n_dev + n_test :].sort().values,
    }


def _labels(values: Sequence[str | None], classes: list[str], where: str) -> Tensor:
    """Class indices (-1 = not labelled); a label outside ``classes`` is one error."""
    index = {c: i for i, c in enumerate(classes)}
    out = []
    for n, v in enumerate(values, 1):
        if v is not None and v not in index:
            raise ConfigError(f"{where} row {n}: label {v!r} is not one of the classes {classes}")
        out.append(-1 if v is None else index[v])
    return torch.tensor(out, dtype=torch.long)


def _read_source(
    cfg: FilesConfig, t: FileTask, path: Path, classes: list[str], where: str
) -> tuple[Tensor, Tensor]:
    """(inputs, labels with -1 where missing) of one file or folder."""
    if t.kind == "images":
        files, labels = images.list_images(path, classes, where)
        return images.load_images(files, cfg.image_size, cfg.channels), torch.tensor(labels)
    rows = _rows(path, where)
    tables.check_columns(path, rows, [*t.features, t.label_column])
    y = _labels([tables.label_of(r, t.label_column) for r in rows], classes, str(path))
    return tables.features(path, rows, t.features), y


def _task_splits(
    cfg: FilesConfig, i: int, t: FileTask, classes: list[str]
) -> dict[str, tuple[Tensor, Tensor]]:
    """split -> (inputs, labels) of one task, only its labelled examples."""
    where = _where(i, t)
    src = t.sources()
    out: dict[str, tuple[Tensor, Tensor]] = {}
    if "all" in src:
        x, y = _read_source(cfg, t, src["all"], classes, where)
        for split, idx in split_rows(len(y), cfg.split, cfg.data_seed, str(src["all"])).items():
            out[split] = x[idx], y[idx]
    else:
        out = {s: _read_source(cfg, t, src[s], classes, where) for s in SPLITS}
    for split in SPLITS:
        x, y = out[split]
        keep = y >= 0
        out[split] = x[keep], y[keep]
        if not int(keep.sum()):
            source = src.get(split, src.get("all"))
            how = f"data.split = {cfg.split} of" if "all" in src else "in"
            raise ConfigError(
                f"{where}: the {split} split is empty ({how} {str(source)!r}: no labelled examples)"
            )
    return out


def _standardize(data: dict[str, dict[str, tuple[Tensor, Tensor]]]) -> None:
    """Scale every task's features by the training mean and std of all tasks' examples."""
    train = torch.cat([d["train"][0] for d in data.values()])
    mean, std = train.mean(0), train.std(0, unbiased=False).clamp_min(1e-6)
    for d in data.values():
        for s, (x, y) in d.items():
            d[s] = ((x - mean) / std, y)


def _shared_table(cfg: FilesConfig, entries: list[FileTask]) -> bool:
    first = entries[0]
    return first.kind == "table" and all(
        t.sources() == first.sources() and t.features == first.features for t in entries
    )


def build_data(cfg: FilesConfig) -> MultiTaskData:
    """Read every task's files: shared inputs where every task reads one table and every row has
    every label, otherwise each task's own labelled examples."""
    entries, classes = file_tasks(cfg), task_classes(cfg)
    task_list = [Task(n, len(c)) for n, c in classes.items()]
    for name, cl in classes.items():
        log.debug("files: task %s has %d classes: %s", name, len(cl), cl)
    if _shared_table(cfg, entries):
        shared = _shared_inputs(cfg, entries, classes)
        if shared is not None:
            return SharedInputData(task_list, *shared)
    per_task = {t.name: _task_splits(cfg, i, t, classes[t.name]) for i, t in enumerate(entries)}
    if entries[0].kind == "table" and cfg.standardize:
        _standardize(per_task)
    examples = {n: {s: xy[0] for s, xy in d.items()} for n, d in per_task.items()}
    labels = {n: {s: xy[1] for s, xy in d.items()} for n, d in per_task.items()}
    data = SeparateInputData(task_list, examples, labels)
    data.classes = classes  # type: ignore[attr-defined]
    return data


def _shared_inputs(
    cfg: FilesConfig, entries: list[FileTask], classes: dict[str, list[str]]
) -> tuple[dict[str, Tensor], dict[str, dict[str, Tensor]]] | None:
    """(inputs, targets) when every row of the one table has every task's label, else None."""
    per_task = {t.name: _task_splits_all(cfg, i, t, classes[t.name]) for i, t in enumerate(entries)}
    if any(bool((y < 0).any()) for d in per_task.values() for _, y in d.values()):
        return None
    name = entries[0].name
    inputs = {s: per_task[name][s][0] for s in SPLITS}
    if cfg.standardize:
        mean = inputs["train"].mean(0)
        std = inputs["train"].std(0, unbiased=False).clamp_min(1e-6)
        inputs = {s: (x - mean) / std for s, x in inputs.items()}
    targets = {s: {n: d[s][1] for n, d in per_task.items()} for s in SPLITS}
    for s in SPLITS:
        if not len(inputs[s]):
            _task_splits(cfg, 0, entries[0], classes[name])  # raises the empty-split error
    return inputs, targets


def _task_splits_all(
    cfg: FilesConfig, i: int, t: FileTask, classes: list[str]
) -> dict[str, tuple[Tensor, Tensor]]:
    """split -> (inputs, labels with -1 kept) of one task."""
    src = t.sources()
    if "all" not in src:
        return {s: _read_source(cfg, t, src[s], classes, _where(i, t)) for s in SPLITS}
    x, y = _read_source(cfg, t, src["all"], classes, _where(i, t))
    parts = split_rows(len(y), cfg.split, cfg.data_seed, str(src["all"]))
    return {s: (x[idx], y[idx]) for s, idx in parts.items()}


# ---------------------------------------------------------------------------------------------
# Models


def model_factory(cfg: FilesConfig) -> Callable[..., nn.Module]:
    """A factory for the shared encoder (by ``data.model``) with one linear head per task."""
    entries = file_tasks(cfg)
    kind = entries[0].kind
    model = cfg.model if cfg.model != "auto" else ("cnn" if kind == "images" else "mlp")
    if model == "lenet" and min(cfg.image_size) < 16:
        raise ConfigError(f"data.model: lenet needs images of at least 16×16, got {cfg.image_size}")

    def make(task_list: Sequence[Task]) -> MultiHeadModel:
        encoder: nn.Module
        if model == "lenet":
            encoder, width = LeNet(cfg.channels, cfg.image_size), 50
        elif model == "cnn":
            encoder, width = small_cnn(cfg.channels, cfg.hidden), cfg.hidden
        else:
            encoder = nn.Sequential(nn.Linear(len(entries[0].features), cfg.hidden), nn.ReLU())
            width = cfg.hidden
        heads = {t.name: nn.Linear(width, t.num_outputs) for t in task_list}
        return MultiHeadModel(encoder, heads)

    return make


def build(cfg: FilesConfig) -> tuple[MultiTaskData, Callable[..., nn.Module]]:
    """The tasks' data and a factory for the shared model with one head per task."""
    factory = model_factory(cfg)
    return build_data(cfg), factory


SPEC = DatasetSpec(config=FilesConfig, tasks=tasks, build=build)
