"""Run the exhaustive sweep of a small test problem in its own process.

The exhaustive tests start this script to get a fresh JAX: forced host device counts
(XLA reads its flags once, at import), several processes joined through
`jax.distributed`, and a real SIGTERM. Progress goes to stdout as "progress DONE TOTAL"
lines; the outcome goes to an .npz file.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys


def small_problem():
    """A space of 7,056 genomes, 3,650 of them feasible, with a front of a few hundred."""
    from metagen_jax.problem import build_problem
    from metagen_jax.space import GeneBounds, SearchSpace
    from metagen_jax.specs.requirements import Requirements

    requirements = Requirements(
        name="exhaustive-test", min_params=10_000_000, max_params=60_000_000,
        memory_budget_bytes=2_000_000_000, context_tokens=4096, device="consumer_gpu",
        training_tokens=2e10, training_data_unit="tokens",
    )
    problem = build_problem(requirements, ("params", "latency", "performance"))
    bounds = GeneBounds(hidden_min=256, hidden_max=768, layers_min=4, layers_max=12, heads_min=4, heads_max=12,
                        ffn_quarters_min=8, ffn_quarters_max=14)
    return dataclasses.replace(problem, space=SearchSpace.from_bounds(bounds))


# Sweep settings shared by the tests and this worker, so that in-process runs reuse one compile.
SWEEP_SETTINGS = {"chunk_size": 1024, "top_k": 64, "front_capacity": 1024, "survivor_capacity": 512}


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", required=True, help="output folder of the sweep")
    parser.add_argument("--result", required=True, help=".npz file for the outcome (process 0 only)")
    parser.add_argument("--devices", type=int, default=1, help="forced host CPU devices")
    parser.add_argument("--coordinator", default=None, help="host:port of the coordinator")
    parser.add_argument("--num-processes", type=int, default=None)
    parser.add_argument("--process-id", type=int, default=None)
    parser.add_argument("--resume", action="store_true")
    parser.add_argument("--progress-delay", type=float, default=0.0, help="seconds to sleep after each chunk")
    args = parser.parse_args(argv)

    os.environ["XLA_FLAGS"] = f"--xla_force_host_platform_device_count={args.devices}"
    import time

    import numpy as np

    from metagen_jax.distributed import initialize_distributed

    initialize_distributed(args.coordinator, args.num_processes, args.process_id)

    from metagen_jax.strategies.exhaustive import run_exhaustive

    def progress(phase: str, done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)
        if done and args.progress_delay:
            time.sleep(args.progress_delay)

    outcome = run_exhaustive(small_problem(), out_dir=args.out, resume=args.resume, progress=progress,
                             spec_hash="test-spec", **SWEEP_SETTINGS)
    if outcome.process_index == 0:
        np.savez(args.result, front_indices=outcome.front_indices, top_indices=outcome.top_indices,
                 indices=outcome.indices, objectives=outcome.evaluation.objectives, evaluated=outcome.evaluated,
                 feasible=outcome.feasible, devices=outcome.devices, processes=outcome.processes,
                 interrupted=outcome.interrupted, partial=outcome.partial)
    print(f"done {outcome.message}", flush=True)
    return outcome.exit_code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
