"""Front-quality indicators beyond hypervolume: IGD, IGD+ and per-model subproblem distance.

Hypervolume alone can be fooled: a set pulled off its weight vectors (e.g. by constant parameter
transfer) can cover more of the reference box than the K analytic subproblem optima while no
model solves its own subproblem. These indicators are reported next to it:

* :func:`igd` and :func:`igd_plus`: inverted generational distance of a point set to a reference
  front (mean over reference points of the distance to the nearest point; IGD+ only counts the
  amount by which a point is *worse*, which makes it weakly Pareto compliant; Ishibuchi et al.,
  EMO 2015). Thin wrappers of ``moocore.igd`` / ``moocore.igd_plus`` (López-Ibáñez et al.,
  https://multi-objective.github.io/moocore/); moocore is the optional ``pareto`` extra.
* :func:`subproblem_optima` and :func:`subproblem_distance`: for each model k with weight vector
  λ^k, the optimum of its own scalar subproblem g(· | λ^k) over a dense sample of the analytic
  front (every minimiser of a linear or Tchebycheff scalarisation with λ ≥ 0 over the feasible
  set is attained on the Pareto front), the model's objective-space distance to it and its
  scalarised gap g(f(θ_k) | λ^k) − min g. Exact up to the sampling of the front (checked
  against closed forms in the tests).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = ["igd", "igd_plus", "scalarize_np", "subproblem_distance", "subproblem_optima"]


def _moocore() -> Any:
    try:
        import moocore
    except ImportError as err:  # pragma: no cover - exercised only without the extra
        raise ImportError(
            "IGD/IGD+ need moocore: pip install 'alphavil[pareto]' (or pip install moocore)"
        ) from err
    return moocore


def _points(points: ArrayLike, front: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    p = np.asarray(points, dtype=float)
    f = np.asarray(front, dtype=float)
    if p.ndim != 2 or f.ndim != 2 or p.shape[1] != f.shape[1] or len(p) == 0 or len(f) == 0:
        raise ValueError(
            f"points and front must be non-empty (n, m) arrays with the same m; got "
            f"{p.shape} and {f.shape}"
        )
    if not (np.isfinite(p).all() and np.isfinite(f).all()):
        raise ValueError("points and front must be finite")
    return p, f


def igd(points: ArrayLike, front: ArrayLike) -> float:
    """IGD of ``points (n, m)`` w.r.t. the reference ``front (r, m)`` (minimisation)."""
    p, f = _points(points, front)
    return float(_moocore().igd(p, ref=f))


def igd_plus(points: ArrayLike, front: ArrayLike) -> float:
    """IGD+ of ``points (n, m)`` w.r.t. the reference ``front (r, m)`` (minimisation):
    mean over r ∈ front of min_p ‖max(p − r, 0)‖₂."""
    p, f = _points(points, front)
    return float(_moocore().igd_plus(p, ref=f))


def scalarize_np(
    values: np.ndarray, prefs: np.ndarray, method: str, ideal: np.ndarray | None = None
) -> np.ndarray:
    """g(f | λ) for every pair: ``values (..., n, m)``, ``prefs (K, m)`` -> ``(..., K, n)``.

    ``method``: ``"linear"`` (Σ λ_i f_i) or ``"tchebycheff"`` (max λ_i (f_i − z*_i), z* = 0 or
    ``ideal``), as :mod:`alphavil.pareto.scalarize`.
    """
    v = np.asarray(values, dtype=float)
    if ideal is not None:
        v = v - np.asarray(ideal, dtype=float)
    terms = prefs[:, None, :] * v[..., None, :, :]  # (..., K, n, m)
    if method not in ("linear", "tchebycheff"):
        raise ValueError(f"unknown scalarization {method!r}; allowed: linear, tchebycheff")
    out: np.ndarray = terms.sum(-1) if method == "linear" else terms.max(-1)
    return out


def subproblem_optima(
    front: ArrayLike,
    prefs: ArrayLike,
    method: str,
    ideal: ArrayLike | None = None,
    *,
    tol: float = 1e-12,
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Optimal values min_front g(· | λ^k) ``(K,)`` and, per k, its minimisers on ``front``.

    ``front`` is a dense sample of the analytic Pareto front ``(r, m)``; the minimisers are the
    sample points within ``tol`` (relative to the value's scale) of the minimum, so a
    non-unique optimum (linear scalarisation on a flat front) is a set, not a point.
    """
    f = np.asarray(front, dtype=float)
    p = np.asarray(prefs, dtype=float)
    if f.ndim != 2 or p.ndim != 2 or f.shape[1] != p.shape[1]:
        raise ValueError(f"front (r, m) and prefs (K, m) disagree: {f.shape}, {p.shape}")
    z = None if ideal is None or len(np.atleast_1d(ideal)) == 0 else np.asarray(ideal, float)
    g = scalarize_np(f, p, method, z)  # (K, r)
    best = g.min(axis=1)
    sets = [f[g[k] <= best[k] + tol * max(1.0, abs(best[k]))] for k in range(len(p))]
    return best, sets


def subproblem_distance(
    values: ArrayLike,
    front: ArrayLike,
    prefs: ArrayLike,
    method: str,
    ideal: ArrayLike | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Per model k: objective-space distance of ``values[k]`` to the nearest optimum of its own
    subproblem on ``front``, and the scalarised gap g(values[k] | λ^k) − min_front g.

    Returns ``(distance (K,), gap (K,))``. The gap is >= 0 up to the front's sampling error.
    """
    v = np.asarray(values, dtype=float)
    p = np.asarray(prefs, dtype=float)
    if v.shape != p.shape:
        raise ValueError(f"values {v.shape} and prefs {p.shape} must both be (K, m)")
    best, sets = subproblem_optima(front, p, method, ideal)
    z = None if ideal is None or len(np.atleast_1d(ideal)) == 0 else np.asarray(ideal, float)
    own = np.array(
        [scalarize_np(v[k : k + 1], p[k : k + 1], method, z)[0, 0] for k in range(len(p))]
    )
    dist = np.array([np.linalg.norm(s - v[k], axis=1).min() for k, s in enumerate(sets)])
    return dist, own - best
