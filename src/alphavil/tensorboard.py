"""TensorBoard event files from the metrics records of a run (optional: ``alphavil[tensorboard]``).

One metrics record (a line of ``metrics.jsonl``) becomes scalars at step = its epoch: every
number in its nested tables, tagged by its path, e.g. ``dev/left/loss``, ``test/left/accuracy``,
``weights/right``, ``alpha/left``, ``alpha_fit/passes``, ``seconds``. Lists (per-step α-fit
losses, per-model MT2O values) and missing values (``null``) are left out; ``metrics.jsonl`` keeps
everything.

* ``train.tensorboard = true``: a run writes the events into ``RUN_DIR/tb/`` after every epoch
  (:class:`TensorBoardRunWriter`, the run directory's writer; the training loop knows nothing of
  TensorBoard). A resumed run drops the events after the epoch it resumes from.
* ``alphavil tensorboard RUN_DIR... --out OUT``: exports finished (or unfinished) runs'
  ``metrics.jsonl`` to ``OUT/<run name>/`` (:func:`export`); nothing is written elsewhere.

Then ``tensorboard --logdir RUN_DIR/tb`` (or ``--logdir OUT``).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from alphavil.config import ConfigError
from alphavil.runs import RunWriter, read_jsonl

__all__ = ["SUBDIR", "TensorBoardRunWriter", "export", "require", "scalars"]

SUBDIR = "tb"  # inside a run directory
_EVENTS = "events.out.tfevents."


def require() -> Any:
    """``torch.utils.tensorboard.SummaryWriter``, or a one-line error naming the extra."""
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise ConfigError(
            "TensorBoard output needs the tensorboard package: pip install 'alphavil[tensorboard]'"
            " (or set train.tensorboard = false)"
        ) from None
    return SummaryWriter


def scalars(record: dict[str, Any]) -> dict[str, float]:
    """The TensorBoard scalars of one metrics record: ``{"dev/left/loss": 0.31, ...}``."""
    out: dict[str, float] = {}

    def walk(obj: Any, tag: str) -> None:
        if isinstance(obj, dict):
            for k, v in obj.items():
                walk(v, f"{tag}/{k}" if tag else str(k))
        elif isinstance(obj, (int, float)) and not isinstance(obj, bool):
            out[tag] = float(obj)

    walk({k: v for k, v in record.items() if k != "epoch"}, "")
    return out


def _write(writer: Any, record: dict[str, Any]) -> None:
    step = int(record["epoch"])
    for tag, value in scalars(record).items():
        writer.add_scalar(tag, value, step)


class TensorBoardRunWriter(RunWriter):
    """A :class:`~alphavil.runs.RunWriter` that also writes each epoch's record to ``tb/``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self._summary_writer = require()
        super().__init__(path)
        self._writer: Any = None

    def _open(self, purge_step: int | None = None) -> Any:
        if self._writer is None:
            self._writer = self._summary_writer(
                str(self.path / SUBDIR), purge_step=purge_step, flush_secs=3600
            )
        return self._writer

    def log_epoch(self, record: dict[str, Any]) -> None:
        super().log_epoch(record)
        writer = self._open()
        _write(writer, record)
        writer.flush()

    def truncate(self, epochs: int) -> None:
        super().truncate(epochs)
        self.close()
        self._open(purge_step=epochs + 1)  # TensorBoard drops the old events after `epochs`

    def write_summary(self, summary: dict[str, Any]) -> None:
        super().write_summary(summary)
        self.close()

    def close(self) -> None:
        """Flush and close the event file (a later epoch opens a new one)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None


def _run_dirs(paths: list[str]) -> list[Path]:
    """Run directories among ``paths``: each one with ``metrics.jsonl``, or a folder of them."""
    found: list[Path] = []
    for text in paths:
        p = Path(text)
        if (p / "metrics.jsonl").is_file():
            found.append(p)
        elif p.is_dir() and (runs := sorted(d.parent for d in p.glob("*/metrics.jsonl"))):
            found.extend(runs)
        elif not p.exists():
            raise ConfigError(f"{p}: no such run directory")
        else:
            raise ConfigError(f"{p}: not a run directory (no metrics.jsonl) nor a folder of them")
    return found


def export(paths: list[str], out: str | Path, *, overwrite: bool = False) -> list[Path]:
    """Write each run's ``metrics.jsonl`` as event files into ``out/<run name>/``.

    Raises:
        ConfigError: a path that is no run directory, two runs with the same name, or a
            ``out/<run name>`` that already has event files (without ``overwrite``, which
            deletes only those event files).
    """
    writer_cls = require()
    runs = _run_dirs(paths)
    names = [r.resolve().name for r in runs]
    if dup := sorted({n for n in names if names.count(n) > 1}):
        raise ConfigError(f"several runs are named {dup}; export them to separate --out folders")
    out = Path(out)
    targets = [out / n for n in names]
    for t in targets:
        if t.exists() and not t.is_dir():
            raise ConfigError(f"{t} exists and is not a folder")
        old = sorted(t.glob(f"{_EVENTS}*")) if t.is_dir() else []
        if old and not overwrite:
            raise ConfigError(f"{t} already has TensorBoard event files; pass --overwrite")
    written = []
    for run, target in zip(runs, targets, strict=True):
        records = read_jsonl(run / "metrics.jsonl")
        if target.is_dir():
            for f in target.glob(f"{_EVENTS}*"):
                f.unlink()
        writer = writer_cls(str(target))
        try:
            for record in records:
                _write(writer, record)
        finally:
            writer.close()
        written.append(target)
    return written


def cmd_tensorboard(args: argparse.Namespace) -> int:
    """``alphavil tensorboard``."""
    from alphavil.sweep.workers import check_writable_dir

    check_writable_dir(Path(args.out), "--out")
    for path in export(args.runs, args.out, overwrite=args.overwrite):
        print(path)
    return 0


def add_command(sub: Any) -> None:
    """Register ``tensorboard`` on the CLI's subparsers."""
    t = sub.add_parser(
        "tensorboard",
        help="export run directories' metrics.jsonl to TensorBoard event files",
    )
    t.add_argument("runs", nargs="+", help="run directories, or folders of them (a sweep's out)")
    t.add_argument("--out", required=True, help="folder for the event files (OUT/<run name>/)")
    t.add_argument(
        "--overwrite", action="store_true", help="replace event files an earlier export wrote"
    )
    t.set_defaults(func=cmd_tensorboard, intermixed="runs")
