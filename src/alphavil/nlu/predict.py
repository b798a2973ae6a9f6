"""Leaderboard submission files from NLU runs, single or ensembled (αVIL paper §4.2, Table 2).

The paper submitted, for each method, the predictions of an ensemble of its trained models to the
GLUE and SuperGLUE servers. A run directory holds ``test_probs_<TASK>.npy``: the test-set class
probabilities at that task's best dev epoch, one row per test example in file order. This module
averages them over runs (:func:`ensemble`) and writes, per task:

* GLUE (MRPC, RTE, WNLI): ``<TASK>.tsv`` with header ``index<TAB>prediction`` and the label values
  of the task's files (MRPC and WNLI ``0``/``1``, RTE ``entailment``/``not_entailment``);
* SuperGLUE (CB, COPA): ``<TASK>.jsonl`` with lines ``{"idx": 0, "label": "entailment"}``
  (COPA labels ``0``/``1``);

plus ``ensemble.json`` naming the runs behind each file. Zip the files with the other tasks'
predictions to submit (the servers expect every task of the benchmark).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from alphavil.nlu.readers import TASKS, Example, load_from_hub, read_split, task_format
from alphavil.runs import atomic_write, read_json_object, write_json

logger = logging.getLogger("alphavil")
PROBS = "test_probs_{task}.npy"


def _run_config(run_dir: str | Path) -> dict[str, Any]:
    """A run's ``config.json``; ValueError naming the file when it is not a JSON object."""
    return read_json_object(Path(run_dir) / "config.json", "run config")


def _train_table(run_dir: str | Path) -> dict[str, Any]:
    train = _run_config(run_dir).get("train", {})
    if not isinstance(train, dict):
        raise ValueError(f"{Path(run_dir) / 'config.json'}: train is not a table")
    return train


def _load_probs(path: Path) -> np.ndarray:
    try:
        return np.load(path)
    except (ValueError, EOFError) as err:  # truncated, pickled or not a .npy file
        raise ValueError(f"{path}: not a readable .npy array ({err})") from None


def run_probs(run_dir: str | Path, *, all_tasks: bool = False) -> dict[str, np.ndarray]:
    """Task -> test probabilities ``(N, classes)`` of one run.

    Target-oriented runs (single, αVIL, DIW) contribute only their target task unless
    ``all_tasks``; multitask runs contribute every task they saved.
    """
    run_dir = Path(run_dir)
    train = _train_table(run_dir)
    out = {}
    for task in TASKS:
        path = run_dir / PROBS.format(task=task)
        keep = all_tasks or train.get("method") == "multitask" or train.get("target") == task
        if path.is_file() and keep:
            out[task] = _load_probs(path)
    return out


def ensemble(
    run_dirs: Sequence[str | Path], *, all_tasks: bool = False
) -> tuple[dict[str, np.ndarray], dict[str, list[str]]]:
    """Average each task's test probabilities over the runs that have them.

    Returns:
        (task -> mean probabilities ``(N, classes)``, task -> the run directories averaged).
    Raises:
        ValueError: if the runs mix methods, or disagree on a task's number of test rows.
    """
    methods = {str(_train_table(r).get("method")) for r in run_dirs}
    if len(methods) > 1:
        raise ValueError(f"runs mix methods {sorted(methods)}; ensemble one method at a time")
    members: dict[str, list[np.ndarray]] = {}
    names: dict[str, list[str]] = {}
    for run in run_dirs:
        for task, probs in run_probs(run, all_tasks=all_tasks).items():
            if members.get(task) and members[task][0].shape != probs.shape:
                raise ValueError(
                    f"{run}: {task} test probabilities have shape {probs.shape}, "
                    f"other runs {members[task][0].shape}"
                )
            members.setdefault(task, []).append(probs.astype(np.float64))
            names.setdefault(task, []).append(str(run))
    return {t: np.mean(v, axis=0) for t, v in members.items()}, names


def submission_text(task: str, probs: np.ndarray, test: Sequence[Example]) -> str:
    """The submission file contents for ``task`` (module docstring) from probabilities."""
    fmt = task_format(task)
    if len(probs) != len(test):
        raise ValueError(
            f"{task}: {len(probs)} rows of test probabilities but {len(test)} test "
            "examples; was the run trained on this data_dir?"
        )
    labels = [fmt.labels[int(k)] for k in np.asarray(probs).argmax(axis=1)]
    if fmt.benchmark == "glue":
        rows = [f"{e.idx}\t{label}\n" for e, label in zip(test, labels, strict=True)]
        return "index\tprediction\n" + "".join(rows)
    return "".join(
        json.dumps({"idx": e.idx, "label": label}) + "\n"
        for e, label in zip(test, labels, strict=True)
    )


def write_bytes(path: Path, data: bytes) -> None:
    """Atomically write ``data`` to ``path``."""
    atomic_write(path, lambda f: f.write(data))


def submission_name(task: str) -> str:
    """``MRPC.tsv``, ``CB.jsonl`` etc., as the leaderboards expect."""
    return f"{task}.tsv" if task_format(task).benchmark == "glue" else f"{task}.jsonl"


def write_predictions(
    run_dirs: Sequence[str | Path],
    out_dir: str | Path,
    data_dir: str | Path | None = None,
    *,
    all_tasks: bool = False,
) -> dict[str, Path]:
    """Ensemble ``run_dirs`` (one run is an ensemble of one) and write submission files.

    Args:
        run_dirs: Run directories of one method (e.g. its 4 seeds x 5 target tasks).
        out_dir: Where ``<TASK>.tsv`` / ``<TASK>.jsonl`` and ``ensemble.json`` go.
        data_dir: The data root the runs used (for the test ids); default: ``data.data_dir``
            of the first run's ``config.json`` (or the dataset hub if that run used it).
        all_tasks: Also use non-target tasks of target-oriented runs.
    Returns:
        Task -> the submission file written.
    """
    if not run_dirs:
        raise ValueError("no run directories given")
    if Path(out_dir).exists() and not Path(out_dir).is_dir():
        raise ValueError(f"--out {out_dir}: exists and is not a folder")
    probs, members = ensemble(run_dirs, all_tasks=all_tasks)
    if not probs:
        raise ValueError(f"no {PROBS.format(task='<TASK>')} files in {list(map(str, run_dirs))}")
    data_cfg = _run_config(run_dirs[0]).get("data", {})
    if not isinstance(data_cfg, dict):
        raise ValueError(f"{Path(run_dirs[0]) / 'config.json'}: data is not a table")
    hub = data_dir is None and bool(data_cfg.get("hub"))
    root = data_dir if data_dir is not None else data_cfg.get("data_dir", "")
    out = Path(out_dir)
    written = {}
    for task, p in sorted(probs.items()):
        test = load_from_hub(task)["test"] if hub else read_split(root, task, "test")
        written[task] = out / submission_name(task)
        write_bytes(written[task], submission_text(task, p, test).encode("utf-8"))
        logger.info(
            "%s: %d predictions from %d run(s) -> %s",
            task,
            len(p),
            len(members[task]),
            written[task],
        )
    write_json(out / "ensemble.json", {"members": members, "files": written})
    return written


def main(argv: list[str] | None = None) -> int:
    """``python -m alphavil.nlu.predict RUN_DIR... --out DIR [--data-dir DIR] [--all-tasks]``."""
    import argparse
    import sys

    parser = argparse.ArgumentParser(
        prog="python -m alphavil.nlu.predict",
        description="Write GLUE/SuperGLUE submission files from one method's NLU runs "
        "(their test probabilities averaged).",
    )
    parser.add_argument("runs", nargs="+", help="run directories of one method")
    parser.add_argument("--out", required=True, help="folder for <TASK>.tsv / <TASK>.jsonl")
    parser.add_argument("--data-dir", help="data root (default: data.data_dir of the first run)")
    parser.add_argument(
        "--all-tasks", action="store_true", help="also use non-target tasks of single/αVIL/DIW runs"
    )
    args = parser.parse_args(argv)
    try:
        written = write_predictions(args.runs, args.out, args.data_dir, all_tasks=args.all_tasks)
    except (OSError, ValueError) as err:
        message = " ".join(str(err).split()) or type(err).__name__  # one line
        print(f"alphavil nlu-predict: error: {message}", file=sys.stderr)
        return 2
    for task, path in written.items():
        print(f"{task}: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
