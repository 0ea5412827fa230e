"""Exact 3-objective hypervolume: `pareto.hypervolume` against pymoo's HV indicator.

Points are half on the positive octant of the unit sphere (mutually non-dominated) and half
uniform in the unit cube, with the reference point (1.5, 1.5, 1.5). pymoo 0.6.2 computes
the exact value in float64 with moocore's C code. metagen_jax computes it in float32 under
`jax.jit`, as an evolution run does after every generation. Both times are
the best of `--repeats` warm calls, measured side by side; compilation is reported apart.

    python benches/hypervolume.py [--sizes 256 1000 4000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from pymoo.indicators.hv import HV

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine_description  # noqa: E402

from metagen_jax import pareto  # noqa: E402

REFERENCE = np.full(3, 1.5)


def make_points(size: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    points = rng.random((size, 3))
    half = size // 2
    points[:half] /= np.linalg.norm(points[:half], axis=1, keepdims=True)
    return points


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 1000, 4000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    print(f"machine: {machine_description()}")
    print(f"{'N':>6} {'metagen_jax ms':>15} {'pymoo ms':>9} {'pymoo / ours':>13} {'compile s':>10} {'relative diff':>14}")
    hypervolume = jax.jit(pareto.hypervolume)
    for size in args.sizes:
        points = make_points(size)
        points32, reference32 = points.astype(np.float32), REFERENCE.astype(np.float32)
        start = time.perf_counter()
        ours = float(hypervolume(points32, reference32))
        compile_seconds = time.perf_counter() - start
        indicator = HV(ref_point=REFERENCE)
        expected = float(indicator(points))
        ours_seconds = best_of(args.repeats, lambda: hypervolume(points32, reference32).block_until_ready())
        pymoo_seconds = best_of(args.repeats, lambda: indicator(points))
        print(f"{size:>6} {ours_seconds * 1e3:>15.2f} {pymoo_seconds * 1e3:>9.2f} "
              f"{pymoo_seconds / ours_seconds:>12.2f}x {compile_seconds:>10.2f} "
              f"{abs(ours - expected) / expected:>14.2e}")


if __name__ == "__main__":
    main()
