"""Progress output: a live one-line bar on a terminal, plain log lines otherwise."""

from __future__ import annotations

import sys
import time
from typing import Any, TextIO


class Progress:
    """Per-run progress. On a TTY one line is redrawn in place; elsewhere one line per epoch.

    Args:
        label: Run label shown at the start of every line.
        epochs: Total number of epochs.
        stream: Where to write (default ``sys.stderr``).
        enabled: ``False`` silences everything (library use, tests).
    """

    def __init__(
        self, label: str, epochs: int, stream: TextIO | None = None, enabled: bool = True
    ) -> None:
        self.label, self.epochs = label, epochs
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = enabled
        self.tty = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.epoch = 0
        self._last = 0.0

    def phase(self, text: str, force: bool = False) -> None:
        """Show what the run is doing now (TTY only; redrawn at most 10 times a second)."""
        if not self.tty:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1:
            return
        self._last = now
        width = 20
        done = int(width * (self.epoch - 1) / max(self.epochs, 1))
        bar = "#" * done + "-" * (width - done)
        self.stream.write(f"\r\x1b[K{self.label} [{bar}] epoch {self.epoch}/{self.epochs} {text}")
        self.stream.flush()

    def start_epoch(self, epoch: int) -> None:
        """Mark the start of ``epoch`` (1-based)."""
        self.epoch = epoch
        self.phase("", force=True)

    def end_epoch(self, summary: str) -> None:
        """Report a finished epoch."""
        if not self.enabled:
            return
        prefix = "\r\x1b[K" if self.tty else ""
        self.stream.write(f"{prefix}{self.label} epoch {self.epoch}/{self.epochs} {summary}\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        """A free-standing line."""
        if self.enabled:
            prefix = "\r\x1b[K" if self.tty else ""
            self.stream.write(f"{prefix}{self.label} {text}\n")
            self.stream.flush()


def epoch_line(record: dict[str, Any]) -> str:
    """The progress line of an epoch's metrics record: dev accuracies, α, task weights and
    warnings, and the seconds it took."""
    dev = " ".join(
        f"{t}={s['accuracy']:.4f}" for t, s in record["dev"].items() if s["accuracy"] is not None
    )
    extra = ""
    if "alpha" in record:
        extra = " alpha " + " ".join(f"{v:.3f}" for v in record["alpha"].values())
    if len(record["weights"]) > 1:
        extra += " w " + " ".join(f"{v:.3f}" for v in record["weights"].values())
    for warning in record.get("warnings", []):
        extra += f" WARNING: {warning}"
    return f"dev acc {dev}{extra} ({record['seconds']:.1f}s)"
