"""Run directories: every file is written atomically (temporary file in place, then rename).

A run directory holds ``config.json`` (the resolved config), ``env.json`` (versions, machine),
``metrics.jsonl`` (one JSON object per epoch), ``summary.json`` and checkpoints. A crash or a
diverged run never leaves a half-written file: readers see the previous version or the new one.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import platform
import subprocess
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import torch

STATE_FILE = "state.pt"  # resumable state, rewritten after every epoch
MARKER = ".alphavil-run"  # written first into every run directory alphavil creates

_UMASK = os.umask(0o022)
os.umask(_UMASK)


def atomic_write(path: str | os.PathLike[str], write: Callable[[IO[bytes]], Any]) -> None:
    """Run ``write(f)`` on a temp file beside ``path``, fsync it, then rename it onto ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


def _jsonable(obj: Any) -> Any:
    if isinstance(obj, float) and not math.isfinite(obj):
        return str(obj)  # JSON has no NaN/inf; keep them visible as strings
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, torch.Tensor):
        return _jsonable(obj.tolist())
    if isinstance(obj, Path):
        return str(obj)
    return obj


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    """Atomically write ``obj`` as indented JSON."""
    data = json.dumps(_jsonable(obj), indent=2, sort_keys=False).encode() + b"\n"
    atomic_write(path, lambda f: f.write(data))


def write_jsonl(path: str | os.PathLike[str], records: Iterable[Any]) -> None:
    """Atomically (re)write a JSON-lines file with one object per record."""
    data = b"".join(json.dumps(_jsonable(r)).encode() + b"\n" for r in records)
    atomic_write(path, lambda f: f.write(data))


def read_json(path: str | os.PathLike[str]) -> Any:
    """Read a JSON file."""
    return json.loads(Path(path).read_text())


def read_json_object(path: str | os.PathLike[str], what: str = "run file") -> dict[str, Any]:
    """A JSON file that must hold an object (a run's ``config.json`` or ``summary.json``).

    Raises:
        ValueError: one line naming ``path``: not UTF-8 text (then not a ``what``), not valid
            JSON, or not a JSON object.
        OSError: the file cannot be read (FileNotFoundError when it is missing).
    """
    try:
        data = read_json(path)
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not UTF-8 text, not a {what}") from None
    except ValueError as err:  # json.JSONDecodeError
        raise ValueError(f"{path}: not valid JSON ({err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def read_jsonl(path: str | os.PathLike[str]) -> list[Any]:
    """Read a JSON-lines file (empty list if absent)."""
    p = Path(path)
    if not p.exists():
        return []
    return [json.loads(line) for line in p.read_text().splitlines() if line.strip()]


def save_checkpoint(path: str | os.PathLike[str], state: dict[str, Any]) -> None:
    """Atomically ``torch.save`` a checkpoint dict; the previous file stays if writing fails.

    Raises:
        OSError: Naming ``path``, when torch's zip writer fails (a full disk makes it raise a
            ``RuntimeError`` "PytorchStreamWriter failed writing file ..."), so the CLI reports
            one line (``alphavil: error: <path>: ...``) instead of a traceback.
    """
    try:
        atomic_write(path, lambda f: torch.save(state, f))
    except RuntimeError as err:
        text = str(err)
        if "PytorchStreamWriter" not in text and "file write failed" not in text:
            raise
        line = next((x for x in text.splitlines() if "PytorchStreamWriter" in x), text)
        line = line[line.find("PytorchStreamWriter") :].strip() if "Pytorch" in line else line
        raise OSError(
            errno.EIO, f"could not write the checkpoint (disk full?): {line}", os.fspath(path)
        ) from err


def load_checkpoint(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load a checkpoint written by :func:`save_checkpoint` (tensors and plain data only)."""
    result: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return result


def environment() -> dict[str, Any]:
    """Versions and machine facts recorded with every run."""
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
            check=False,
        ).stdout.strip()
    except OSError:
        sha = ""
    import numpy as np

    from alphavil import __version__

    return {
        "alphavil": __version__,
        "git": sha or None,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "numpy": np.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        # floating-point kernels differ between CPUs, and so do the last digits of a run
        "cpu_model": cpu_model(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "world_size": int(os.environ.get("WORLD_SIZE", "1")),  # data-parallel ranks (torchrun)
    }


def cpu_model() -> str | None:
    """The CPU's model name (from /proc/cpuinfo on Linux; None where it cannot be read)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


class RunWriter:
    """Writes one run directory; metrics.jsonl is rewritten atomically after every epoch."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.mkdir(parents=True, exist_ok=True)
        self.records: list[dict[str, Any]] = read_jsonl(self.path / "metrics.jsonl")

    def write_config(self, config: dict[str, Any]) -> None:
        """Record the resolved config and the environment."""
        write_json(self.path / "config.json", config)
        write_json(self.path / "env.json", environment())

    def log_epoch(self, record: dict[str, Any]) -> None:
        """Append one epoch's metrics."""
        self.records.append(record)
        write_jsonl(self.path / "metrics.jsonl", self.records)

    def write_summary(self, summary: dict[str, Any]) -> None:
        """Write ``summary.json``."""
        write_json(self.path / "summary.json", summary)

    def truncate(self, epochs: int) -> None:
        """Keep only the first ``epochs`` metrics records (before resuming after that epoch)."""
        self.records = [r for r in self.records if int(r.get("epoch", 0)) <= epochs]
        write_jsonl(self.path / "metrics.jsonl", self.records)

    def save_state(self, state: dict[str, Any]) -> None:
        """Write the resumable state ``state.pt`` (atomically, replacing the previous one)."""
        save_checkpoint(self.path / STATE_FILE, state)

    def save(self, name: str, state: dict[str, Any]) -> None:
        """Save a checkpoint ``name`` inside the run directory."""
        save_checkpoint(self.path / name, state)

    def save_array(self, name: str, array: Any) -> None:
        """Save a numpy array as ``.npy`` inside the run directory."""
        import numpy as np

        atomic_write(self.path / name, lambda f: np.save(f, np.asarray(array)))
