"""Two processes on torch.distributed (gloo) against one: data-parallel steps, task-parallel deltas.

Runs αVIL on MultiMNIST (target left, the paper's settings, ``--train-limit`` training images)
three ways, each for ``--epochs`` epochs, and reads the per-epoch phase times from the runs'
metrics:

1. one process, one thread;
2. ``torchrun --nproc-per-node 2``: every batch split over the two ranks (data parallel);
3. the same with ``alphavil.parallel_deltas = true``: task i's update on rank i (T = 2).

Each process uses one thread, so 2 and 3 use both cores of this machine. Run it on an otherwise
idle machine:

    python benchmarks/bench_parallel.py                 # 2 epochs, 10k training images
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path


def _run(out: Path, name: str, ranks: int, extra: list[str], args: argparse.Namespace) -> None:
    overrides = [
        "train.method=alphavil",
        "train.target=left",
        f"train.epochs={args.epochs}",
        f"data.train_limit={args.train_limit}",
        "alphavil.dev_fraction=0.2",
        "train.threads=1",
        "train.save_checkpoints=false",
        "train.save_predictions=false",
        f"out_dir='{out}'",
        f"name={name}",
        "--quiet",
        *extra,
    ]
    cli = ["-m", "alphavil.cli", "run", "configs/multimnist_paper.toml", *overrides]
    if ranks == 1:
        cmd = [sys.executable, *cli]
    else:
        launch = ["-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={ranks}"]
        cmd = [sys.executable, *launch, *cli]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run(cmd, check=True, env=env, capture_output=True, text=True)


def _phase_seconds(path: Path) -> dict[str, float]:
    records = [json.loads(line) for line in (path / "metrics.jsonl").read_text().splitlines()]
    return {
        key: statistics.median(r[key] for r in records)
        for key in ("seconds_deltas", "seconds_alpha", "seconds_train", "seconds")
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--train-limit", type=int, default=10000)
    args = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        sep = "alphavil.updates=separate"  # the paper's task updates (measured so; see docs)
        setups = {
            "1 process": (1, [sep]),
            "2 ranks, data parallel": (2, [sep]),
            "2 ranks, task-parallel deltas": (2, [sep, "alphavil.parallel_deltas=true"]),
        }
        times = {}
        for i, (label, (ranks, extra)) in enumerate(setups.items()):
            _run(out, f"run{i}", ranks, extra, args)
            times[label] = _phase_seconds(out / f"run{i}")
            print(f"{label}: " + ", ".join(f"{k} {v:.2f}" for k, v in times[label].items()))
    base = times["1 process"]
    print(f"\nmedian seconds per epoch, {args.train_limit} training images, {args.epochs} epochs;")
    print("ratio to one process (lower is faster):")
    for label, t in times.items():
        print(
            f"  {label:30s} delta phase {t['seconds_deltas'] / base['seconds_deltas']:.2f}  "
            f"α fit {t['seconds_alpha'] / base['seconds_alpha']:.2f}  "
            f"epoch training {t['seconds_train'] / base['seconds_train']:.2f}"
        )


if __name__ == "__main__":
    main()
