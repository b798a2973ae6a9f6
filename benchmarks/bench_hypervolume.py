"""Overhead of alphavil.pareto.hypervolume (input validation, minimisation frame, box filter)
over calling moocore directly: 1,000 random three-objective points, one process.

    python benchmarks/bench_hypervolume.py [--points 1000] [--objectives 3] [--repeats 1000]

Prints the median time of each and their ratio (alphavil / moocore); the target is <= 1.5.
"""

from __future__ import annotations

import argparse
import time

import moocore
import numpy as np

from alphavil.pareto.hypervolume import hypervolume


def interleaved_medians(fns, repeats: int) -> list[float]:  # type: ignore[no-untyped-def]
    """Median seconds of each function, timed in turn within every repeat (so that a load
    change on the machine hits both alike)."""
    times: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for fn, out in zip(fns, times, strict=True):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return [float(np.median(t)) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--points", type=int, default=1000)
    parser.add_argument("--objectives", type=int, default=3)
    parser.add_argument("--repeats", type=int, default=1000)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    pts = rng.random((args.points, args.objectives))
    ref = np.full(args.objectives, 1.1)
    assert hypervolume(pts, ref) == moocore.hypervolume(pts, ref=ref)
    for _ in range(20):  # warm up both
        moocore.hypervolume(pts, ref=ref)
        hypervolume(pts, ref)
    theirs, ours = interleaved_medians(
        [lambda: moocore.hypervolume(pts, ref=ref), lambda: hypervolume(pts, ref)], args.repeats
    )
    print(f"{args.points} points, {args.objectives} objectives, median of {args.repeats}")
    print(f"moocore.hypervolume: {theirs * 1e6:8.1f} us")
    print(f"alphavil hypervolume: {ours * 1e6:8.1f} us")
    print(f"ratio: {ours / theirs:.2f}")


if __name__ == "__main__":
    main()
