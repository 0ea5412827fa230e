"""NSGA-II in metagen_jax against pymoo's NSGA-II on the same problem: wall time and hypervolume.

Both searches optimise the cost model of one spec. pymoo gets the problem as a
vectorised integer problem: each variable vector is decoded into a genome (width step,
layers, heads, kv heads, FFN quarters), repaired into the space by `SearchSpace.repair`
in a pymoo Repair operator, and scored by `Problem.evaluate_host`, with the constraint
violation as pymoo's single inequality constraint. pymoo uses its integer recipe (random
integer sampling, SBX crossover and polynomial mutation with rounding) and removes
duplicates. Both runs evaluate P * (G + 1) genomes: pymoo's generation count includes
the initial population, so it runs G + 1 of them.

The hypervolume is that of the feasible final population, against the exact front's worst
value per objective plus 10 % of its range (see evolution_quality.py), computed by pymoo.
metagen_jax's time excludes compilation, which is reported on its own line.

    python benches/evolution_vs_pymoo.py [--population 1000] [--generations 100]
        [--seeds 0 1 2 3 4] [--quick]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from pymoo.algorithms.moo.nsga2 import NSGA2 as PymooNSGA2
from pymoo.core.problem import Problem as PymooProblem
from pymoo.core.repair import Repair
from pymoo.operators.crossover.sbx import SBX
from pymoo.operators.mutation.pm import PM
from pymoo.operators.repair.rounding import RoundingRepair
from pymoo.operators.sampling.rnd import IntegerRandomSampling
from pymoo.optimize import minimize

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402
from evolution_quality import exact_front, feasible_front, hypervolume  # noqa: E402

from metagen_jax.objectives import DEFAULT_OBJECTIVES  # noqa: E402
from metagen_jax.problem import MIN_EVALUATION_BUCKET, Problem, build_problem  # noqa: E402
from metagen_jax.space import HIDDEN, HIDDEN_STEP, NUM_GENES  # noqa: E402
from metagen_jax.specs import parse_spec  # noqa: E402
from metagen_jax.strategies.evolution import run_generations  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "text_llm_8b.yaml"
# A violation or objective pymoo can compare, in place of inf.
LARGE = 1e30


class GenomeCodec:
    """Map pymoo variable vectors to genomes and back; the width is stored in 64-steps."""

    def __init__(self, problem: Problem) -> None:
        self.space = problem.space
        self._repair = jax.jit(self.space.repair)
        b = self.space.bounds
        self.lower = np.asarray([0, b.layers_min, b.heads_min, 1, b.ffn_quarters_min])
        self.upper = np.asarray([(b.hidden_max - b.hidden_min) // HIDDEN_STEP, b.layers_max,
                                 b.heads_max, b.heads_max, b.ffn_quarters_max])

    def genomes(self, variables: np.ndarray) -> np.ndarray:
        genomes = np.rint(variables).astype(np.int32)
        genomes[:, HIDDEN] = self.space.bounds.hidden_min + HIDDEN_STEP * genomes[:, HIDDEN]
        return genomes

    def variables(self, genomes: np.ndarray) -> np.ndarray:
        variables = genomes.astype(np.int64)
        variables[:, HIDDEN] = (genomes[:, HIDDEN] - self.space.bounds.hidden_min) // HIDDEN_STEP
        return variables

    def repair(self, genomes: np.ndarray) -> np.ndarray:
        # Padded to a power of two, as in Problem.evaluate_host, to bound recompilation.
        count = len(genomes)
        bucket = max(MIN_EVALUATION_BUCKET, 1 << max(0, (count - 1).bit_length()))
        padded = np.zeros((bucket, NUM_GENES), dtype=np.int32)
        padded[:count] = genomes
        return np.asarray(self._repair(padded))[:count]


class GenomeRepair(Repair):
    """pymoo repair operator: round, decode, repair into the space, encode."""

    def __init__(self, codec: GenomeCodec) -> None:
        super().__init__()
        self.codec = codec

    def _do(self, problem, X, **kwargs):
        return self.codec.variables(self.codec.repair(self.codec.genomes(X))).astype(float)


class CostModelProblem(PymooProblem):
    """The cost model as a vectorised pymoo problem with one inequality constraint."""

    def __init__(self, problem: Problem, codec: GenomeCodec) -> None:
        super().__init__(n_var=NUM_GENES, n_obj=len(problem.objectives), n_ieq_constr=1,
                         xl=codec.lower, xu=codec.upper, vtype=int)
        self.problem = problem
        self.codec = codec

    def _evaluate(self, x, out, *args, **kwargs):
        evaluation = self.problem.evaluate_host(self.codec.genomes(np.asarray(x)))
        objectives = np.asarray(evaluation.objectives, dtype=np.float64)
        violation = np.asarray(evaluation.violation, dtype=np.float64)
        out["F"] = np.where(np.isfinite(objectives), objectives, LARGE)
        out["G"] = np.where(np.isfinite(violation), violation, LARGE)[:, None]


def run_pymoo(problem: Problem, population: int, generations: int, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    """Run pymoo's NSGA-II; return wall seconds and the final objectives and violations."""
    codec = GenomeCodec(problem)
    algorithm = PymooNSGA2(
        pop_size=population,
        sampling=IntegerRandomSampling(),
        crossover=SBX(prob=0.9, eta=15, vtype=float, repair=RoundingRepair()),
        mutation=PM(eta=20, vtype=float, repair=RoundingRepair()),
        repair=GenomeRepair(codec),
        eliminate_duplicates=True,
    )
    start = time.perf_counter()
    result = minimize(CostModelProblem(problem, codec), algorithm, ("n_gen", generations + 1), seed=seed,
                      verbose=False)
    seconds = time.perf_counter() - start
    final = result.algorithm.pop
    return seconds, final.get("F"), final.get("G")[:, 0]


def run_ours(problem: Problem, population: int, generations: int, seed: int) -> tuple[float, np.ndarray, np.ndarray]:
    start = time.perf_counter()
    state, _ = run_generations(jax.random.key(seed), problem, population, generations)
    jax.block_until_ready(state)
    seconds = time.perf_counter() - start
    return seconds, np.asarray(state.objectives), np.asarray(state.violation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--population", type=int, default=1000)
    parser.add_argument("--generations", type=int, default=100)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--quick", action="store_true", help="2 seeds and 20 generations")
    args = parser.parse_args()
    if args.quick:
        args.seeds, args.generations = args.seeds[:2], min(args.generations, 20)

    problem = build_problem(parse_spec(args.spec).requirements, DEFAULT_OBJECTIVES)
    _, front = exact_front(problem, 1 << 20)
    low, high = front.min(axis=0), front.max(axis=0)
    reference = high + 0.1 * (high - low)
    exact = hypervolume(front, reference)

    print(f"machine: {machine_description()}")
    print(f"spec: {args.spec.name}; population {args.population}; generations {args.generations}; "
          f"{args.population * (args.generations + 1):,} evaluations per run; seeds {args.seeds}")
    start = time.perf_counter()
    run_ours(problem, args.population, args.generations, args.seeds[0])
    print(f"metagen_jax first run including compilation: {time.perf_counter() - start:.1f} s")

    rows = []
    for seed in args.seeds:
        ours_s, ours_f, ours_v = run_ours(problem, args.population, args.generations, seed)
        pymoo_s, pymoo_f, pymoo_v = run_pymoo(problem, args.population, args.generations, seed)
        ours_hv = hypervolume(feasible_front(ours_f, ours_v), reference) / exact
        pymoo_hv = hypervolume(feasible_front(pymoo_f, pymoo_v), reference) / exact
        rows.append((ours_s, pymoo_s, ours_hv, pymoo_hv))
        print(f"seed {seed}: metagen_jax {ours_s:.2f} s, HV {ours_hv:.4f}; pymoo {pymoo_s:.2f} s, HV {pymoo_hv:.4f}",
              flush=True)

    ours_s, pymoo_s, ours_hv, pymoo_hv = (np.median(column) for column in zip(*rows, strict=True))
    print(f"{'':>12} {'seconds':>9} {'HV fraction':>12}")
    print(f"{'metagen_jax':>12} {ours_s:>9.2f} {ours_hv:>12.4f}")
    print(f"{'pymoo':>12} {pymoo_s:>9.2f} {pymoo_hv:>12.4f}")
    print(f"median speedup {pymoo_s / ours_s:.1f}x; HV fraction of the exact front ({len(front)} points), "
          "medians over seeds")


if __name__ == "__main__":
    main()
