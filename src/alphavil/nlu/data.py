"""NLU examples as encoder inputs: task formatting, tokenisation once per run, dynamic padding.

Every task becomes sentence pairs (paper §4.2: "prepare the data for all tasks such that is
suitable as Transformer encoder input"): CB (premise, hypothesis), MRPC (#1 String, #2 String),
RTE and WNLI (sentence1, sentence2).

**COPA format** (the paper gives CoPA a 2-output head but not its input): one sequence pair per
question, ``A = premise + cue`` with the cue "What was the cause of this?" / "What happened as a
result?" for ``question = cause / effect``, and ``B = choice1 <sep> choice2`` (the tokenizer's
separator token); the 2-way head on ``<s>`` predicts the label 0/1 (which choice). Why this one:

* it is exactly the paper's head (two output units on the start token, like MRPC, RTE, WNLI);
* one row per question, so the training loop's accuracy *is* COPA question accuracy and the test
  probabilities are one row per test question, ready for the submission file;
* the alternatives (a 1-unit scorer per choice, or a binary classifier per (premise, choice) pair
  with question accuracy computed outside the loop) need a different head or a second metric.

Against position bias, each training question is also added with its choices swapped and the
label flipped (``copa_swap``; 400 -> 800 training rows); dev and test are not augmented.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from alphavil.data.batching import SeparateInputData
from alphavil.nlu.readers import HIDDEN, SPLITS, Example, task_format
from alphavil.tasks import Task

logger = logging.getLogger("alphavil")

COPA_CUES = {"cause": "What was the cause of this?", "effect": "What happened as a result?"}
Tokenised = dict[str, list[int]]  # input_ids (and token_type_ids for BERT-style encoders)


def nlu_tasks(names: Sequence[str]) -> list[Task]:
    """:class:`~alphavil.tasks.Task` objects for NLU task names (3 classes for CB, else 2)."""
    return [Task(n, task_format(n).num_classes) for n in names]


def pair_texts(
    task: str, examples: Sequence[Example], *, sep: str = "|", swap: bool = False
) -> tuple[list[str], list[str], list[int]]:
    """Texts A, texts B and labels of ``examples``; COPA as in the module docstring.

    ``swap`` (COPA training only) appends every labelled question with its choices swapped.
    """
    if task != "COPA":
        return (
            [e.texts[0] for e in examples],
            [e.texts[1] for e in examples],
            [e.label for e in examples],
        )
    a: list[str] = []
    b: list[str] = []
    labels: list[int] = []
    for e in examples:
        premise, c1, c2, question = e.texts
        a.append(f"{premise} {COPA_CUES[question]}")
        b.append(f"{c1} {sep} {c2}")
        labels.append(e.label)
    if swap:
        for e in examples:
            if e.label != HIDDEN:
                premise, c1, c2, question = e.texts
                a.append(f"{premise} {COPA_CUES[question]}")
                b.append(f"{c2} {sep} {c1}")
                labels.append(1 - e.label)
    return a, b, labels


def tokenise(tokenizer: Any, a: list[str], b: list[str], max_length: int) -> list[Tokenised]:
    """Token ids of each pair (longest-first truncation to ``max_length``)."""
    enc = tokenizer(a, b, truncation=True, max_length=max_length)
    keys = [k for k in ("input_ids", "token_type_ids") if k in enc]
    return [{k: list(enc[k][i]) for k in keys} for i in range(len(a))]


class PadCollate:
    """Pads a list of tokenised examples to the longest one (dynamic padding).

    Returns ``input_ids``, ``attention_mask`` (and ``token_type_ids`` if the examples have them)
    as ``(B, L)`` int64 tensors, ``L`` the longest example of the batch.
    """

    def __init__(self, pad_id: int) -> None:
        self.pad_id = pad_id

    def __call__(self, batch: list[Tokenised]) -> dict[str, Tensor]:
        n = max(len(x["input_ids"]) for x in batch)
        out = {
            "input_ids": torch.tensor(
                [x["input_ids"] + [self.pad_id] * (n - len(x["input_ids"])) for x in batch]
            ),
            "attention_mask": torch.tensor(
                [[1] * len(x["input_ids"]) + [0] * (n - len(x["input_ids"])) for x in batch]
            ),
        }
        if "token_type_ids" in batch[0]:
            out["token_type_ids"] = torch.tensor(
                [x["token_type_ids"] + [0] * (n - len(x["token_type_ids"])) for x in batch]
            )
        return out


def cap(examples: list[Example], limit: int, seed: int = 0) -> list[Example]:
    """A fixed random subset of ``limit`` examples in file order (all of them if ``limit <= 0``)."""
    if limit <= 0 or limit >= len(examples):
        return examples
    keep = sorted(random.Random(seed).sample(range(len(examples)), limit))
    return [examples[i] for i in keep]


def build_nlu_data(
    splits: Mapping[str, Mapping[str, list[Example]]],
    tokenizer: Any,
    *,
    max_length: int = 256,
    copa_swap: bool = True,
) -> SeparateInputData:
    """Tokenise every split of every task once and wrap them for the training loop.

    Args:
        splits: task -> split ("train", "dev", "test") -> examples.
        tokenizer: A ``transformers`` tokenizer (or :class:`~alphavil.nlu.encoder.HashTokenizer`).
        max_length: Longest tokenised pair; longer ones are truncated longest-first.
        copa_swap: Add choice-swapped COPA training rows (module docstring).
    """
    start = time.perf_counter()
    sep = tokenizer.sep_token if isinstance(getattr(tokenizer, "sep_token", None), str) else "|"
    examples: dict[str, dict[str, list[Tokenised]]] = {}
    labels: dict[str, dict[str, Tensor]] = {}
    truncated = 0
    for task, by_split in splits.items():
        examples[task], labels[task] = {}, {}
        for split in SPLITS:
            swap = copa_swap and split == "train"
            a, b, y = pair_texts(task, by_split[split], sep=sep, swap=swap)
            examples[task][split] = tokenise(tokenizer, a, b, max_length)
            labels[task][split] = torch.tensor(y, dtype=torch.long)
            truncated += sum(len(x["input_ids"]) >= max_length for x in examples[task][split])
    sizes = {t: [len(examples[t][s]) for s in SPLITS] for t in examples}
    logger.info(
        "NLU data tokenised in %.1f s; train/dev/test rows per task %s; %d pairs cut "
        "to max_length %d",
        time.perf_counter() - start,
        sizes,
        truncated,
        max_length,
    )
    return SeparateInputData(
        nlu_tasks(list(splits)), examples, labels, PadCollate(int(tokenizer.pad_token_id))
    )
