"""Benchmark non-dominated ranking against pymoo and a naive front-peeling baseline.

Usage:
    .venv/bin/python benches/pareto_ranking.py [--size 20000] [--objectives 3]
        [--repeats 7] [--naive-size 20000] [--skip-naive] [--with-loop-flag]

Each figure is the median wall time of `--repeats` warm calls (compiled once before,
`block_until_ready` after each call). pymoo and JAX calls alternate, so a change of
machine load affects both. The JAX ranks are checked against pymoo's. pymoo's `NonDominatedSorting().do` calls the C
library moocore (`moocore.pareto_rank`) in pymoo 0.6.2. The naive baseline peels one
front at a time with a blocked N x N dominance test; it runs once, since it takes
tens of seconds at N = 20,000.

`--with-loop-flag` reruns the JAX figures in a child process with XLA_FLAGS set to
`--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000`,
which lets XLA compile the sweep's while loops into single CPU kernels. The flag is
process-wide, so the library cannot set it for its callers.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

import numpy as np

LOOP_FLAG = "--xla_backend_extra_options=xla_cpu_small_while_loop_byte_threshold=1000000000"


def make_datasets(size: int, objectives: int, seed: int) -> dict[str, np.ndarray]:
    """Random uniform points, and integer points in [0, 20) with many ties and duplicates."""
    rng = np.random.default_rng(seed)
    return {
        "uniform": rng.random((size, objectives)).astype(np.float32),
        "integer ties": rng.integers(0, 20, (size, objectives)).astype(np.float32),
    }


def median_seconds(function, repeats: int) -> float:
    function()  # compile and warm up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def interleaved_medians(functions: dict, repeats: int) -> dict[str, float]:
    """Median seconds of each function, timing them in turn so load changes hit all alike."""
    for function in functions.values():
        function()  # compile and warm up
    times = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def jax_ranker(points: np.ndarray):
    """Return a no-argument function that ranks `points` and blocks until done."""
    import jax
    import jax.numpy as jnp

    from metagen_jax.pareto import constrained_nondominated_rank

    objectives = jnp.asarray(points)
    violation = jnp.zeros((points.shape[0],), jnp.float32)
    return lambda: jax.block_until_ready(constrained_nondominated_rank(objectives, violation))


def time_jax(datasets: dict[str, np.ndarray], repeats: int) -> dict[str, dict[str, float]]:
    """Time constrained_nondominated_rank and return {dataset: {"seconds", "fronts"}}."""
    results = {}
    for name, points in datasets.items():
        run = jax_ranker(points)
        seconds = median_seconds(run, repeats)
        results[name] = {"seconds": seconds, "fronts": int(np.asarray(run()).max()) + 1}
    return results


def naive_peel_seconds(points: np.ndarray, block: int = 1000) -> tuple[float, int]:
    """Time front peeling with a full blocked dominance test per front (one run)."""
    import jax
    import jax.numpy as jnp

    size = points.shape[0]
    padded = -(-size // block) * block
    objectives = jnp.asarray(np.pad(points, ((0, padded - size), (0, 0)), constant_values=np.inf))

    @jax.jit
    def dominated_among(remaining):
        def test_block(index):
            rows = jax.lax.dynamic_slice(objectives, (index * block, 0), (block, objectives.shape[1]))
            no_worse = jnp.all(objectives[:, None, :] <= rows[None, :, :], axis=2)
            better = jnp.any(objectives[:, None, :] < rows[None, :, :], axis=2)
            return jnp.any(remaining[:, None] & no_worse & better, axis=0)

        return jax.lax.map(test_block, jnp.arange(padded // block)).reshape(padded)

    remaining = jnp.arange(padded) < size
    dominated_among(remaining).block_until_ready()  # compile
    start = time.perf_counter()
    fronts = 0
    while bool(jnp.any(remaining)):
        front = remaining & ~dominated_among(remaining)
        remaining = remaining & ~front
        fronts += 1
    return time.perf_counter() - start, fronts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=20000, help="number of points N")
    parser.add_argument("--objectives", type=int, default=3, help="number of objectives M")
    parser.add_argument("--repeats", type=int, default=7, help="timed warm calls per figure")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--naive-size", type=int, default=20000, help="N for the naive baseline")
    parser.add_argument("--skip-naive", action="store_true", help="do not run the naive baseline")
    parser.add_argument("--with-loop-flag", action="store_true", help="also time JAX with the XLA loop flag")
    parser.add_argument("--jax-only-json", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    datasets = make_datasets(args.size, args.objectives, args.seed)
    if args.jax_only_json:
        print(json.dumps(time_jax(datasets, args.repeats)))
        return

    import jax
    from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

    print(f"platform: {platform.platform()}, python {platform.python_version()}")
    print(f"cpu count: {os.cpu_count()}, processor: {platform.processor() or 'unknown'}")
    print(f"jax {jax.__version__}, devices: {jax.devices()}")
    print(f"XLA_FLAGS: {os.environ.get('XLA_FLAGS', '(unset)')}")
    print(f"N = {args.size}, M = {args.objectives}, median of {args.repeats} warm calls\n")

    flagged = None
    if args.with_loop_flag:
        env = dict(os.environ, XLA_FLAGS=f"{os.environ.get('XLA_FLAGS', '')} {LOOP_FLAG}".strip())
        command = [sys.executable, __file__, "--jax-only-json", "--size", str(args.size),
                   "--objectives", str(args.objectives), "--repeats", str(args.repeats), "--seed", str(args.seed)]
        output = subprocess.run(command, env=env, check=True, capture_output=True, text=True).stdout
        flagged = json.loads(output.strip().splitlines()[-1])

    sorter = NonDominatedSorting()
    header = f"{'dataset':<14} {'fronts':>6} {'pymoo ms':>9} {'jax ms':>9} {'pymoo/jax':>9}"
    if flagged:
        header += f" {'jax+flag ms':>11} {'pymoo/jax+flag':>14}"
    print(header)
    for name, points in datasets.items():
        points64 = points.astype(np.float64)
        ours = jax_ranker(points)
        medians = interleaved_medians(
            {"pymoo": lambda: sorter.do(points64, return_rank=True), "jax": ours}, args.repeats
        )
        fronts = int(np.asarray(ours()).max()) + 1
        expected = sorter.do(points64, return_rank=True)[1]
        if not np.array_equal(np.asarray(ours()), expected):
            raise SystemExit(f"{name}: ranks differ from pymoo")
        line = (f"{name:<14} {fronts:>6} {medians['pymoo'] * 1e3:>9.2f} "
                f"{medians['jax'] * 1e3:>9.2f} {medians['pymoo'] / medians['jax']:>9.2f}")
        if flagged:
            line += (f" {flagged[name]['seconds'] * 1e3:>11.2f} "
                     f"{medians['pymoo'] / flagged[name]['seconds']:>14.2f}")
        print(line)

    if not args.skip_naive:
        points = make_datasets(args.naive_size, args.objectives, args.seed)["uniform"]
        seconds, fronts = naive_peel_seconds(points)
        print(f"\nnaive front peeling, uniform, N = {args.naive_size}: {seconds * 1e3:.0f} ms "
              f"for {fronts} fronts (one run)")


if __name__ == "__main__":
    main()
