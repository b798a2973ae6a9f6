"""Processes and folders for sweeps: the per-folder lock, writable-folder checks, worker
processes that ignore Ctrl-C, die with their parent and can be stopped at once, and
:func:`run_job`, what a worker (a pool process or a Ray task) runs for one job.

See :mod:`alphavil.sweep` for the behaviour these give a sweep (one sweep per folder; Ctrl-C
stops the workers; workers exit when the sweep process dies).
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import re
import signal
import sys
import threading
import time
import traceback
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphavil.config import ConfigError
from alphavil.runs import MARKER, write_json

if TYPE_CHECKING:
    from alphavil.config import RunConfig
    from alphavil.sweep.plan import Job

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

LOCK_FILE = ".sweep.lock"
_PR_SET_PDEATHSIG = 1  # <linux/prctl.h>
_STOP_GRACE_S = 5.0  # after SIGTERM, how long workers get before SIGKILL


class SweepError(ValueError):
    """A sweep cannot start (folder locked, changed runs); the message is one line (exit 2)."""


class SweepInterrupted(KeyboardInterrupt):
    """Ctrl-C stopped a sweep; the user has already been told what finished (exit 130)."""


def check_writable_dir(path: Path, what: str) -> None:
    """Raise :class:`ConfigError` (one line) unless ``path`` is, or can be made, a folder this
    process can write to."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{what} {path}: exists and is not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if existing != path and not existing.is_dir():
        raise ConfigError(f"{what} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        where = "" if existing == path else f" ({existing})"
        raise ConfigError(f"{what} {path}: not writable{where}")


@contextlib.contextmanager
def sweep_lock(out_dir: Path) -> Iterator[None]:
    """Hold ``out_dir/.sweep.lock`` (see the module docstring) or raise :class:`SweepError`."""
    path = Path(out_dir) / LOCK_FILE
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by workers (O_CLOEXEC)
    try:
        if fcntl is not None:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
                raise SweepError(
                    f"{out_dir}: another sweep (pid {holder}) is running in this folder; "
                    f"wait for it or stop it (lock file {path})"
                ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the flock


def one_line(text: str) -> str:
    return re.sub(r"\s*\n\s*", " ", text).strip()


def _exit_with_parent(parent: int, poll_s: float = 2.0) -> None:
    """End this process when ``parent`` dies: PR_SET_PDEATHSIG on Linux, and a thread that
    polls the parent pid everywhere (also covers the pdeathsig corner cases)."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:
        while True:
            time.sleep(poll_s)
            if os.getppid() != parent:
                os._exit(1)

    threading.Thread(target=watch, name="alphavil-parent-watch", daemon=True).start()


def init_worker(parent: int) -> None:
    """Worker initializer: the parent handles Ctrl-C; die with the parent."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _exit_with_parent(parent)


@contextlib.contextmanager
def sigint_ignored() -> Iterator[None]:
    """Ignore SIGINT meanwhile (main thread only): processes started now inherit SIG_IGN, so a
    Ctrl-C while a worker starts up does not print a traceback from it."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, old)


def stop_workers(pool: ProcessPoolExecutor) -> None:
    """Cancel queued jobs and end the workers now: SIGTERM, SIGKILL after a grace period."""
    procs = list((pool._processes or {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for proc in procs:
        if proc.is_alive():
            proc.terminate()
    deadline = time.monotonic() + _STOP_GRACE_S
    for proc in procs:
        proc.join(max(0.0, deadline - time.monotonic()))
        if proc.is_alive():
            proc.kill()
            proc.join(1.0)


def run_job(cfg: RunConfig, job: Job, overwrite: bool = False) -> dict[str, Any]:
    """Run one job (in a worker process), resuming an unfinished run of the same config;
    failures are written to ``error.json`` in the run directory (if alphavil owns it)."""
    path = Path(cfg.out_dir) / job.name
    t0 = time.perf_counter()
    try:
        from alphavil.runner import execute

        summary = execute(cfg, path, overwrite=overwrite, resume=True, show_progress=False)
        (path / "error.json").unlink(missing_ok=True)
        return {
            "name": job.name,
            "ok": True,
            "seconds": time.perf_counter() - t0,
            "summary": summary,
        }
    except Exception as err:
        message = one_line(f"{type(err).__name__}: {err}")
        if (path / MARKER).is_file():  # never write into a folder alphavil does not own
            with contextlib.suppress(OSError):
                write_json(
                    path / "error.json", {"error": message, "traceback": traceback.format_exc()}
                )
        return {
            "name": job.name,
            "ok": False,
            "seconds": time.perf_counter() - t0,
            "error": message,
        }
