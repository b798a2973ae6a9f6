"""Few-label study folders (docs/fewlabel): a folder's completed runs and the target they
share, the study's name, the auxiliary kinds, and the markdown tables the comparisons print."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from alphavil.report import collect_runs

KINDS = ("coarse", "random", "related", "mixed")


def target_runs(
    folder: Path, rerun: Path | None = None, more: Path | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """A study folder's completed runs and the one target they share; with ``rerun``, a folder
    of the same runs made again (on another host, say), each of its completed runs takes the
    place of the study's run of the same name, which must exist; with ``more``, a folder of
    more runs of the study (further seeds), added to them: no name may be in both."""
    runs = collect_runs(folder)
    if rerun is not None:
        again = {r["name"]: r for r in collect_runs(rerun)}
        missing = sorted(set(again) - {r["name"] for r in runs})
        if missing:
            raise ValueError(f"{rerun}: runs the study {folder} lacks: {', '.join(missing)}")
        runs = [again.get(r["name"], r) for r in runs]
    if more is not None:
        extra = collect_runs(more)
        both = sorted({r["name"] for r in extra} & {r["name"] for r in runs})
        if both:
            raise ValueError(f"{more}: runs the study {folder} already has: {', '.join(both)}")
        runs = runs + extra
    if not runs:
        raise ValueError(f"{folder}: no completed runs")
    targets = {r["config"].get("train", {}).get("target") for r in runs}
    if len(targets) != 1 or None in targets:
        raise ValueError(
            f"{folder}: expected one target over the runs, got {sorted(map(str, targets))}"
        )
    return str(targets.pop()), runs


def folder_beside(folder: Path, name: str | None, flag: str = "--rerun-beside") -> Path | None:
    """The folder ``name`` beside a study's ``runs`` folder (``docs/fewlabel/X/runs`` ->
    ``docs/fewlabel/X/<name>``) where it exists: that study's runs made again on another host,
    or more of its seeds, for :func:`target_runs`; None without ``name`` or where the study has
    no such folder (``flag``: the option named in the error)."""
    if name is None:
        return None
    if "/" in name or name in ("", ".", ".."):
        raise ValueError(f"{flag} takes a folder name beside the study's runs, got {name!r}")
    beside = (folder.parent if folder.name == "runs" else folder) / name
    return beside if beside.is_dir() else None


def study_name(folder: Path) -> str:
    """``docs/fewlabel/digits-n100/runs`` -> ``digits-n100``."""
    return folder.parent.name if folder.name == "runs" else folder.name


def markdown_table(head: list[str], body: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    return "\n".join(lines + ["| " + " | ".join(row) + " |" for row in body])
