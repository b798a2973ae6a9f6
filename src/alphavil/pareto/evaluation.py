"""Evaluating a population after every epoch: each model's dev and test losses and accuracies,
the hypervolume of the K loss vectors, the scalarised losses and, where the analytic front is
known, IGD, IGD+ and each model's distance to its subproblem's optimum; kept as the epoch's
``metrics.jsonl`` record and as the curves of the run's summary."""

from __future__ import annotations

import time
import warnings
from typing import Any

import numpy as np
import torch
from torch import Tensor

from alphavil.data.batching import MultiTaskData, move_to
from alphavil.pareto.hypervolume import hypervolume
from alphavil.pareto.metrics import igd, igd_plus, subproblem_distance
from alphavil.pareto.options import MT2OConfig
from alphavil.pareto.population import Population
from alphavil.pareto.scalarize import scalarize
from alphavil.progress import Progress
from alphavil.runs import RunWriter
from alphavil.training import NonFiniteLossError

__all__ = ["CURVES", "EpochRecords"]

# the curves a summary holds (hv: test hypervolume; the front metrics only on synthetic problems)
CURVES = ("hv", "hv_dev", "igd", "igd_plus", "subproblem_distance", "subproblem_gap")


def _hv(points: np.ndarray, ref: np.ndarray, *, maximize: bool = False) -> float:
    with warnings.catch_warnings():  # early epochs may dominate no point: HV 0, no warning spam
        warnings.filterwarnings("ignore", message="the reference point", category=RuntimeWarning)
        return hypervolume(points, ref, maximize=maximize)


def _split_record(loss: Tensor, acc: Tensor | None, names: list[str]) -> dict[str, Any]:
    return {
        t: {"loss": loss[:, i].tolist(), "accuracy": None if acc is None else acc[:, i].tolist()}
        for i, t in enumerate(names)
    }


class EpochRecords:
    """Evaluates the K models (in eval mode) and keeps every epoch's record and the curves.

    Args:
        pop: The population.
        data: The run's data; ``names`` its tasks, in the order of the loss vectors.
        mc: The ``[mt2o]`` options (``eval_dev``, the scalarisation and its ``smooth``).
        prefs: The weight vectors λ^k ``(K, m)``; ``ref`` the hypervolume's reference point.
        ideal: z* for the scalarised losses, or None.
        front: A dense sample of the analytic front ``(r, m)``, or None.
        subproblem: The scalarisation whose optimum is each model's goal (None: no distance).
        subproblem_prefs: Its weight vectors ``(K, m)``.
        run: Where each record is written; ``progress`` the line that shows the epoch.
        start: ``time.perf_counter()`` at the start of the run (``seconds_total``).
    """

    def __init__(
        self,
        pop: Population,
        data: MultiTaskData,
        names: list[str],
        mc: MT2OConfig,
        *,
        prefs: Tensor,
        ref: np.ndarray,
        ideal: Tensor | None,
        device: torch.device,
        eval_batch_size: int,
        front: np.ndarray | None,
        subproblem: str | None,
        subproblem_prefs: np.ndarray,
        run: RunWriter | None,
        progress: Progress | None,
        start: float,
    ) -> None:
        self.pop, self.data, self.names, self.mc = pop, data, names, mc
        self.prefs, self.ref, self.ideal, self.device = prefs, ref, ideal, device
        self.eval_batch_size = eval_batch_size
        self.front, self.subproblem, self.subproblem_prefs = front, subproblem, subproblem_prefs
        self.run, self.progress, self.start = run, progress, start
        self.curves: dict[str, list[Any]] = {key: [] for key in CURVES}
        self.records: list[dict[str, Any]] = []

    def front_metrics(self, loss: Tensor) -> dict[str, Any]:
        """IGD, IGD+ and the subproblem distances and gaps of the test losses ``(K, m)``."""
        if self.front is None:
            return {}
        pts = loss.numpy()
        out: dict[str, Any] = {"igd": igd(pts, self.front), "igd_plus": igd_plus(pts, self.front)}
        if self.subproblem is not None:
            z = None if self.ideal is None else self.ideal.numpy()
            dist, gap = subproblem_distance(
                pts, self.front, self.subproblem_prefs, self.subproblem, z
            )
            out |= {"subproblem_distance": dist.tolist(), "subproblem_gap": gap.tolist()}
        return out

    def evaluate(self, epoch: int, extra: dict[str, Any]) -> None:
        """Evaluate after ``epoch`` (0: before training), add ``extra`` to the record, keep it,
        write it to the run and show it; ``NonFiniteLossError`` if a loss is not finite."""
        mc, names = self.mc, self.names
        splits = ["dev", "test"] if mc.eval_dev else ["test"]
        record: dict[str, Any] = {"epoch": epoch, "hv": {}, "hv_accuracy": {}, "scalarized": {}}
        for split in splits:
            batches = self.data.eval_batches(split, names, batch_size=self.eval_batch_size)
            loss, acc = self.pop.evaluate(move_to(b, self.device) for b in batches)  # eval mode
            if not torch.isfinite(loss).all():
                raise NonFiniteLossError(f"non-finite {split} loss {loss.tolist()}")
            record["hv"][split] = _hv(loss.numpy(), self.ref)
            record["scalarized"][split] = scalarize(
                loss, self.prefs, mc.scalarization, ideal=self.ideal, smooth=mc.smooth
            ).tolist()
            if acc is not None:
                record["hv_accuracy"][split] = _hv(acc.numpy(), np.zeros(len(names)), maximize=True)
            record[split] = _split_record(loss, acc, names)
            if split == "test":
                record |= self.front_metrics(loss)
        record.update(extra, seconds_total=time.perf_counter() - self.start)
        self.curves["hv"].append(record["hv"]["test"])
        if "dev" in record["hv"]:
            self.curves["hv_dev"].append(record["hv"]["dev"])
        for key in ("igd", "igd_plus", "subproblem_distance", "subproblem_gap"):
            if key in record:
                self.curves[key].append(record[key])
        self.records.append(record)
        if self.run:
            self.run.log_epoch(record)
        if self.progress:
            self.progress.end_epoch(
                f"hv(test) {record['hv']['test']:.4f} β {extra.get('beta', 0):.3g}"
            )
