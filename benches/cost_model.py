"""Cost-model throughput against the memory floor, on the bundled 8B text spec.

The floor is a jitted function that reads the same (N, 5) int32 genomes and writes the
same number of float32 arrays as the cost model, with one add per element, so it measures
only memory traffic. The ratio shows how far the cost model is from that floor.

    python benches/cost_model.py [--sizes 1000000 10000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import jax
import jax.numpy as jnp

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import best_of, machine_description  # noqa: E402

from metagen_jax.objectives import DEFAULT_OBJECTIVES  # noqa: E402
from metagen_jax.problem import build_problem  # noqa: E402
from metagen_jax.specs import parse_spec  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "text_llm_8b.yaml"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[1_000_000, 10_000_000])
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    problem = build_problem(parse_spec(SPEC).requirements, DEFAULT_OBJECTIVES)
    evaluate = jax.jit(problem.evaluate)
    outputs = len(jax.tree.leaves(jax.eval_shape(problem.evaluate, jax.ShapeDtypeStruct((8, 5), jnp.int32))))

    @jax.jit
    def memory_floor(genomes):
        column = genomes[:, 0].astype(jnp.float32)
        return [column + float(i) for i in range(outputs)]

    print(f"machine: {machine_description()}")
    print(f"spec: {SPEC.name}; {outputs} float32 outputs per candidate")
    print(f"{'candidates':>12} {'cost model':>14} {'copy floor':>14} {'ratio':>7}")
    for size in args.sizes:
        genomes = jax.device_put(problem.space.sample(jax.random.key(0), size))
        jax.block_until_ready(evaluate(genomes))
        jax.block_until_ready(memory_floor(genomes))
        model_s = best_of(args.repeats, lambda: jax.block_until_ready(evaluate(genomes)))
        floor_s = best_of(args.repeats, lambda: jax.block_until_ready(memory_floor(genomes)))
        print(f"{size:>12,} {size / model_s / 1e6:>10.1f} M/s {size / floor_s / 1e6:>10.1f} M/s "
              f"{model_s / floor_s:>6.2f}x")
        del genomes


if __name__ == "__main__":
    main()
