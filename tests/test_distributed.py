"""Data parallelism on torch.distributed (gloo, 2 CPU processes) equals one process."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from alphavil import distributed
from alphavil.alpha import target_loss_and_grad
from alphavil.deltas import snapshot, stack_deltas
from alphavil.runner import execute
from alphavil.tasks import Task
from tests.helpers import TOY, toy_config

ROOT = Path(__file__).resolve().parents[1]
COMMON = [*TOY, "train.threads=1", "--quiet"]  # TOY: 2 epochs, batch 64, SGD lr 0.1


def _torchrun(tmp_path: Path, *overrides: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "empty.toml").write_text("")
    launch = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node=2"]
    cmd = [*launch, "-m", "alphavil.cli", "run", str(tmp_path / "empty.toml"), *COMMON, *overrides]
    # this checkout's code, not whichever alphavil the environment has installed
    path = os.pathsep.join([str(ROOT / "src"), str(ROOT)])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": path}
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)


def _records(path: Path) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]


@pytest.mark.parametrize(
    ("method", "extra"),
    [
        ("multitask", ""),
        ("alphavil", ""),  # joint updates: each task's gradient summed over the ranks
        ("alphavil", "alphavil.updates=separate"),
        ("alphavil", "alphavil.updates=separate alphavil.parallel_deltas=true"),
        ("forkmerge", "forkmerge.merge_every=1"),
    ],
    ids=["multitask", "alphavil", "alphavil-separate", "alphavil-task-parallel", "forkmerge"],
)
def test_two_ranks_match_one_process(tmp_path: Path, method: str, extra: str) -> None:
    more = extra.split()
    res = _torchrun(tmp_path, f"train.method={method}", f"out_dir='{tmp_path}'", "name=ddp", *more)
    assert res.returncode == 0, res.stderr[-3000:]
    before = torch.get_num_threads()
    cfg = toy_config(tmp_path, f"train.method={method}", "train.threads=1", *more)
    execute(cfg, tmp_path / "one", show_progress=False)
    torch.set_num_threads(before)
    one, ddp = _records(tmp_path / "one"), _records(tmp_path / "ddp")
    assert len(one) == len(ddp) == 2
    for a, b in zip(one, ddp, strict=True):
        for t in a["dev"]:
            assert b["dev"][t]["accuracy"] == a["dev"][t]["accuracy"]
            assert b["dev"][t]["loss"] == pytest.approx(a["dev"][t]["loss"], rel=1e-5)
        for t, v in a.get("alpha", {}).items():
            assert b["alpha"][t] == pytest.approx(v, rel=1e-5, abs=1e-6)
        assert b["train_loss" if "train_loss" in a else "weights"] == pytest.approx(
            a["train_loss" if "train_loss" in a else "weights"], rel=1e-5
        )
    assert json.loads((tmp_path / "ddp" / "env.json").read_text())["world_size"] == 2
    assert sorted(p.name for p in (tmp_path / "ddp").iterdir()) == sorted(
        p.name for p in (tmp_path / "one").iterdir()
    )


def test_a_failing_rank_stops_the_run_with_one_line_and_no_partial_files(tmp_path: Path) -> None:
    res = _torchrun(tmp_path, "data.name='tests.fail_on_rank1:SPEC'", f"out_dir='{tmp_path}'",
                    "name=broken", "train.method=single")  # fmt: skip
    assert res.returncode != 0
    assert "alphavil: error: rank 1 cannot read its data (test)" in res.stderr
    run = tmp_path / "broken"
    leftovers = [p.name for p in run.iterdir()] if run.exists() else []
    assert not [n for n in leftovers if n.endswith(".tmp") or n == "summary.json"], leftovers


def test_only_rank_0_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(distributed, "rank", lambda: 1)  # as rank 1 of a group of one
    cfg = toy_config(tmp_path, "train.method=single")
    summary = execute(cfg, tmp_path / "r1", show_progress=False)
    assert summary["status"] == "completed" and not (tmp_path / "r1").exists()


def _alpha_worker(rank: int, port: int, out: str) -> None:
    import torch.distributed as dist

    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    value, grad = _alpha_problem()
    torch.save({"value": value, "grad": grad}, f"{out}/rank{rank}.pt")
    dist.destroy_process_group()


def _alpha_problem() -> tuple[torch.Tensor, torch.Tensor]:
    from alphavil.data.toy import toy_model

    torch.manual_seed(0)
    model = toy_model().double()
    theta = snapshot(model)
    deltas = stack_deltas(
        [{k: 0.2 * torch.randn_like(v) for k, v in theta.items()} for _ in range(3)]
    )
    x = torch.randn(70, 16, dtype=torch.float64)
    y = (x[:, 0] > 0).long()
    chunks = [(x[i : i + 16], {"main": y[i : i + 16]}) for i in range(0, 70, 16)]  # 5 chunks
    vg = target_loss_and_grad(model, theta, deltas, chunks, Task("main", 2))
    return vg(torch.tensor([0.9, 0.3, -0.2], dtype=torch.float64))


def test_all_reduced_alpha_gradient_equals_the_single_process_one(tmp_path: Path) -> None:
    import socket

    import torch.multiprocessing as mp

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    mp.spawn(_alpha_worker, args=(port, str(tmp_path)), nprocs=2, join=True)
    value, grad = _alpha_problem()
    for r in (0, 1):
        got = torch.load(tmp_path / f"rank{r}.pt")
        torch.testing.assert_close(got["value"], value, rtol=1e-12, atol=1e-14)
        torch.testing.assert_close(got["grad"], grad, rtol=1e-12, atol=1e-14)


def test_every_tensor_the_alpha_fit_hands_a_collective_has_a_backend_for_its_device(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A CUDA run's process group must serve the CPU scalars the α fit sums (NCCL alone refuses
    them: "No backend type associated with device type cpu"). A CPU stand-in for the collective
    asserts that the group init_from_env creates for CUDA has a backend for every tensor's
    device."""
    from alphavil.alpha import target_loss_value
    from alphavil.alpha_exact import target_loss_grad_hess
    from tests.bn_data import bn_problem

    created: dict[str, str] = {}
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setattr(distributed, "_OWNED", [])
    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: "backend" in created)
    monkeypatch.setattr(
        distributed.dist, "init_process_group", lambda backend: created.update(backend=backend)
    )
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    assert distributed.init_from_env("cuda")
    served = {
        pair.split(":")[0] if ":" in pair else {"nccl": "cuda", "gloo": "cpu"}[pair]
        for pair in created["backend"].split(",")
    }
    assert "cuda" in served
    handed: list[torch.device] = []

    def all_reduce(t: torch.Tensor, op: object = None) -> None:
        handed.append(t.device)
        assert t.device.type in served, f"{created['backend']} has no backend for {t.device}"

    monkeypatch.setattr(distributed.dist, "all_reduce", all_reduce)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(distributed.dist, "get_rank", lambda: 0)
    model, theta, deltas, dev, task = bn_problem(steps=1)
    a = torch.tensor([0.9, 0.4, 0.3], dtype=torch.float64)
    target_loss_value(model, theta, deltas, dev, task)(a)
    target_loss_and_grad(model, theta, deltas, dev, task)(a)
    target_loss_grad_hess(model, theta, deltas, dev, task)(a)
    assert len(handed) == 3
