"""Small synthetic NLU data in the exact GLUE / SuperGLUE file formats (for tests and CPU demos).

The real CB, COPA, MRPC, RTE and WNLI files (αVIL paper §4.2) cannot be redistributed or fetched
offline, so :func:`write_fixture_data` writes template sentences with a learnable signal (lexical
overlap decides paraphrase and entailment; CB has all three classes) in the official layouts,
headers, field names and label encodings, test labels hidden as distributed::

    python -m alphavil.nlu.fixtures data/nlu-fixture            # a few dozen examples per task
    python -m alphavil.nlu.fixtures data/nlu-demo --sizes demo    # 320/80/80: enough to learn
    python -m alphavil.nlu.fixtures data/nlu-sized --sizes paper  # the real split sizes
"""

from __future__ import annotations

import argparse
import json
import random
import zlib
from collections.abc import Callable
from pathlib import Path

from alphavil.nlu.predict import write_bytes
from alphavil.nlu.readers import FORMATS, TASKS, split_path

# (train, dev, test) per task: the official split sizes (reference-setups.md §5).
PAPER_SIZES = {
    "CB": (250, 56, 250),
    "COPA": (400, 100, 500),
    "MRPC": (3668, 408, 1725),
    "RTE": (2490, 277, 3000),
    "WNLI": (635, 71, 146),
}
SUBJECTS = (
    "The farmer",
    "A teacher",
    "The child",
    "My neighbour",
    "The doctor",
    "A student",
    "The pilot",
    "Her brother",
    "The old man",
    "A tourist",
)
VERBS = (
    ("painted", "paint"),
    ("sold", "sell"),
    ("repaired", "repair"),
    ("cleaned", "clean"),
    ("bought", "buy"),
    ("lost", "lose"),
    ("found", "find"),
    ("carried", "carry"),
)
OBJECTS = (
    "the fence",
    "a bicycle",
    "the old car",
    "a small boat",
    "the kitchen",
    "a red kite",
    "the window",
    "a wooden chair",
    "the big box",
    "a green lamp",
)
PLACES = (
    "in the morning",
    "after lunch",
    "near the river",
    "at the market",
    "on Sunday",
    "before the storm",
    "in the garden",
    "at night",
)
CAUSAL = (
    ("It started to rain.", "The street got wet."),
    ("The man was hungry.", "He ate a sandwich."),
    ("The glass fell off the table.", "It broke into pieces."),
    ("The girl studied all week.", "She passed the exam."),
    ("The battery was empty.", "The phone turned off."),
    ("The sun came out.", "The snow melted."),
    ("The dog barked loudly.", "The baby woke up."),
    ("The road was icy.", "The car slid off the road."),
    ("The shop had a sale.", "Many people bought shoes."),
    ("The boy forgot his key.", "He could not open the door."),
    ("The water was boiling.", "She made some tea."),
    ("The music was too loud.", "The neighbours complained."),
)

# The CPU demo's sizes: with the paper's 25% sample per epoch each task sees 80 rows (10 batches
# of 8) per epoch, enough for MiniLM to move off chance within a few epochs; the default small
# sizes (36/12/12: 9 rows per epoch) only exercise the code.
DEMO_SIZES = (320, 80, 80)

Row = tuple[list[str], int]  # texts, class index


def _clause(rng: random.Random) -> tuple[str, int, str, str]:
    subj, v, obj = rng.choice(SUBJECTS), rng.randrange(len(VERBS)), rng.choice(OBJECTS)
    return subj, v, obj, rng.choice(PLACES)


def _other(rng: random.Random, seq: tuple[str, ...], value: str) -> str:
    return rng.choice([x for x in seq if x != value])


def _mrpc(rng: random.Random, label: int) -> list[str]:
    subj, v, obj, place = _clause(rng)
    s1 = f"{subj} {VERBS[v][0]} {obj} {place}."
    if label == 1:
        return [s1, f"{place.capitalize()}, {subj.lower()} {VERBS[v][0]} {obj}."]
    return [s1, f"{subj} {_other(rng, OBJECTS, obj)} was seen {_other(rng, PLACES, place)}."]


def _rte(rng: random.Random, label: int) -> list[str]:
    subj, v, obj, place = _clause(rng)
    premise = f"{subj} {VERBS[v][0]} {obj} {place}. Later everybody went home."
    if label == 0:  # entailment
        return [premise, f"{subj} {VERBS[v][0]} {obj}."]
    v2 = rng.choice([i for i in range(len(VERBS)) if i != v])
    return [premise, f"{subj} {VERBS[v2][0]} {_other(rng, OBJECTS, obj)}."]


def _wnli(rng: random.Random, label: int) -> list[str]:
    subj, obj = rng.choice(SUBJECTS), rng.choice(OBJECTS)
    s1 = f"{subj} could not lift {obj} because it was too heavy."
    referent = obj if label == 1 else subj.lower()
    return [s1, f"{referent[0].upper()}{referent[1:]} was too heavy."]


def _cb(rng: random.Random, label: int) -> list[str]:
    subj, v, obj, place = _clause(rng)
    premise = f"B: I talked to them {place}. A: {subj} said that {subj.lower()} "
    premise += f"{VERBS[v][0]} {obj}."
    if label == 0:  # entailment
        return [premise, f"{subj} {VERBS[v][0]} {obj}"]
    if label == 1:  # contradiction
        return [premise, f"{subj} did not {VERBS[v][1]} {obj}"]
    return [premise, f"{_other(rng, SUBJECTS, subj)} wanted {_other(rng, OBJECTS, obj)}"]


def _copa(rng: random.Random, label: int) -> list[str]:
    k = rng.randrange(len(CAUSAL))
    wrong = CAUSAL[rng.choice([i for i in range(len(CAUSAL)) if i != k])]
    question = rng.choice(("cause", "effect"))
    premise, right, other = (
        (CAUSAL[k][1], CAUSAL[k][0], wrong[0])
        if question == "cause"
        else (CAUSAL[k][0], CAUSAL[k][1], wrong[1])
    )
    choices = [right, other] if label == 0 else [other, right]
    return [premise, *choices, question]


MAKERS: dict[str, Callable[[random.Random, int], list[str]]] = {
    "CB": _cb,
    "COPA": _copa,
    "MRPC": _mrpc,
    "RTE": _rte,
    "WNLI": _wnli,
}


def _rows(task: str, n: int, rng: random.Random) -> list[Row]:
    k = FORMATS[task].num_classes
    labels = [i % k for i in range(n)]  # balanced, every class present once n >= k
    rng.shuffle(labels)
    return [(MAKERS[task](rng, y), y) for y in labels]


def _tsv(task: str, split: str, rows: list[Row], rng: random.Random) -> str:
    fmt = FORMATS[task]
    if task == "MRPC":
        head = ["Quality" if split != "test" else "index", "#1 ID", "#2 ID", *fmt.text_fields]
        body = [
            [
                str(fmt.labels[y]) if split != "test" else str(i),
                str(rng.randrange(10**5, 10**7)),
                str(rng.randrange(10**5, 10**7)),
                *texts,
            ]
            for i, (texts, y) in enumerate(rows)
        ]
    else:
        head = ["index", *fmt.text_fields, *(["label"] if split != "test" else [])]
        body = [
            [str(i), *texts, *([str(fmt.labels[y])] if split != "test" else [])]
            for i, (texts, y) in enumerate(rows)
        ]
    return "".join("\t".join(r) + "\n" for r in [head, *body])


def _jsonl(task: str, split: str, rows: list[Row]) -> str:
    fmt = FORMATS[task]
    lines = []
    for i, (texts, y) in enumerate(rows):
        obj: dict[str, object] = dict(zip(fmt.text_fields, texts, strict=True))
        if split != "test":
            obj["label"] = fmt.labels[y]
        obj["idx"] = i
        lines.append(json.dumps(obj) + "\n")
    return "".join(lines)


def write_fixture_data(
    root: str | Path,
    n_train: int = 36,
    n_eval: int = 12,
    seed: int = 0,
    *,
    sizes: str = "small",
    tasks: tuple[str, ...] = TASKS,
) -> Path:
    """Write train/dev/test files of ``tasks`` under ``root`` in the distributed layout.

    Args:
        root: Output folder (created); gets ``MRPC/train.tsv``, ``CB/val.jsonl`` etc.
        n_train: Training examples per task (``sizes="small"``).
        n_eval: Dev and test examples per task (``sizes="small"``).
        seed: Makes the files deterministic.
        sizes: ``"small"``, ``"demo"`` (320/80/80 per task, the CPU demo) or ``"paper"`` (the
            official split sizes, e.g. MRPC 3668/408/1725).
    Returns:
        ``root`` as a :class:`~pathlib.Path`.
    """
    if sizes not in ("small", "demo", "paper"):
        raise ValueError(f"sizes must be 'small', 'demo' or 'paper', got {sizes!r}")
    root = Path(root)
    for task in tasks:
        rng = random.Random(seed * 1_000_003 + zlib.crc32(task.encode()))
        counts = {"paper": PAPER_SIZES[task], "demo": DEMO_SIZES}.get(
            sizes, (n_train, n_eval, n_eval)
        )
        for split, n in zip(("train", "dev", "test"), counts, strict=True):
            rows = _rows(task, n, rng)
            text = (
                _tsv(task, split, rows, rng)
                if FORMATS[task].benchmark == "glue"
                else _jsonl(task, split, rows)
            )
            write_bytes(split_path(root, task, split), text.encode("utf-8"))
    return root


def main(argv: list[str] | None = None) -> None:
    """``python -m alphavil.nlu.fixtures OUT_DIR [--n-train N] [--n-eval N] [--seed S]``."""
    parser = argparse.ArgumentParser(
        prog="python -m alphavil.nlu.fixtures",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("out_dir")
    parser.add_argument("--n-train", type=int, default=36)
    parser.add_argument("--n-eval", type=int, default=12)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sizes", choices=("small", "demo", "paper"), default="small")
    args = parser.parse_args(argv)
    root = write_fixture_data(args.out_dir, args.n_train, args.n_eval, args.seed, sizes=args.sizes)
    print(f"wrote CB, COPA, MRPC, RTE and WNLI fixture files under {root}")


if __name__ == "__main__":
    main()
