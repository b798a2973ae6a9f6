"""The ``data.name = "nlu"`` dataset: config table, tasks and builder (αVIL paper §4.2).

Example ``[data]`` table (see ``configs/nlu_paper.toml`` and ``docs/nlu.md``)::

    [data]
    name = "nlu"
    data_dir = "data/glue"       # holds MRPC/ RTE/ WNLI/ (GLUE TSV) and CB/ COPA/ (SuperGLUE)
    encoder = "roberta-base"     # or a local folder, "minilm", "tiny-roberta"

Model selection uses the official dev sets, as in the paper, because the test labels are hidden.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from torch import nn

from alphavil.config import ConfigError, bounded
from alphavil.data.batching import MultiTaskData
from alphavil.datasets import DatasetSpec
from alphavil.nlu.data import build_nlu_data, cap, nlu_tasks
from alphavil.nlu.readers import TASKS, load_from_hub, load_task
from alphavil.tasks import Task


@dataclass
class NluDataConfig:
    """The ``[data]`` table of an NLU run."""

    # Folder with MRPC/, RTE/, WNLI/ (GLUE TSV) and CB/, COPA/ (SuperGLUE JSONL) as distributed;
    # a relative path is taken from the working directory.
    data_dir: str = ""
    tasks: list[str] = field(default_factory=lambda: list(TASKS))
    # Hugging Face encoder: hub name, local folder, "minilm" (offline CPU stand-in) or
    # "tiny-roberta" (random init, tests).
    encoder: str = "roberta-base"
    max_length: int = bounded(256, 8, 512)  # tokens per (truncated) sentence pair
    hub: bool = False  # read the tasks from the dataset hub (needs `datasets` and network)
    copa_swap: bool = True  # add choice-swapped COPA training rows (alphavil.nlu.data)
    max_train: int = bounded(0, 0)  # keep at most this many training examples per task; 0 = all


def tasks(cfg: NluDataConfig) -> list[Task]:
    """The configured tasks (names case-insensitive, canonical upper case), without loading."""
    names = []
    for name in cfg.tasks:
        canon = name.upper()
        if canon not in TASKS:
            raise ConfigError(
                f"data.tasks: {name!r} is not an NLU task; allowed: {', '.join(TASKS)}"
            )
        if canon in names:
            raise ConfigError(f"data.tasks: {canon!r} is listed twice")
        names.append(canon)
    if not names:
        raise ConfigError(f"data.tasks: empty; choose from {', '.join(TASKS)}")
    return nlu_tasks(names)


def build(cfg: NluDataConfig) -> tuple[MultiTaskData, Callable[[], nn.Module]]:
    """Read and tokenise the data once; return it and a factory for a fresh model."""
    from alphavil.nlu.encoder import load_tokenizer, nlu_model

    task_list = tasks(cfg)
    if not cfg.hub and not cfg.data_dir:
        raise ConfigError(
            "data.data_dir: not set; point it at the folder holding "
            f"{', '.join(t.name for t in task_list)} (or set data.hub = true)"
        )
    splits = {}
    for t in task_list:
        try:
            by_split = load_from_hub(t.name) if cfg.hub else load_task(cfg.data_dir, t.name)
        except (FileNotFoundError, ImportError) as err:
            raise ConfigError(f"data: {err}") from None
        splits[t.name] = {**by_split, "train": cap(by_split["train"], cfg.max_train)}
    try:
        tokenizer = load_tokenizer(cfg.encoder)
    except (OSError, ImportError, ValueError) as err:
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ConfigError(f"data.encoder: cannot load {cfg.encoder!r}: {first}") from None
    data = build_nlu_data(splits, tokenizer, max_length=cfg.max_length, copa_swap=cfg.copa_swap)
    return data, lambda tasks=task_list: nlu_model(cfg.encoder, tasks)


SPEC = DatasetSpec(config=NluDataConfig, tasks=tasks, build=build)
