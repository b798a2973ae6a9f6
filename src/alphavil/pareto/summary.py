"""A population run's ``summary.json`` (curves, the final front, the best model per task) and
its text for the terminal."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from torch import Tensor

__all__ = ["best_models", "epochs_to_fraction", "format_population_summary", "population_summary"]


def epochs_to_fraction(
    hv: Sequence[float], fraction: float = 0.95, target: float | None = None
) -> int | None:
    """First epoch index e with hv[e] >= fraction · target (target: the last value).

    ``hv[e]`` is the hypervolume after epoch e (index 0 = before training). ``None`` if never.
    """
    if not hv:
        return None
    goal = fraction * (hv[-1] if target is None else target)
    return next((e for e, v in enumerate(hv) if v >= goal and v > 0), None)


def population_summary(
    method: str,
    names: list[str],
    prefs: Tensor,
    ref: np.ndarray,
    curves: dict[str, list[Any]],
    last: dict[str, Any],
    status: str,
    error: str | None,
    epochs_done: int,
    seconds: float,
    train_seconds: float,
) -> dict[str, Any]:
    """The summary of a run from its curves and its last epoch's record ``last``."""
    hv_curve = curves["hv"]
    best_epoch = int(np.argmax(hv_curve)) if hv_curve else None
    extra = {f"{key}_curve": curves[key] for key in curves if key != "hv" and curves[key]}
    return {
        "method": method,
        "target": None,
        "tasks": names,
        "n_models": prefs.shape[0],
        "prefs": prefs.tolist(),
        "ref_point": ref.tolist(),
        "status": status,
        "error": error,
        "epochs_completed": epochs_done,
        "hv_test": hv_curve[-1] if hv_curve else None,
        "hv_curve": hv_curve,
        "best_hv": None
        if best_epoch is None
        else {"epoch": best_epoch, "hv_test": hv_curve[best_epoch]},
        "epochs_to_95": epochs_to_fraction(hv_curve, 0.95),
        "final": {s: last[s] for s in ("dev", "test") if s in last},
        "final_scalarized": last.get("scalarized", {}),
        **extra,
        "best": best_models(last, names, epochs_done),
        "seconds": seconds,
        "seconds_train": train_seconds,
    }


def best_models(last: dict[str, Any], names: list[str], epoch: int) -> dict[str, Any]:
    """Per task, the final model with the best dev accuracy (or dev loss; test if no dev)."""
    best: dict[str, Any] = {}
    sel = "dev" if "dev" in last else "test"
    for t in names:
        if sel not in last:
            break
        acc, loss = last[sel][t]["accuracy"], last[sel][t]["loss"]
        i = int(np.argmax(acc)) if acc is not None else int(np.argmin(loss))
        get = {s: last[s][t] for s in ("dev", "test") if s in last}
        best[t] = {
            "epoch": epoch,
            "model": i,
            **{
                f"{s}_{key}": (None if v[key] is None else v[key][i])
                for s, v in get.items()
                for key in ("accuracy", "loss")
            },
        }
        best[t].setdefault("dev_accuracy", None)
    return best


def format_population_summary(summary: dict[str, Any]) -> str:
    """A population run summary: final hypervolume and each model's test losses."""
    lines = [
        f"{summary['method']} (K={summary['n_models']}): {summary['status']} in "
        f"{summary['seconds']:.0f}s; test HV {summary['hv_test']:.4f} (ref "
        f"{summary['ref_point']}), epochs to 95% HV {summary['epochs_to_95']}"
    ]
    test = summary.get("final", {}).get("test", {})
    names = list(test)
    lines += [
        "| model | λ | " + " | ".join(f"{t} loss" for t in names) + " |",
        "|---" * (len(names) + 2) + "|",
    ]
    for i, pref in enumerate(summary["prefs"]):
        cells = " | ".join(f"{test[t]['loss'][i]:.4f}" for t in names)
        lines.append(f"| {i} | {', '.join(f'{v:.2f}' for v in pref)} | {cells} |")
    return "\n".join(lines)
