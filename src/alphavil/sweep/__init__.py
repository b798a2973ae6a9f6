"""Sweeps: methods × target tasks × seeds as parallel single-threaded worker processes.

Resumable. A run counts as done only when its ``summary.json`` says completed *and* its
``config.json`` equals the run's requested resolved config (JSON round-tripped; the keys
``out_dir``, where the folder happens to live, and ``sweep``, the grid rather than the run, are
not compared, and an option missing from an older ``config.json`` matches when the requested
value is that option's default, i.e. the run predates the option). A completed run of a
different config stops the sweep before anything starts, with one line naming the run and the
keys that differ; ``--rerun-changed`` reruns those runs instead. Every other run is started
with ``execute(..., resume=True)``: an unfinished run continues from its last whole epoch, so a
sweep interrupted by Ctrl-C, a crash or kill -9 picks up where it stopped. A run that fails is
recorded in its directory as ``error.json`` (message and traceback) and the sweep carries on;
the next sweep retries it. Two one-thread processes beat one two-thread process for small
models on a 2-core CPU (data-and-machine.md §4), hence the defaults.

One sweep per folder: the sweep holds ``OUT_DIR/.sweep.lock`` (it contains the holder's pid)
locked with ``fcntl.flock`` on the open file, and a second sweep on the same folder stops with
a line naming that pid. The kernel drops an flock when its process ends however it ends (crash,
kill -9, power loss), so a dead sweep never leaves a stale lock and nothing has to be cleaned
up by hand; the file itself is left in place (deleting it would race with a sweep that has just
opened it), only the lock on it counts. Where ``fcntl`` is missing (Windows) there is no lock.

Ctrl-C: workers ignore SIGINT themselves; the parent cancels the queued runs, prints
``sweep interrupted: N runs finished, M will resume next time``, terminates the running
workers (SIGTERM, SIGKILL after a few seconds) and exits 130 without waiting for a run to end.
Workers also end when the sweep process dies (kill -9): ``prctl(PR_SET_PDEATHSIG, SIGTERM)`` on
Linux plus a thread that polls the parent's pid.

Backends: ``local`` (default) is the process pool above; ``ray`` (``--backend ray [--address
ADDR]``, :mod:`alphavil.sweep.ray`) runs each remaining run as a Ray task on a local Ray or a
cluster. Planning, the config check, the lock, ``error.json`` and the progress line are the
same for both; only where :func:`run_job` executes differs.

The modules: :mod:`~alphavil.sweep.plan` (the ``[sweep]`` grid, its jobs, whether a run is
done), :mod:`~alphavil.sweep.workers` (the folder lock and checks, worker processes,
:func:`run_job`), :mod:`~alphavil.sweep.run` (:func:`run_sweep`: lock, skip, progress, hand the
runs to a backend), :mod:`~alphavil.sweep.local` (the process pool), :mod:`~alphavil.sweep.ray`
(Ray tasks) and :mod:`~alphavil.sweep.cli` (``alphavil sweep``). This package re-exports their
public names.
"""

from __future__ import annotations

from alphavil.sweep.cli import add_commands, cmd_sweep, parse_seeds
from alphavil.sweep.plan import Job, SweepConfig, changed_message, job_config, plan, run_state
from alphavil.sweep.run import BACKENDS, run_sweep
from alphavil.sweep.workers import (
    LOCK_FILE,
    SweepError,
    SweepInterrupted,
    check_writable_dir,
    init_worker,
    one_line,
    run_job,
    sigint_ignored,
    stop_workers,
    sweep_lock,
)

__all__ = [
    "BACKENDS",
    "LOCK_FILE",
    "Job",
    "SweepConfig",
    "SweepError",
    "SweepInterrupted",
    "add_commands",
    "changed_message",
    "check_writable_dir",
    "cmd_sweep",
    "init_worker",
    "job_config",
    "one_line",
    "parse_seeds",
    "plan",
    "run_job",
    "run_state",
    "run_sweep",
    "sigint_ignored",
    "stop_workers",
    "sweep_lock",
]
