"""Seconds per epoch on a GPU: every method on full MultiMNIST, and NLU with a RoBERTa-base-sized
encoder, so the GPU cost of the paper's protocols can be stated from a measurement.

    python -m alphavil.nlu.fixtures data/nlu-sized --sizes paper      # once: paper-size NLU files
    python benchmarks/bench_gpu.py --nlu-data data/nlu-sized [--autocast off,bf16] [--json F]
    python benchmarks/bench_gpu.py --cpu-smoke                        # the code path, on CPU

What is timed, per (dataset, method, autocast): ``--epochs`` epochs of the training loop's own
pieces (the method's epoch, then dev and test evaluation, as :meth:`Trainer.fit` runs them), with
``torch.cuda.synchronize`` around each; the first epoch includes CUDA start-up and kernel
selection, so the last one is the steady figure the estimates use.

* MultiMNIST: ``configs/multimnist_paper.toml`` (50k train, 10k dev, 10k test; needs the MNIST
  cache, ``alphavil data``, or ``--cache-dir``): single, multitask, diw, αVIL with the paper's SGD
  α fit and with the exact L-BFGS fit.
* NLU: ``configs/nlu_paper.toml`` on fixture files of the official split sizes with
  ``data.encoder = "random-roberta-base"`` (random weights, roberta-base's shapes; no download):
  the methods of ``--nlu-methods`` (default multitask and αVIL).

Without a CUDA GPU (and without ``--cpu-smoke``) it prints one line and exits 0. ``--cpu-smoke``
runs the same code on CPU at tiny sizes (random MultiMNIST-shaped images, the small NLU fixture,
the 2-layer ``tiny-roberta``) to check that it works, not to measure anything.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn

from alphavil.cli import error_line
from alphavil.config import RunConfig, load_config
from alphavil.data.batching import MultiTaskData, SharedInputData
from alphavil.datasets import get_dataset
from alphavil.training import Trainer

ROOT = Path(__file__).resolve().parent.parent
MULTIMNIST = str(ROOT / "configs" / "multimnist_paper.toml")
NLU = str(ROOT / "configs" / "nlu_paper.toml")
# name -> overrides of the MultiMNIST paper config
MULTIMNIST_METHODS = {
    "single": ["train.method=single"],
    "multitask": ["train.method=multitask"],
    "diw": ["train.method=diw"],
    "alphavil-sgd": ["train.method=alphavil"],
    "alphavil-lbfgs": [
        "train.method=alphavil",
        "alphavil.alpha_solver=lbfgs",
        "alphavil.weight_rule=relative",
    ],
}
# Runs per seed of the paper protocols (configs/*_paper.toml): a per-target method runs once per
# target (MultiMNIST: left, right; NLU: 5 tasks); multitask once.
PROTOCOL = {
    "multimnist": {"epochs": 100, "seeds": 20, "targets": 2},
    "nlu": {"epochs": 20, "seeds": 4, "targets": 5},
}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_epochs(
    cfg: RunConfig, data: MultiTaskData, make_model: Callable[[], nn.Module], epochs: int
) -> list[dict[str, float]]:
    """Seconds of each of ``epochs`` epochs: training (the method's epoch) and evaluation."""
    torch.manual_seed(cfg.train.seed)
    trainer = Trainer(cfg, data, make_model())
    out = []
    for _ in range(epochs):
        _sync(trainer.device)
        t0 = time.perf_counter()
        trainer.method.epoch()
        _sync(trainer.device)
        t1 = time.perf_counter()
        dev = trainer.evaluate("dev", trainer.trained)
        trainer.evaluate("test", trainer.trained, keep_probs=cfg.train.save_predictions)
        trainer.method.after_evaluation(dev)
        _sync(trainer.device)
        t2 = time.perf_counter()
        out.append({"train": t1 - t0, "eval": t2 - t1, "epoch": t2 - t0})
    del trainer
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return out


def _smoke_multimnist() -> tuple[MultiTaskData, Callable[[], nn.Module]]:
    """Random MultiMNIST-shaped data (28 x 28 images, labels 0-9) and the paper's LeNet."""
    from alphavil.data.multimnist_spec import TASKS
    from alphavil.models.lenet import multi_lenet

    g = torch.Generator().manual_seed(0)
    inputs, targets = {}, {}
    for split, n in (("train", 64), ("dev", 32), ("test", 32)):
        inputs[split] = torch.randn(n, 1, 28, 28, generator=g)
        targets[split] = {t.name: torch.randint(0, 10, (n,), generator=g) for t in TASKS}
    return SharedInputData(TASKS, inputs, targets), lambda: multi_lenet(TASKS)


def bench_multimnist(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    base = [f"train.device={device}", "train.target=left", "train.save_checkpoints=false"]
    if args.cpu_smoke:
        base += ["train.batch_size=16", "train.eval_batch_size=32", "alphavil.steps=2"]
        data, make_model = _smoke_multimnist()
    else:
        extra = [f"data.cache_dir='{args.cache_dir}'"] if args.cache_dir else []
        try:
            data, make_model = get_dataset("multimnist").build(load_config(MULTIMNIST, extra).data)
        except Exception as err:  # data unavailable: say so, go on with NLU
            print(f"multimnist: skipped ({error_line(err)})", flush=True)
            return []
        base += extra
    rows = []
    for name, overrides in MULTIMNIST_METHODS.items():
        if args.methods and name not in args.methods:
            continue
        for ac in args.autocast:
            cfg = load_config(MULTIMNIST, [*base, *overrides, f"train.autocast={ac}"])
            rows.append(
                _row("multimnist", name, ac, time_epochs(cfg, data, make_model, args.epochs))
            )
    return rows


def bench_nlu(args: argparse.Namespace, device: str) -> list[dict[str, Any]]:
    from alphavil.nlu.fixtures import write_fixture_data

    with tempfile.TemporaryDirectory() as tmp:
        if args.nlu_data:
            root = Path(args.nlu_data)
        else:
            root = write_fixture_data(
                Path(tmp) / "nlu", sizes="small" if args.cpu_smoke else "paper"
            )
            print(f"nlu: wrote fixture data ({'small' if args.cpu_smoke else 'paper'} sizes)")
        base = [
            f"data.data_dir='{root}'",
            f"data.encoder={'tiny-roberta' if args.cpu_smoke else 'random-roberta-base'}",
            f"train.device={device}",
            "train.target=RTE",
            "train.save_checkpoints=false",
        ]
        if args.cpu_smoke:
            base += ["data.max_length=64", "alphavil.steps=2"]
        data, make_model = get_dataset("nlu").build(load_config(NLU, base).data)
        rows = []
        for method in args.nlu_methods:
            for ac in args.autocast:
                cfg = load_config(NLU, [*base, f"train.method={method}", f"train.autocast={ac}"])
                rows.append(
                    _row("nlu", method, ac, time_epochs(cfg, data, make_model, args.epochs))
                )
        return rows


def _row(
    dataset: str, method: str, autocast: str, epochs: list[dict[str, float]]
) -> dict[str, Any]:
    last = epochs[-1]
    row = {"dataset": dataset, "method": method, "autocast": autocast, "epochs": epochs, **last}
    print(
        f"{dataset:10s} {method:15s} {autocast:4s} train {last['train']:8.2f}s  eval "
        f"{last['eval']:7.2f}s  epoch {last['epoch']:8.2f}s  (all epochs: "
        + ", ".join(f"{e['epoch']:.2f}" for e in epochs)
        + ")",
        flush=True,
    )
    return row


def protocol_hours(rows: list[dict[str, Any]], where: str) -> list[str]:
    """One line per (dataset, autocast): hours of the paper protocol from the last epochs."""
    lines = []
    for dataset, p in PROTOCOL.items():
        for ac in sorted({r["autocast"] for r in rows if r["dataset"] == dataset}):
            mine = [r for r in rows if r["dataset"] == dataset and r["autocast"] == ac]
            seconds = 0.0
            parts = []
            for r in mine:
                if r["method"] == "alphavil-lbfgs":
                    continue  # the paper's α fit is SGD; lbfgs is shown above
                runs = p["seeds"] * (1 if r["method"] == "multitask" else p["targets"])
                s = r["epoch"] * p["epochs"] * runs
                seconds += s
                parts.append(f"{r['method']} {s / 3600:.2f}")
            lines.append(
                f"{dataset} paper protocol ({p['epochs']} epochs x {p['seeds']} seeds, "
                f"autocast {ac}), one run at a time on {where}: {seconds / 3600:.2f} hours "
                f"for the methods timed ({', '.join(parts)})"
            )
    return lines


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--cpu-smoke", action="store_true", help="tiny sizes on CPU (a code check)")
    p.add_argument("--epochs", type=int, default=2, help="epochs timed per method (default 2)")
    p.add_argument("--autocast", default="off", help="comma list of off,bf16 (default off)")
    p.add_argument(
        "--nlu-data",
        help="fixture folder (python -m alphavil.nlu.fixtures DIR "
        "--sizes paper); default: written to a temporary folder",
    )
    p.add_argument("--nlu-methods", default="multitask,alphavil", help="comma list")
    p.add_argument(
        "--methods",
        default="",
        help=f"comma list of MultiMNIST variants (default all: {','.join(MULTIMNIST_METHODS)})",
    )
    p.add_argument(
        "--device",
        default="cuda",
        help="cuda (default) or cpu: time the full sizes on CPU instead (a baseline; slow)",
    )
    p.add_argument("--skip", default="", help="comma list of multimnist,nlu to leave out")
    p.add_argument("--cache-dir", help="MultiMNIST cache folder (default $ALPHAVIL_CACHE)")
    p.add_argument("--json", help="also write the results to this JSON file")
    args = p.parse_args(argv)
    args.autocast = [a for a in args.autocast.split(",") if a]
    args.nlu_methods = [m for m in args.nlu_methods.split(",") if m]
    args.methods = [m for m in args.methods.split(",") if m]
    unknown = [m for m in args.methods if m not in MULTIMNIST_METHODS]
    if unknown or args.device not in ("cuda", "cpu"):
        p.error(f"--methods {unknown} / --device {args.device!r}: see --help")
    skip = set(args.skip.split(","))
    if not torch.cuda.is_available() and not args.cpu_smoke and args.device == "cuda":
        print(
            f"bench_gpu: no CUDA GPU here (torch {torch.__version__}); nothing measured "
            "(--cpu-smoke runs the code on CPU at tiny sizes)"
        )
        return 0
    device = "cpu" if args.cpu_smoke else args.device
    if device == "cuda":
        name = torch.cuda.get_device_name(0)
        bf16 = torch.cuda.is_bf16_supported()
        print(
            f"bench_gpu: {name}, torch {torch.__version__}, CUDA {torch.version.cuda}, bf16 {bf16}"
        )
    else:
        what = "smoke run (tiny sizes; not a measurement)" if args.cpu_smoke else "full sizes"
        print(
            f"bench_gpu: CPU {what}, torch {torch.__version__}, {torch.get_num_threads()} threads"
        )
    rows: list[dict[str, Any]] = []
    if "multimnist" not in skip:
        rows += bench_multimnist(args, device)
    if "nlu" not in skip:
        rows += bench_nlu(args, device)
    if rows and not args.cpu_smoke:
        for line in protocol_hours(rows, "one GPU" if device == "cuda" else "this CPU"):
            print(line)
    if args.json:
        meta = {"device": device, "torch": torch.__version__, "epochs_timed": args.epochs}
        if device == "cuda":
            meta["gpu"] = torch.cuda.get_device_name(0)
        Path(args.json).write_text(json.dumps({**meta, "rows": rows}, indent=1) + "\n")
    if rows:
        med = statistics.median(r["epoch"] for r in rows)
        print(f"bench_gpu: {len(rows)} timings, median last epoch {med:.2f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
