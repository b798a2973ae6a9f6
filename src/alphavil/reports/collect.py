"""Completed runs read back from run folders (``config.json`` and ``summary.json``): what every
report starts from."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphavil.runs import read_json_object


def read_run_object(path: Path) -> dict[str, Any]:
    """A run file that must hold a JSON object; ValueError naming ``path`` otherwise."""
    try:
        return read_json_object(path, "run file")
    except FileNotFoundError:
        raise ValueError(f"{path}: missing (the run folder has a summary.json)") from None


def collect_runs(root: Path, labels: list[str] | None = None) -> list[dict[str, Any]]:
    """Completed runs under ``root`` (each a folder with config.json and summary.json); only
    those whose label (sweep variant, else method) is in ``labels`` when given.

    Raises:
        ValueError: a run file that is not a JSON object or lacks ``train.method`` /
            ``train.seed`` (the message names the file), or a label in ``labels`` that no
            completed run has (the message lists the labels there are).
    """
    runs = []
    for summary_path in sorted(Path(root).glob("*/summary.json")):
        summary = read_run_object(summary_path)
        if summary.get("status") != "completed":
            continue
        config_path = summary_path.parent / "config.json"
        config = read_run_object(config_path)
        train = config.get("train")
        if not isinstance(train, dict) or "method" not in train or "seed" not in train:
            raise ValueError(f"{config_path}: no train.method and train.seed; not a run config")
        method = train["method"]
        runs.append(
            {
                "path": summary_path.parent,
                "name": summary_path.parent.name,
                "method": method,
                "label": config.get("label") or method,
                "target": summary.get("target"),
                "seed": train["seed"],
                "summary": summary,
                "config": config,
            }
        )
    if labels is not None:
        have = {r["label"] for r in runs}
        missing = [lab for lab in labels if lab not in have]
        if missing:
            raise ValueError(
                f"--labels: no completed runs labelled {', '.join(missing)} under {root}; "
                f"labels there: {', '.join(sorted(have)) or 'none'}"
            )
        runs = [r for r in runs if r["label"] in labels]
    return runs
