"""``alphavil sweep --backend ray``: the runs of a sweep as Ray tasks (the `ray` extra).

Only the execution differs from the local process pool (:mod:`alphavil.sweep.local`): the
sweep process plans the grid (:mod:`alphavil.sweep.plan`), skips finished runs of the same
config, holds ``OUT_DIR/.sweep.lock`` and prints the progress line (:mod:`alphavil.sweep.run`),
exactly as with ``--backend local``; each remaining run becomes one Ray task that calls
:func:`alphavil.sweep.workers.run_job` (so the same run directories, resume from the last epoch
and ``error.json`` records) on whichever node Ray picks.

* Resources: every task asks for ``sweep.threads`` CPUs, plus one GPU when ``train.device`` is
  ``cuda`` (or ``auto`` and the cluster has GPUs). A task sees only its GPU (Ray sets
  ``CUDA_VISIBLE_DEVICES``), so ``cuda:N`` with N > 0 is refused.
* Where: a new local Ray with ``sweep.workers × sweep.threads`` CPUs, or an existing cluster
  (``--address auto``, ``HOST:6379`` or ``ray://HOST:10001``), or the Ray session this process
  already has (library use; it is left running).
* Paths: a task first changes into the sweep's working directory, so relative paths in the
  config (``out_dir``, ``data_dir``) mean what they mean locally; every node must see the same
  paths (shared storage, docs/scaling.md). ``$ALPHAVIL_CACHE``, when set, is passed on.
* Failures: a task is not retried by Ray (``max_retries = 0``); a run whose worker dies is
  reported as failed and the next sweep resumes it, as with the local pool.
* Ctrl-C: the sweep cancels every pending and running task (a KeyboardInterrupt in running
  ones, a kill after a few seconds; they continue from their last whole epoch next time), waits
  for them to end and exits 130.

``ray`` is imported lazily: alphavil needs it only for this backend.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alphavil.sweep.workers import SweepError, one_line, run_job, sigint_ignored

if TYPE_CHECKING:
    from alphavil.config import RunConfig
    from alphavil.sweep.plan import Job, SweepConfig

INSTALL_HINT = 'pip install "alphavil[ray]"'
_CANCEL_WAIT_S = 5.0  # after cancelling, how long to wait for the tasks to end
_POLL_S = 1.0  # ray.wait timeout, so Ctrl-C is seen within a second


def require_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`~alphavil.sweep.workers.SweepError` if
    missing."""
    try:
        import ray
    except ImportError:
        raise SweepError(
            f"--backend ray needs Ray, which is not installed here: {INSTALL_HINT}"
        ) from None
    return ray


def init_ray(address: str | None, num_cpus: int) -> bool:
    """Start a local Ray with ``num_cpus`` CPUs (``address`` None) or connect to ``address``,
    unless this process already has a Ray session; returns whether a session was started."""
    ray = require_ray()
    if ray.is_initialized():
        return False
    kwargs: dict[str, Any] = {"logging_level": logging.WARNING}
    cache = os.environ.get("ALPHAVIL_CACHE")
    if cache:
        kwargs["runtime_env"] = {"env_vars": {"ALPHAVIL_CACHE": cache}}
    if address:
        try:
            ray.init(address=address, **kwargs)
        except Exception as err:  # Ray's own errors vary by version; one line for the user
            raise SweepError(
                one_line(f"--address {address}: cannot use this Ray cluster: {err}")[:300]
            ) from None
    else:  # "local": a new instance even where RAY_ADDRESS names a cluster
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False, **kwargs)
    return True


@contextlib.contextmanager
def ray_session(address: str | None, num_cpus: int) -> Iterator[tuple[Any, bool]]:
    """A Ray session for the sweep (see :func:`init_ray`), as (ray, whether it was started
    here); one started here is shut down after."""
    ray = require_ray()
    started = init_ray(address, num_cpus)
    try:
        yield ray, started
    finally:
        if started:
            with sigint_ignored():
                ray.shutdown()


def gpus_for(device: str, cluster_gpus: float) -> int:
    """GPUs one run of ``train.device = device`` asks Ray for."""
    if device == "auto":
        return 1 if cluster_gpus >= 1 else 0
    if device.startswith("cuda"):
        index = device.partition(":")[2]
        if index and index != "0":
            raise SweepError(
                f"train.device = {device!r}: a Ray task sees only the one GPU it is given "
                "(as cuda:0); use cuda or auto"
            )
        return 1
    return 0


def run_on_node(cfg: RunConfig, job: Job, overwrite: bool, cwd: str) -> dict[str, Any]:
    """The Ray task: :func:`alphavil.sweep.workers.run_job` from the sweep's working
    directory."""
    try:
        os.chdir(cwd)
    except OSError as err:
        if not Path(cfg.out_dir).is_absolute():
            return {
                "name": job.name,
                "ok": False,
                "seconds": 0.0,
                "error": (
                    f"node {socket.gethostname()}: the sweep's working directory {cwd} is "
                    f"missing here ({err.strerror}); every node needs the same paths"
                ),
            }
    return run_job(cfg, job, overwrite)


def _failure(job: Job, err: BaseException) -> dict[str, Any]:
    ray = require_ray()
    if isinstance(err, (ray.exceptions.WorkerCrashedError, ray.exceptions.OutOfMemoryError)):
        what = f"its Ray worker died ({type(err).__name__}; killed? out of memory?)"
    elif isinstance(err, ray.exceptions.NodeDiedError):
        what = "its Ray node died"
    else:
        first = str(err).strip().splitlines()[0] if str(err).strip() else ""
        what = one_line(f"its Ray task failed: {type(err).__name__}: {first}")
    return {"name": job.name, "ok": False, "seconds": 0.0, "error": what}


def _cancel(ray: Any, refs: list[Any]) -> None:
    """Cancel ``refs`` and wait for the tasks to end, so that none still writes into a run
    directory once the sweep lets go of its lock: first a KeyboardInterrupt in each running
    task (Python cleans up, e.g. half-written temp files), then a kill of those still running
    after a grace period (as the local pool sends SIGTERM, then SIGKILL)."""
    for force in (False, True):
        for ref in refs:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=force)
        with contextlib.suppress(Exception):
            _, refs = ray.wait(refs, num_returns=len(refs), timeout=_CANCEL_WAIT_S)
        if not refs:
            return


def run_jobs(
    items: list[tuple[RunConfig, Job, bool]],
    sweep: SweepConfig,
    address: str | None,
    report: Callable[[dict[str, Any]], None],
    on_interrupt: Callable[[], BaseException],
    out: Any,
) -> None:
    """Run ``items`` (config, job, overwrite) as Ray tasks; ``report`` gets each result as it
    arrives. Ctrl-C: ``on_interrupt()`` tells the user, every task is cancelled, and what
    ``on_interrupt`` returned is raised."""

    require_ray()
    for cfg, _, _ in items:  # cuda:N is refused before Ray starts
        gpus_for(cfg.train.device, 0)
    told: list[BaseException] = []

    def interrupted() -> BaseException:
        if not told:
            told.append(on_interrupt())
        return told[0]

    try:
        with ray_session(address, max(1, sweep.workers) * sweep.threads) as (ray, started):
            where = ("at " + address if address else "(local)") if started else "(this process's)"
            refs = _submit(ray, items, sweep, where, out)
            try:
                while refs:
                    ready, _ = ray.wait(list(refs), num_returns=1, timeout=_POLL_S)
                    for ref in ready:
                        job = refs.pop(ref)
                        try:
                            res = ray.get(ref)
                        except ray.exceptions.RayError as err:
                            res = _failure(job, err)
                        report(res)
            except BaseException as err:
                if isinstance(err, KeyboardInterrupt):
                    interrupted()  # say so first, then stop the tasks
                with sigint_ignored():
                    _cancel(ray, list(refs))
                raise
    except KeyboardInterrupt:
        raise interrupted() from None


def _submit(
    ray: Any,
    items: list[tuple[RunConfig, Job, bool]],
    sweep: SweepConfig,
    where: str,
    out: Any,
) -> dict[Any, Job]:
    """Submit one task per item in order; returns ref -> job."""
    resources = ray.cluster_resources()
    cpus, gpus = resources.get("CPU", 0), resources.get("GPU", 0)
    asks = [gpus_for(cfg.train.device, gpus) for cfg, _, _ in items]
    print(
        f"sweep: Ray {where}: {cpus:g} CPUs, {gpus:g} GPUs; "
        f"each run asks for {sweep.threads} CPU(s)" + (" and 1 GPU" if any(asks) else ""),
        file=out,
        flush=True,
    )
    if any(asks) and not gpus:
        print(
            "sweep: warning: runs ask for a GPU but the Ray cluster has none; they wait "
            "until a GPU node joins",
            file=out,
            flush=True,
        )
    task = ray.remote(run_on_node)
    cwd = os.getcwd()
    refs: dict[Any, Job] = {}
    for (cfg, job, overwrite), n_gpus in zip(items, asks, strict=True):
        opts = {
            "num_cpus": sweep.threads,
            "num_gpus": n_gpus,
            "max_retries": 0,
            "name": f"alphavil:{job.name}",
        }
        refs[task.options(**opts).remote(cfg, job, overwrite, cwd)] = job
    return refs
