"""Exhaustive-sweep throughput and memory, against the bare cost model.

Part 1 sweeps the whole space of the bundled 8B text spec twice (the first call includes
compiling the sweep step) and compares candidates/s with a jitted `Problem.evaluate` on a
chunk of 2^20 genomes measured in the same run. Part 2 streams a space of about 1.1
billion genomes (wide bounds) and reports peak RSS before, during and at the end of the
sweep. `--wide-seconds` stops it after that long through the sweep's own SIGINT handling.

    python benches/sweep.py [--devices N] [--wide-seconds 120] [--skip-wide] [--skip-8b]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

BENCHES = Path(__file__).resolve().parent
SPEC = BENCHES.parent / "specs" / "text_llm_8b.yaml"
BARE_CHUNK = 1 << 20
# Wide bounds: 9,109 attention layouts (head sizes 32 to 256) x 1,021 depths x 121 FFN steps
# = 1,125,334,969 genomes.
WIDE_BOUNDS = {"hidden_min": 256, "hidden_max": 16384, "heads_min": 1, "heads_max": 256, "layers_min": 4,
               "layers_max": 1024, "ffn_quarters_min": 8, "ffn_quarters_max": 128}


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


def bare_rate(problem) -> float:
    """Genomes per second of a jitted evaluate on one 2^20 chunk (best of 3)."""
    import jax

    from common import best_of

    genomes = jax.device_put(problem.space.genomes_at(jax.numpy.arange(BARE_CHUNK) % problem.space.size))
    evaluate = jax.jit(problem.evaluate)
    jax.block_until_ready(evaluate(genomes))
    return BARE_CHUNK / best_of(3, lambda: jax.block_until_ready(evaluate(genomes)))


def sweep_8b(chunk_size: int | None) -> None:
    from metagen_jax.objectives import DEFAULT_OBJECTIVES
    from metagen_jax.problem import build_problem
    from metagen_jax.specs import parse_spec
    from metagen_jax.strategies.exhaustive import run_exhaustive

    problem = build_problem(parse_spec(SPEC).requirements, DEFAULT_OBJECTIVES)
    size = problem.space.size
    rate = bare_rate(problem)
    print(f"\n[8B] spec {SPEC.name}: {size:,} genomes; bare jitted evaluate on 2^20: {rate / 1e6:.2f} M/s "
          f"({size / rate:.2f} s for the space)")
    for label in ("first call (with compile)", "second call (compiled)"):
        with tempfile.TemporaryDirectory() as out:
            start = time.perf_counter()
            outcome = run_exhaustive(problem, out_dir=Path(out), chunk_size=chunk_size, handle_signals=False)
            wall = time.perf_counter() - start
        print(f"[8B] {label}: {wall:.2f} s, {size / wall / 1e6:.2f} M candidates/s, "
              f"{size / wall / rate:.2f} of bare; front {len(outcome.front_indices)}, "
              f"feasible {outcome.feasible:,}, devices {outcome.devices}")


def sweep_wide(seconds: float | None, chunk_size: int | None) -> None:
    from metagen_jax.objectives import DEFAULT_OBJECTIVES
    from metagen_jax.problem import build_problem
    from metagen_jax.space import GeneBounds, SearchSpace
    from metagen_jax.specs import parse_spec
    from metagen_jax.strategies.exhaustive import run_exhaustive

    base = build_problem(parse_spec(SPEC).requirements, DEFAULT_OBJECTIVES)
    problem = dataclasses.replace(base, space=SearchSpace.from_bounds(GeneBounds(**WIDE_BOUNDS)))
    size = problem.space.size
    samples: list[tuple[int, float]] = []

    def progress(phase: str, done: int, total: int) -> None:
        samples.append((done, peak_rss_mib()))

    before = peak_rss_mib()
    print(f"\n[wide] {size:,} genomes; peak RSS before the sweep {before:.0f} MiB")
    if seconds is not None:
        timer = threading.Timer(seconds, lambda: os.kill(os.getpid(), signal.SIGINT))
        timer.daemon = True
        timer.start()
    with tempfile.TemporaryDirectory() as out:
        start = time.perf_counter()
        outcome = run_exhaustive(problem, out_dir=Path(out), chunk_size=chunk_size, progress=progress)
        wall = time.perf_counter() - start
    if seconds is not None:
        timer.cancel()
    after_first = samples[1][1] if len(samples) > 1 else before
    middle = samples[len(samples) // 2] if samples else (0, before)
    print(f"[wide] evaluated {outcome.evaluated:,} of {size:,} in {wall:.1f} s "
          f"({outcome.evaluated / wall / 1e6:.2f} M candidates/s, compile included); "
          f"{'stopped by the time limit' if outcome.partial else 'complete'}")
    print(f"[wide] peak RSS: {before:.0f} MiB before, {after_first:.0f} MiB after the first chunk, "
          f"{middle[1]:.0f} MiB at {middle[0]:,} genomes, {peak_rss_mib():.0f} MiB at the end; "
          f"front {len(outcome.front_indices)}, feasible {outcome.feasible:,}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=None,
                        help="host CPU devices to force (XLA_FLAGS); default: JAX's own device list")
    parser.add_argument("--chunk-size", type=int, default=None, help="genomes per step over all devices")
    parser.add_argument("--wide-seconds", type=float, default=None,
                        help="stop the wide sweep after this many seconds (default: sweep it all)")
    parser.add_argument("--skip-wide", action="store_true", help="skip the wide part")
    parser.add_argument("--skip-8b", action="store_true", help="skip the 8B part")
    args = parser.parse_args()
    if args.devices is not None:
        os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"

    sys.path.insert(0, str(BENCHES))
    from common import machine_description

    print(f"machine: {machine_description()}")
    if not args.skip_wide:
        sweep_wide(args.wide_seconds, args.chunk_size)
    if not args.skip_8b:
        sweep_8b(args.chunk_size)


if __name__ == "__main__":
    main()
