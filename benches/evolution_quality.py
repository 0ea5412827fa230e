"""Hypervolume reached by the evolutionary search against the exact Pareto front.

The exact front comes from evaluating every genome of the space in chunks, keeping the
feasible non-dominated points of each chunk and merging them. Each search is scored by
the hypervolume of the feasible genomes it evaluated (what the engine ranks) and of its
final population, as a fraction of the exact front's hypervolume. Random search with
the same number of evaluations is shown for comparison. Every hypervolume uses one
reference point: the exact front's worst value in each objective plus 10 % of its range.
Hypervolumes are computed by pymoo (exact, float64).

    python benches/evolution_quality.py [--spec specs/text_llm_8b.yaml]
        [--budgets 1000 10000 49303] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import jax
import numpy as np
from pymoo.indicators.hv import HV
from pymoo.util.nds.non_dominated_sorting import NonDominatedSorting

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import machine_description  # noqa: E402

from metagen_jax.objectives import DEFAULT_OBJECTIVES  # noqa: E402
from metagen_jax.problem import Problem, build_problem  # noqa: E402
from metagen_jax.specs import parse_spec  # noqa: E402
from metagen_jax.strategies.evolution import run_evolution  # noqa: E402
from metagen_jax.strategies.random_search import random_search_genomes  # noqa: E402

SPEC = Path(__file__).resolve().parent.parent / "specs" / "text_llm_8b.yaml"


def front_indices(objectives: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Indices of the feasible non-dominated rows of `objectives`, by pymoo's sorting."""
    feasible = np.flatnonzero(np.asarray(violation) <= 0)
    if len(feasible) == 0:
        return feasible
    points = np.asarray(objectives, dtype=np.float64)[feasible]
    return feasible[NonDominatedSorting().do(points, only_non_dominated_front=True)]


def feasible_front(objectives: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """Feasible non-dominated rows of `objectives` as float64."""
    return np.asarray(objectives, dtype=np.float64)[front_indices(objectives, violation)]


def exact_front(problem: Problem, chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Genomes and float64 objectives of the exact feasible front, from every genome of the space."""
    genome_parts, objective_parts = [], []
    for start in range(0, problem.space.size, chunk):
        genomes = problem.space.genomes_at(np.arange(start, min(problem.space.size, start + chunk)))
        evaluation = problem.evaluate_host(genomes)
        keep = front_indices(evaluation.objectives, evaluation.violation)
        genome_parts.append(genomes[keep])
        objective_parts.append(np.asarray(evaluation.objectives, dtype=np.float64)[keep])
    genomes, objectives = np.concatenate(genome_parts), np.concatenate(objective_parts)
    keep = front_indices(objectives, np.zeros(len(objectives)))
    return genomes[keep], objectives[keep]


def share_found(front_genomes: np.ndarray, genomes: np.ndarray) -> float:
    """Share of the exact front's genomes that appear among `genomes`."""
    found = {tuple(row) for row in np.asarray(genomes).tolist()}
    return sum(tuple(row) in found for row in front_genomes.tolist()) / len(front_genomes)


def hypervolume(points: np.ndarray, reference: np.ndarray) -> float:
    points = points[np.all(points < reference, axis=1)]
    return float(HV(ref_point=reference)(points)) if len(points) else 0.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spec", type=Path, default=SPEC)
    parser.add_argument("--budgets", type=int, nargs="+", default=None,
                        help="evaluations per search (default: 1000, 10000 and 1%% of the space)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--chunk", type=int, default=1 << 20, help="genomes per chunk of the exact sweep")
    args = parser.parse_args()

    problem = build_problem(parse_spec(args.spec).requirements, DEFAULT_OBJECTIVES)
    print(f"machine: {machine_description()}")
    print(f"spec: {args.spec.name}; space size {problem.space.size:,}; objectives {', '.join(problem.objectives)}")

    budgets = args.budgets or [1000, 10_000, problem.space.size // 100]
    start = time.perf_counter()
    front_genomes, front = exact_front(problem, args.chunk)
    low, high = front.min(axis=0), front.max(axis=0)
    reference = high + 0.1 * (high - low)
    exact = hypervolume(front, reference)
    print(f"exact front: {len(front)} points, swept in {time.perf_counter() - start:.1f} s; "
          f"reference point {np.array2string(reference, precision=4)}; hypervolume {exact:.6g}")

    print(f"{'evaluations':>11} {'share of space':>14} {'P x G':>10} {'evaluated':>10} {'population':>10} "
          f"{'random':>8} {'front found':>11} {'random found':>12} {'seconds':>8}")
    for budget in budgets:
        evaluated, population, random, seconds, found, random_found = [], [], [], [], [], []
        for seed in args.seeds:
            key = jax.random.key(seed)
            tick = time.perf_counter()
            outcome = run_evolution(problem, key, budget=budget)
            seconds.append(time.perf_counter() - tick)
            evaluated.append(hypervolume(feasible_front(outcome.evaluation.objectives,
                                                        outcome.evaluation.violation), reference) / exact)
            found.append(share_found(front_genomes, outcome.genomes))
            final = problem.evaluate_host(outcome.population)
            population.append(hypervolume(feasible_front(final.objectives, final.violation), reference) / exact)
            sample = random_search_genomes(problem.space, key, outcome.evaluations)
            scored = problem.evaluate_host(sample)
            random.append(hypervolume(feasible_front(scored.objectives, scored.violation), reference) / exact)
            random_found.append(share_found(front_genomes, sample))
        shape = f"{outcome.population_size}x{outcome.generations}"
        print(f"{outcome.evaluations:>11,} {outcome.evaluations / problem.space.size:>13.3%} {shape:>10} "
              f"{np.mean(evaluated):>10.4f} {np.mean(population):>10.4f} {np.mean(random):>8.4f} "
              f"{np.mean(found):>11.2%} {np.mean(random_found):>12.2%} {np.median(seconds):>8.1f}")
    print("evaluated, population, random: hypervolume fraction of the exact front for every genome the "
          "search evaluated, its final population, and a random search of equal size; front found: share "
          f"of the exact front's genomes evaluated. Means over seeds {', '.join(map(str, args.seeds))}; "
          "seconds: median wall time of run_evolution over the seeds; only the first seed of each budget "
          "compiles, so the median leaves compilation out.")


if __name__ == "__main__":
    main()
